"""MediaPipe's own check of a phone model (``edge-fer check-phone``), in MediaPipe's environment.

MediaPipe (which pulls ``opencv-contrib-python``, clashing with ``opencv-python-headless``) lives
in its own environment (the repo's ``.venv-mp``, or ``$EDGE_FER_MEDIAPIPE_PYTHON``):
:func:`find_mediapipe_python` finds it and :func:`mediapipe_classify` runs its
``ImageClassifier`` there in a subprocess; :func:`check_agreement` compares it with edge-fer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_fer.errors import ConversionError

def find_mediapipe_python() -> str | None:
    """A Python that can ``import mediapipe``: $EDGE_FER_MEDIAPIPE_PYTHON, the repo's
    ``.venv-mp``, or this interpreter; None when there is none."""
    repo = Path(__file__).resolve().parents[1]
    candidates = [os.environ.get("EDGE_FER_MEDIAPIPE_PYTHON"), str(repo / ".venv-mp" / "bin" / "python"),
                  sys.executable]
    for python in candidates:
        if not python or not Path(python).exists():
            continue
        try:
            probe = subprocess.run([python, "-c", "import mediapipe"], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return python
    return None


_CLASSIFY_SCRIPT = r"""
import json, sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision
args = json.loads(sys.stdin.read())
options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=args["model"]),
                                        max_results=-1)
out = []
with vision.ImageClassifier.create_from_options(options) as classifier:
    for rgb in np.load(args["images"]):
        rgb = np.ascontiguousarray(rgb)
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        out.append({c.category_name: float(c.score) for c in result.classifications[0].categories})
print(json.dumps({"version": mp.__version__, "scores": out}))
"""


def mediapipe_classify(model_path: str | Path, images_rgb: np.ndarray, python: str | None = None,
                       timeout_s: float = 600) -> tuple[str, list[dict[str, float]]]:
    """Run MediaPipe's ``ImageClassifier`` on uint8 RGB images (N, H, W, 3), as a phone app
    passes camera frames. Returns (mediapipe version, one {label: score} per image, all classes)."""
    python = python or find_mediapipe_python()
    if python is None:
        raise ConversionError("MediaPipe not found: python3.11 -m venv .venv-mp && .venv-mp/bin/pip install "
                              "mediapipe (or set EDGE_FER_MEDIAPIPE_PYTHON)")
    images_rgb = np.asarray(images_rgb)
    if images_rgb.dtype != np.uint8 or images_rgb.ndim != 4 or images_rgb.shape[-1] != 3:
        raise ConversionError(f"images must be uint8 (N, H, W, 3) RGB, got {images_rgb.dtype} {images_rgb.shape}")
    with tempfile.TemporaryDirectory(prefix="edge-fer-mp-") as tmp:
        np.save(Path(tmp) / "images.npy", images_rgb)
        request = json.dumps({"model": str(Path(model_path).resolve()), "images": str(Path(tmp) / "images.npy")})
        run = subprocess.run([python, "-c", _CLASSIFY_SCRIPT], input=request, capture_output=True, text=True,
                             timeout=timeout_s)
    if run.returncode != 0:
        tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConversionError(f"MediaPipe ImageClassifier failed on {Path(model_path).name}: {tail[:300]}")
    reply = json.loads(run.stdout.strip().splitlines()[-1])
    return reply["version"], reply["scores"]


def check_agreement(model: str | Path, faces: str | Path, count: int = 500, against: str | Path | None = None,
                    seed: int = 0) -> dict:
    """MediaPipe's top-1 on ``count`` face crops (gray or colour files, fed as RGB) vs edge-fer's
    runtime on ``against`` (default: the same file)."""
    import cv2

    from edge_fer.classifier import ClassifierOptions, ExpressionClassifier
    from edge_fer.sources.images import is_image_file, read_image

    paths = sorted(p for p in Path(faces).glob("*/*") if is_image_file(p))
    if not paths:
        raise ConversionError(f"no face crops (class folders of .jpg/.png) in {faces}")
    picks = np.random.default_rng(seed).choice(len(paths), min(count, len(paths)), replace=False)
    chosen = [paths[i] for i in sorted(picks)]
    crops = [read_image(p) for p in chosen]
    sizes = {c.shape[:2] for c in crops if c is not None}
    if any(c is None for c in crops) or len(sizes) != 1:
        raise ConversionError(f"face crops in {faces} must be readable images of one size, got sizes {sorted(sizes)}")
    version, scores = mediapipe_classify(model, np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops]))
    with ExpressionClassifier.create_from_options(ClassifierOptions(against or model, num_threads=1)) as clf:
        ours = [clf.meta.labels[i] for i in clf.predict_proba(crops).argmax(1)]
    theirs = [max(s, key=s.get) for s in scores]
    truth = [p.parent.name for p in chosen]
    return {"mediapipe": version, "faces": len(chosen), "agreement": float(np.mean([a == b for a, b in zip(ours, theirs)])),
            "accuracy_mediapipe": float(np.mean([a == b for a, b in zip(theirs, truth)])),
            "accuracy_edge_fer": float(np.mean([a == b for a, b in zip(ours, truth)]))}
