"""What ``edge-fer convert`` is asked to do, and what it reports."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_fer.defaults import BATCH_THREADS, check_threads
from edge_fer.errors import OptionsError

#: ``phone``: a TFLite file MediaPipe Tasks can feed (RGB input, standard metadata; converters.phone).
TARGETS = ("tflite", "onnx", "phone")
QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")
#: ONNX outputs: float32 and static int8 (QDQ); fp16/dynamic are TFLite-only here.
ONNX_QUANTIZATIONS = ("none", "int8")
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx", "phone": ".tflite"}
PHONE_QUANTIZATIONS = ("none", "fp16", "dynamic")
COLORS = ("gray", "rgb", "bgr")
#: Least top-1 agreement with the source model on held-out faces, per quantization.
DEFAULT_MIN_AGREEMENT = {"none": 0.995, "fp16": 0.995, "dynamic": 0.97, "int8": 0.95}
#: Every variant ``--all`` writes, in this order: (target, quantization).
ALL_VARIANTS = (("tflite", "none"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8"),
                ("onnx", "none"), ("onnx", "int8"))


@dataclass(frozen=True)
class ConvertOptions:
    """One conversion of ``model_path`` (.keras, .h5/.hdf5, SavedModel folder or .onnx) to ``out``.

    ``to``: tflite or onnx; None takes it from ``out``'s suffix. ``calibration``: folder-per-class
    face crops for full int8 (``calibration_count`` of them, even across classes, seeded); faces
    held back from that sample verify the result unless ``verify`` names another folder
    (``verify_count`` faces, 0 = all). ``labels``/``input_scale``/``input_offset``/``color``
    describe a model without edge-fer metadata (or override it). ``int8_io``: full-int8 TFLite
    takes int8 input and output (the runtime quantizes the float input). ``unsafe``: Keras files
    may hold Lambda layers (code). ``trust_model``: skip the SavedModel op scan (see
    :mod:`converters.op_scan`). ``min_agreement``:
    least top-1 agreement with the source, default per quantization (DEFAULT_MIN_AGREEMENT).
    """

    model_path: str | Path
    out: str | Path
    to: str | None = None
    quantize: str = "none"
    calibration: str | Path | None = None
    verify: str | Path | None = None
    calibration_count: int = 300
    verify_count: int = 500
    min_agreement: float | None = None
    labels: tuple[str, ...] | str | None = None
    input_scale: float | None = None
    input_offset: float | None = None
    color: str | None = None
    int8_io: bool = True
    unsafe: bool = False
    trust_model: bool = False
    seed: int = 0
    num_threads: int = BATCH_THREADS

    def __post_init__(self) -> None:
        if self.to is not None and self.to not in TARGETS:
            raise OptionsError(f"ConvertOptions.to={self.to!r}: expected one of {', '.join(TARGETS)}")
        if self.quantize not in QUANTIZATIONS:
            raise OptionsError(f"ConvertOptions.quantize={self.quantize!r}: expected one of {', '.join(QUANTIZATIONS)}")
        if self.to == "phone" and self.quantize not in PHONE_QUANTIZATIONS:
            raise OptionsError(f"ConvertOptions.quantize={self.quantize!r}: expected one of "
                               f"{', '.join(PHONE_QUANTIZATIONS)} for ConvertOptions.to='phone' "
                               "(MediaPipe feeds float input)")
        if self.to == "onnx" and self.quantize not in ONNX_QUANTIZATIONS:
            raise OptionsError(f"ConvertOptions.quantize={self.quantize!r}: expected "
                               f"{' or '.join(ONNX_QUANTIZATIONS)} for ONNX output (fp16 and dynamic are "
                               "TFLite-only)")
        if self.calibration_count < 1:
            raise OptionsError(f"ConvertOptions.calibration_count={self.calibration_count!r}: expected >= 1")
        if self.verify_count < 0:
            raise OptionsError(f"ConvertOptions.verify_count={self.verify_count!r}: expected >= 0 (0 = every face)")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise OptionsError(f"ConvertOptions.min_agreement={self.min_agreement!r}: expected a fraction in [0, 1]")
        if self.color is not None and self.color not in COLORS:
            raise OptionsError(f"ConvertOptions.color={self.color!r}: expected one of {', '.join(COLORS)}")
        if self.input_scale is not None and (self.input_scale == 0 or self.input_scale != self.input_scale):
            raise OptionsError(f"ConvertOptions.input_scale={self.input_scale!r}: expected a non-zero number")
        check_threads("ConvertOptions.num_threads", self.num_threads)
        if self.calibration is None and self.verify is None:
            raise OptionsError("conversion is always verified on real faces: set ConvertOptions.calibration "
                               "or ConvertOptions.verify to a folder of folder-per-class face crops")
        if self.quantize == "int8" and self.calibration is None:
            raise OptionsError("ConvertOptions.quantize='int8' needs ConvertOptions.calibration: real face crops, "
                               "folder per class")

    @property
    def target(self) -> str:
        """``to``, or the target named by ``out``'s suffix."""
        if self.to is not None:
            return self.to
        for target, suffix in SUFFIXES.items():
            if Path(self.out).suffix.lower() == suffix:
                return target
        raise OptionsError(f"ConvertOptions.out={str(self.out)!r}: expected a *.tflite or *.onnx name, or "
                           "set ConvertOptions.to")

    @property
    def required_agreement(self) -> float:
        return DEFAULT_MIN_AGREEMENT[self.quantize] if self.min_agreement is None else self.min_agreement


@dataclass(frozen=True)
class ConversionReport:
    """One written (or, in ``convert_all``'s summary, failed) conversion.

    ``agreement``: fraction of verification faces whose top-1 class matches the source model's;
    accuracies are None when the verification folder is not labelled with the model's classes;
    ``agreement``/``max_prob_diff`` are None and ``error`` says why when the variant failed.
    ``cpu``: the CPU the verification ran on, with the features that pick int8 kernels (an int8
    file's agreement can depend on them: :func:`edge_fer.backends.quant.ort_static_int8_settings`).
    """

    out_path: str
    format: str
    quantization: str
    size_bytes: int
    agreement: float | None
    source_accuracy: float | None
    converted_accuracy: float | None
    max_prob_diff: float | None
    seconds: float
    faces: int = 0
    error: str = ""
    cpu: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json_text(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
