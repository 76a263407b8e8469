"""Model conversion for edge-fer (workstation side): Keras / SavedModel / ONNX in, TFLite and
ONNX out, every output verified on real faces through the runtime and carrying its metadata.

TensorFlow, tf2onnx, onnx and onnx2tf load only inside the calls that need them.
"""

from .api import convert, convert_all, format_report, format_summary
from .options import ALL_VARIANTS, DEFAULT_MIN_AGREEMENT, ConversionReport, ConvertOptions

__all__ = ["convert", "convert_all", "format_report", "format_summary", "ConvertOptions",
           "ConversionReport", "ALL_VARIANTS", "DEFAULT_MIN_AGREEMENT"]
