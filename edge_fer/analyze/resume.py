"""``--resume``: the finished sources of earlier runs, read back and checked.

Two places hold them:

* the previous output (``r.csv`` and ``r.csv.sources.csv``, or ``r_sources.csv`` as edge-fer
  named it before): what a finished run wrote;
* the progress file ``r.csv.progress.jsonl`` (:class:`Progress`): one JSON line per source,
  synced to disk as each source finishes, so a run that was killed (even by SIGKILL) keeps the
  sources it finished. A line cut short by the kill (the last one) is ignored.

:func:`load_previous` reads both (the progress file wins: it is newer) into results keyed by
(source, size, mtime_ns). Anything it cannot trust is one error line naming the file and the
row (a value that is not a number, a missing column, a source listed twice), before any work:
``--resume`` never drops or doubles rows without saying so. Both files record the settings they
were made with (:mod:`.settings`): a file made with other settings is refused, before any work.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from ..fileio import output_error
from ..types import LANDMARK_NAMES
from .items import KINDS, WorkItem
from .outputs import legacy_side_path, progress_path, side_path
from .settings import SETTINGS, check_settings
from .summary import drop_short_tracks
from .worker import FaceRow, SourceResult
from .writers import SOURCE_COLUMNS, SOURCE_DEFAULTS, output_format, row_columns

log = logging.getLogger(__name__)

PROGRESS_VERSION = 1
_KIND_NAMES = {int: "an integer", float: "a number"}
_ENTRY_INTS = ("size_bytes", "mtime_ns", "frames", "decode_failures", "dropped_tracks", "dropped_rows",
               "min_track_frames")


def _value(record: dict, key: str, kind, required: bool = True):
    raw = record.get(key)
    if raw is None or raw == "":
        if required:
            raise ValueError(f"{key} is empty; expected {_KIND_NAMES[kind]}")
        return None
    if isinstance(raw, bool) or (kind is int and isinstance(raw, float) and not raw.is_integer()):
        raise ValueError(f"{key}={raw!r}: expected {_KIND_NAMES[kind]}")
    try:
        value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{key}={raw!r}: expected {_KIND_NAMES[kind]}") from None
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{key}={raw!r}: expected a finite number")
    return value


def record_row(record: dict, labels, landmark_names) -> FaceRow:
    """The inverse of :func:`~edge_fer.analyze.writers.row_record` (values may be strings, as
    csv gives them); ValueError naming the column of a value that is missing or of the wrong
    kind (a corrupted file)."""
    if None in record:  # csv.DictReader: more values than columns
        raise ValueError(f"{len(record) - 1 + len(record[None])} values; expected {len(record) - 1}")
    source, expression = record.get("source"), record.get("expression")
    if not isinstance(source, str) or not source:
        raise ValueError(f"source={source!r}: expected a path or URL")
    frame, time_ms, track_id, x, y, w, h = (_value(record, key, kind) for key, kind in (
        ("frame", int), ("time_ms", float), ("track_id", int), ("x", int), ("y", int), ("w", int), ("h", int)))
    if expression not in labels:
        raise ValueError(f"expression={expression!r}: expected one of {', '.join(labels)}")
    score = _value(record, "score", float)
    scores = {label: _value(record, f"p_{label}", float) for label in labels}
    points = {name: (_value(record, f"{name}_x", float, False), _value(record, f"{name}_y", float, False))
              for name in landmark_names}
    points = {k: v for k, v in points.items() if v[0] is not None and v[1] is not None}
    return FaceRow(source, frame, time_ms, track_id, x, y, w, h, expression, score, scores, points or None)


def _source_result(entry: dict, labels, rows: tuple) -> tuple[SourceResult, int]:
    """(result, min_track_frames) of a sources-file row or progress entry; ValueError naming
    the field that is wrong."""
    if entry.get("kind") not in KINDS:
        raise ValueError(f"kind={entry.get('kind')!r}: expected one of {', '.join(KINDS)}")
    if not isinstance(entry.get("source"), str) or not entry["source"]:
        raise ValueError(f"source={entry.get('source')!r}: expected a path or URL")
    values = {key: _value(entry, key, int) for key in _ENTRY_INTS}
    duration = _value(entry, "duration_ms", float)
    item = WorkItem(0, entry["source"], entry["kind"], values["size_bytes"], values["mtime_ns"])
    result = SourceResult(item, labels, values["frames"], rows, None, values["decode_failures"], duration,
                          dropped_tracks=values["dropped_tracks"], dropped_rows=values["dropped_rows"],
                          reused=True)
    return result, values["min_track_frames"]


def _keep(previous: dict, result: SourceResult, written_with: int, min_track_frames: int, where: str) -> None:
    """Keep ``result`` for reuse when ``min_track_frames`` can be applied to its rows."""
    if result.item.kind == "url":  # a URL has no size or mtime to compare: read it again
        return
    if min_track_frames > 1 and written_with > min_track_frames:
        log.info("%s: %s was written with AnalyzeOptions.min_track_frames=%d (shorter tracks left out): "
                 "reading it again for %d", where, result.item.source, written_with, min_track_frames)
        return
    previous[result.item.key] = drop_short_tracks(result, min_track_frames)


# the previous output ------------------------------------------------------------------------------
def _read_sources(path: Path) -> list[tuple[int, dict]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        missing = [c for c in SOURCE_COLUMNS if c not in columns and c not in SOURCE_DEFAULTS]
        if missing:
            raise InputError(f"WriteOptions.resume: {path}: no column {', '.join(missing)} (it has "
                             f"{','.join(columns) or 'none'}; expected {','.join(SOURCE_COLUMNS)})")
        return [(reader.line_num, {**SOURCE_DEFAULTS, **entry}) for entry in reader]


def _check_listed(listed: list[tuple[int, dict]], settings: dict | None, path: Path) -> list[str]:
    """The settings columns of every row of a sources file (each distinct set checked once)
    against this run's; the warnings to log once the file is read."""
    if settings is None:
        return []
    found = dict.fromkeys(tuple((k, e[k]) for k in SETTINGS if k in e) for _, e in listed)
    return list(dict.fromkeys(filter(None, (check_settings(dict(recorded), settings, path) for recorded in found))))


