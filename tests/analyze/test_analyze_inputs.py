"""``edge-fer analyze``: its bad-input table, the progress bar, timeline smoothing, input
discovery and the rows-file formats (the batch on the real media: tests/analyze/test_analyze.py)."""

from __future__ import annotations

import io
import json
import os
import sys

import pytest
from click.testing import CliRunner

from edge_fer.analyze import AnalyzeOptions, WriteOptions
from edge_fer.analyze.engines import AHEAD_PER_WORKER, WorkerLost, in_order
from edge_fer.analyze.items import WorkItem, discover
from edge_fer.analyze.progress import ProgressBar
from edge_fer.analyze import writers
from edge_fer.analyze.resume import load_previous
from edge_fer.analyze.worker import FaceRow, SourceResult
from edge_fer.cli import main
from edge_fer.errors import InputError, OptionsError


def invoke(*args):
    return CliRunner().invoke(main, ["analyze", *map(str, args)])


def test_progress_bar_eta_with_injected_clock():
    now = [100.0]
    stream = io.StringIO()
    bar = ProgressBar(stream, clock=lambda: now[0], log_every_s=0)
    bar.on_event("start", -1, 4)
    bar.on_event("open", 0, 100)
    bar.on_event("open", 1, 300)
    now[0] += 10
    bar.on_event("frames", 0, 100)
    bar.on_event("done", 0, 100)
    # 100 frames in 10 s; 300 known left plus 2 unopened files at the mean (200) each: 700 -> 70 s
    assert bar.eta_s(now[0]) == pytest.approx(70.0)
    assert stream.getvalue().splitlines()[-1].startswith("[######..................] 1/4 files, 100 frames, 10 frames/s, ETA 0:01:10")


