"""The settings that decide an analysis's rows: recorded with its outputs, compared by ``--resume``.

:func:`run_settings` gives them as a small dict (:data:`SETTINGS` lists them, each with the
option field that sets it), computed once per run (the model file's sha256 is read then)::

    {"model": "edgenet_fer2013_int8.tflite", "model_sha256": "9f2c...", "detector": "blazeface",
     "detector_model": null, "detect_width": 256, "detect_every": 2, "min_face_px": 48,
     "min_confidence": 0.5, "smooth": 0.5}

``min_confidence`` is the one the detector uses (its own default where none is given; None for
haar, which has no confidence). They are recorded in the progress file's header line and as
columns of the sources file (:mod:`.writers`); :func:`check_settings` refuses a ``--resume``
whose settings differ from the file's (one line naming the file, the first differing setting
and both values), and accepts a file of an older edge-fer that recorded none with one warning.

``AnalyzeOptions.min_track_frames`` also decides the rows, but it is recorded per source (the
sources file's ``min_track_frames`` column, each progress entry's field) and reconciled per
source instead of refused: a larger value now is applied to the kept rows, a smaller one reads
the source again (:func:`edge_fer.analyze.resume.load_previous`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

from ..errors import InputError
from ..fileio import file_sha256

#: setting -> (the option field that sets it, the kind of its value), in the order compared.
SETTINGS: dict[str, tuple[str, type]] = {
    "model": ("ClassifierOptions.model_path", str),
    "model_sha256": ("ClassifierOptions.model_path", str),
    "detector": ("DetectorOptions.name", str),
    "detector_model": ("DetectorOptions.model_path", str),
    "detect_width": ("DetectorOptions.detect_width", int),
    "detect_every": ("PipelineOptions.detect_every", int),
    "min_face_px": ("DetectorOptions.min_face_px", int),
    "min_confidence": ("DetectorOptions.min_confidence", float),
    "smooth": ("PipelineOptions.smooth", float),
}
#: Decides the rows too, but is recorded and reconciled per source (see above).
PER_SOURCE = {"min_track_frames": "AnalyzeOptions.min_track_frames"}


def run_settings(pipeline, detector_confidence: float | None = None) -> dict:
    """The settings of a run with ``pipeline`` (PipelineOptions) whose detector uses
    ``detector_confidence`` (its ``min_confidence``: given or its default; None where it has none)."""
    classifier, detector = pipeline.classifier, pipeline.detector
    return {"model": Path(classifier.model_path).name, "model_sha256": file_sha256(classifier.model_path),
            "detector": detector.name,
            "detector_model": None if detector.model_path is None else str(Path(detector.model_path).resolve()),
            "detect_width": int(detector.detect_width), "detect_every": int(pipeline.detect_every),
            "min_face_px": int(detector.min_face_px),
            "min_confidence": None if detector_confidence is None else float(detector_confidence),
            "smooth": float(pipeline.smooth)}


def _canonical(value, kind: type) -> str | None:
    """``value`` (as JSON or csv gives it back) in one text per value: ``"0.5"`` for 0.5 and
    "0.5"; None for None and ""; a value that does not parse stays as it is (and differs)."""
    if value is None or value == "":
        return None
    if kind in (int, float) and not isinstance(value, bool):
        try:
            number = float(value)
            if math.isfinite(number) and (kind is float or number.is_integer()):
                return repr(number) if kind is float else str(int(number))
        except (TypeError, ValueError):
            pass
    return str(value)


def _shown(settings: Mapping, key: str) -> str:
    value = _canonical(settings.get(key), SETTINGS[key][1])
    if key == "model_sha256":  # the same name, other contents: show both
        return f"{settings.get('model')} (sha256 {(value or '(none)')[:12]})"
    return "(default)" if value is None else value


def check_settings(recorded: Mapping | None, current: Mapping, path: Path) -> str | None:
    """InputError (one line naming ``path``, the first setting it differs in, both values and
    the way out) unless ``recorded`` (the settings ``path`` was made with) equals ``current``.
    Where ``path`` records none or only some (an older edge-fer wrote it): the warning to log
    once the file is read (an error in the rest of it is then the only line)."""
    recorded = recorded or {}
    for key, (field, kind) in SETTINGS.items():
        if key in recorded and _canonical(recorded[key], kind) != _canonical(current.get(key), kind):
            raise InputError(f"WriteOptions.resume: {path} was made with {field}={_shown(recorded, key)}; "
                             f"this run uses {field}={_shown(current, key)}: run with the same settings, "
                             "or WriteOptions.overwrite to start again")
    missing = [key for key in SETTINGS if key not in recorded]
    if len(missing) == len(SETTINGS):
        return (f"WriteOptions.resume: {path.name} records no settings (an older edge-fer wrote it): they could "
                "not be checked against this run's (model, detector, detection, smoothing)")
    if missing:
        return f"WriteOptions.resume: {path.name} does not record {', '.join(missing)}: not checked against this run's"
    return None
