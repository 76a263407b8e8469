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
    """The detector options that ``run`` and ``analyze`` share: --detector, --detector-model,
    --detect-width, --detect-every, --min-face (defaults from edge_fer.defaults)."""
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
