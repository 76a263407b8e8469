"""LiteRT (``ai-edge-litert``) backend; XNNPACK is its default CPU delegate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from .quant import dequantize, quantize
from . import (BackendOptions, check_output_shape, first_line, image_input_spec, inference_error,
               quiet_native_stderr, to_probabilities)


class LiteRtBackend:
    name = "litert"

    def __init__(self, path: Path, options: BackendOptions) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # old devices: tflite-runtime as a fallback
            try:
                from tflite_runtime.interpreter import Interpreter
            except ImportError:
                raise ModelError("no TFLite runtime: pip install ai-edge-litert") from None
        try:
            with quiet_native_stderr():
                self._interpreter = Interpreter(model_path=str(path), num_threads=options.num_threads)
                self._interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with long texts
            raise ModelError(f"{path.name}: not a loadable TFLite model ({first_line(exc)})") from None
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path.name}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        self._name = path.name
        self._input, self._output = inputs[0], outputs[0]
        signature = self._input.get("shape_signature", self._input["shape"])
        self.input_spec = image_input_spec(list(signature), path.name)
        check_output_shape(list(self._output.get("shape_signature", self._output["shape"])), path.name)
        for role, detail in (("input", self._input), ("output", self._output)):
            check_tensor_type(detail, role, path.name)
        self._batch = int(self._input["shape"][0])

    def _resize(self, n: int) -> bool:
        if n == self._batch:
            return True
        if not self.input_spec.dynamic_batch and n != 1:
            return False
        spec = self.input_spec
        try:
            with quiet_native_stderr():  # the runtime's own lines for a graph that cannot be resized
                self._interpreter.resize_tensor_input(self._input["index"], [n, spec.height, spec.width, spec.channels])
                self._interpreter.allocate_tensors()
        except Exception as exc:  # a graph that cannot take this batch, or no memory for it
            raise inference_error(self._name, exc) from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = n
        return True

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype in (np.int8, np.uint8):
            scale, zero_point = self._input["quantization"]
            batch = quantize(batch, scale, zero_point, dtype)
        else:
            batch = batch.astype(dtype, copy=False)
        try:
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            out = self._interpreter.get_tensor(self._output["index"])
        except Exception as exc:  # LiteRT's RuntimeError/ValueError, MemoryError
            raise inference_error(self._name, exc) from None
        if self._output["dtype"] in (np.int8, np.uint8):
            scale, zero_point = self._output["quantization"]
            out = dequantize(out, scale, zero_point)
        return np.array(out, np.float32)

    def run(self, batch_nhwc: np.ndarray) -> np.ndarray:
        n = len(batch_nhwc)
        if n == 0:
            return np.zeros((0, int(self._output["shape"][-1])), np.float32)
        if self._resize(n):
            return to_probabilities(self._invoke(batch_nhwc), self._name, n)
        self._resize(1)  # static batch of 1: one call per face
        scores = [to_probabilities(self._invoke(batch_nhwc[i:i + 1]), self._name, 1) for i in range(n)]
        return np.concatenate(scores)

    def close(self) -> None:
        self._interpreter = None


def check_tensor_type(detail: dict, role: str, name: str) -> None:
    """An input or output LiteRT can exchange as floats: float32/float16, or int8/uint8 with a
    quantization scale (``x = (q - zero_point) * scale``) that is a finite number > 0."""
    dtype = np.dtype(detail["dtype"])
    if dtype in (np.float32, np.float16):
        return
    scale = float(detail["quantization"][0])
    if dtype not in (np.int8, np.uint8):
        raise ModelError(f"{name}: model {role} type {dtype}: expected float32, float16, int8 or uint8")
    if not (np.isfinite(scale) and scale > 0):
        raise ModelError(f"{name}: model {role} is {dtype} with quantization scale {scale:g}: expected a "
                         "finite scale > 0 (a quantized model) or a float32 " + role)
