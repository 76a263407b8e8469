"""Affine quantization math, in one place.

TFLite and ONNX Runtime store an int8/uint8 tensor q for a real tensor x as
``x = (q - zero_point) * scale``; so the float input a model's metadata describes is quantized
with ``q = round(x / scale) + zero_point``, clipped to the integer type's range.
"""

from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def ort_static_int8_settings(activations: str = "int8") -> dict:
    """``onnxruntime.quantization.quantize_static`` settings that hold on every CPU.

    QDQ format, int8 weights per output channel, **7-bit weights** (``reduce_range``). On x86
    without VNNI (AVX2, and AVX-512 without VNNI), ONNX Runtime runs int8 convolutions with
    ``VPMADDUBSW``, which adds pairs of u8 x s8 products into int16 and saturates when the weights
    use the full 8 bits; with VNNI (``VPDPBUSD``) or on Arm it does not. 8-bit weights so verified
    on a VNNI laptop lost a quarter of their agreement on an AVX2 box (the fer peer: 77.8% against
    96.8% with 7-bit weights, 500 val faces, AMD EPYC AVX2); 7-bit weights cannot saturate, and
    cost nothing measurable in accuracy or speed (docs/convert.md). ``activations``: ``int8`` or
    ``uint8`` (the SSD converter's).
    """
    from onnxruntime.quantization import QuantFormat, QuantType

    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    if activations not in types:
        raise ValueError(f"activations must be one of {sorted(types)}, got {activations!r}")
    return dict(quant_format=QuantFormat.QDQ, activation_type=types[activations],
                weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)


#: int8 weights quantized by :func:`ort_static_int8_settings` lie in this range (symmetric 7 bits):
#: two u8 x s8 products then sum to at most 2 * 255 * 64 = 32,640, inside int16.
ORT_INT8_WEIGHT_RANGE = (-64, 64)
