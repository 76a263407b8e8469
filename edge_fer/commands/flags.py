"""Library messages speak in option fields; the CLI shows them in its own flags.

The library names a bad value by its field (``DetectorOptions.num_threads=0: expected ...``);
:func:`in_flags` rewrites each ``<Name>Options.<field>`` token into the flag of the command that
is running (``--threads 0: expected ...``). A field whose flag has another name is listed in
:data:`FIELD_PARAMS`; a field the command has no flag for stays as written (it is still exact).
"""

from __future__ import annotations

import re

import click

#: "<Class>.<field>" -> the click parameter name (the Python name) of its flag, where they differ.
FIELD_PARAMS = {
    "ClassifierOptions.num_threads": "threads",
    "BackendOptions.num_threads": "threads",
    "ClassifierOptions.scale": "input_scale",
    "ClassifierOptions.offset": "input_offset",
    "ClassifierOptions.color": "input_color",
    "DetectorOptions.name": "detector",
    "DetectorOptions.model_path": "detector_model",
    "DetectorOptions.num_threads": "threads",
    "DetectorOptions.min_face_px": "min_face",
    "PipelineOptions.opencv_threads": "cv_threads",
    "SourceOptions.open_timeout_s": "open_timeout",
    "RunOptions.json": "as_json",
    "AnalyzeOptions.glob": "glob_pattern",
    "ProtocolOptions.split": "protocol",
    "ThroughDetectorOptions.pad_px": "pad",
    "ThroughDetectorOptions.data_dir": "data",
    "ThroughDetectorOptions.detector": "through_detector",
    "CalibrateOptions.data_dir": "data",
    "CalibrateOptions.report_path": "report",
    "BenchOptions.scale": "input_scale",
    "BenchOptions.offset": "input_offset",
    "SsdConvertOptions.model_path": "model_dir",
    "LoadOptions.last_k": "last_frames",
    "ServeOptions.address": "serve",
    "ServeOptions.host": "serve",
    "ServeOptions.port": "serve",
}

_FIELD = re.compile(r"\b([A-Z][A-Za-z0-9]*Options)\.([a-z_][a-z0-9_]*)(=?)")


def flag_names(command: click.Command | None) -> dict[str, str]:
    """click parameter name -> how a user writes it (``--threads``, ``OUT_DIR``)."""
    names: dict[str, str] = {}
    for param in getattr(command, "params", ()):
        if isinstance(param, click.Option):
            long = [opt for opt in param.opts if opt.startswith("--")]
            names[param.name] = (long or param.opts)[0]
        elif isinstance(param, click.Argument):
            names[param.name] = param.name.upper()
    return names


def in_flags(text: str, command: click.Command | None) -> str:
    """``text`` with every ``<Name>Options.<field>[=]`` the command has a flag for replaced by
    that flag (``=`` becomes a space: ``--threads 0``)."""
    names = flag_names(command)
    if not names:
        return text

    def swap(match: re.Match) -> str:
        owner, field, equals = match.groups()
        flag = names.get(FIELD_PARAMS.get(f"{owner}.{field}", field))
        if flag is None:
            return match.group(0)
        return flag + (" " if equals else "")

    return _FIELD.sub(swap, text)
