"""Face detectors behind one call: ``detect(frame_bgr) -> list[Face]``.

Each detector is one wrapper class (preprocess -> forward -> postprocess) and a context
manager. Boxes are always in pixels of the full frame the caller passed, whatever size the
detector ran at (``detect_width`` downscales the frame first: the main speed knob).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .. import defaults
from ..errors import DetectorError, OptionsError
from ..types import Face
from .registry import DETECTOR_FILES, DETECTORS, REGISTRY  # noqa: F401 (DETECTOR_FILES: ssd, fetch, tests)

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class DetectorOptions:
    """``detect_width``: frames wider than this are downscaled before detection (0: never).
    ``min_face_px``: smallest face side to report, in full-frame pixels.
    ``min_confidence``: None uses the detector's own default.
    ``model_path``: the detector's file (or folder holding its files); None looks in the cache
    folders of :func:`detector_search_dirs`.
    ``num_threads``: CPU threads of blazeface (LiteRT), rfb, mtcnn and ssd's ONNX file (ONNX Runtime);
    haar, yunet and ssd's Caffe net run in OpenCV's own pool (``cv2.setNumThreads``, set by the
    pipeline). yunet, blazeface and mtcnn load from the package unless ``model_path`` names a file
    (mtcnn: a folder)."""

    name: str = defaults.DETECTOR
    model_path: str | None = None
    detect_width: int = defaults.DETECT_WIDTH
    min_face_px: int = defaults.MIN_FACE_PX
    min_confidence: float | None = None
    max_faces: int = 10
    num_threads: int = defaults.LIVE_THREADS

    def __post_init__(self) -> None:
        if self.name not in DETECTORS:
            raise DetectorError(f"DetectorOptions.name={self.name!r}: unknown detector; "
                                f"expected one of {', '.join(DETECTORS)}")
        if self.detect_width < 0:
            raise OptionsError(f"DetectorOptions.detect_width={self.detect_width!r}: expected >= 0 (0 = full size)")
        if self.min_face_px < 1:
            raise OptionsError(f"DetectorOptions.min_face_px={self.min_face_px!r}: expected >= 1")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise OptionsError(f"DetectorOptions.min_confidence={self.min_confidence!r}: expected 0 <= c <= 1")
        if self.max_faces < 1:
            raise OptionsError(f"DetectorOptions.max_faces={self.max_faces!r}: expected >= 1")
        defaults.check_threads("DetectorOptions.num_threads", self.num_threads)


class FaceDetector(Protocol):
    name: str

    def detect(self, frame_bgr: np.ndarray) -> list[Face]: ...

    def close(self) -> None: ...


class _Closeable:
    """``with detector: ...`` closes it at the end; subclasses define ``close()``."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def detector_search_dirs() -> list[Path]:
    """Where detector files are looked up: $EDGE_FER_DETECTORS, then the user cache folder."""
    dirs = []
    if os.environ.get("EDGE_FER_DETECTORS"):
        dirs.append(Path(os.environ["EDGE_FER_DETECTORS"]))
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    dirs.append(cache / "edge-fer" / "detectors")
    return dirs


def find_detector_files(name: str, model_path: str | None) -> list[Path]:
    """Paths of the files ``name`` needs: from ``model_path`` (a file or folder), else the
    files shipped inside the package (yunet, blazeface, mtcnn), else the cache folders."""
    wanted = DETECTOR_FILES[name]
    if not model_path:
        from .shipped import shipped_files

        shipped = shipped_files(name)
        if shipped is not None:
            return shipped
    if model_path:
        given = Path(model_path)
        if given.is_file() and len(wanted) == 1:
            return [given]
        if given.is_file():  # ssd: the caffemodel given, the prototxt beside it
            given = given.parent
        if not given.exists():
            raise DetectorError(f"detector file not found: {model_path} (expected "
                                f"{' + '.join(wanted)} or a folder holding {'them' if len(wanted) > 1 else 'it'})")
        dirs = [given]
    else:
        dirs = detector_search_dirs()
    for folder in dirs:
        paths = [folder / f for f in wanted]
        if all(p.is_file() and p.stat().st_size > 0 for p in paths):
            return paths
    where = dirs[-1]
    raise DetectorError(f"detector {name!r} needs {' + '.join(wanted)}: put them in {where} "
                        f"or pass --detector-model PATH (`edge-fer fetch-detectors` downloads them)")


