"""TFLite export: float32, float16, dynamic-range int8 and full int8; edge-fer metadata inside."""

from __future__ import annotations

import numpy as np

from edge_fer.backends import first_line
from edge_fer.errors import ConversionError
from edge_fer.signals import raise_if_stopped


def to_tflite(source, quantization: str, calibration_nhwc: np.ndarray | None, int8_io: bool) -> bytes:
    """Convert ``source`` (a :class:`~converters.models.SourceModel`) to TFLite flatbuffer bytes.

    Full int8 calibrates on ``calibration_nhwc``: real crops, preprocessed as the runtime does.
    """
    import tensorflow as tf

    converter = source.tflite_converter()
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if calibration_nhwc is None or not len(calibration_nhwc):
            raise ConversionError("full int8 needs calibration faces")
        batch = np.asarray(calibration_nhwc, np.float32)
        converter.representative_dataset = lambda: ([batch[i:i + 1]] for i in range(len(batch)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the MLIR converter raises ConverterError/RuntimeError with long texts
        raise_if_stopped()  # a stop signal inside the converter comes out as some other error
        raise ConversionError(f"TFLite converter failed on {source.path.name} ({quantization}): "
                              f"{first_line(exc)}") from None
