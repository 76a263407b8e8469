"""Inference backends behind one small protocol, chosen by the model file's suffix.

``.tflite`` -> LiteRT (``ai-edge-litert``, XNNPACK); ``.onnx`` -> ONNX Runtime.
A backend takes a float batch in NHWC layout (already normalized as the model's metadata says)
and returns float32 probabilities (N, classes).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import defaults
from ..errors import ModelError, OptionsError, first_line  # noqa: F401 (backends import it from here)

SUFFIXES = (".tflite", ".onnx")
DEVICES = ("auto", "cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class BackendOptions:
    """``num_threads``: the runtime's CPU threads (OpenCV's are set apart).
    ``device``: ONNX Runtime providers: auto = TensorRT > CUDA > CPU, whichever are present."""

    num_threads: int = defaults.CLASSIFIER_THREADS
    device: str = "auto"

    def __post_init__(self) -> None:
        defaults.check_threads("BackendOptions.num_threads", self.num_threads)
        if self.device not in DEVICES:
            raise OptionsError(f"BackendOptions.device={self.device!r}: expected one of {', '.join(DEVICES)}")


@dataclass(frozen=True)
class InputSpec:
    """The model's image input: size, channels and whether its batch size can change."""

    height: int
    width: int
    channels: int
    dynamic_batch: bool


class Backend(Protocol):
    name: str
    input_spec: InputSpec

    def run(self, batch_nhwc: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def check_model_file(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ModelError(f"unsupported model file {path.name!r}: expected one of {SUFFIXES}")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.stat().st_size == 0:
        raise ModelError(f"model file is empty: {path}")
    return path


def open_backend(path: str | Path, options: BackendOptions = BackendOptions()) -> Backend:
    path = check_model_file(path)
    if path.suffix.lower() == ".tflite":
        from .litert import LiteRtBackend
        return LiteRtBackend(path, options)
    from .onnx import OnnxBackend
    return OnnxBackend(path, options)


def image_input_spec(shape, name: str, layout: str = "NHWC") -> InputSpec:
    """Validate a model's input shape as an image batch; ``layout`` is NHWC or NCHW."""
    dims = [int(d) if isinstance(d, (int, np.integer)) and d > 0 else -1 for d in shape]
    if len(dims) != 4:
        raise ModelError(f"{name}: model input shape {list(shape)} is not an image batch "
                         f"(expected 4 dims {layout})")
    n, h, w, c = dims if layout == "NHWC" else (dims[0], dims[2], dims[3], dims[1])
    if c not in (1, 3) or h < 8 or w < 8:
        raise ModelError(f"{name}: model input shape {list(shape)} cannot be fed: expected {layout} "
                         "with 1 or 3 channels and a fixed size >= 8")
    return InputSpec(h, w, c, dynamic_batch=(n == -1))


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Models here end in softmax; a model that outputs logits gets one applied."""
    scores = np.asarray(scores, np.float32)
    if scores.min() >= 0.0 and np.allclose(scores.sum(axis=1), 1.0, atol=0.02):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@contextmanager
def quiet_native_fds(fds: tuple[int, ...] = (2,)):
    """Send what native code writes to these file descriptors (2: stderr, 1: stdout) to
    /dev/null meanwhile; Python exceptions are unaffected. The one fd-level silencer:
    :func:`quiet_native_stderr` and ``converters.quiet`` use it."""
    try:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        saved = [os.dup(fd) for fd in fds]
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def quiet_native_stderr():
    """Hide what native code prints on fd 2 meanwhile (LiteRT's "INFO: Created TensorFlow Lite
    XNNPACK delegate" line on every model load)."""
    return quiet_native_fds((2,))
