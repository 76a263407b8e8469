"""OpenCV's res10 SSD face detector (Caffe) rebuilt as an ONNX graph for ONNX Runtime.

No Caffe install is needed: the layers and their settings come from the user's own
``deploy.prototxt`` (parsed here), the weights from ``cv2.dnn.readNetFromCaffe`` (``Layer.blobs``).
BatchNorm + Scale pairs are folded into the convolution before them where there is one
(per-channel Mul + Add where there is not: the input's and the pre-activation ones). The graph
ends at the heads: ``loc`` (1, N, 4) box offsets and ``conf`` (1, N, 2) [background, face]
probabilities, one row per prior; the priors and DetectionOutput (decoding, NMS) run in numpy in :mod:`.ssd`.

The result is verified before it is written: the priors against OpenCV's PriorBox output, and
the detections on the built-in sample image against the Caffe net's (box IoU >= 0.9). With
``quantize`` the file is ONNX Runtime's static int8 (QDQ) quantization, calibrated on real frames.
Needs the ``onnx`` package (``pip install edge-fer[convert]``); running the result needs only
onnxruntime.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConversionError, OptionsError
from ..fileio import atomic_path
from . import find_detector_files, load_error

log = logging.getLogger(__name__)

BN_EPS = 1e-5  # Caffe's BatchNorm default (the prototxt sets none)
NORM_EPS = 1e-10  # Caffe SSD's Normalize default
MATCH_IOU = 0.9
QUANT_MODES = ("int8", "none")
ONNX_NAMES = {"none": "res10_300x300_ssd.onnx", "int8": "res10_300x300_ssd_int8.onnx"}
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}:]|[^\s{}:"#]+|#[^\n]*')


# --- the prototxt (protobuf text format), parsed into nested dicts of lists ---------------------

def parse_prototxt(text: str) -> dict:
    """``{key: [value, ...]}``; nested messages are dicts, strings unquoted, numbers as float."""
    tokens = [t for t in _TOKEN.findall(text) if not t.startswith("#")]
    pos = 0

    def message(closing: bool) -> dict:
        nonlocal pos
        out: dict = {}
        while pos < len(tokens):
            key = tokens[pos]
            if key == "}":
                if not closing:
                    raise ValueError("unbalanced '}'")
                pos += 1
                return out
            pos += 1
            if pos < len(tokens) and tokens[pos] == ":":
                pos += 1
            if pos >= len(tokens):
                raise ValueError(f"no value for {key!r}")
            if tokens[pos] == "{":
                pos += 1
                value = message(True)
            else:
                value = _scalar(tokens[pos])
                pos += 1
            out.setdefault(key, []).append(value)
        if closing:
            raise ValueError("missing '}'")
        return out

    return message(False)


def _scalar(token: str):
    if token.startswith('"'):
        return token[1:-1]
    try:
        return float(token)
    except ValueError:
        return token  # enums (MAX, CENTER_SIZE) and booleans (true / false)


def _one(params: dict, key: str, default=None):
    values = params.get(key, [])
    return values[0] if values else default


def _flag(params: dict, key: str, default: bool) -> bool:
    value = _one(params, key, default)
    return value if isinstance(value, bool) else str(value).lower() == "true"


# --- the ONNX graph -------------------------------------------------------------------------------

@dataclass
class _Graph:
    """Nodes and initializers being built; ``blobs`` maps each Caffe blob to its current tensor
    (in-place layers rename it, as Caffe runs them in file order)."""

    nodes: list
    inits: list
    blobs: dict

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.array(array, np.float32, order="C"), name))
        return name

    def add(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _bn_affine(net, bn_name: str, scale_name: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, offset) of a Caffe BatchNorm (+ the Scale after it)."""
    mean, var, factor = (b.ravel().astype(np.float64) for b in net.getLayer(bn_name).blobs[:3])
    factor = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    mul = 1.0 / np.sqrt(var * factor + BN_EPS)
    add = -mean * factor * mul
    if scale_name is not None:
        blobs = net.getLayer(scale_name).blobs
        gamma = blobs[0].ravel().astype(np.float64)
        beta = blobs[1].ravel().astype(np.float64) if len(blobs) > 1 else 0.0
        mul, add = mul * gamma, add * gamma + beta
    return mul, add


