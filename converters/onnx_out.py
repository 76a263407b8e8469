"""ONNX export: float32 (tf2onnx, or the source itself) and static int8 (QDQ, ONNX Runtime's
quantizer calibrated on real crops); edge-fer metadata in ``metadata_props``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_fer.backends import first_line
from edge_fer.errors import ConversionError
from edge_fer.backends.quant import ort_static_int8_settings


def to_onnx(source, quantization: str, calibration_nhwc: np.ndarray | None, path: Path) -> None:
    """Write ``source`` as ONNX to ``path`` (float32, or int8 calibrated on ``calibration_nhwc``)."""
    if quantization == "none":
        source.write_float_onnx(path)
        return
    if calibration_nhwc is None or not len(calibration_nhwc):
        raise ConversionError("ONNX int8 needs calibration faces")
    work = source.temp_dir()
    float_path, prepared = work / "float.onnx", work / "prepared.onnx"
    if not float_path.is_file():
        source.write_float_onnx(float_path)
    quantize_onnx(float_path, prepared, path, calibration_nhwc)


def quantize_onnx(float_path: Path, prepared: Path, out: Path, calibration_nhwc: np.ndarray) -> None:
    """Static int8 (S8S8, 7-bit per-channel weights, QDQ format: :func:`ort_static_int8_settings`),
    min-max calibrated; softmax float."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    graph = onnx.load(str(float_path), load_external_data=False).graph
    graph_input = graph.input[0]
    # Probabilities stay float: an int8 softmax output (steps of 1/255) ties near-equal classes.
    softmax = [node.name for node in graph.node if node.op_type == "Softmax"]
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    channels = calibration_nhwc.shape[-1]
    batch = calibration_nhwc.transpose(0, 3, 1, 2) if dims[-1] != channels else calibration_nhwc
    batch = np.ascontiguousarray(batch, np.float32)
    step = dims[0] if dims and dims[0] > 0 else 32  # a static batch size must be kept
    chunks = [batch[i:i + step] for i in range(0, len(batch), step)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter({graph_input.name: c} for c in chunks if len(c) == step or dims[0] <= 0)

        def get_next(self):
            return next(self._feeds, None)

    try:
        # Shapes are static but for the batch: ONNX shape inference is enough (no sympy).
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Reader(), nodes_to_exclude=softmax,
                        **ort_static_int8_settings("int8"))
    except Exception as exc:  # the quantizer raises assorted types
        raise ConversionError(f"ONNX Runtime int8 quantization failed: {first_line(exc)}") from None
