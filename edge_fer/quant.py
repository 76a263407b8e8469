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
