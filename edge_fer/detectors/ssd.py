"""OpenCV's ResNet-10 SSD face detector (Caffe, 300x300), run by cv2.dnn (CUDA when built in)."""

from __future__ import annotations

import cv2
import numpy as np

from ..types import Face
from . import DetectorOptions, _Closeable, downscale, find_detector_files, load_error, to_bgr, to_faces

INPUT_SIZE = (300, 300)
MEAN_BGR = (104.0, 117.0, 123.0)
DEFAULT_CONFIDENCE = 0.5


def cuda_device_count() -> int:
    """CUDA devices OpenCV can use; 0 for the usual pip wheels (built without CUDA)."""
    try:
        return int(cv2.cuda.getCudaEnabledDeviceCount())
    except (AttributeError, cv2.error):
        return 0


class SsdDetector(_Closeable):
    name = "ssd"

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        caffemodel, prototxt = find_detector_files("ssd", options.model_path)
        self.min_confidence = DEFAULT_CONFIDENCE if options.min_confidence is None else options.min_confidence
        self.device = "cuda" if cuda_device_count() > 0 else "cpu"
        try:
            self._net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        except cv2.error as exc:  # OpenCV names the parser that failed: ReadProtoFrom{Text,Binary}File
            raise load_error("ssd", prototxt if "TextFile" in str(exc) else caffemodel, exc) from None
        if self.device == "cuda":
            self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
        else:
            self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        # A caffemodel that is not one (an HTML page) parses as a net without weights and only
        # fails when run: run it once here (this also warms it up).
        try:
            self._forward(np.zeros((*INPUT_SIZE, 3), np.uint8))
        except cv2.error as exc:
            raise load_error("ssd", caffemodel, RuntimeError(f"no usable weights: {exc}")) from None

    def _forward(self, image_bgr: np.ndarray) -> np.ndarray:
        """Rows [image, class, score, x0, y0, x1, y1] with corners in 0..1 of ``image_bgr``."""
        self._net.setInput(cv2.dnn.blobFromImage(image_bgr, 1.0, INPUT_SIZE, MEAN_BGR))
        return self._net.forward().reshape(-1, 7)

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        small, factor = downscale(to_bgr(frame_bgr), self.options.detect_width)
        height, width = small.shape[:2]
        rows = self._forward(small)
        rows = rows[rows[:, 2] > self.min_confidence]
        corners = rows[:, 3:7] * np.array([width, height, width, height], np.float32)
        boxes = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in corners.tolist()]
        return to_faces(boxes, rows[:, 2].tolist(), factor, frame_bgr.shape, self.options)

    def close(self) -> None:
        self._net = None
