"""Output files of an analysis: rows (csv, jsonl or parquet, by suffix), the per-track
summary, the failures and the sources side file that ``--resume`` reads.

    with OutputFiles(plan, labels) as out:       # plan: a checked outputs.OutputPlan
        out.add(result)                          # rows stream into a temp file
        unwritten = out.finish(summary)          # each file renamed over its target; one that
                                                 # cannot be written is listed, the rest written

``r.csv`` columns: source, frame, time_ms, track_id, x, y, w, h, ``<landmark>_x``/``_y`` for
the landmarks the detector gives, expression, score and ``p_<class>`` per class.
Beside it (:mod:`.outputs` names them): ``r.csv.summary.csv``, ``r.csv.failures.csv`` and
``r.csv.sources.csv`` (path, size, mtime_ns, frames, rows and short tracks left out of every
source read, then the run's settings, a column each (:mod:`.settings`): what ``--resume``
compares).

The rows file's formats: :data:`FORMATS`, suffix -> a :class:`RowFormat` class that writes one
file and reads it back for ``--resume``. A new format is one class and one line there.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Iterable

from ..errors import EdgeFerError, OptionsError
from ..fileio import atomic_path, commit_file, new_temp, output_error
from ..types import LANDMARK_NAMES
from .outputs import write_failure
from .worker import FaceRow, SourceResult

log = logging.getLogger(__name__)

INT_COLUMNS = ("frame", "track_id", "x", "y", "w", "h")
SOURCE_COLUMNS = ("source", "kind", "size_bytes", "mtime_ns", "frames", "faces", "decode_failures", "duration_ms",
                  "dropped_tracks", "dropped_rows", "min_track_frames")
#: Columns a sources file of an earlier edge-fer lacks (--resume reads it with these values).
SOURCE_DEFAULTS = {"dropped_tracks": "0", "dropped_rows": "0", "min_track_frames": "1"}
PARQUET_BATCH_ROWS = 65536


def row_columns(labels: Iterable[str], landmark_names: Iterable[str]) -> list[str]:
    points = [f"{name}_{axis}" for name in landmark_names for axis in "xy"]
    return (["source", "frame", "time_ms", "track_id", "x", "y", "w", "h"] + points
            + ["expression", "score"] + [f"p_{label}" for label in labels])


def arrow_schema(columns: list[str]):
    """The typed Parquet/Arrow schema of ``columns``: int64 ids and boxes, strings, float64 rest."""
    import pyarrow as pa

    types = {c: pa.int64() for c in INT_COLUMNS} | {"source": pa.string(), "expression": pa.string()}
    return pa.schema([(c, types.get(c, pa.float64())) for c in columns])


def row_record(row: FaceRow, labels, landmark_names) -> dict:
    record = {"source": row.source, "frame": row.frame, "time_ms": row.time_ms, "track_id": row.track_id,
              "x": row.x, "y": row.y, "w": row.w, "h": row.h}
    points = row.landmarks_xy or {}
    for name in landmark_names:
        x, y = points.get(name, (None, None))
        record[f"{name}_x"], record[f"{name}_y"] = x, y
    record["expression"], record["score"] = row.expression, row.score
    for label in labels:
        record[f"p_{label}"] = row.scores.get(label)
    return record


def _csv_value(value) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


# Row formats -------------------------------------------------------------------------------------
class RowFormat:
    """One format of the rows file. An instance writes one file: :meth:`open` with the columns,
    :meth:`write` per record (a dict in column order), then :meth:`close`, or :meth:`abort` on an
    error (also called after :meth:`close`: it must not fail then). :meth:`read` gives a finished
    file back for ``--resume``; :meth:`check` raises OptionsError when a dependency is missing."""

    @classmethod
    def check(cls, out: str | Path) -> None:
        pass

    @classmethod
    def read(cls, path: Path) -> tuple[list[str] | None, list[dict]]:
        """(columns, or None where the file does not say; records: values as the file gives them)."""
        raise NotImplementedError

    @classmethod
    def read_located(cls, path: Path) -> tuple[list[str] | None, list[tuple[str, dict]]]:
        """:meth:`read`, each record with where it is in the file (``row 3``, ``line 4``), for
        error messages; ValueError (``line 7: ...``) for a record that cannot be parsed at all."""
        columns, records = cls.read(path)
        return columns, [(f"row {index + 1}", record) for index, record in enumerate(records)]

    def open(self, tmp: Path, columns: list[str]) -> None:
        raise NotImplementedError

    def write(self, record: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class TextRows(RowFormat):
    """A utf-8 text file, flushed and synced at :meth:`close`."""

    _handle = None

    def open(self, tmp: Path, columns: list[str]) -> None:
        self.columns = columns
        self._handle = tmp.open("w", encoding="utf-8", newline="")

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def abort(self) -> None:
        close_quietly(self._handle)

    @classmethod
    def read(cls, path: Path) -> tuple[list[str] | None, list[dict]]:
        columns, located = cls.read_located(path)  # text formats locate each record by its line
        return columns, [record for _, record in located]


def close_quietly(handle) -> None:
    """Close ``handle`` (if any) after a failure; its own error no longer matters (the temp file
    is removed anyway)."""
    if handle is not None:
        try:
            handle.close()
        except Exception:  # noqa: BLE001
            pass


class CsvRows(TextRows):
    """A header line, then one line per row; None is empty, floats as repr."""

    def open(self, tmp: Path, columns: list[str]) -> None:
        super().open(tmp, columns)
        self._csv = csv.writer(self._handle)
        self._csv.writerow(columns)

    def write(self, record: dict) -> None:
        self._csv.writerow([_csv_value(record[c]) for c in self.columns])

    @classmethod
    def read_located(cls, path: Path) -> tuple[list[str] | None, list[tuple[str, dict]]]:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            records = [(f"line {reader.line_num}", record) for record in reader]
            return list(reader.fieldnames or []), records


class JsonlRows(TextRows):
    """One JSON object per line; an empty file has no columns."""

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record) + "\n")

    @classmethod
    def read_located(cls, path: Path) -> tuple[list[str] | None, list[tuple[str, dict]]]:
        records = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"line {number}: not JSON ({getattr(exc, 'msg', exc)})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"line {number}: expected a JSON object, got {type(record).__name__}")
                records.append((f"line {number}", record))
        return (list(records[0][1]) if records else None), records


class ParquetRows(RowFormat):
    """Typed columns (:func:`arrow_schema`), a row group per PARQUET_BATCH_ROWS rows (needs pyarrow)."""

    _writer = None

    @classmethod
    def check(cls, out: str | Path) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise OptionsError(f"WriteOptions.out={str(out)!r}: parquet needs pyarrow "
                               "(pip install pyarrow, or 'edge-fer[all]')") from None

    @classmethod
    def read(cls, path: Path) -> tuple[list[str] | None, list[dict]]:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table.column_names, table.to_pylist()

    def open(self, tmp: Path, columns: list[str]) -> None:
        import pyarrow.parquet as pq

        self.schema = arrow_schema(columns)
        self._writer = pq.ParquetWriter(tmp, self.schema)
        self._batch: list[dict] = []

    def write(self, record: dict) -> None:
        self._batch.append(record)
        if len(self._batch) >= PARQUET_BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._batch:
            self._writer.write_table(pa.Table.from_pylist(self._batch, self.schema))
            self._batch = []

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def abort(self) -> None:
        close_quietly(self._writer)


FORMATS: dict[str, type[RowFormat]] = {".csv": CsvRows, ".jsonl": JsonlRows, ".parquet": ParquetRows}


def output_format(out: str | Path) -> type[RowFormat]:
    """The format of ``out`` by its suffix, its dependencies checked."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise OptionsError(f"WriteOptions.out={str(out)!r}: unknown suffix {suffix or '(none)'!r}; "
                           f"expected one of {', '.join(FORMATS)}")
    FORMATS[suffix].check(out)
    return FORMATS[suffix]


