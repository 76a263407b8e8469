"""OpenCV's Haar cascade (frontal face, default): ships with opencv-python-headless 4.x."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DetectorError
from ..types import Face
from . import DetectorOptions, _Closeable, downscale, load_error, to_bgr, to_faces

CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector(_Closeable):
    name = "haar"

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        path = Path(options.model_path) if options.model_path else Path(cv2.data.haarcascades) / CASCADE
        if not path.is_file():
            raise DetectorError(f"Haar cascade not found: {path} (opencv-python-headless<5 ships it)")
        try:  # a malformed XML raises (as SystemError from cv2.error); an unknown one loads empty
            self._cascade = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError) as exc:
            raise load_error("haar", path, exc) from None
        if self._cascade.empty():
            raise DetectorError(f"{path}: not a loadable haar detector file (no cascade in it)")
        # Haar's confidence is a detection count, not a probability: report 1.0 for each box.
        self._min_neighbors = 5

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        small, factor = downscale(frame_bgr, self.options.detect_width)
        gray = small if small.ndim == 2 else cv2.cvtColor(to_bgr(small), cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        min_side = max(12, int(self.options.min_face_px / factor))
        boxes = self._cascade.detectMultiScale(gray, scaleFactor=1.2, minNeighbors=self._min_neighbors,
                                               minSize=(min_side, min_side))
        # Every box scores 1.0: largest first, so max_faces keeps the largest (to_faces' sort is stable).
        boxes = sorted((tuple(map(float, b)) for b in boxes), key=lambda b: b[2] * b[3], reverse=True)
        return to_faces(boxes, [1.0] * len(boxes), factor, frame_bgr.shape, self.options, detector=self.name)

    def close(self) -> None:
        self._cascade = None
