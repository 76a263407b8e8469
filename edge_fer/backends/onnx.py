"""ONNX Runtime backend: TensorRT > CUDA > CPU providers, whichever are present.

TensorRT builds FP16 engines where the GPU has fast FP16 and caches them (building one takes
minutes on a Jetson) in ``~/.cache/edge-fer/trt``; ``backend.provider`` names the provider that
actually runs (ONNX Runtime falls back to the next one when a provider fails to start).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError, OptionsError
from . import (BackendOptions, check_output_shape, first_line, image_input_spec, inference_error,
               quiet_native_stderr, to_probabilities)

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
#: The input types fed (as floats) and the output types read as scores.
INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
OUTPUT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")


def choose_providers(device: str, available: list[str]) -> list[str]:
    """``auto``: every accelerated provider present, best first, then CPU as the fallback."""
    if device == "auto":
        order = [PROVIDERS["tensorrt"], PROVIDERS["cuda"]]
        return [p for p in order if p in available] + [PROVIDERS["cpu"]]
    wanted = PROVIDERS[device]
    if wanted not in available:
        raise OptionsError(f"device {device!r} needs {wanted}, but this onnxruntime has {available}")
    return [wanted] if device == "cpu" else [wanted, PROVIDERS["cpu"]]


def trt_cache_dir() -> Path:
    """Where TensorRT engines are cached: $XDG_CACHE_HOME (or ~/.cache)/edge-fer/trt."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-fer" / "trt"


def provider_options(provider: str) -> dict[str, str]:
    """Per-provider settings: TensorRT in FP16 with an engine cache; others as they come."""
    if provider != PROVIDERS["tensorrt"]:
        return {}
    options = {"trt_fp16_enable": "True"}
    cache = trt_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home: engines are rebuilt on every start
        return options
    return {**options, "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, options: BackendOptions) -> None:
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.num_threads
        session_options.inter_op_num_threads = 1
        session_options.log_severity_level = 3
        providers = choose_providers(options.device, ort.get_available_providers())
        try:  # what ORT logs itself while a broken model fails to load (bad_alloc...): our one line says it
            with quiet_native_stderr():
                self._session = ort.InferenceSession(str(path), session_options, providers=providers,
                                                     provider_options=[provider_options(p) for p in providers])
        except Exception as exc:  # onnxruntime's errors are untyped
            raise ModelError(f"{path.name}: not a loadable ONNX model ({first_line(exc)})") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path.name}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        shape = inputs[0].shape
        # NCHW when dim 1 looks like channels and the last dim does not (PyTorch exports).
        self._nchw = len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3)
        self.input_spec = image_input_spec(shape, path.name, "NCHW" if self._nchw else "NHWC")
        check_output_shape(outputs[0].shape, path.name)
        if inputs[0].type not in INPUT_TYPES:
            raise ModelError(f"{path.name}: model input type {inputs[0].type}: expected {' or '.join(INPUT_TYPES)}")
        if outputs[0].type not in OUTPUT_TYPES:
            raise ModelError(f"{path.name}: model output type {outputs[0].type}: expected {', '.join(OUTPUT_TYPES)}")
        self._name = path.name
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4  # a failed run is our one ModelError line, not ORT's log too
        self._input_name = inputs[0].name
        self._dtype = INPUT_TYPES[inputs[0].type]
        self.providers = self._session.get_providers()
        self.provider = self.providers[0]  # the one that runs; the rest are fallbacks

    def run(self, batch_nhwc: np.ndarray) -> np.ndarray:
        batch = batch_nhwc.transpose(0, 3, 1, 2) if self._nchw else batch_nhwc
        batch = np.ascontiguousarray(batch, self._dtype)
        if self.input_spec.dynamic_batch or len(batch) == 1:
            return to_probabilities(self._infer(batch), self._name, len(batch))
        return np.concatenate([to_probabilities(self._infer(batch[i:i + 1]), self._name, 1)
                               for i in range(len(batch))])

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self._session.run(None, {self._input_name: batch}, self._run_options)[0]
        except Exception as exc:  # onnxruntime's errors are untyped (a failed allocation, a bad shape)
            raise inference_error(self._name, exc) from None

    def close(self) -> None:
        self._session = None
