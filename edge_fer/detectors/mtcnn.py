"""MTCNN (Zhang et al. 2016), the second seed's live detector: three small ONNX nets on ONNX
Runtime's CPU, converted once from facenet-pytorch's weights (``tools/mtcnn_onnx.py convert``)
and shipped in ``detectors/models/``.

P-Net runs over an image pyramid (it is fully convolutional) and proposes 12-px windows; R-Net
(24x24 crops) and O-Net (48x48) re-score and refine the survivors; O-Net also gives 5 landmarks.
The steps and constants are facenet-pytorch's ``detect_face`` (smallest face 20 px, thresholds
0.6 / 0.7 / 0.7, pyramid factor 0.709, RGB scaled to [-1, 1)); ``min_confidence`` replaces
O-Net's threshold, and a ``min_face_px`` above 20 (in the downscaled frame) shortens the pyramid.
Boxes are corner form ``x0, y0, x1, y1`` until :func:`~edge_fer.detectors.to_faces`.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import DetectorError
from ..tracking import iou_one_to_many
from ..types import Face
from . import (DetectorOptions, _Closeable, cpu_onnx_session, downscale, find_detector_files, load_error,
               to_bgr, to_faces)

SMALLEST_FACE_PX = 20
THRESHOLDS = (0.6, 0.7, 0.7)  # P-Net, R-Net, O-Net
PYRAMID_FACTOR = 0.709
#: Each net's input side (P-Net takes any size) and its outputs, as tools/mtcnn_onnx.py names them.
NETS = {"pnet": (None, ("regression", "probability")),
        "rnet": (24, ("regression", "probability")),
        "onet": (48, ("regression", "landmarks", "probability"))}
#: O-Net's 5 points in its output order (image-left eye first), in the subject's own left/right.
LANDMARKS = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")


def pyramid_scales(height: int, width: int, smallest_face_px: float) -> list[float]:
    """The scales at which P-Net's 12-px window covers faces from ``smallest_face_px`` up."""
    scale, side, scales = 12.0 / smallest_face_px, min(height, width) * 12.0 / smallest_face_px, []
    while side >= 12:
        scales.append(scale)
        scale, side = scale * PYRAMID_FACTOR, side * PYRAMID_FACTOR
    return scales