def detector_files_present(name: str, model_path: str | None = None) -> bool:
    """Whether ``name`` can find its files (:func:`find_detector_files`; Haar's cascade comes
    with OpenCV): nothing is loaded and nothing raised."""
    if name == "haar":
        return not model_path or Path(model_path).is_file()
    try:
        find_detector_files(name, model_path)
    except DetectorError:
        return False
    return True


def load_error(name: str, where: str | Path, exc: BaseException) -> DetectorError:
    """The one-line error for detector files that exist but do not load (corrupt, HTML...)."""
    from ..backends import first_line

    exc = exc.__cause__ or exc  # cv2 wraps some errors in SystemError
    # OpenCV's text: "OpenCV(4.x) /path/file.cpp:123: error: (-210:Name) what in function 'f'"
    reason = re.sub(r"OpenCV\(.*?\) \S+: error: \(-?\d+:[^)]*\) ", "", str(exc).strip())
    reason = first_line(re.sub(r" in function '[^']*'", "", reason).replace(str(where), Path(where).name))
    fix = ("replace it (`edge-fer fetch-detectors --force` downloads it again)" if name in DETECTOR_FILES
           else "leave the model path out to use the cascade OpenCV ships")
    return DetectorError(f"{where}: not a loadable {name} detector file ({reason}); {fix}")


def cpu_onnx_session(path: str | Path, num_threads: int, spin: bool = True):
    """An ONNX Runtime session for a detector file on the CPU with ``num_threads`` threads (its
    errors are ONNX Runtime's own, untyped: callers turn them into :func:`load_error`).
    ``spin=False`` lets idle worker threads sleep: for many small runs per frame (MTCNN), where
    spinning threads fight the caller for the cores (2 threads measured 50 ms a frame spinning,
    27 ms not, on 2 cores)."""
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = num_threads
    session_options.inter_op_num_threads = 1
    session_options.log_severity_level = 3  # files that list their weights as inputs warn
    if not spin:
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Gray (HxW or HxWx1) and BGRA frames as 3-channel BGR; BGR frames unchanged."""
    import cv2

    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def downscale(frame_bgr: np.ndarray, detect_width: int) -> tuple[np.ndarray, float]:
    """The frame at most ``detect_width`` wide, and the factor back to full-frame pixels."""
    import cv2

    width = frame_bgr.shape[1]
    if not detect_width or width <= detect_width:
        return frame_bgr, 1.0
    factor = width / detect_width
    height = max(1, int(round(frame_bgr.shape[0] / factor)))
    return cv2.resize(frame_bgr, (detect_width, height), interpolation=cv2.INTER_AREA), factor


def to_faces(boxes_xywh, scores, factor: float, frame_shape, options: DetectorOptions, *,
             detector: str | None = None, landmarks=None) -> list[Face]:
    """Scale boxes (and each face's ``{name: (x, y)}`` landmarks) to the full frame, clip the
    boxes, drop small faces, keep the best ``max_faces``; each Face names its ``detector``."""
    H, W = frame_shape[:2]
    faces = []
    points_per_face = landmarks if landmarks is not None else [None] * len(boxes_xywh)
    for (x, y, w, h), score, points in zip(boxes_xywh, scores, points_per_face):
        x0, y0 = max(0.0, x * factor), max(0.0, y * factor)
        x1, y1 = min(float(W), (x + w) * factor), min(float(H), (y + h) * factor)
        bw, bh = int(round(x1 - x0)), int(round(y1 - y0))
        if min(bw, bh) < options.min_face_px:
            continue
        full = None if points is None else {k: (px * factor, py * factor) for k, (px, py) in points.items()}
        faces.append(Face((int(round(x0)), int(round(y0)), bw, bh), float(min(1.0, max(0.0, score))), full, detector))
    faces.sort(key=lambda f: f.score, reverse=True)
    return faces[: options.max_faces]


def create_detector(options: DetectorOptions = DetectorOptions()) -> FaceDetector:
    """The wrapper :data:`~.registry.REGISTRY` names for ``options.name``, loaded on first use."""
    spec = REGISTRY[options.name]
    module = importlib.import_module(f".{spec.module}", __package__)
    return getattr(module, spec.class_name)(options)