class RowWriter:
    """Rows to ``tmp`` in ``fmt`` (a :class:`RowFormat` class). The columns are fixed by the
    first row (its landmark names: the detector's); a file without rows has no landmark columns."""

    def __init__(self, tmp: Path, fmt: type[RowFormat], labels: tuple[str, ...]) -> None:
        self.tmp, self.fmt, self.labels = tmp, fmt, labels
        self.landmark_names: tuple[str, ...] | None = None
        self.rows = 0
        self._file = fmt()
        self._warned = False

    def _start(self, first: FaceRow | None) -> None:
        given = (first.landmarks_xy or {}) if first is not None else {}
        self.landmark_names = tuple(name for name in LANDMARK_NAMES if name in given)
        self.columns = row_columns(self.labels, self.landmark_names)
        self._file.open(self.tmp, self.columns)

    def write(self, rows: Iterable[FaceRow]) -> None:
        for row in rows:
            if self.landmark_names is None:
                self._start(row)
            if not self._warned and row.landmarks_xy and set(row.landmarks_xy) - set(self.landmark_names):
                log.warning("%s: landmarks %s are not in the output's columns", row.source,
                            sorted(set(row.landmarks_xy) - set(self.landmark_names)))
                self._warned = True
            record = row_record(row, self.labels, self.landmark_names)
            self.rows += 1
            self._file.write(record)

    def close(self) -> None:
        """Finish the file (flushed and synced); call only when every row is written."""
        if self.landmark_names is None:
            self._start(None)
        self._file.close()

    def abort(self) -> None:
        self._file.abort()


