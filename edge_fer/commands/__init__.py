"""One module per CLI command; each imports only click at import time.

edge_fer/cli.py maps command names to these modules and imports them lazily. Every command is a
:class:`GroupedCommand`: its ``--help`` lists the options in titled groups, in the order a user
needs them, with defaults shown and no word broken across lines.
"""

from __future__ import annotations

import functools
import math
import re

import click

from ..detectors.registry import DETECTORS as DETECTOR_NAMES  # the registry itself (pure Python)
from ..detectors.registry import DETECTOR_FILES

# The library's other value sets, spelled out so that command modules import only click
# (tests/test_hardening.py and tests/test_cli_help.py check that they match the library's).
DEVICE_NAMES = ("auto", "cpu", "cuda", "tensorrt")                 # edge_fer.backends.DEVICES
COLOR_NAMES = ("gray", "rgb", "bgr")                               # edge_fer.metadata.COLORS
ARCH_NAMES = ("edgenet", "edgenet-m", "edgenet-l", "edgenet-se", "pyfer", "transfer")       # edge_fer.train.models.ARCHS
TARGET_NAMES = ("tflite", "onnx", "phone")                         # converters.options.TARGETS
QUANTIZATION_NAMES = ("none", "fp16", "dynamic", "int8")           # converters.options.QUANTIZATIONS
SHIPPED_DETECTORS = ("yunet", "blazeface", "mtcnn")                # edge_fer.detectors.shipped (MANIFEST.json)
#: What ``fetch-detectors`` fetches by default: the detectors whose files come neither with OpenCV
#: (haar) nor inside edge-fer (yunet, blazeface, mtcnn).
FETCH_NAMES = tuple(name for name in DETECTOR_FILES if name not in SHIPPED_DETECTORS)

# --- help: groups of options, no word broken --------------------------------------------------------

#: A space that wrapping never breaks at (inside ``[default: x]``); shown as a plain space.
_SPACE = "\u00a0"


def wrap(text: str, width: int) -> list[str]:
    """``text``'s lines at most ``width`` wide, with click's paragraph rules (blank lines part
    paragraphs; a paragraph opened by a ``\\b`` line stays as written), but breaking only at the
    spaces between words: a hyphenated word (``--tls-cert``), a path or a short ``[default: x]``
    stays whole (a word longer than the line overflows it), and ``[default:`` keeps the word after it."""
    import textwrap

    wrapper = textwrap.TextWrapper(max(width, 10), break_long_words=False, break_on_hyphens=False)
    lines: list[str] = []
    for paragraph in re.split(r"\n[ \t]*\n", text.expandtabs().strip("\n")):
        rows = paragraph.splitlines()
        if lines:
            lines.append("")
        if rows and rows[0].strip() == "\b":
            lines.extend(rows[1:])
            continue
        indent = " " * (len(rows[0]) - len(rows[0].lstrip())) if rows else ""
        glued = re.sub(r"\[default: [^\]]{1,30}\]", lambda m: m.group(0).replace(" ", _SPACE),
                       " ".join(row.strip() for row in rows)).replace("[default: ", f"[default:{_SPACE}")
        wrapper.width, wrapper.initial_indent, wrapper.subsequent_indent = max(width, 10 + len(indent)), indent, indent
        lines.extend(line.replace(_SPACE, " ") for line in wrapper.wrap(glued) or [""])
    return lines


