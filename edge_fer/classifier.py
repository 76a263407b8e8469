"""Expression classifier: preprocess -> backend.run -> postprocess, batched over faces.

The model file's metadata says how to feed it (size, colour, scaling) and how to name its
outputs; a file without metadata (someone else's ``.tflite``) takes them from the options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from . import defaults
from .backends import BackendOptions, check_model_file, open_backend
from .confidence import soften
from .errors import ModelError, OptionsError
from .metadata import LABEL_PRESETS, ModelMeta, read_model_meta, resolve_model_meta
from .types import Expression, Face

DEFAULT_MODEL = Path(__file__).parent / "models" / "edgenet_fer2013_int8.tflite"


def parse_labels(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"fer2013"`` (a preset) or a comma-separated list of names."""
    if text is None or isinstance(text, (tuple, list)):
        return tuple(text) if text else None
    if text in LABEL_PRESETS:
        return LABEL_PRESETS[text]
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if len(names) < 2:
        raise OptionsError(f"ClassifierOptions.labels={text!r}: expected a preset ({', '.join(sorted(LABEL_PRESETS))}) or >= 2 comma-separated names")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise OptionsError(f"ClassifierOptions.labels={text!r}: {', '.join(map(repr, repeated))} named twice: expected each "
                           "label once, in the model's output order")
    return names


@dataclass(frozen=True)
class ClassifierOptions:
    """``labels``/``scale``/``offset``/``color`` override or stand in for the file's metadata."""

    model_path: str | Path = DEFAULT_MODEL
    num_threads: int = defaults.LIVE_THREADS
    device: str = "auto"
    labels: tuple[str, ...] | None = None
    scale: float | None = None
    offset: float | None = None
    color: str | None = None

    def __post_init__(self) -> None:
        defaults.check_threads("ClassifierOptions.num_threads", self.num_threads)


class ExpressionClassifier:
    """Classify face crops. Use :meth:`create_from_options` and close it (or use ``with``)."""

    def __init__(self, backend, meta: ModelMeta, model_path: Path) -> None:
        self._backend = backend
        self.meta = meta
        self.model_path = model_path

    @classmethod
    def create_from_options(cls, options: ClassifierOptions) -> "ExpressionClassifier":
        path = check_model_file(options.model_path)
        backend = open_backend(path, BackendOptions(options.num_threads, options.device))
        try:
            meta = resolve_meta(path, backend.input_spec, options)
        except BaseException:
            backend.close()
            raise
        return cls(backend, meta, path)

    @classmethod
    def create_from_model_path(cls, path: str | Path) -> "ExpressionClassifier":
        return cls.create_from_options(ClassifierOptions(model_path=path))

    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def providers(self) -> list[str]:
        return list(getattr(self._backend, "providers", ["XNNPACK"]))

    # preprocess -------------------------------------------------------------------------
    def crop(self, frame_bgr: np.ndarray, face: Face) -> np.ndarray:
        """The face framed as the model's training faces are (see :mod:`edge_fer.align`):
        aligned on its landmarks, or its calibrated box, at the model's input size; for a model
        without framing, the box's pixels (with the model's margin), clipped to the frame."""
        return frame_face(frame_bgr, face, self.meta)

    def preprocess(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops (BGR HxWx3 or gray HxW, uint8) -> float batch NHWC as the model expects."""
        return preprocess_crops(self.meta, crops)

    # forward + postprocess -----------------------------------------------------------------
    def predict_proba(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N, classes) for a list of crops, in one batched call."""
        if not len(crops):
            return np.zeros((0, len(self.meta.labels)), np.float32)
        return self.run_batch(self.preprocess(crops))

    def run_batch(self, batch_nhwc: np.ndarray) -> np.ndarray:
        """Probabilities for an already preprocessed batch (see :meth:`preprocess`)."""
        probs = self._backend.run(batch_nhwc)  # checked: (N, classes), finite, in [0, 1]
        if probs.shape[1] != len(self.meta.labels):
            raise ModelError(f"{self.model_path.name}: model outputs {probs.shape[1]} scores but has "
                             f"{len(self.meta.labels)} labels: expected one score per label")
        return soften(probs, self.meta.temperature)

    def to_expression(self, probs: np.ndarray) -> Expression:
        best = int(np.argmax(probs))
        scores = {label: float(p) for label, p in zip(self.meta.labels, probs)}
        return Expression(self.meta.labels[best], float(probs[best]), scores)

    def classify(self, frame_bgr: np.ndarray, faces: Sequence[Face]) -> list[Expression]:
        probs = self.predict_proba([self.crop(frame_bgr, f) for f in faces])
        return [self.to_expression(p) for p in probs]

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> "ExpressionClassifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def frame_face(frame_bgr: np.ndarray, face: Face, meta: ModelMeta) -> np.ndarray:
    """The crop ``meta`` asks for: aligned or calibrated-box at the input size where the model
    carries a framing for this face, else :func:`crop_face` with the model's margin."""
    from .align import face_to_input_transform, warp_to_input

    matrix = face_to_input_transform(face, meta)
    if matrix is None:
        return crop_face(frame_bgr, face, meta.crop_margin)
    return warp_to_input(frame_bgr, matrix, meta.input_size_hw, gray=meta.color == "gray")


def crop_face(frame_bgr: np.ndarray, face: Face, margin: float = 0.0) -> np.ndarray:
    """The face's pixels, its box grown by ``margin`` of its size on each side, clipped to the frame."""
    x, y, w, h = face.box_xywh
    x0, y0 = int(round(x - margin * w)), int(round(y - margin * h))
    x1, y1 = int(round(x + w + margin * w)), int(round(y + h + margin * h))
    H, W = frame_bgr.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    return frame_bgr[y0:y1, x0:x1]


def resize_to(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size_hw``: area averaging when shrinking, bilinear when enlarging."""
    h, w = size_hw
    if image.shape[:2] == (h, w):
        return image
    shrink = image.shape[0] > h or image.shape[1] > w
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def preprocess_crops(meta: ModelMeta, crops: Sequence[np.ndarray]) -> np.ndarray:
    """Crops (BGR HxWx3 or gray HxW, uint8) -> the float NHWC batch ``meta`` describes: the one
    preprocessing the runtime, calibration, evaluation and dataset cropping all share."""
    h, w = meta.input_size_hw
    out = np.empty((len(crops), h, w, meta.channels), np.float32)
    for i, crop in enumerate(crops):
        if crop.size == 0:
            raise ModelError("empty face crop: the face box lies outside the frame")
        if crop.ndim == 2:
            image = crop if meta.color == "gray" else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        elif meta.color == "gray":
            image = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        else:
            image = crop
        if meta.color == "rgb" and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        out[i] = resize_to(image, (h, w)).reshape(h, w, meta.channels)
    return out * np.float32(meta.scale) + np.float32(meta.offset)


def resolve_meta(path: Path, spec, options: ClassifierOptions) -> ModelMeta:
    """The file's metadata with the options' overrides; checked against the model's input."""
    return resolve_model_meta(path, read_model_meta(path), (spec.height, spec.width, spec.channels),
                              labels=options.labels, scale=options.scale, offset=options.offset,
                              color=options.color,
                              field_names=("ClassifierOptions.labels", "ClassifierOptions.scale",
                                           "ClassifierOptions.offset"))
