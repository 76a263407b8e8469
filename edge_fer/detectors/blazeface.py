"""MediaPipe BlazeFace short-range (128x128 TFLite) through LiteRT, with its anchor decoding.

The frame is letterboxed (centred, black bars) to a square before the resize to 128x128, so
faces keep their shape; boxes are mapped back through the same scale and offsets.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import DetectorError
from ..tracking import iou_one_to_many  # noqa: F401 (ssd imports it from here too)
from ..types import Face
from . import DetectorOptions, _Closeable, downscale, find_detector_files, load_error, to_bgr, to_faces

INPUT_SIZE = 128
DEFAULT_CONFIDENCE = 0.5
NMS_IOU = 0.3
# MediaPipe's SsdAnchorsCalculator options of face_detection_short_range: 4 layers, fixed anchor
# size, 2 anchors per layer and cell; layers with the same stride share one grid.
STRIDES = (8, 16, 16, 16)
ANCHOR_OFFSET = 0.5
#: BlazeFace's 6 keypoints, in its output order (columns 4..15), in the subject's own left/right.
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")


def ssd_anchors(input_size: int = INPUT_SIZE, strides=STRIDES, offset: float = ANCHOR_OFFSET) -> np.ndarray:
    """Anchor centres (N, 2) as (x, y) in 0..1, in the model's output order (896 for BlazeFace)."""
    centres = []
    layer = 0
    while layer < len(strides):
        stride, per_cell = strides[layer], 0
        while layer < len(strides) and strides[layer] == stride:
            per_cell += 2  # aspect ratio 1.0 plus the interpolated scale, each of size 1x1
            layer += 1
        grid = math.ceil(input_size / stride)
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs.ravel() + offset) / grid, (ys.ravel() + offset) / grid], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each cluster (IoU > ``iou`` with its best box) becomes the
    score-weighted mean box, with the best box's score. ``boxes`` is (N, 4 + k): corner-form
    boxes, then any k columns (keypoints) averaged with the same weights."""
    order = np.argsort(-scores)
    kept_boxes, kept_scores = [], []
    while len(order):
        overlap = iou_one_to_many(boxes[order[0]], boxes[order])
        cluster = order[overlap > iou]
        weights = scores[cluster, None]
        kept_boxes.append((boxes[cluster] * weights).sum(axis=0) / weights.sum())
        kept_scores.append(scores[order[0]])
        order = order[overlap <= iou]
    return np.array(kept_boxes, np.float32).reshape(-1, boxes.shape[1]), np.array(kept_scores, np.float32)


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # old devices: tflite-runtime as a fallback
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise DetectorError("blazeface needs a TFLite runtime: pip install ai-edge-litert") from None
    return Interpreter


class BlazeFaceDetector(_Closeable):
    name = "blazeface"

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        (path,) = find_detector_files("blazeface", options.model_path)
        self.min_confidence = DEFAULT_CONFIDENCE if options.min_confidence is None else options.min_confidence
        from ..backends import quiet_native_stderr

        try:
            with quiet_native_stderr():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" line
                self._interpreter = _interpreter_class()(model_path=str(path), num_threads=options.num_threads)
                self._interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with long texts
            raise load_error("blazeface", path, exc) from None
        self._anchors = ssd_anchors()
        inputs = self._interpreter.get_input_details()
        outputs = {int(o["shape"][-1]): o["index"] for o in self._interpreter.get_output_details()}
        shapes = [list(o["shape"]) for o in self._interpreter.get_output_details()]
        n = len(self._anchors)
        if (len(inputs) != 1 or list(inputs[0]["shape"]) != [1, INPUT_SIZE, INPUT_SIZE, 3]
                or sorted(shapes) != [[1, n, 1], [1, n, 16]]):
            raise DetectorError(f"{path}: not BlazeFace short-range: expected input [1, {INPUT_SIZE}, "
                                f"{INPUT_SIZE}, 3] and outputs [1, {n}, 16] + [1, {n}, 1], got "
                                f"{[list(i['shape']) for i in inputs]} and {shapes}")
        self._input_index = inputs[0]["index"]
        self._boxes_index, self._scores_index = outputs[16], outputs[1]
        # Preallocated, reused each frame: the letterboxed uint8 canvas (its bars stay black while
        # the frame size does not change) and the RGB image; sigmoid(x) >= c where x >= logit(c).
        self._canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        self._rgb = np.empty_like(self._canvas)
        self._placed: tuple[int, int] | None = None
        c = min(self.min_confidence, 1.0 - 1e-7)
        self._min_logit = -math.inf if c <= 0.0 else math.log(c / (1.0 - c)) - 1e-3  # a margin for rounding

    def _letterbox(self, small_bgr: np.ndarray) -> tuple[float, int, int]:
        """Write the frame, letterboxed to 128x128 RGB in [-1, 1], into the model's input tensor;
        return the resize scale and the (x, y) offsets."""
        height, width = small_bgr.shape[:2]
        scale = INPUT_SIZE / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        dx, dy = (INPUT_SIZE - new_w) // 2, (INPUT_SIZE - new_h) // 2
        if self._placed != (new_w, new_h):  # another frame size: the bars move
            self._canvas[:] = 0
            self._placed = (new_w, new_h)
        cv2.resize(small_bgr, (new_w, new_h), dst=self._canvas[dy:dy + new_h, dx:dx + new_w],
                   interpolation=cv2.INTER_AREA)
        cv2.cvtColor(self._canvas, cv2.COLOR_BGR2RGB, dst=self._rgb)
        tensor = self._interpreter.tensor(self._input_index)()  # a view: released before invoke
        np.divide(self._rgb, np.float32(127.5), out=tensor[0], casting="unsafe")
        tensor -= np.float32(1.0)
        del tensor
        return scale, dx, dy

    def _decode(self, raw_boxes: np.ndarray, raw_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corner-form boxes followed by the 6 keypoints (x, y), in input pixels, and sigmoid
        scores of the anchors above threshold (only those are decoded)."""
        candidates = np.flatnonzero(raw_scores >= self._min_logit)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[candidates], -80.0, 80.0)))  # exp(88) overflows float32
        keep = candidates[scores >= self.min_confidence]
        scores = scores[scores >= self.min_confidence]
        raw, anchors = raw_boxes[keep], self._anchors[keep]
        centre = raw[:, :2] + anchors * INPUT_SIZE  # offsets are in input pixels (scale 128)
        half = raw[:, 2:4] / 2.0
        keypoints = raw[:, 4:16] + np.tile(anchors * INPUT_SIZE, 6)
        return np.concatenate([centre - half, centre + half, keypoints], axis=1), scores

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        small, factor = downscale(to_bgr(frame_bgr), self.options.detect_width)
        scale, dx, dy = self._letterbox(small)
        self._interpreter.invoke()
        raw_boxes = self._interpreter.get_tensor(self._boxes_index)[0]
        raw_scores = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        rows, scores = weighted_nms(*self._decode(raw_boxes, raw_scores), NMS_IOU)
        rows = (rows - np.tile(np.array([dx, dy], np.float32), 8)) / scale  # -> downscaled frame
        boxes = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in rows[:, :4].tolist()]
        points = [dict(zip(KEYPOINTS, row[4:].reshape(6, 2).tolist())) for row in rows]
        return to_faces(boxes, scores.tolist(), factor, frame_bgr.shape, self.options,
                        detector=self.name, landmarks=points)

    def close(self) -> None:
        self._interpreter = None
