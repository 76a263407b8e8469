"""One module per CLI command; each imports only click at import time.

edge_fer/cli.py maps command names to these modules and imports them lazily.
"""

from __future__ import annotations

import math

import click

from ..detectors.registry import DETECTORS as DETECTOR_NAMES  # the registry itself (pure Python)

# The library's other value sets, spelled out so that command modules import only click
# (tests/test_hardening.py checks that they match the library's).
DEVICE_NAMES = ("auto", "cpu", "cuda", "tensorrt")                 # edge_fer.backends.DEVICES
COLOR_NAMES = ("gray", "rgb", "bgr")                               # edge_fer.metadata.COLORS
ARCH_NAMES = ("edgenet", "pyfer", "transfer")                      # edge_fer.train.models.ARCHS
TARGET_NAMES = ("tflite", "onnx", "phone")                         # converters.options.TARGETS
QUANTIZATION_NAMES = ("none", "fp16", "dynamic", "int8")           # converters.options.QUANTIZATIONS


class Choice(click.Choice):
    """``click.Choice`` (help and shell completion list the values) whose error is the
    library's one line: ``edge-fer: error: unknown detector 'x'; expected one of ...``."""

    def __init__(self, choices, what: str) -> None:
        super().__init__(list(choices))
        self.what = what

    def convert(self, value, param, ctx):
        if value in self.choices:
            return value
        from ..errors import OptionsError

        raise OptionsError(f"unknown {self.what} {value!r}; expected one of {', '.join(self.choices)}")


DETECTOR = Choice(DETECTOR_NAMES, "detector")
DEVICE = Choice(DEVICE_NAMES, "device")
COLOR = Choice(COLOR_NAMES, "colour")


def finite_float(ctx, param, value: float | None) -> float | None:
    """click callback: refuse inf and nan (``--input-scale inf`` made every score NaN)."""
    if value is not None and not math.isfinite(value):
        from ..errors import OptionsError

        raise OptionsError(f"{param.opts[0]} must be a finite number, got {value}")
    return value


def detection_options(command):
    """The detector options: --detector, --detector-model, --detect-width, --detect-every,
    --min-face (defaults from edge_fer.defaults)."""
    from .. import defaults

    for option in reversed((
            click.option("--detector", default=defaults.DETECTOR, show_default=True, type=DETECTOR,
                         help="Face detector."),
            click.option("--detector-model", help="The detector's file, or a folder holding its files."),
            click.option("--detect-width", default=defaults.DETECT_WIDTH, show_default=True, type=int,
                         help="Downscale frames to this width for detection (0: full size)."),
            click.option("--detect-every", default=defaults.DETECT_EVERY, show_default=True, type=int,
                         help="Detect every Nth frame; tracked boxes are carried between."),
            click.option("--min-face", default=defaults.MIN_FACE_PX, show_default=True, type=int,
                         help="Smallest face side in pixels."))):
        command = option(command)
    return command


def pipeline_options(command):
    """The pipeline's flags, with one meaning in ``run`` and ``analyze``: --model, the detector
    options, --threads, --cv-threads, --smooth. Build the options with :func:`pipeline_from`."""
    from .. import defaults

    command = click.option("--smooth", default=defaults.SMOOTH, show_default=True, type=float,
                           help="Weight of the past in each face's expression average, 0 <= s < 1 (0: off).")(command)
    command = click.option("--cv-threads", default=defaults.OPENCV_THREADS, show_default=True, type=int,
                           help="OpenCV threads (per worker in analyze).")(command)
    command = click.option("--threads", default=defaults.CLASSIFIER_THREADS, show_default=True, type=int,
                           help="CPU threads of each model runtime, the classifier's and the detector's "
                                "(per worker in analyze).")(command)
    command = detection_options(command)
    return click.option("--model", "model_path",
                        help="Classifier .tflite (LiteRT) or .onnx (ONNX Runtime); default: the bundled "
                             "model.")(command)


def pipeline_from(model_path, detector, detector_model, detect_width, detect_every, min_face, threads,
                  cv_threads, smooth, **classifier):
    """The ``PipelineOptions`` of :func:`pipeline_options`' flags; ``classifier``: more
    ``ClassifierOptions`` fields (run's --labels, --input-scale, ...)."""
    from ..classifier import ClassifierOptions
    from ..detectors import DetectorOptions
    from ..pipeline import PipelineOptions

    model = {"model_path": model_path} if model_path else {}
    return PipelineOptions(
        classifier=ClassifierOptions(**model, num_threads=threads, **classifier),
        detector=DetectorOptions(name=detector, model_path=detector_model, detect_width=detect_width,
                                 min_face_px=min_face, num_threads=threads),
        detect_every=detect_every, smooth=smooth, opencv_threads=cv_threads)