def _previous_output(out: Path, labels, min_track_frames: int, settings: dict | None = None) -> dict:
    sources_file = side_path(out, "sources")
    if not sources_file.is_file() and legacy_side_path(out, "sources").is_file():
        sources_file = legacy_side_path(out, "sources")
        log.info("WriteOptions.resume: reading %s (the name edge-fer used before %s)", sources_file.name,
                 side_path(out, "sources").name)
    if not out.is_file() or not sources_file.is_file():
        if out.is_file():
            log.warning("WriteOptions.resume: %s not found beside %s: every source is read again",
                        side_path(out, "sources").name, out)
        return {}
    try:
        columns, located = output_format(out).read_located(out)
        listed = _read_sources(sources_file)
    except InputError:
        raise
    except Exception as exc:  # any reader's error: one line naming the file
        raise InputError(f"WriteOptions.resume: cannot read the previous output {out}: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    unchecked = _check_listed(listed, settings, sources_file)
    landmark_names = tuple(n for n in LANDMARK_NAMES if columns and f"{n}_x" in columns)
    if columns is not None and columns != row_columns(labels, landmark_names):
        raise InputError(f"WriteOptions.resume: {out} has columns {','.join(columns)}; this model gives "
                         f"{','.join(row_columns(labels, landmark_names))} "
                         "(remove it or choose another WriteOptions.out)")
    by_source: dict[str, list[FaceRow]] = {}
    for where, record in located:
        try:
            row = record_row(record, labels, landmark_names)
        except ValueError as exc:
            raise InputError(f"WriteOptions.resume: {out} {where}: {exc} (fix or remove the file, or add "
                             "WriteOptions.overwrite to start again)") from None
        by_source.setdefault(row.source, []).append(row)
    previous: dict = {}
    seen: set[str] = set()
    for line, entry in listed:
        try:
            result, written_with = _source_result(entry, labels, ())
            faces = _value(entry, "faces", int)
        except ValueError as exc:
            raise InputError(f"WriteOptions.resume: {sources_file} line {line}: {exc} (fix or remove the file, "
                             "or add WriteOptions.overwrite to start again)") from None
        source = result.item.source
        if source in seen:
            raise InputError(f"WriteOptions.resume: {sources_file} line {line}: {source} is listed twice")
        seen.add(source)
        rows = by_source.get(source, [])
        if len(rows) != faces:
            log.warning("WriteOptions.resume: %s has %d rows for %s, %s says %s: reading it again", out.name,
                        len(rows), source, sources_file.name, entry["faces"])
            continue
        _keep(previous, replace(result, rows=tuple(rows)), written_with, min_track_frames, sources_file.name)
    unlisted = sorted(set(by_source) - seen)
    if unlisted:
        log.warning("WriteOptions.resume: %s has rows of %d source%s that %s does not list (%s): they are "
                    "read again if given", out.name, len(unlisted), "" if len(unlisted) == 1 else "s",
                    sources_file.name, unlisted[0])
    for warning in unchecked:
        log.warning("%s", warning)
    return previous


# the progress file --------------------------------------------------------------------------------
def _entry(result: SourceResult, min_track_frames: int) -> dict:
    item = result.item
    return {"source": item.source, "kind": item.kind, "size_bytes": item.size_bytes, "mtime_ns": item.mtime_ns,
            "frames": result.frames, "decode_failures": result.decode_failures, "duration_ms": result.duration_ms,
            "dropped_tracks": result.dropped_tracks, "dropped_rows": result.dropped_rows,
            "min_track_frames": max(1, min_track_frames),
            "rows": [[r.frame, r.time_ms, r.track_id, r.x, r.y, r.w, r.h, r.expression, r.score,
                      [r.scores.get(label) for label in result.labels],
                      None if r.landmarks_xy is None else {k: list(v) for k, v in r.landmarks_xy.items()}]
                     for r in result.rows]}


def _entry_rows(entry: dict, labels) -> tuple[FaceRow, ...]:
    rows = entry.get("rows")
    if not isinstance(rows, list):
        raise ValueError("rows: expected a list")
    parsed = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, list) or len(row) != 11 or not isinstance(row[9], list) or len(row[9]) != len(labels):
            raise ValueError(f"row {number}: expected [frame, time_ms, track_id, x, y, w, h, expression, score, "
                             f"[{len(labels)} probabilities], landmarks]")
        record = dict(zip(("frame", "time_ms", "track_id", "x", "y", "w", "h", "expression", "score"), row))
        record.update({f"p_{label}": p for label, p in zip(labels, row[9])}, source=entry["source"])
        landmarks = row[10] or {}
        if not isinstance(landmarks, dict) or any(name not in LANDMARK_NAMES for name in landmarks):
            raise ValueError(f"row {number}: landmarks: expected {{name: [x, y]}}")
        for name, point in landmarks.items():
            if not isinstance(point, list) or len(point) != 2:
                raise ValueError(f"row {number}: landmark {name}: expected [x, y]")
            record[f"{name}_x"], record[f"{name}_y"] = point
        try:
            parsed.append(record_row(record, labels, tuple(landmarks)))
        except ValueError as exc:
            raise ValueError(f"row {number}: {exc}") from None
    return tuple(parsed)