def _conv_attrs(p: dict, weights: np.ndarray) -> dict:
    kernel = int(_one(p, "kernel_size", 0)) or weights.shape[2]
    pad, stride = int(_one(p, "pad", 0)), int(_one(p, "stride", 1))
    dilation, group = int(_one(p, "dilation", 1)), int(_one(p, "group", 1))
    if any(k in p for k in ("kernel_h", "pad_h", "stride_h")):
        raise ConversionError("convolutions with separate h/w settings are not supported")
    return {"kernel_shape": [kernel, kernel], "pads": [pad] * 4, "strides": [stride, stride],
            "dilations": [dilation, dilation], "group": group}


def build_graph(net, proto: dict):
    """The ONNX model of the prototxt's layers up to the heads, and the PriorBox layers' params
    in order (for :func:`.ssd.ssd_priors`)."""
    from onnx import TensorProto, helper

    (input_name,) = proto.get("input", ["data"])
    g = _Graph([], [], {input_name: input_name})
    layers = proto.get("layer", [])
    prior_params, loc_heads, conf_heads = [], [], []
    skip: set[int] = set()
    for i, layer in enumerate(layers):
        if i in skip:
            continue
        name, kind = layer["name"][0], layer["type"][0]
        bottoms, (top,) = [g.blobs.get(b) for b in layer.get("bottom", [])], layer.get("top", [None])[:1]
        if any(b is None for b in bottoms):
            raise ConversionError(f"layer {name!r} reads a blob no earlier layer writes")
        # BatchNorm (+ Scale) right after a convolution in place: folded into it
        following = [(j, layers[j]) for j in range(i + 1, min(i + 3, len(layers)))]
        if kind == "Convolution":
            blobs = net.getLayer(name).blobs
            weights = blobs[0].astype(np.float64)
            bias = blobs[1].ravel().astype(np.float64) if len(blobs) > 1 else np.zeros(weights.shape[0])
            fold = [(j, l) for j, l in following if l.get("bottom", [None])[0] == top and l.get("top") == [top]]
            if fold and fold[0][1]["type"][0] == "BatchNorm":
                scale = fold[1][1]["name"][0] if len(fold) > 1 and fold[1][1]["type"][0] == "Scale" else None
                mul, add = _bn_affine(net, fold[0][1]["name"][0], scale)
                weights, bias = weights * mul[:, None, None, None], bias * mul + add
                skip.update(j for j, _ in fold[: 2 if scale else 1])
            attrs = _conv_attrs(_one(layer, "convolution_param", {}), weights)
            out = g.add("Conv", [bottoms[0], g.const(f"{name}.w", weights), g.const(f"{name}.b", bias)], name, **attrs)
        elif kind == "BatchNorm":
            nxt = following[0][1] if following else {}
            scale = nxt["name"][0] if nxt.get("type") == ["Scale"] and nxt.get("bottom") == [top] else None
            if scale:
                skip.add(following[0][0])
            mul, add = _bn_affine(net, name, scale)
            shape = (1, -1, 1, 1)
            scaled = g.add("Mul", [bottoms[0], g.const(f"{name}.mul", mul.reshape(shape))], f"{name}.scaled")
            out = g.add("Add", [scaled, g.const(f"{name}.add", add.reshape(shape))], name)
        elif kind == "ReLU":
            out = g.add("Relu", bottoms, name)
        elif kind == "Pooling":
            p = _one(layer, "pooling_param", {})
            if _one(p, "pool", "MAX") != "MAX" or _flag(p, "global_pooling", False):
                raise ConversionError(f"layer {name!r}: only MAX pooling is supported")
            k, s, pad = int(_one(p, "kernel_size")), int(_one(p, "stride", 1)), int(_one(p, "pad", 0))
            out = g.add("MaxPool", bottoms, name, kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4,
                        ceil_mode=1)  # Caffe rounds pooled sizes up
        elif kind == "Eltwise":
            p = _one(layer, "eltwise_param", {})
            if _one(p, "operation", "SUM") != "SUM" or "coeff" in p:
                raise ConversionError(f"layer {name!r}: only plain Eltwise SUM is supported")
            out = bottoms[0]
            for index, other in enumerate(bottoms[1:]):  # binary Adds: ONNX Runtime quantizes Add, not Sum
                out = g.add("Add", [out, other], name if index == len(bottoms) - 2 else f"{name}.{index}")
        elif kind == "Normalize":
            p = _one(layer, "norm_param", {})
            if _flag(p, "across_spatial", True):
                raise ConversionError(f"layer {name!r}: only per-position Normalize is supported")
            squares = g.add("Mul", [bottoms[0], bottoms[0]], f"{name}.sq")
            total = g.add("ReduceSum", [squares, g.const(f"{name}.axes", np.array([1]))], f"{name}.sum", keepdims=1)
            norm = g.add("Sqrt", [g.add("Add", [total, g.const(f"{name}.eps", np.array(NORM_EPS))], f"{name}.e")],
                         f"{name}.norm")
            scale = net.getLayer(name).blobs[0].ravel().reshape(1, -1, 1, 1)
            out = g.add("Mul", [g.add("Div", [bottoms[0], norm], f"{name}.unit"), g.const(f"{name}.scale", scale)], name)
        elif kind == "Permute" or kind == "Flatten":
            out = bottoms[0]  # the heads' NCHW -> NHWC -> flat is done once per head below
        elif kind == "PriorBox":
            prior_params.append(_one(layer, "prior_box_param", {}))
            out = ""
        elif kind in ("Concat", "Reshape", "Softmax", "DetectionOutput"):
            out = ""  # the tail: its Concat/Softmax are built below, the rest runs in numpy
        else:
            raise ConversionError(f"layer {name!r} has type {kind}, which this converter does not handle")
        if kind == "Convolution" and name.endswith("_mbox_loc"):
            loc_heads.append(out)
        elif kind == "Convolution" and name.endswith("_mbox_conf"):
            conf_heads.append(out)
        if top is not None:
            g.blobs[top] = out
    if not loc_heads or len(loc_heads) != len(conf_heads) or len(loc_heads) != len(prior_params):
        raise ConversionError(f"expected one *_mbox_loc, *_mbox_conf and PriorBox per head; got "
                              f"{len(loc_heads)}, {len(conf_heads)}, {len(prior_params)}")

    def flat(heads: list[str], width: int, what: str) -> str:
        parts = []
        for head in heads:
            nhwc = g.add("Transpose", [head], f"{head}.nhwc", perm=[0, 2, 3, 1])
            parts.append(g.add("Reshape", [nhwc, g.const(f"{head}.shape", np.array([1, -1, width]))], f"{head}.flat"))
        return g.add("Concat", parts, what, axis=1)

    loc = flat(loc_heads, 4, "loc")
    g.add("Softmax", [flat(conf_heads, 2, "conf.logits")], "conf", axis=2)
    for init in g.inits:  # shapes and axes are int64 in ONNX
        if init.name.endswith((".shape", ".axes")):
            init.CopyFrom(_int64(init))
    graph = helper.make_graph(
        g.nodes, "res10_300x300_ssd",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, 300, 300])],
        [helper.make_tensor_value_info("loc", TensorProto.FLOAT, [1, None, 4]),
         helper.make_tensor_value_info("conf", TensorProto.FLOAT, [1, None, 2])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edge-fer")
    model.ir_version = 8
    return model, prior_params


def _int64(init):
    from onnx import numpy_helper

    return numpy_helper.from_array(numpy_helper.to_array(init).astype(np.int64), init.name)


# --- settings, verification, quantization, the conversion ----------------------------------------

def detector_settings(net, proto: dict, prior_params: list[dict], loc_heads: list[str]) -> dict:
    """What :mod:`.ssd` needs to finish the detection, stored in the ONNX file's metadata."""
    (out,) = [layer for layer in proto["layer"] if layer["type"] == ["DetectionOutput"]]
    p = _one(out, "detection_output_param", {})
    nms_p = _one(p, "nms_param", {})
    if (_one(p, "code_type", "CORNER") != "CENTER_SIZE" or not _flag(p, "share_location", True)
            or int(_one(p, "num_classes", 0)) != 2 or int(_one(p, "background_label_id", 0)) != 0
            or _flag(p, "variance_encoded_in_target", False)):
        raise ConversionError("DetectionOutput: expected 2 classes (background 0), CENTER_SIZE boxes, shared "
                              "locations and variances in the priors")
    net.setInput(np.zeros((1, 3, 300, 300), np.float32))
    shapes = [blob.shape[2:] for blob in net.forward(loc_heads)]
    priors = []
    for params, (feature_h, feature_w) in zip(prior_params, shapes):
        priors.append({"feature_hw": [int(feature_h), int(feature_w)],
                       "min_size": params.get("min_size", []), "max_size": params.get("max_size", []),
                       "aspect_ratio": params.get("aspect_ratio", []), "flip": _flag(params, "flip", True),
                       "clip": _flag(params, "clip", False), "step": _one(params, "step", 0.0),
                       "offset": _one(params, "offset", 0.5)})
    variances = {tuple(params.get("variance", [])) for params in prior_params}
    if len(variances) != 1 or len(next(iter(variances))) != 4:
        raise ConversionError(f"expected the same 4 variances in every PriorBox, got {sorted(variances)}")
    return {"input_wh": [300, 300], "priors": priors, "variances": list(next(iter(variances))),
            "nms_iou": _one(nms_p, "nms_threshold", 0.3), "top_k": int(_one(nms_p, "top_k", 400)),
            "keep_top_k": int(_one(p, "keep_top_k", 200)),
            "confidence_threshold": _one(p, "confidence_threshold", 0.01)}


def check_priors(net, settings: dict) -> None:
    """Our numpy priors must be cv2.dnn's PriorBox output (the same boxes in the same order)."""
    from .ssd import ssd_priors

    net.setInput(np.zeros((1, 3, 300, 300), np.float32))
    theirs = net.forward("mbox_priorbox").reshape(2, -1, 4)
    ours = ssd_priors(settings["priors"])
    if ours.shape != theirs[0].shape or np.abs(ours - theirs[0]).max() > 1e-5 \
            or not np.allclose(theirs[1], settings["variances"]):
        raise ConversionError(f"the priors computed from the prototxt do not match OpenCV's ({ours.shape} vs "
                              f"{theirs[0].shape}): not a res10-style SSD")


def box_iou(a, b) -> float:
    """IoU of two corner-form boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def match_report(caffe_faces, onnx_faces) -> float:
    """The worst IoU between each Caffe box and the ONNX box matched to it in score order (0 when
    the two find different numbers of faces); 1.0 when neither finds any."""
    if len(caffe_faces) != len(onnx_faces):
        return 0.0
    worst = 1.0
    for face in caffe_faces:
        worst = min(worst, max(box_iou(face, other) for other in onnx_faces))
    return worst


def calibration_frames(paths: tuple[str, ...], count: int) -> list[np.ndarray]:
    """About ``count`` frames spread over the videos / images / image folders in ``paths``."""
    from ..capture import IMAGE_SUFFIXES, SourceOptions, open_source

    frames = []
    for path in paths:
        is_image = Path(path).is_dir() or Path(path).suffix.lower() in IMAGE_SUFFIXES
        with open_source(SourceOptions(image=path) if is_image else SourceOptions(video=path)) as source:
            frames.extend(frame for _, _, frame in source)
    if not frames:
        raise ConversionError(f"no frames in the calibration input {', '.join(paths)}")
    step = max(1, len(frames) // count)
    return frames[::step][:count]


class _FrameReader:
    """onnxruntime.quantization's CalibrationDataReader over preprocessed frames."""

    def __init__(self, frames: list[np.ndarray], input_name: str) -> None:
        from .ssd import INPUT_SIZE, MEAN_BGR

        self._items = iter([{input_name: cv2.dnn.blobFromImage(f, 1.0, INPUT_SIZE, MEAN_BGR)} for f in frames])

    def get_next(self):
        return next(self._items, None)


def float_nodes(model) -> list[str]:
    """Nodes kept in float32: the heads (box offsets and scores need their precision; 7% of the
    multiply-adds) and everything after them, and the L2 normalization feeding the first head."""
    return [n.name for n in model.graph.node
            if "_mbox_" in n.name or n.name.startswith("conv4_3_norm") or n.name.startswith(("loc", "conf"))]


def quantize_int8(float_path: Path, out_path: Path, frames: list[np.ndarray], keep_float: list[str]) -> None:
    """Static int8 QDQ of the backbone (per-channel weights, uint8 activations, MinMax ranges
    over ``frames``); ``keep_float`` nodes stay float32."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(str(float_path), str(out_path), _FrameReader(frames, "data"), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_float)


@dataclass(frozen=True)
class SsdConvertOptions:
    """``model_path``: the Caffe files (a folder, or the .caffemodel with the .prototxt beside
    it); None looks in the cache folders, like the detector. ``out_dir``: where the .onnx goes
    (None: beside the Caffe files, where the detector finds it). ``quantize``: ``int8`` (static,
    calibrated on ``calibration``: videos, images or image folders; the built-in sample image
    when empty) or ``none`` (float32). ``check``: images the result must match the Caffe net on
    (box IoU >= 0.9, the same number of faces); the sample image and the calibration frames are
    always checked."""

    model_path: str | None = None
    out_dir: str | None = None
    quantize: str = "int8"
    calibration: tuple[str, ...] = ()
    calibration_frames: int = 64
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.quantize not in QUANT_MODES:
            raise OptionsError(f"quantize must be one of {', '.join(QUANT_MODES)}, got {self.quantize!r}")
        if self.calibration_frames < 1:
            raise OptionsError(f"calibration_frames must be >= 1, got {self.calibration_frames}")
        for path in self.calibration:
            if not Path(path).exists():
                raise OptionsError(f"calibration input not found: {path}")


@dataclass(frozen=True)
class SsdConversion:
    path: Path
    quantize: str
    frames_checked: int
    faces_checked: int
    worst_iou: float


def convert_ssd(options: SsdConvertOptions = SsdConvertOptions()) -> SsdConversion:
    """Build, verify and write the ONNX file of the res10 SSD (see the module docstring)."""
    try:
        import onnx
    except ImportError:
        raise ConversionError("converting the SSD needs the onnx package: pip install 'edge-fer[convert]'") from None
    from ..capture import DEMO_IMAGE
    from . import DetectorOptions
    from .ssd import METADATA_KEY, SsdDetector

    caffemodel, prototxt = find_detector_files("ssd", options.model_path)
    SsdDetector(DetectorOptions("ssd", model_path=str(caffemodel))).close()  # bad Caffe files: one line
    try:
        net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        net.enableFusion(False)
        proto = parse_prototxt(prototxt.read_text(encoding="utf-8", errors="replace"))
    except cv2.error as exc:
        raise load_error("ssd", prototxt if "TextFile" in str(exc) else caffemodel, exc) from None
    except ValueError as exc:
        raise ConversionError(f"{prototxt}: not a Caffe prototxt ({exc})") from None
    model, prior_params = build_graph(net, proto)
    loc_heads = [n.name for n in model.graph.node if n.op_type == "Conv" and n.name.endswith("_mbox_loc")]
    settings = detector_settings(net, proto, prior_params, loc_heads)
    check_priors(net, settings)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(settings)
    onnx.checker.check_model(model)

    out_dir = Path(options.out_dir) if options.out_dir else caffemodel.parent
    out_path = out_dir / ONNX_NAMES[options.quantize]
    frames = calibration_frames(options.calibration or (str(DEMO_IMAGE),), options.calibration_frames)
    with atomic_path(out_path, suffix=".onnx", make_parent=True) as tmp:
        if options.quantize == "int8":
            with tempfile.TemporaryDirectory(prefix="edge-fer-ssd-") as work:
                float_path = Path(work) / ONNX_NAMES["none"]
                onnx.save(model, str(float_path))
                quantize_int8(float_path, tmp, frames, float_nodes(model))
            quantized = onnx.load(str(tmp))
            if not any(p.key == METADATA_KEY for p in quantized.metadata_props):
                quantized.metadata_props.add().CopyFrom(entry)
            onnx.save(quantized, str(tmp))
        else:
            onnx.save(model, str(tmp))
        worst, faces = verify(caffemodel, tmp, [cv2.imread(str(DEMO_IMAGE))] + frames, options.num_threads)
    log.debug("wrote %s (%s): %d frames checked against Caffe, worst IoU %.3f", out_path, options.quantize,
             len(frames) + 1, worst)
    return SsdConversion(out_path, options.quantize, len(frames) + 1, faces, worst)


def verify(caffemodel: Path, onnx_path: Path, frames: list[np.ndarray], num_threads: int) -> tuple[float, int]:
    """Worst box IoU of the ONNX file's faces against the Caffe net's over ``frames``, and the
    number of faces compared; raises ConversionError below :data:`MATCH_IOU`."""
    from . import DetectorOptions
    from .ssd import SsdDetector

    caffe = SsdDetector(DetectorOptions("ssd", model_path=str(caffemodel),
                                        detect_width=0, min_face_px=1))
    fast = SsdDetector(DetectorOptions("ssd", model_path=str(onnx_path), detect_width=0, min_face_px=1,
                                       num_threads=num_threads))
    worst, faces = 1.0, 0
    for index, frame in enumerate(frames):
        theirs = [_corners(f.box_xywh) for f in caffe.detect(frame)]
        ours = [_corners(f.box_xywh) for f in fast.detect(frame)]
        worst, faces = min(worst, match_report(theirs, ours)), faces + len(theirs)
        if worst < MATCH_IOU:
            raise ConversionError(f"the converted SSD does not match the Caffe net on check frame {index} "
                                  f"({len(theirs)} vs {len(ours)} faces, IoU {worst:.2f} < {MATCH_IOU}); "
                                  "not written (try --quantize none)")
    return worst, faces


def _corners(box_xywh) -> tuple[float, float, float, float]:
    x, y, w, h = box_xywh
    return (x, y, x + w, y + h)