CASES = [
    ("missing input", lambda m, t: [t / "nope.mp4", "--out", t / "r.csv", "--timeline", t / "tl"], "input not found"),
    ("timeline folder unwritable", lambda m, t: [m / "justin.jpg", "--out", t / "r.csv", "--timeline", "/proc/tl"],
     "--timeline '/proc/tl': cannot create"),
    ("empty folder", lambda m, t: [t / "empty", "--out", t / "r.csv"], "no videos or images in folder"),
    ("glob matches nothing", lambda m, t: [m, "--glob", "*.avi", "--out", t / "r.csv"],
     "'*.avi' in folder"),  # the flag's name: see test_library_errors_name_option_fields
    ("unknown out suffix", lambda m, t: [m, "--out", t / "r.txt"], "r.txt': unknown suffix '.txt'"),
    ("out folder missing", lambda m, t: [m, "--out", t / "no" / "r.csv"], "does not exist"),
    ("out folder unwritable", lambda m, t: [m, "--out", "/proc/r.csv"],
     "--out '/proc/r.csv': folder /proc is not writable"),
    ("out is a folder", lambda m, t: [m, "--out", (t / "r.csv").mkdir() or t / "r.csv"], "is a folder"),
    ("workers 0", lambda m, t: [m, "--out", t / "r.csv", "--workers", 0], "--workers 0: expected 1 to"),
    ("workers huge", lambda m, t: [m, "--out", t / "r.csv", "--workers", 100_000],
     "--workers 100000: expected 1 to"),
    ("ray address without ray", lambda m, t: [m, "--out", t / "r.csv", "--ray-address", "auto"],
     "--ray-address 'auto' needs --engine 'ray' (got --engine 'local')"),
    ("ray address malformed", lambda m, t: [m, "--out", t / "r.csv", "--engine", "ray", "--ray-address", "x"],
     "--ray-address 'x': expected auto, HOST:PORT"),
    ("ray cluster unreachable", lambda m, t: [m / "justin.jpg", "--out", t / "r.csv", "--engine", "ray",
                                              "--ray-address", "127.0.0.1:1"],
     "--ray-address '127.0.0.1:1': cannot reach a Ray cluster"),
    ("bad model", lambda m, t: [m, "--out", t / "r.csv", "--model", t / "empty"], ""),
    ("unknown detector", lambda m, t: [m, "--out", t / "r.csv", "--detector", "nope"], "unknown detector 'nope'"),
    ("min score above 1", lambda m, t: [m, "--out", t / "r.csv", "--min-score", 2],
     "--min-score 2.0: expected 0 <= c <= 1"),
    ("min score nan", lambda m, t: [m, "--out", t / "r.csv", "--min-score", "nan"],
     "--min-score must be a finite number"),
    ("min track frames negative", lambda m, t: [m, "--out", t / "r.csv", "--min-track-frames", -1],
     "--min-track-frames -1: expected 0 to 1000000 frames"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(media_dir, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    argv = args(media_dir, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(*argv)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-fer: error: ") and message in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_library_errors_name_option_fields(tmp_path):
    """Library errors name the option's field and value; the CLI shows them as its flags."""
    with pytest.raises(OptionsError, match=r"^AnalyzeOptions\.workers=0: expected 1 to \d+"):
        AnalyzeOptions(workers=0)
    with pytest.raises(OptionsError, match=r"^AnalyzeOptions\.engine='spark': expected one of local, ray$"):
        AnalyzeOptions(engine="spark")
    with pytest.raises(OptionsError, match=r"^AnalyzeOptions\.glob=' ': expected a non-empty pattern"):
        AnalyzeOptions(glob=" ")
    with pytest.raises(OptionsError, match=r"^AnalyzeOptions\.min_track_frames=2\.5: expected 0 to 1000000 frames"):
        AnalyzeOptions(min_track_frames=2.5)
    with pytest.raises(OptionsError, match=r"^WriteOptions\.out='r\.txt': unknown suffix '\.txt'"):
        WriteOptions(out="r.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"^no videos or images matching AnalyzeOptions\.glob='\*\.avi' in folder"):
        discover([tmp_path / "empty"], glob="*.avi")


@pytest.mark.parametrize("values, window", [([1.0, 2.0], 25), ([1.0, 2.0, 3.0, 4.0], 3), ([], 5), ([0.5], 1)])
def test_timeline_smoothing_keeps_length(values, window):
    import numpy as np

    from edge_fer.analyze.timeline import smooth

    out = smooth(np.array(values), window)
    assert out.shape == (len(values),)
    assert all(min(values) - 1e-9 <= v <= max(values) + 1e-9 for v in out)


class FakeWorkers:
    """``in_order``'s Workers in this process: each wait finishes the newest running task (so
    later sources finish first); a source named crash* kills the pool: every task running then
    is lost, and submitting fails until ``restart``."""

    def __init__(self, width: int) -> None:
        self.width, self.labels = width, ("happy",)
        self.tasks: list[dict] = []
        self.broken, self.restarts, self.most_running = False, 0, 0

    def submit(self, item):
        if self.broken:
            raise WorkerLost
        task = {"item": item, "state": "running"}
        self.tasks.append(task)
        self.most_running = max(self.most_running, self.unfinished(self.tasks))
        return task

    def unfinished(self, handles) -> int:
        return sum(task["state"] == "running" for task in handles)

    def wait(self, handle, on_event) -> bool:
        running = [task for task in self.tasks if task["state"] == "running"]
        if running and running[-1]["item"].source.startswith("crash"):
            self.broken = True
            for task in running:
                task["state"] = "lost"
        elif running:
            running[-1]["state"] = "done"
        return handle["state"] != "running"

    def result(self, item, handle, on_event):
        if handle["state"] == "lost":
            raise WorkerLost
        return SourceResult(item, self.labels, frames=1)

    def kept(self, handle) -> bool:
        return handle["state"] == "done"

    def restart(self) -> None:
        self.broken, self.restarts = False, self.restarts + 1


def test_in_order_scheduler_window_order_and_crash_retry():
    items = [WorkItem(i, f"crash{i}" if i == 1 else f"ok{i}", "url") for i in range(10)]
    workers = FakeWorkers(width=2)
    results = list(in_order(workers, items))
    assert [r.item.index for r in results] == list(range(10))  # item order, though later ones finished first
    assert workers.most_running == 2 * AHEAD_PER_WORKER
    # The crash lost source 0 too: both were retried alone, and only the culprit failed.
    assert "worker process died while reading this source" in results[1].error
    assert all(r.ok for i, r in enumerate(results) if i != 1)
    assert workers.restarts == 2
    assert [t["item"].index for t in workers.tasks].count(0) == 2


# Rows-file formats (writers.FORMATS), without a model ---------------------------------------------
LABELS = ("angry", "happy")


def face_row(source: str, frame: int, landmarks: bool = True) -> FaceRow:
    points = {"right_eye": (10.5, 20.0), "nose": (15.0, 30.5)} if landmarks else None
    return FaceRow(source, frame, frame * 40.0, 1, 10, 20, 30, 40, "happy", 0.75,
                   {"angry": 0.25, "happy": 0.75}, points)


class JsonRows(writers.RowFormat):
    """A format the tests add: one JSON document, written at close."""

    def open(self, tmp, columns):
        self.tmp, self.records = tmp, []

    def write(self, record):
        self.records.append(record)

    def close(self):
        self.tmp.write_text(json.dumps(self.records))

    def abort(self):
        pass

    @classmethod
    def read(cls, path):
        records = json.loads(path.read_text())
        return (list(records[0]) if records else None), records


class _NoSummary:
    def columns(self):
        return ["track"]

    def table(self):
        return []


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".json"])
def test_row_formats_round_trip_through_resume(monkeypatch, tmp_path, suffix):
    """Every registered format writes rows that --resume reads back unchanged; adding one is a
    class and a FORMATS entry (.json here)."""
    monkeypatch.setitem(writers.FORMATS, ".json", JsonRows)
    out = tmp_path / f"r{suffix}"
    WriteOptions(out=str(out))  # the suffix is known
    results = []
    for index, (name, count) in enumerate([("a.jpg", 2), ("b.jpg", 0), ("c.jpg", 3)]):
        source = tmp_path / name
        source.write_bytes(b"x" * (index + 1))
        item = WorkItem(0, str(source), "image", source.stat().st_size, source.stat().st_mtime_ns)
        rows = tuple(face_row(str(source), frame) for frame in range(count))
        results.append(SourceResult(item, LABELS, frames=count + 1, rows=rows, duration_ms=12.5))
    with writers.OutputFiles(out, LABELS) as files:
        for result in results:
            files.add(result)
        files.finish(_NoSummary())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.jpg", "b.jpg", "c.jpg", out.name]
        + [f"{out.name}.{side}.csv" for side in ("summary", "failures", "sources")])
    previous, progress = load_previous(out, LABELS)
    assert [previous[r.item.key] for r in results] == results and progress is None


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_row_formats_empty_file_and_error(tmp_path, suffix):
    """No rows: a file without landmark columns. An error in the block: nothing written, no temp file."""
    out = tmp_path / f"r{suffix}"
    with writers.OutputFiles(out, LABELS) as files:
        files.finish(_NoSummary())
    columns, records = writers.FORMATS[suffix].read(out)
    assert records == [] and columns in (writers.row_columns(LABELS, ()), None)  # jsonl: no line, no columns
    assert load_previous(out, LABELS) == ({}, None)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(RuntimeError):
        with writers.OutputFiles(out, LABELS) as files:
            files.add(SourceResult(WorkItem(0, "a.jpg", "image", 1, 1), LABELS, 1, (face_row("a.jpg", 0),)))
            raise RuntimeError("stop")
    assert sorted(tmp_path.iterdir()) == before


def test_parquet_row_groups_of_batch_rows(monkeypatch, tmp_path):
    import pyarrow.parquet as pq

    monkeypatch.setattr(writers, "PARQUET_BATCH_ROWS", 2)
    tmp = tmp_path / "r.parquet"
    rows = writers.RowWriter(tmp, writers.FORMATS[".parquet"], LABELS)
    rows.write(face_row("a.jpg", frame) for frame in range(5))
    rows.close()
    rows.abort()  # as the ExitStack does after a clean close: harmless
    parquet = pq.ParquetFile(tmp)
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == [2, 2, 1]
    assert parquet.schema_arrow == writers.arrow_schema(writers.row_columns(LABELS, ("right_eye", "nose")))


def test_format_dependency_and_suffix_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(OptionsError) as error:
        WriteOptions(out="r.parquet")
    assert str(error.value) == ("WriteOptions.out='r.parquet': parquet needs pyarrow "
                                "(pip install pyarrow, or 'edge-fer[all]')")
    WriteOptions(out="r.CSV")  # suffixes are case-insensitive; csv needs nothing
    with pytest.raises(OptionsError) as error:
        WriteOptions(out="r")
    assert str(error.value) == "WriteOptions.out='r': unknown suffix '(none)'; expected one of .csv, .jsonl, .parquet"


def test_cli_help_lists_every_format():
    """The --out help is written by hand: it must name every suffix in writers.FORMATS."""
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    assert all(suffix in result.output for suffix in writers.FORMATS), result.output


# Short tracks (issue 25 item 6) ----------------------------------------------------------------------
def _tracks_result(lengths: dict[int, int], source_frames: int) -> SourceResult:
    rows = tuple(FaceRow("v.mp4", frame, frame * 40.0, track, 0, 0, 10, 10, "happy", 0.75,
                         {"angry": 0.25, "happy": 0.75})
                 for track, length in lengths.items() for frame in range(length))
    rows = tuple(sorted(rows, key=lambda r: (r.frame, r.track_id)))
    return SourceResult(WorkItem(0, "v.mp4", "video", 1, 1), LABELS, frames=source_frames, rows=rows)


@pytest.mark.parametrize("min_frames, lengths, frames, kept, dropped", [
    (0, {1: 115, 2: 2, 3: 3}, 115, [1, 2, 3], (0, 0)),
    (1, {1: 115, 2: 2, 3: 3}, 115, [1, 2, 3], (0, 0)),
    (3, {1: 115, 2: 2, 3: 3}, 115, [1, 3], (1, 2)),
    (10, {1: 115, 2: 2, 3: 3}, 115, [1], (2, 5)),
    (200, {1: 115, 2: 2, 3: 3}, 115, [1], (2, 5)),   # a track in every frame of its source stays
    (10, {1: 1}, 1, [1], (0, 0)),                    # an image's face
    (10, {1: 4, 2: 1}, 4, [1], (1, 1)),              # a 4-frame clip: its whole-clip track stays
])
def test_short_tracks_are_left_out_and_counted(min_frames, lengths, frames, kept, dropped):
    from edge_fer.analyze.summary import AnalysisSummary, drop_short_tracks

    result = drop_short_tracks(_tracks_result(lengths, frames), min_frames)
    assert sorted({r.track_id for r in result.rows}) == kept
    assert (result.dropped_tracks, result.dropped_rows) == dropped
    summary = AnalysisSummary(LABELS, min_track_frames=min_frames)
    summary.add(result)
    assert [t.track_id for t in summary.tracks] == kept
    assert all(t.source_dropped_tracks == dropped[0] for t in summary.tracks)
    assert summary.table()[0][2] == dropped[0]  # the summary file's dropped_tracks column
    assert (f"{dropped[0]} track" in summary.to_line()) == bool(dropped[0])


def test_cli_min_track_frames_default_is_the_librarys():
    """The command module imports only click: its default is spelled out, and must match."""
    from edge_fer.analyze.summary import MIN_TRACK_FRAMES
    from edge_fer.commands.analyze import analyze_command

    option = next(p for p in analyze_command.params if p.name == "min_track_frames")
    assert option.default == MIN_TRACK_FRAMES == AnalyzeOptions().min_track_frames


@pytest.mark.parametrize("name, stale", [
    (".r.csv.tmp-{host}-{dead}-0123abcd.csv", True),       # a killed run of this host
    (".r.csv.tmp-{host}-{alive}-0123abcd.csv", False),     # a run still going
    (".r.csv.tmp-otherhost-{dead}-0123abcd.csv", False),   # another machine's (shared storage)
    (".r.csv.k3j_h5g6.csv", True),                         # edge-fer before the host-pid names
    (".r.csv.backup.csv", False),
    ("r.csv", False),
    (".r.parquet.tmp-{host}-{dead}-0123abcd.parquet", False),  # another output's
])
def test_stale_temp_files(name, stale):
    import subprocess

    from edge_fer.analyze import outputs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    name = name.format(host=outputs._HOST, dead=dead.pid, alive=os.getppid())
    assert outputs.is_stale_temp(name, "r.csv") is stale