def nms(corners: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first. ``union``: edge-fer's one IoU
    (as torchvision's ``nms``); ``min``: intersection over the smaller box's area, with
    facenet-pytorch's +1 pixel in widths and heights (its O-Net stage)."""
    order, keep = np.argsort(-scores, kind="stable"), []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        overlap = (iou_one_to_many(corners[i], corners[rest]) if method == "union"
                   else overlap_of_smaller(corners[i], corners[rest]))
        order = rest[overlap <= threshold]
    return np.asarray(keep, int)


def overlap_of_smaller(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over the smaller area of one corner box against (N, 4), in whole pixels (+1)."""
    w = np.maximum(0.0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + 1)
    h = np.maximum(0.0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + 1)
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    return w * h / np.minimum(area, areas)


def square(corners: np.ndarray) -> np.ndarray:
    """Each box grown to a square of its longer side about the same centre."""
    w, h = corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]
    side = np.maximum(w, h)
    x0, y0 = corners[:, 0] + (w - side) / 2, corners[:, 1] + (h - side) / 2
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1)


def regress(corners: np.ndarray, offsets: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Boxes moved by the nets' offsets, in units of the box's width and height."""
    size = corners[:, 2:4] - corners[:, 0:2] + (1.0 if plus_one else 0.0)
    return corners + offsets * np.tile(size, 2)


def integral_image(rgb: np.ndarray) -> np.ndarray:
    """(H+1, W+1, 3) running sums of ``rgb`` (float64: exact for any frame size), for
    :func:`area_resize`; OpenCV's, the same numbers as two NumPy cumsums at a twentieth of the time."""
    return cv2.integral(rgb, sdepth=cv2.CV_64F)


def cell_bounds(start, stop, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last input pixel of each of ``cells`` output cells over
    ``[start, stop)`` (arrays of regions broadcast: shape (..., cells)), as adaptive average
    pooling takes them: cell i spans floor(i * n / cells) to ceil((i + 1) * n / cells)."""
    start, n, i = np.asarray(start)[..., None], (np.asarray(stop) - np.asarray(start))[..., None], np.arange(cells)
    return start + (i * n) // cells, start - ((-(i + 1) * n) // cells)


def area_resize(sums: np.ndarray, region_yyxx, size_hw: tuple[int, int]) -> np.ndarray:
    """Regions ``[y0:y1, x0:x1]`` of the image behind ``sums`` averaged into ``size_hw`` cells as
    PyTorch's ``interpolate(mode="area")`` (adaptive average pooling) does; ``region_yyxx`` holds
    ints (one region: HxWx3 out) or arrays of N regions (NxHxWx3). The nets were run on this
    resize upstream; OpenCV's INTER_AREA weighs fractional pixels and moves boxes by a few pixels."""
    y0, y1, x0, x1 = region_yyxx
    (ys, ye), (xs, xe) = cell_bounds(y0, y1, size_hw[0]), cell_bounds(x0, x1, size_hw[1])
    if ys.ndim == 1:  # one region: bands of rows, then columns (two 1-D gathers, the pyramid's case)
        bands = sums[ye] - sums[ys]  # (rows out, W + 1, 3): running sums along x of each band
        total = bands[:, xe] - bands[:, xs]
        return (total / ((ye - ys)[:, None] * (xe - xs)[None, :])[..., None]).astype(np.float32)
    ys, ye, xs, xe = ys[..., :, None], ye[..., :, None], xs[..., None, :], xe[..., None, :]
    total = sums[ye, xe] - sums[ys, xe] - sums[ye, xs] + sums[ys, xs]
    return (total / ((ye - ys) * (xe - xs))[..., None]).astype(np.float32)


def normalise(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 (or NxHxWx3) RGB, 0..255, as float32 NCHW in [-1, 1), as the nets were trained."""
    x = (rgb.astype(np.float32) - 127.5) * 0.0078125
    return (x[None] if x.ndim == 3 else x).transpose(0, 3, 1, 2)


def crops(sums: np.ndarray, corners: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``side`` x ``side`` area-resized crops of each (whole-pixel, clipped) box of the image
    behind ``sums``, and which boxes had pixels."""
    height, width = sums.shape[0] - 1, sums.shape[1] - 1
    box = np.trunc(corners).astype(int)
    x0, y0 = np.maximum(box[:, 0], 1) - 1, np.maximum(box[:, 1], 1) - 1
    x1, y1 = np.minimum(box[:, 2], width), np.minimum(box[:, 3], height)
    valid = (x1 > x0) & (y1 > y0)
    regions = (y0[valid], y1[valid], x0[valid], x1[valid])
    return area_resize(sums, regions, (side, side)), valid


class MtcnnDetector(_Closeable):
    name = "mtcnn"

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        paths = find_detector_files("mtcnn", options.model_path)
        self.thresholds = THRESHOLDS if options.min_confidence is None else (*THRESHOLDS[:2], options.min_confidence)
        self._sessions = {}
        for (net, (side, outputs)), path in zip(NETS.items(), paths):
            try:
                session = cpu_onnx_session(path, options.num_threads, spin=False)
            except Exception as exc:  # onnxruntime's errors are untyped
                raise load_error("mtcnn", path, exc) from None
            shape, names = session.get_inputs()[0].shape, [o.name for o in session.get_outputs()]
            if len(shape) != 4 or shape[1] != 3 or (side and shape[2:] != [side, side]) or names != list(outputs):
                raise DetectorError(f"{path}: not MTCNN's {net}: expected input [N, 3, {side or 'H'}, {side or 'W'}] "
                                    f"and outputs {', '.join(outputs)}, got {shape} and {names}")
            self._sessions[net] = (session, session.get_inputs()[0].name)

    def _run(self, net: str, batch: np.ndarray) -> list[np.ndarray]:
        session, input_name = self._sessions[net]
        return session.run(None, {input_name: batch})

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        small, factor = downscale(to_bgr(frame_bgr), self.options.detect_width)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        corners, scores, points = self.detect_corners(rgb, max(SMALLEST_FACE_PX, self.options.min_face_px / factor))
        boxes = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in corners.tolist()]
        named = [dict(zip(LANDMARKS, p.tolist())) for p in points]
        return to_faces(boxes, scores.tolist(), factor, frame_bgr.shape, self.options, detector=self.name,
                        landmarks=named)

    def detect_corners(self, rgb: np.ndarray, smallest_face_px: float = SMALLEST_FACE_PX):
        """Corner boxes (N, 4), O-Net scores (N,) and landmarks (N, 5, 2) in ``rgb``'s pixels."""
        none = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        sums = integral_image(rgb)
        corners, scores = self._propose(sums, smallest_face_px)
        if not len(corners):
            return none
        # R-Net: re-score the squared proposals, suppress, refine
        patches, valid = crops(sums, corners, 24)
        corners = corners[valid]
        if not len(patches):
            return none
        offsets, probability = self._run("rnet", normalise(patches))
        passed = probability[:, 1] > self.thresholds[1]
        corners, scores, offsets = corners[passed], probability[passed, 1], offsets[passed]
        keep = nms(corners, scores, 0.7)
        corners = square(regress(corners[keep], offsets[keep]))
        if not len(corners):
            return none
        # O-Net: score, landmarks, refine, suppress by the smaller box
        patches, valid = crops(sums, corners, 48)
        corners = corners[valid]
        if not len(patches):
            return none
        offsets, marks, probability = self._run("onet", normalise(patches))
        passed = probability[:, 1] > self.thresholds[2]
        corners, scores, offsets, marks = corners[passed], probability[passed, 1], offsets[passed], marks[passed]
        size = corners[:, 2:4] - corners[:, 0:2] + 1
        points = np.stack([size[:, :1] * marks[:, :5] + corners[:, :1] - 1,
                           size[:, 1:] * marks[:, 5:] + corners[:, 1:2] - 1], axis=2)
        corners = regress(corners, offsets)
        keep = nms(corners, scores, 0.7, "min")
        return corners[keep], scores[keep], points[keep]

    def _propose(self, sums: np.ndarray, smallest_face_px: float) -> tuple[np.ndarray, np.ndarray]:
        """P-Net over the pyramid of the image behind ``sums``: squared, regressed proposals and
        their scores."""
        height, width = sums.shape[0] - 1, sums.shape[1] - 1
        found = []
        for scale in pyramid_scales(height, width, smallest_face_px):
            size_hw = (int(height * scale + 1), int(width * scale + 1))
            offsets, probability = self._run("pnet", normalise(area_resize(sums, (0, height, 0, width), size_hw)))
            ys, xs = np.nonzero(probability[0, 1] >= self.thresholds[0])
            if not len(ys):
                continue
            cells = np.stack([xs, ys], axis=1).astype(np.float32)
            corners = np.concatenate([np.floor((2 * cells + 1) / scale), np.floor((2 * cells + 12) / scale)], axis=1)
            rows = np.concatenate([corners, probability[0, 1, ys, xs, None], offsets[0][:, ys, xs].T], axis=1)
            found.append(rows[nms(rows[:, :4], rows[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        rows = np.concatenate(found)
        rows = rows[nms(rows[:, :4], rows[:, 4], 0.7)]
        return square(regress(rows[:, :4], rows[:, 5:9], plus_one=False)), rows[:, 4]

    def close(self) -> None:
        self._sessions = {}