class HelpFormatter(click.HelpFormatter):
    """click's formatter, wrapping with :func:`wrap`: no ``--tls-`` / ``cert``, no
    ``../shared/data/fe`` / ``rplus/...``, no ``[default:`` / ``0.5]``."""

    def write_text(self, text: str) -> None:
        for line in wrap(text, self.width - self.current_indent):
            self.write(f"{'':>{self.current_indent}}{line}\n" if line else "\n")

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        first_col = min(max((len(first) for first, _ in rows), default=0), col_max) + col_spacing
        for first, second in rows:
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if len(first) <= first_col - col_spacing:
                self.write(" " * (first_col - len(first)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            lines = wrap(second, max(self.width - first_col - 2, 10))
            self.write(f"{lines[0]}\n")
            for line in lines[1:]:
                self.write(f"{'':>{first_col + self.current_indent}}{line}\n" if line else "\n")


class HelpContext(click.Context):
    formatter_class = HelpFormatter


#: The title of the options that no group lists (``-h, --help`` at least).
OTHER_OPTIONS = "Other options"


class GroupedCommand(click.Command):
    """A click command whose help shows its options in groups: ``groups`` maps each section title
    to the parameter names (click's Python names: ``model_path``, ``as_json``) in the order shown;
    sections follow the mapping's order and options no group lists come last, under
    :data:`OTHER_OPTIONS`. Without ``groups``: one "Options" section, as click does. Defaults are
    shown (``show_default``) unless the command's context_settings say otherwise. ``examples``:
    parameter name -> a good value, which a usage error about it shows (``e.g. --out r.csv``);
    without one, the error shows the option's default or the gist of its help.

    ``@click.command("run", cls=GroupedCommand, groups={"Input": ["camera", "video"], ...})``
    """

    context_class = HelpContext

    def __init__(self, *args, groups: dict[str, list[str]] | None = None,
                 examples: dict[str, str] | None = None, **kwargs) -> None:
        kwargs["context_settings"] = {"show_default": True, **(kwargs.get("context_settings") or {})}
        super().__init__(*args, **kwargs)
        self.groups = dict(groups or {})
        self.examples = dict(examples or {})

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                records[param.name] = record
        sections = [(title, [records[name] for name in names if name in records])
                    for title, names in self.groups.items()]
        listed = {name for names in self.groups.values() for name in names}
        sections.append((OTHER_OPTIONS if self.groups else "Options",
                         [record for name, record in records.items() if name not in listed]))
        width = min(max((len(first) for first, _ in records.values()), default=0), 30)
        for title, rows in sections:
            if rows:  # one first-column width for every section: the descriptions line up
                with formatter.section(title):
                    formatter.write_dl([(first.ljust(width) if second else first, second)
                                        for first, second in rows])


def complete_paths(ctx, param, incomplete: str):
    """``shell_complete`` for options that take a file, folder or URL as text (no click.Path
    check): the shell completes file names."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


class Choice(click.Choice):
    """``click.Choice`` (help and shell completion list the values) whose error names the value
    set: ``edge-fer: error: invalid value for --detector: unknown detector 'x'; expected one of ...``."""

    def __init__(self, choices, what: str) -> None:
        super().__init__(list(choices))
        self.what = what

    def convert(self, value, param, ctx):
        if value in self.choices:
            return value
        self.fail(f"unknown {self.what} {value!r}; expected one of {', '.join(self.choices)}", param, ctx)


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
            click.option("--detector-model", metavar="FILE|DIR", shell_complete=complete_paths,
                         help="The detector's file, or a folder holding its files (default: the shipped "
                              "file or the cache folder)."),
            click.option("--detect-width", default=defaults.DETECT_WIDTH, show_default=True, type=int, metavar="PX",
                         help="Downscale frames to this width for detection (0: full size)."),
            click.option("--detect-every", default=defaults.DETECT_EVERY, show_default=True, type=int, metavar="N",
                         help="Detect every Nth frame; tracked boxes are carried between."),
            click.option("--min-face", default=defaults.MIN_FACE_PX, show_default=True, type=int, metavar="PX",
                         help="Smallest face side in pixels."))):
        command = option(command)
    return command


def pipeline_options(threads: int):
    """The pipeline's flags, with one meaning in ``run`` and ``analyze``: --model, the detector
    options, --threads (default ``threads``: run's one pipeline takes both cores, analyze's
    workers one each), --cv-threads, --smooth. Build the options with :func:`pipeline_from`."""
    return functools.partial(_pipeline_options, threads=threads)


def _pipeline_options(command, threads: int):
    from .. import defaults

    command = click.option("--smooth", default=defaults.SMOOTH, show_default=True, type=float, metavar="WEIGHT",
                           help="Weight of the past in each face's expression average, 0 <= s < 1 (0: off).")(command)
    command = click.option("--cv-threads", default=defaults.OPENCV_THREADS, show_default=True, type=int, metavar="N",
                           help="OpenCV threads (per worker in analyze).")(command)
    command = click.option("--threads", default=threads, show_default=True, type=int, metavar="N",
                           help="CPU threads of each model runtime, the classifier's and the detector's "
                                "(per worker in analyze).")(command)
    command = detection_options(command)
    return click.option("--model", "model_path", metavar="FILE", shell_complete=complete_paths,
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