def _read_progress(path: Path, labels, settings: dict | None = None) -> tuple[list[SourceResult], list[int], int]:
    """(results, their min_track_frames, the length of the file's whole lines); ``settings``:
    this run's, compared with the header's (None: not compared)."""
    results, written_with, good, unchecked = [], [], 0, None
    with path.open("rb") as handle:
        lines = handle.read().split(b"\n")
    torn = lines.pop()  # after the last newline: b"" unless the last line was cut short
    if torn:
        log.info("WriteOptions.resume: %s: its last line was cut short (the run was killed while writing "
                 "it): that source is read again", path.name)
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError(f"expected a JSON object, got {type(entry).__name__}")
            if number == 1:
                if entry.get("edge_fer_progress") != PROGRESS_VERSION:
                    raise ValueError(f"expected the header {{\"edge_fer_progress\": {PROGRESS_VERSION}, ...}}")
                if entry.get("settings") is not None and not isinstance(entry["settings"], dict):
                    raise ValueError(f"settings={entry['settings']!r}: expected a JSON object")
                if settings is not None:
                    unchecked = check_settings(entry.get("settings"), settings, path)
                if entry.get("labels") != list(labels):
                    raise InputError(f"WriteOptions.resume: {path} was written for the classes "
                                     f"{','.join(map(str, entry.get('labels') or []))}; this model gives "
                                     f"{','.join(labels)} (add WriteOptions.overwrite to start again)")
            else:
                result, minimum = _source_result(entry, labels, _entry_rows(entry, labels))
                results.append(result)
                written_with.append(minimum)
        except ValueError as exc:
            raise InputError(f"WriteOptions.resume: {path} line {number}: {exc} (remove the file, or add "
                             "WriteOptions.overwrite to start again)") from None
        good += len(line) + 1
    if unchecked:
        log.warning("%s", unchecked)
    return results, written_with, good


