"""Inference backends behind one small protocol, chosen by the model file's suffix.

``.tflite`` -> LiteRT (``ai-edge-litert``, XNNPACK); ``.onnx`` -> ONNX Runtime.
A backend takes a float batch in NHWC layout (already normalized as the model's metadata says)
and returns float32 probabilities (N, classes). What a model file declares (input type and
shape, output shape) is checked when it is opened, what it gives back (NaN, a wrong shape) on
every call, and a failed inference is one :class:`~edge_fer.errors.ModelError` line.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import defaults
from ..errors import ModelError, OptionsError, first_line  # noqa: F401 (backends import it from here)
from ..metadata import MAX_INPUT_SIDE

SUFFIXES = (".tflite", ".onnx")
DEVICES = ("auto", "cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class BackendOptions:
    """``num_threads``: the runtime's CPU threads (OpenCV's are set apart).
    ``device``: ONNX Runtime providers: auto = TensorRT > CUDA > CPU, whichever are present."""

    num_threads: int = defaults.LIVE_THREADS
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


def shape_text(shape) -> str:
    """A declared shape as a message shows it: ``[-1, 48, 48, 1]`` (numpy ints as plain ones)."""
    return str([d if d is None or isinstance(d, str) else int(d) for d in shape])


def image_input_spec(shape, name: str, layout: str = "NHWC") -> InputSpec:
    """Validate a model's input shape as an image batch; ``layout`` is NHWC or NCHW."""
    dims = [int(d) if isinstance(d, (int, np.integer)) and d > 0 else -1 for d in shape]
    if len(dims) != 4:
        raise ModelError(f"{name}: model input shape {shape_text(shape)} is not an image batch "
                         f"(expected 4 dims {layout})")
    n, h, w, c = dims if layout == "NHWC" else (dims[0], dims[2], dims[3], dims[1])
    if c not in (1, 3) or not (8 <= h <= MAX_INPUT_SIDE and 8 <= w <= MAX_INPUT_SIDE):
        raise ModelError(f"{name}: model input shape {shape_text(shape)} cannot be fed: expected {layout} "
                         f"with 1 or 3 channels and a fixed size from 8 to {MAX_INPUT_SIDE}")
    return InputSpec(h, w, c, dynamic_batch=(n == -1))


def check_output_shape(shape, name: str) -> None:
    """A classifier's declared output: 2 dims (batch, classes), >= 2 classes where known."""
    classes = shape[1] if len(shape) == 2 else None
    if len(shape) != 2 or (isinstance(classes, (int, np.integer)) and 0 <= classes < 2):
        raise ModelError(f"{name}: model output shape {shape_text(shape)}: expected 2 dims "
                         "(batch, classes) with >= 2 classes")


def to_probabilities(scores: np.ndarray, name: str = "the model", batch: int | None = None) -> np.ndarray:
    """A model's scores (``batch`` rows where given, of >= 2 finite numbers), checked, as
    probabilities: models here end in softmax; a model that outputs logits gets one applied."""
    scores = np.asarray(scores)
    scores = scores if scores.dtype == np.float64 else scores.astype(np.float32)
    if scores.ndim != 2 or scores.shape[1] < 2 or (batch is not None and len(scores) != batch):
        raise ModelError(f"{name} gives scores of shape {list(scores.shape)}: expected "
                         f"[{'batch' if batch is None else batch}, classes >= 2], one row per face")
    if not len(scores):
        return scores.astype(np.float32)
    if not np.isfinite(scores).all():
        kind = "NaN" if np.isnan(scores).any() else "infinite"
        raise ModelError(f"{name} gives {kind} scores: expected finite numbers (a broken model file)")
    if scores.min() >= 0.0 and float(np.abs(scores.sum(axis=1) - 1.0).max()) <= 0.02 + 1e-5:  # np.allclose's test, 7x cheaper
        return np.minimum(scores, 1.0).astype(np.float32)  # a sum of 1.02 holds no score over 1
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def inference_error(name: str, exc: BaseException) -> ModelError:
    """The one line for a runtime's failed inference; a failed allocation says its size."""
    text = str(exc)
    size = re.search(r"allocate memory for requested buffer of size (\d+)", text)
    if size or isinstance(exc, MemoryError) or "bad_alloc" in text or "bad allocation" in text:
        import psutil

        asked = f"{int(size.group(1)) / 1e9:,.1f} GB" if size else "more memory than there is"
        return ModelError(f"{name}: inference failed: the model asks for {asked} at once: expected at most "
                          f"the {psutil.virtual_memory().available / 1e9:,.1f} GB available")
    return ModelError(f"{name}: inference failed ({first_line(exc)})")


@contextmanager
def quiet_native_fds(fds: tuple[int, ...] = (2,)):
    """Send what native code writes to these file descriptors (2: stderr, 1: stdout) to
    /dev/null meanwhile; Python exceptions are unaffected. The one fd-level silencer:
    :func:`quiet_native_stderr` and ``converters.quiet`` use it."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: the process started with it closed
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
