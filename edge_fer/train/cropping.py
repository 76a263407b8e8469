"""Cut faces out of full frames with the runtime's own detectors, so that a model trained on a
dataset of full frames (CK+, photos) sees the same crops as it will at inference.

The crop and resize are :class:`~edge_fer.classifier.ExpressionClassifier`'s own ``frame_face``
and ``preprocess`` (alignment on landmarks or a calibrated box where a framing table is given,
else the box with a margin; area/bilinear resize, BGR -> gray), not a copy of them: ``eval
--crop-faces`` frames each face exactly as ``run`` does for the same model.
"""

from __future__ import annotations


import numpy as np

from ..classifier import frame_face, preprocess_crops
from ..detectors import DetectorOptions, create_detector
from ..metadata import Framing, ModelMeta


class FaceCropper:
    """``crop(frame_bgr)`` -> the largest face as uint8 gray ``size_hw``, or None (counted in
    ``no_face``). A context manager: it owns a detector."""

    def __init__(self, detector_options: DetectorOptions, size_hw: tuple[int, int] = (48, 48),
                 margin: float = 0.0, framing: Framing | None = None) -> None:
        # The runtime's framing, crop and preprocessing, as raw gray pixels.
        self._meta = ModelMeta(labels=("face", "other"), input_size_hw=size_hw, color="gray",
                               scale=1.0, offset=0.0, crop_margin=margin, framing=framing)
        self._detector = create_detector(detector_options)
        self.size_hw = tuple(size_hw)
        self.frames = 0
        self.no_face = 0

    def crop(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        self.frames += 1
        if frame_bgr.ndim == 2:
            import cv2

            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        faces = self._detector.detect(frame_bgr)
        if not faces:
            self.no_face += 1
            return None
        largest = max(faces, key=lambda f: f.box_xywh[2] * f.box_xywh[3])
        crop = frame_face(frame_bgr, largest, self._meta)
        pixels = preprocess_crops(self._meta, [crop])[0, :, :, 0]
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> "FaceCropper":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_cropper(detector: str, size_hw: tuple[int, int], margin: float = 0.0,
                 detector_model: str | None = None, framing: Framing | None = None) -> FaceCropper:
    """A cropper with the runtime detector's defaults (edge_fer/defaults.py)."""
    return FaceCropper(DetectorOptions(name=detector, model_path=detector_model), size_hw, margin, framing)


def default_framing() -> Framing | None:
    """The shipped default model's framing table (fitted on FER2013's training faces): how
    faces cut from full frames for training are framed, so they look like FER2013's."""
    from ..classifier import DEFAULT_MODEL
    from ..metadata import read_model_meta

    meta = read_model_meta(DEFAULT_MODEL)
    return meta.framing if meta is not None else None
