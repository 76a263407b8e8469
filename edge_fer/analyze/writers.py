"""Output files of an analysis: rows (csv, jsonl or parquet, by suffix), the per-track
summary, the failures and the sources side file that ``--resume`` reads.

    with OutputFiles("r.csv") as out:            # every file is written to a temp file and
        out.add(result)                          # renamed only when the block ends cleanly
        out.finish(summary)

``r.csv`` columns: source, frame, time_ms, track_id, x, y, w, h, ``<landmark>_x``/``_y`` for
the landmarks the detector gives, expression, score and ``p_<class>`` per class.
Beside it: ``r_summary.csv``, ``r_failures.csv`` and ``r_sources.csv`` (path, size, mtime_ns
and frames of every source read: what ``--resume`` compares).

The rows file's formats: :data:`FORMATS`, suffix -> a :class:`RowFormat` class that writes one
file and reads it back for ``--resume``. A new format is one class and one line there.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable

from ..errors import InputError, OptionsError
from ..fileio import atomic_path
from ..types import LANDMARK_NAMES
from .items import WorkItem
from .worker import FaceRow, SourceResult

log = logging.getLogger(__name__)

INT_COLUMNS = ("frame", "track_id", "x", "y", "w", "h")
SOURCE_COLUMNS = ("source", "kind", "size_bytes", "mtime_ns", "frames", "faces", "decode_failures", "duration_ms")
PARQUET_BATCH_ROWS = 65536


def side_path(out: str | Path, name: str) -> Path:
    """``r.csv`` -> ``r_<name>.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_{name}.csv")


def check_writable(out: str | Path) -> None:
    option, folder = f"WriteOptions.out={str(out)!r}", Path(out).parent
    if not folder.is_dir():
        raise InputError(f"{option}: folder {folder} does not exist")
    if Path(out).is_dir():
        raise InputError(f"{option}: is a folder; expected a file ending in {', '.join(FORMATS)}")
    try:  # really try: permission bits do not tell (root, read-only mounts, /proc)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{option}: folder {folder} is not writable ({exc.strerror})") from None


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


def record_row(record: dict, labels, landmark_names) -> FaceRow:
    """The inverse of :func:`row_record` (values may be strings, as csv gives them)."""
    def number(key, kind):
        value = record.get(key)
        return None if value in (None, "") else kind(value)

    points = {name: (number(f"{name}_x", float), number(f"{name}_y", float)) for name in landmark_names}
    points = {k: v for k, v in points.items() if v[0] is not None}
    return FaceRow(str(record["source"]), number("frame", int), number("time_ms", float),
                   number("track_id", int), number("x", int), number("y", int), number("w", int), number("h", int),
                   str(record["expression"]), number("score", float),
                   {label: number(f"p_{label}", float) for label in labels}, points or None)


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
        if self._handle is not None:
            try:
                self._handle.close()
            except Exception:  # the temp file is removed anyway
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
    def read(cls, path: Path) -> tuple[list[str] | None, list[dict]]:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            records = list(reader)
            return list(reader.fieldnames or []), records


class JsonlRows(TextRows):
    """One JSON object per line; an empty file has no columns."""

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record) + "\n")

    @classmethod
    def read(cls, path: Path) -> tuple[list[str] | None, list[dict]]:
        with path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return (list(records[0]) if records else None), records


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
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # the temp file is removed anyway
                pass


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


def write_csv_atomic(stack: ExitStack, path: Path, header: list[str], rows: Iterable[list]) -> None:
    """A small csv beside the output, renamed with the others when the stack closes cleanly."""
    tmp = stack.enter_context(atomic_path(path, suffix=".csv"))
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([_csv_value(v) for v in row] for row in rows)
        handle.flush()
        os.fsync(handle.fileno())


class OutputFiles:
    """The rows file and its side files, all replaced together at a clean exit."""

    def __init__(self, out: str | Path, labels: tuple[str, ...]) -> None:
        self.out = Path(out)
        self.fmt = output_format(out)
        self.labels = labels
        self.sources: list[list] = []  # rows of the sources file (not the results: rows stay out of memory)
        self.failures: list[list] = []

    def __enter__(self) -> "OutputFiles":
        self._stack = ExitStack().__enter__()
        try:
            tmp = self._stack.enter_context(atomic_path(self.out, suffix=self.out.suffix))
            self.rows = RowWriter(tmp, self.fmt, self.labels)
            self._stack.callback(self.rows.abort)
        except BaseException:
            self._stack.close()
            raise
        return self

    def add(self, result: SourceResult) -> None:
        if result.ok:
            self.rows.write(result.rows)
            item = result.item
            self.sources.append([item.source, item.kind, item.size_bytes, item.mtime_ns, result.frames,
                                 len(result.rows), result.decode_failures, result.duration_ms])
        else:
            self.failures.append([result.item.source, result.error])

    def finish(self, summary) -> None:
        """Close the rows file and write the side files (renamed at ``__exit__``)."""
        self.rows.close()
        write_csv_atomic(self._stack, side_path(self.out, "summary"), summary.columns(), summary.table())
        write_csv_atomic(self._stack, side_path(self.out, "failures"), ["source", "reason"], self.failures)
        write_csv_atomic(self._stack, side_path(self.out, "sources"), list(SOURCE_COLUMNS), self.sources)

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)


# --resume --------------------------------------------------------------------------------------
def load_previous(out: str | Path, labels: tuple[str, ...]) -> dict[tuple, SourceResult]:
    """Results of a previous run with the same ``out``, keyed by (source, size, mtime_ns):
    its rows and frame counts, for sources that :meth:`OutputFiles.finish` listed."""
    out = Path(out)
    sources_file = side_path(out, "sources")
    if not out.is_file() or not sources_file.is_file():
        if out.is_file():
            log.warning("WriteOptions.resume: %s not found beside %s: every source is read again",
                        sources_file.name, out)
        return {}
    fmt = output_format(out)
    try:
        columns, records = fmt.read(out)
        with sources_file.open(encoding="utf-8", newline="") as handle:
            listed = list(csv.DictReader(handle))
    except Exception as exc:
        raise InputError(f"WriteOptions.resume: cannot read the previous output {out}: "
                         f"{type(exc).__name__}: {exc}") from None
    landmark_names = tuple(n for n in LANDMARK_NAMES if columns and f"{n}_x" in columns)
    if columns is not None and columns != row_columns(labels, landmark_names):
        raise InputError(f"WriteOptions.resume: {out} has columns {','.join(columns)}; this model gives "
                         f"{','.join(row_columns(labels, landmark_names))} "
                         "(remove it or choose another WriteOptions.out)")
    by_source: dict[str, list[FaceRow]] = {}
    for record in records:
        by_source.setdefault(str(record["source"]), []).append(record_row(record, labels, landmark_names))
    previous = {}
    for entry in listed:
        if entry["kind"] == "url":  # a URL has no size or mtime to compare: read it again
            continue
        item = WorkItem(0, entry["source"], entry["kind"], int(entry["size_bytes"]), int(entry["mtime_ns"]))
        if len(by_source.get(item.source, ())) != int(entry["faces"]):
            log.warning("WriteOptions.resume: %s has %d rows for %s, %s says %s: reading it again", out.name,
                        len(by_source.get(item.source, ())), item.source, sources_file.name, entry["faces"])
            continue
        previous[item.key] = SourceResult(item, labels, int(entry["frames"]), tuple(by_source.get(item.source, ())),
                                          None, int(entry["decode_failures"]), float(entry["duration_ms"]),
                                          reused=True)
    return previous
