"""The Caffe net of OpenCV's res10 SSD face detector as an ONNX graph, without Caffe.

The layers and their settings come from the ``deploy.prototxt`` (parsed here: protobuf text
format), the weights from ``cv2.dnn.readNetFromCaffe`` (``Layer.blobs``), and the layers are
emitted in file order as Caffe runs them (in-place layers rename their blob). BatchNorm + Scale
right after a convolution are folded into its weights; elsewhere (the input's, the
pre-activation ones) they are one per-channel Mul + Add. The graph ends at the heads: ``loc``
(1, N, 4) box offsets and ``conf`` (1, N, 2) [background, face] probabilities, one row per
prior. The PriorBox and DetectionOutput layers become settings (:func:`detector_settings`) that
:mod:`.ssd` computes from in numpy. Needs the ``onnx`` package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edge_fer.errors import ConversionError

BN_EPS = 1e-5  # Caffe's BatchNorm default (res10's prototxt sets none)
NORM_EPS = 1e-10  # Caffe SSD's Normalize default
INPUT_HW = (300, 300)
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


def _in_place(layers: list[dict], index: int, kind: str, blob: str | None) -> int | None:
    """``index`` if layer ``index`` is a ``kind`` layer working in place on ``blob``, else None."""
    if blob is None or index >= len(layers):
        return None
    layer = layers[index]
    return index if layer["type"] == [kind] and layer.get("bottom") == [blob] and layer.get("top") == [blob] else None


def _bn_affine(net, bn_layer: dict, scale_layer: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, offset) of a Caffe BatchNorm (+ the Scale after it)."""
    mean, var, factor = (b.ravel().astype(np.float64) for b in net.getLayer(bn_layer["name"][0]).blobs[:3])
    factor = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    eps = _one(_one(bn_layer, "batch_norm_param", {}), "eps", BN_EPS)
    mul = 1.0 / np.sqrt(var * factor + eps)
    add = -mean * factor * mul
    if scale_layer is not None:
        blobs = net.getLayer(scale_layer["name"][0]).blobs
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
        # The BatchNorm and Scale right after a layer, in place on its output (None where not)
        bn = _in_place(layers, i + 1, "BatchNorm", top)
        scale = _in_place(layers, i + (2 if bn is not None else 1), "Scale", top)
        if kind == "Convolution":
            blobs = net.getLayer(name).blobs
            weights = blobs[0].astype(np.float64)
            bias = blobs[1].ravel().astype(np.float64) if len(blobs) > 1 else np.zeros(weights.shape[0])
            if bn is not None:  # folded into the convolution
                mul, add = _bn_affine(net, layers[bn], None if scale is None else layers[scale])
                weights, bias = weights * mul[:, None, None, None], bias * mul + add
                skip.update(j for j in (bn, scale) if j is not None)
            attrs = _conv_attrs(_one(layer, "convolution_param", {}), weights)
            out = g.add("Conv", [bottoms[0], g.const(f"{name}.w", weights), g.const(f"{name}.b", bias)], name, **attrs)
        elif kind == "BatchNorm":
            if scale is not None:
                skip.add(scale)
            mul, add = _bn_affine(net, layer, None if scale is None else layers[scale])
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

    flat(loc_heads, 4, "loc")
    g.add("Softmax", [flat(conf_heads, 2, "conf.logits")], "conf", axis=2)
    for init in g.inits:  # shapes and axes are int64 in ONNX
        if init.name.endswith((".shape", ".axes")):
            init.CopyFrom(_int64(init))
    graph = helper.make_graph(
        g.nodes, "res10_300x300_ssd",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, *INPUT_HW])],
        [helper.make_tensor_value_info("loc", TensorProto.FLOAT, [1, None, 4]),
         helper.make_tensor_value_info("conf", TensorProto.FLOAT, [1, None, 2])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edge-fer")
    model.ir_version = 8
    return model, prior_params


def _int64(init):
    from onnx import numpy_helper

    return numpy_helper.from_array(numpy_helper.to_array(init).astype(np.int64), init.name)


def detector_settings(net, proto: dict, prior_params: list[dict], loc_heads: list[str]) -> dict:
    """What :mod:`.ssd` needs to finish the detection (the PriorBox layers with their feature map
    sizes, the variances, DetectionOutput's NMS), stored in the ONNX file's metadata."""
    (out,) = [layer for layer in proto["layer"] if layer["type"] == ["DetectionOutput"]]
    p = _one(out, "detection_output_param", {})
    nms_p = _one(p, "nms_param", {})
    if (_one(p, "code_type", "CORNER") != "CENTER_SIZE" or not _flag(p, "share_location", True)
            or int(_one(p, "num_classes", 0)) != 2 or int(_one(p, "background_label_id", 0)) != 0
            or _flag(p, "variance_encoded_in_target", False)):
        raise ConversionError("DetectionOutput: expected 2 classes (background 0), CENTER_SIZE boxes, shared "
                              "locations and variances in the priors")
    net.setInput(np.zeros((1, 3, *INPUT_HW), np.float32))
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
    return {"input_wh": [INPUT_HW[1], INPUT_HW[0]], "priors": priors, "variances": list(next(iter(variances))),
            "nms_iou": _one(nms_p, "nms_threshold", 0.3), "top_k": int(_one(nms_p, "top_k", 400)),
            "keep_top_k": int(_one(p, "keep_top_k", 200)),
            "confidence_threshold": _one(p, "confidence_threshold", 0.01)}