def write_csv(path: Path, header: list[str], rows: Iterable[list]) -> None:
    """A small csv, written to a temp file and renamed over ``path`` (OutputError on failure).
    Stale temp files were removed for all outputs at once (:meth:`OutputPlan.ready`)."""
    with atomic_path(path, suffix=".csv", clean=False) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([_csv_value(v) for v in row] for row in rows)
        handle.flush()
        os.fsync(handle.fileno())


def source_record(result: SourceResult, min_track_frames: int) -> list:
    """The sources file's row of a readable source (:data:`SOURCE_COLUMNS`)."""
    item = result.item
    return [item.source, item.kind, item.size_bytes, item.mtime_ns, result.frames, len(result.rows),
            result.decode_failures, result.duration_ms, result.dropped_tracks, result.dropped_rows,
            max(1, min_track_frames)]


class OutputFiles:
    """The rows file (streamed to a temp file beside it as results come) and its side files,
    written at :meth:`finish`: each renamed over its target on its own, so one that cannot be
    written (a full disk, a folder put in its way) does not cost the others. ``plan``: a checked
    :class:`~edge_fer.analyze.outputs.OutputPlan`, or the rows file's path (its files are then
    replaced). ``settings``: the run's (:func:`~edge_fer.analyze.settings.run_settings`), a
    column each after :data:`SOURCE_COLUMNS` in the sources file. Leaving the block without
    :meth:`finish` (an error, Ctrl-C) writes nothing and removes the temp file."""

    def __init__(self, plan, labels: tuple[str, ...], min_track_frames: int = 1, settings: dict | None = None) -> None:
        if isinstance(plan, (str, Path)):
            from .outputs import OutputPlan

            plan = OutputPlan(plan, overwrite=True, suffixes=tuple(FORMATS))
            plan.check()
        self.plan = plan
        self.fmt = output_format(plan.out)
        self.labels = labels
        self.min_track_frames = min_track_frames
        self.settings = dict(settings or {})
        self.sources: list[list] = []  # rows of the sources file (not the results: rows stay out of memory)
        self.failures: list[list] = []
        self.written: set[str] = set()  # "rows" and the side files' names, once renamed into place

    def __enter__(self) -> "OutputFiles":
        self._tmp = new_temp(self.plan.rows.real, self.plan.out.suffix)
        self.rows = RowWriter(self._tmp, self.fmt, self.labels)
        return self

    def add(self, result: SourceResult) -> None:
        if result.ok:
            try:
                self.rows.write(result.rows)
            except OSError as exc:
                raise output_error(self.plan.out, exc) from None
            self.sources.append(source_record(result, self.min_track_frames) + list(self.settings.values()))
        else:
            self.failures.append([result.item.source, result.error])

    def finish(self, summary) -> list[tuple[str, str]]:
        """Write every file; ``[(path, reason)]`` of those that could not be written."""
        unwritten = []
        try:
            self.rows.close()
            commit_file(self._tmp, self.plan.rows.real)
            self.written.add("rows")
        except (OSError, EdgeFerError) as exc:
            self.rows.abort()
            unwritten.append((str(self.plan.out), write_failure(self.plan.rows.real, exc)))
        tables = {"summary": (summary.columns(), summary.table()), "failures": (["source", "reason"], self.failures),
                  "sources": (list(SOURCE_COLUMNS) + list(self.settings), self.sources)}
        for name, (header, table) in tables.items():
            target = self.plan.sides[name]
            try:
                write_csv(target.real, header, table)
                self.written.add(name)
            except (OSError, EdgeFerError) as exc:
                unwritten.append((str(target.path), write_failure(target.real, exc)))
        return unwritten

    def __exit__(self, *exc) -> None:
        self.rows.abort()
        self._tmp.unlink(missing_ok=True)
