"""Ultra-Light-Fast-Generic-Face-Detector-1MB, RFB-320 (ONNX, 320x240) on ONNX Runtime's CPU.

As upstream does, the frame is resized (stretched) to 320x240; its outputs are already decoded:
scores (1, 4420, 2) [background, face] and corner-form boxes (1, 4420, 4) in 0..1.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import DetectorError
from ..types import Face
from . import (DetectorOptions, _Closeable, cpu_onnx_session, downscale, find_detector_files, load_error, to_bgr,
               to_faces)

INPUT_WH = (320, 240)
DEFAULT_CONFIDENCE = 0.7
NMS_IOU = 0.3


class RfbDetector(_Closeable):
    name = "rfb"

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        (path,) = find_detector_files("rfb", options.model_path)
        self.min_confidence = DEFAULT_CONFIDENCE if options.min_confidence is None else options.min_confidence
        try:
            self._session = cpu_onnx_session(path, options.num_threads)
        except Exception as exc:  # onnxruntime's errors are untyped
            raise load_error("rfb", path, exc) from None
        image = self._session.get_inputs()[0]
        outputs = [o.name for o in self._session.get_outputs()]
        if list(image.shape) != [1, 3, INPUT_WH[1], INPUT_WH[0]] or outputs[:2] != ["scores", "boxes"]:
            raise DetectorError(f"{path}: not UltraFace RFB-320: expected input [1, 3, {INPUT_WH[1]}, "
                                f"{INPUT_WH[0]}] and outputs scores + boxes, got {image.shape} and {outputs}")
        self._input_name = image.name

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        small, factor = downscale(to_bgr(frame_bgr), self.options.detect_width)
        height, width = small.shape[:2]
        rgb = cv2.cvtColor(cv2.resize(small, INPUT_WH, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        batch = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        scores, corners = self._session.run(["scores", "boxes"], {self._input_name: batch})
        scores, corners = scores[0, :, 1], corners[0]
        keep = scores > self.min_confidence
        scores, corners = scores[keep], corners[keep] * np.array([width, height, width, height], np.float32)
        boxes = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in corners.tolist()]
        picked = cv2.dnn.NMSBoxes(boxes, scores.tolist(), self.min_confidence, NMS_IOU) if boxes else []
        picked = np.asarray(picked, int).ravel()
        return to_faces([boxes[i] for i in picked], scores[picked].tolist(), factor, frame_bgr.shape, self.options,
                        detector=self.name)

    def close(self) -> None:
        self._session = None
