"""YuNet (OpenCV Zoo, 2023mar ONNX) through ``cv2.FaceDetectorYN``; any input size."""

from __future__ import annotations

import cv2
import numpy as np

from ..backends import quiet_native_stderr
from ..types import Face
from . import DetectorOptions, _Closeable, downscale, find_detector_files, load_error, to_bgr, to_faces

DEFAULT_CONFIDENCE = 0.6
NMS_IOU = 0.3
TOP_K = 5000
#: YuNet's 5 points, in its output order (columns 4..13), in the subject's own left/right.
LANDMARKS = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")


class YuNetDetector(_Closeable):
    name = "yunet"

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        (path,) = find_detector_files("yunet", options.model_path)
        self.min_confidence = DEFAULT_CONFIDENCE if options.min_confidence is None else options.min_confidence
        self._input_size = (320, 320)  # reset to each frame's (downscaled) size in detect()
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", self._input_size, self.min_confidence,
                                                  NMS_IOU, TOP_K)
            with quiet_native_stderr():  # another ONNX file (RFB-320) loads, then fails here
                self._net.detect(np.zeros((*self._input_size[::-1], 3), np.uint8))
        except cv2.error as exc:
            raise load_error("yunet", path, exc) from None

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        small, factor = downscale(to_bgr(frame_bgr), self.options.detect_width)
        size = (small.shape[1], small.shape[0])
        if size != self._input_size:
            self._net.setInputSize(size)
            self._input_size = size
        _, rows = self._net.detect(small)  # None or (N, 15): x, y, w, h, 5 landmarks (x, y), score
        if rows is None:
            return []
        points = [dict(zip(LANDMARKS, row[4:14].reshape(5, 2).tolist())) for row in rows]
        return to_faces(rows[:, :4].tolist(), rows[:, 14].tolist(), factor, frame_bgr.shape, self.options,
                        detector=self.name, landmarks=points)

    def close(self) -> None:
        self._net = None
