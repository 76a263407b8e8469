"""OpenCV's Haar cascade (frontal face, default): ships with opencv-python-headless 4.x."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DetectorError
from ..types import Face
from . import DetectorOptions, downscale, to_faces

CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    name = "haar"

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        path = Path(options.model_path) if options.model_path else Path(cv2.data.haarcascades) / CASCADE
        if not path.is_file():
            raise DetectorError(f"Haar cascade not found: {path} (opencv-python-headless<5 ships it)")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"not a loadable Haar cascade: {path}")
        # Haar's confidence is a detection count, not a probability: report 1.0 for each box.
        self._min_neighbors = 5

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        small, factor = downscale(frame_bgr, self.options.detect_width)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        gray = cv2.equalizeHist(gray)
        min_side = max(12, int(self.options.min_face_px / factor))
        boxes = self._cascade.detectMultiScale(gray, scaleFactor=1.15, minNeighbors=self._min_neighbors,
                                               minSize=(min_side, min_side))
        boxes = [tuple(map(float, b)) for b in boxes] if len(boxes) else []
        faces = to_faces(boxes, [1.0] * len(boxes), factor, frame_bgr.shape, self.options)
        return sorted(faces, key=lambda f: f.box_xywh[2] * f.box_xywh[3], reverse=True)

    def close(self) -> None:
        self._cascade = None

    def __enter__(self) -> "HaarDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
