"""OpenCV's ResNet-10 SSD face detector (res10, 300x300): the seeds' detector, two ways.

- ONNX (used when found): ``res10_300x300_ssd_int8.onnx`` (or the float ``res10_300x300_ssd.onnx``),
  made from the user's own Caffe files by ``tools/ssd_to_onnx.py``, runs on ONNX Runtime; its
  priors and DetectionOutput (box decoding with variances, NMS) run here in numpy, from the
  settings the converter stored in the file's metadata.
- Caffe (the seeds' path): the ``.caffemodel`` + ``.prototxt`` through cv2.dnn (CUDA when built in),
  when no ONNX file is found, or when ``model_path`` names the ``.caffemodel`` or ``.prototxt``.

``model_path`` may be either ONNX file, a Caffe file, or a folder (its ONNX file if it holds one,
else its Caffe files); None searches the cache folders the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..errors import DetectorError
from ..types import Face
from . import (DETECTOR_FILES, DetectorOptions, _Closeable, cpu_onnx_session, detector_search_dirs, downscale,
               find_detector_files, load_error, to_bgr, to_faces)
from .blazeface import iou_one_to_many

INPUT_SIZE = (300, 300)
MEAN_BGR = (104.0, 117.0, 123.0)
DEFAULT_CONFIDENCE = 0.5
#: The converted files, fastest first; the converter writes them beside the Caffe files.
ONNX_FILES = ("res10_300x300_ssd_int8.onnx", "res10_300x300_ssd.onnx")
#: Key of the converter's settings (priors, variances, NMS) in the ONNX file's metadata.
METADATA_KEY = "edge_fer.ssd"


def cuda_device_count() -> int:
    """CUDA devices OpenCV can use; 0 for the usual pip wheels (built without CUDA)."""
    try:
        return int(cv2.cuda.getCudaEnabledDeviceCount())
    except (AttributeError, cv2.error):
        return 0


def find_onnx_file(model_path: str | None) -> Path | None:
    """The converted ONNX file to use, or None for the Caffe path (see the module docstring)."""
    if model_path:
        given = Path(model_path)
        if given.suffix.lower() == ".onnx":
            if not given.is_file():
                raise DetectorError(f"detector file not found: {model_path} (expected a .onnx made by "
                                    "tools/ssd_to_onnx.py, or the Caffe files)")
            return given
        dirs = [given] if given.is_dir() else []
    else:
        dirs = detector_search_dirs()
    for folder in dirs:  # the first folder holding either wins; in it, ONNX before Caffe
        for name in ONNX_FILES:
            if (folder / name).is_file():
                return folder / name
        if all((folder / name).is_file() for name in DETECTOR_FILES["ssd"]):
            return None
    return None


# --- priors and DetectionOutput, as Caffe SSD (and cv2.dnn) compute them --------------------------

def ssd_priors(layers: list[dict], image_wh=INPUT_SIZE) -> np.ndarray:
    """Prior boxes (N, 4) as corners (x0, y0, x1, y1) in 0..1 of the input, in the net's output
    order: per layer, per cell (row-major), the min_size box, the sqrt(min * max) box, then one
    box per aspect ratio (and its inverse with ``flip``). ``layers``: each PriorBox's settings
    and its feature map size ``feature_hw``."""
    image_w, image_h = image_wh
    out = []
    for layer in layers:
        feature_h, feature_w = layer["feature_hw"]
        step = layer.get("step") or image_w / feature_w
        sizes = []
        for min_size, max_size in zip(layer["min_size"], layer.get("max_size") or [None] * len(layer["min_size"])):
            sizes.append((min_size, min_size))
            if max_size:
                sizes.append((np.sqrt(min_size * max_size),) * 2)
            for ratio in layer.get("aspect_ratio", []):
                for r in (ratio, 1.0 / ratio) if layer.get("flip", True) else (ratio,):
                    sizes.append((min_size * np.sqrt(r), min_size / np.sqrt(r)))
        sizes = np.array(sizes, np.float64)  # (A, 2) width, height in input pixels
        ys, xs = np.meshgrid(np.arange(feature_h), np.arange(feature_w), indexing="ij")
        offset = layer.get("offset", 0.5)
        centres = np.stack([(xs.ravel() + offset) * step, (ys.ravel() + offset) * step], axis=1)
        centres = np.repeat(centres, len(sizes), axis=0)
        half = np.tile(sizes, (feature_h * feature_w, 1)) / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1) / [image_w, image_h, image_w, image_h]
        out.append(np.clip(boxes, 0, 1) if layer.get("clip", False) else boxes)
    return np.concatenate(out).astype(np.float32)


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances) -> np.ndarray:
    """CENTER_SIZE decoding (variances not in the targets): offsets (N, 4) -> corners (N, 4)."""
    size = priors[:, 2:] - priors[:, :2]
    centre = (priors[:, :2] + priors[:, 2:]) / 2 + loc[:, :2] * np.asarray(variances[:2]) * size
    half = np.exp(loc[:, 2:] * np.asarray(variances[2:])) * size / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def nms(corners: np.ndarray, scores: np.ndarray, iou: float, top_k: int) -> np.ndarray:
    """Indices kept by greedy NMS over the ``top_k`` best (score order, ties in input order)."""
    order = np.argsort(-scores, kind="stable")[:top_k]
    keep = []
    while len(order):
        keep.append(order[0])
        rest = order[1:]
        order = rest[iou_one_to_many(corners[order[0]], corners[rest]) <= iou]
    return np.array(keep, int)


def detection_output(loc, scores, priors, settings: dict, min_confidence: float):
    """Face corners (K, 4) in 0..1 and their scores above ``min_confidence``, as DetectionOutput
    gives them. Thresholding before the NMS keeps the same boxes: a box is only suppressed by
    better ones, which pass the threshold too."""
    keep = scores > max(min_confidence, settings["confidence_threshold"])
    corners = decode_boxes(loc[keep], priors[keep], settings["variances"])
    picked = nms(corners, scores[keep], settings["nms_iou"], settings["top_k"])[: settings["keep_top_k"]]
    return corners[picked], scores[keep][picked]


def caffe_rows(net, image_bgr: np.ndarray, input_wh: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """The Caffe net's rows [image, class, score, x0, y0, x1, y1], corners in 0..1 of ``image_bgr``
    (``input_wh``: the blob's size; the detector uses the net's own 300x300)."""
    net.setInput(cv2.dnn.blobFromImage(image_bgr, 1.0, input_wh, MEAN_BGR))
    return net.forward().reshape(-1, 7)


class SsdDetector(_Closeable):
    name = "ssd"

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        self.min_confidence = DEFAULT_CONFIDENCE if options.min_confidence is None else options.min_confidence
        self.onnx_path = find_onnx_file(options.model_path)
        self._net = self._session = None
        if self.onnx_path is not None:
            self.device = "cpu"
            self._open_onnx(self.onnx_path)
        else:
            self._open_caffe()

    def _open_caffe(self) -> None:
        caffemodel, prototxt = find_detector_files("ssd", self.options.model_path)
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
            self._forward_caffe(np.zeros((*INPUT_SIZE, 3), np.uint8))
        except cv2.error as exc:
            raise load_error("ssd", caffemodel, RuntimeError(f"no usable weights: {exc}")) from None

    def _open_onnx(self, path: Path) -> None:
        from ..backends import first_line

        try:
            self._session = cpu_onnx_session(path, self.options.num_threads)
            settings = json.loads(self._session.get_modelmeta().custom_metadata_map[METADATA_KEY])
            self._priors = ssd_priors(settings["priors"], tuple(settings["input_wh"]))
            outputs = sorted(o.name for o in self._session.get_outputs())
            if outputs != ["conf", "loc"] or len(self._session.get_inputs()) != 1:
                raise ValueError(f"expected one input and outputs conf + loc, got outputs {outputs}")
        except Exception as exc:  # onnxruntime's errors are untyped; KeyError/ValueError: no settings
            reason = f"no {METADATA_KEY} metadata" if isinstance(exc, KeyError) else first_line(exc)
            raise DetectorError(f"{path}: not a loadable ssd ONNX file ({reason}); make it again from the Caffe "
                                "files with tools/ssd_to_onnx.py, or delete it to use them") from None
        self._settings = settings
        self._input_name = self._session.get_inputs()[0].name
        self._forward_onnx(np.zeros((*INPUT_SIZE, 3), np.uint8))  # warm-up, like the Caffe path

    def _forward_caffe(self, image_bgr: np.ndarray) -> np.ndarray:
        return caffe_rows(self._net, image_bgr)

    def _forward_onnx(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face corners (K, 4) in 0..1 of ``image_bgr`` and their scores."""
        blob = cv2.dnn.blobFromImage(image_bgr, 1.0, INPUT_SIZE, MEAN_BGR)
        loc, conf = self._session.run(["loc", "conf"], {self._input_name: blob})
        return detection_output(loc[0], conf[0, :, 1], self._priors, self._settings, self.min_confidence)

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        small, factor = downscale(to_bgr(frame_bgr), self.options.detect_width)
        height, width = small.shape[:2]
        if self._session is not None:
            corners, scores = self._forward_onnx(small)
        else:
            rows = self._forward_caffe(small)
            rows = rows[rows[:, 2] > self.min_confidence]
            corners, scores = rows[:, 3:7], rows[:, 2]
        corners = corners * np.array([width, height, width, height], np.float32)
        boxes = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in corners.tolist()]
        return to_faces(boxes, scores.tolist(), factor, frame_bgr.shape, self.options, detector="ssd")

    def close(self) -> None:
        self._net = self._session = None