class Progress:
    """The progress file of a run: a header line, then one line per finished source, each
    flushed and synced as it is written; the file is made at the first finished source.
    ``keep``: the length to continue an existing file from (``--resume``, after
    :func:`load_previous` read it); None starts a new one. ``settings``: the run's
    (:func:`~edge_fer.analyze.settings.run_settings`), recorded in the header. :meth:`remove`
    once the outputs are in place."""

    def __init__(self, path: Path, labels: tuple[str, ...], min_track_frames: int, keep: int | None,
                 settings: dict | None = None) -> None:
        self.path, self.labels, self.min_track_frames, self.keep = Path(path), labels, min_track_frames, keep
        self.settings = settings
        self._handle = None

    def _open(self) -> None:
        header = {"edge_fer_progress": PROGRESS_VERSION, "labels": list(self.labels)}
        if self.settings is not None:
            header["settings"] = self.settings
        if self.keep and self.path.is_file():
            self._handle = self.path.open("r+b")
            self._handle.truncate(self.keep)  # a line cut short by a kill goes
            self._handle.seek(self.keep)
        else:
            self._handle = self.path.open("wb")
            self._write(header)

    def _write(self, entry: dict) -> None:
        self._handle.write(json.dumps(entry, separators=(",", ":")).encode("utf-8") + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def add(self, result: SourceResult) -> None:
        """Record a finished source (URLs and failures are read again anyway: not recorded)."""
        if result.ok and not result.reused and result.item.kind != "url":
            try:
                if self._handle is None:
                    self._open()
                self._write(_entry(result, self.min_track_frames))
            except OSError as exc:
                raise output_error(self.path, exc) from None

    def close(self) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.close()

    def remove(self) -> None:
        """Remove the file (the outputs hold everything it held)."""
        self.close()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove %s: %s", self.path, exc.strerror)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_previous(plan, labels: tuple[str, ...], min_track_frames: int = 1,
                  settings: dict | None = None) -> tuple[dict, int | None]:
    """(results of earlier runs keyed by (source, size, mtime_ns), the length of the progress
    file's whole lines to continue from, or None where there is none). ``plan``: a checked
    OutputPlan, or the rows file's path. ``settings``: this run's
    (:func:`~edge_fer.analyze.settings.run_settings`): a file made with others is an InputError
    (None: not compared)."""
    out = Path(plan) if isinstance(plan, (str, Path)) else plan.out
    previous = _previous_output(out, labels, min_track_frames, settings)
    path = plan.progress.real if hasattr(plan, "progress") else progress_path(out)
    if not Path(path).is_file():
        return previous, None
    results, written_with, good = _read_progress(Path(path), labels, settings)
    for result, minimum in zip(results, written_with):
        _keep(previous, result, minimum, min_track_frames, Path(path).name)  # later lines win
    if results:
        log.info("WriteOptions.resume: %d finished source%s of an interrupted run in %s", len(results),
                 "" if len(results) == 1 else "s", Path(path).name)
    return previous, good
