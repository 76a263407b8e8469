"""``edge-fer analyze --resume``: per source after an interruption (Ctrl-C, SIGTERM, SIGHUP,
SIGKILL), stale temp files cleaned, corrupted previous outputs named, the side files' old names
read (issue 24 items 5 and 11, issue 25 item 8)."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_fer.analyze import AnalyzeOptions, WriteOptions, write_analysis
from edge_fer.cli import main
from edge_fer.detectors import DetectorOptions
from edge_fer.fileio import temp_path

EDGE_FER = str(Path(sys.executable).with_name("edge-fer"))


def invoke(*args):
    return CliRunner().invoke(main, ["analyze", *map(str, args)])


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def images(media_dir: Path, folder: Path, count: int) -> Path:
    """``folder`` with ``count`` images: copies of justin.jpg (a face) and no-faces.jpg in turn."""
    folder.mkdir()
    for index in range(count):
        name = "justin.jpg" if index % 2 == 0 else "no-faces.jpg"
        shutil.copy(media_dir / name, folder / f"{index:02d}.jpg")
    return folder


class Interrupt:
    """An on_event that raises KeyboardInterrupt when the ``after``-th source is done (the
    sources before it are recorded by then); records the done/skip events."""

    def __init__(self, after: int | None = None) -> None:
        self.after, self.events = after, []

    def __call__(self, kind, index, value) -> None:
        if kind in ("done", "skip"):
            self.events.append((kind, index))
            if self.after is not None and sum(k == "done" for k, _ in self.events) == self.after:
                raise KeyboardInterrupt


def test_an_interrupted_run_resumes_per_source(media_dir, tmp_path):
    """Issue 24 item 5: the sources finished before the stop are kept; --resume reads only the
    others and gives the rows an uninterrupted run gives, each once."""
    folder = images(media_dir, tmp_path / "in", 6)
    options = WriteOptions(out=str(tmp_path / "r.csv"), resume=True, analyze=AnalyzeOptions(workers=1))
    with pytest.raises(KeyboardInterrupt):
        write_analysis([folder], options, Interrupt(after=4))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["in", "r.csv.progress.jsonl"]  # no rows file yet, no temp file
    assert outputs_progress(tmp_path / "r.csv.progress.jsonl") == 3
    events = Interrupt()
    summary = write_analysis([folder], options, events)
    assert sorted(events.events) == [("done", 3), ("done", 4), ("done", 5), ("skip", 0), ("skip", 1), ("skip", 2)]
    assert summary.reused == 3 and summary.sources == 6
    fresh = WriteOptions(out=str(tmp_path / "fresh.csv"), analyze=AnalyzeOptions(workers=1))
    write_analysis([folder], fresh)
    assert (tmp_path / "r.csv").read_bytes() == (tmp_path / "fresh.csv").read_bytes()
    assert (tmp_path / "r.csv.summary.csv").read_bytes() == (tmp_path / "fresh.csv.summary.csv").read_bytes()
    assert not (tmp_path / "r.csv.progress.jsonl").exists()


def test_a_killed_runs_leftovers_are_cleaned_and_its_sources_kept(media_dir, tmp_path):
    """After SIGKILL: the killed run's temp file (and an older edge-fer's) is removed, a running
    process's and another machine's are not, the progress line cut short by the kill is read
    again, the rest kept."""
    folder = images(media_dir, tmp_path / "in", 4)
    out = tmp_path / "r.csv"
    options = WriteOptions(out=str(out), resume=True, analyze=AnalyzeOptions(workers=1))
    with pytest.raises(KeyboardInterrupt):
        write_analysis([folder], options, Interrupt(after=3))
    progress = tmp_path / "r.csv.progress.jsonl"
    with progress.open("ab") as handle:
        handle.write(b'{"source":"in/02.jpg","kind":"ima')  # cut short
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        stale = [temp_path(out, ".csv", pid=dead.pid), tmp_path / ".r.csv.ab_cd123.csv",  # an older edge-fer's
                 temp_path(tmp_path / "r.csv.summary.csv", ".csv", pid=dead.pid)]
        kept = [temp_path(out, ".csv", pid=alive.pid),                     # a run still going
                temp_path(out, ".csv", pid=dead.pid, host="otherhost")]   # another machine's (shared storage)
        for path in stale + kept:
            path.write_text("partial")
        events = Interrupt()
        summary = write_analysis([folder], options, events)
    finally:
        alive.kill()
        alive.wait()
    assert sorted(events.events) == [("done", 2), ("done", 3), ("skip", 0), ("skip", 1)]
    assert summary.reused == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["in", "r.csv", "r.csv.summary.csv", "r.csv.failures.csv", "r.csv.sources.csv", *(p.name for p in kept)])
    assert [r["source"] for r in read_csv(out)] == [str(folder / "00.jpg"), str(folder / "02.jpg")]


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.1)


SIGNAL_CASES = [  # signal, workers, sent to the whole process group (a terminal or SSH session going away)
    (signal.SIGHUP, 2, True),
    (signal.SIGHUP, 1, False),
    (signal.SIGTERM, 1, False),
    (signal.SIGKILL, 1, False),
]


@pytest.mark.parametrize("signum, workers, group", SIGNAL_CASES,
                         ids=[f"{s.name}-{w}-workers{'-group' * g}" for s, w, g in SIGNAL_CASES])
def test_a_signal_stops_the_run_and_resume_keeps_its_finished_sources(media_dir, tmp_path, signum, workers, group):
    """Issue 24 item 5, with real signals on the command: SIGHUP is handled as SIGTERM (no temp
    file left, no traceback from multiprocessing's resource tracker, which gets the group's SIGHUP
    too); after SIGKILL the next run removes the temp file. Either way --resume keeps the sources
    that finished and reads only the others."""
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(5):
        shutil.copy(media_dir / "test.mp4", folder / f"v{index}.mp4")
    progress = tmp_path / "r.csv.progress.jsonl"
    argv = [EDGE_FER, "analyze", str(folder), "--out", str(tmp_path / "r.csv"), "--workers", str(workers),
            "--no-progress"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                               start_new_session=group)
    try:
        _wait_for(lambda: outputs_progress(progress) >= 1 or process.poll() is not None, 240, "a finished source")
        assert process.poll() is None, process.communicate()[1]
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    kept = outputs_progress(progress)
    assert 1 <= kept < 5
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 128 + signum, stderr
        assert f"edge-fer: stopped by {signum.name}" in stderr
        assert "Traceback" not in stderr and "resource_tracker" not in stderr, stderr
        assert f"{kept} finished source" in stderr and "rerun with --resume" in stderr
        assert leftovers == []
    resumed = subprocess.run(argv + ["--resume"], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({kept} kept from the previous output)" in resumed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in", "r.csv", "r.csv.failures.csv", "r.csv.sources.csv", "r.csv.summary.csv"]
    rows = read_csv(tmp_path / "r.csv")
    assert [sum(r["source"] == str(folder / f"v{i}.mp4") for r in rows) for i in range(5)] == [115] * 5


def outputs_progress(path: Path) -> int:
    from edge_fer.analyze.outputs import progress_sources

    return progress_sources(path)


# corrupted previous outputs (issue 24 item 11) --------------------------------------------------------
def _edit_row(path: Path, column: str, value: str) -> None:
    """Rewrite the csv ``path`` with its first row's ``column`` set to ``value``."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    rows[1][rows[0].index(column)] = value
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def _duplicate_last_line(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + lines[-1:]))


def _progress_with(line: str):
    def write(t: Path) -> None:
        from edge_fer.metadata import FER2013_LABELS

        header = '{"edge_fer_progress":1,"labels":[%s]}\n' % ",".join(f'"{label}"' for label in FER2013_LABELS)
        (t / "r.csv.progress.jsonl").write_text(header + line + "\n" + '{"source": "x"}\n')
    return write


CORRUPT = [
    ("non-number in sources", lambda t: _edit_row(t / "r.csv.sources.csv", "size_bytes", "abc"),
     "--resume: {t}/r.csv.sources.csv line 2: size_bytes='abc", "expected an integer"),
    ("sources without its columns", lambda t: (t / "r.csv.sources.csv").write_text("path,when\na,1\n"),
     "--resume: {t}/r.csv.sources.csv: no column source, kind, size_bytes", "expected source,kind"),
    ("source listed twice", lambda t: _duplicate_last_line(t / "r.csv.sources.csv"),
     "--resume: {t}/r.csv.sources.csv line 4: ", "b.jpg is listed twice"),
    ("garbage row in rows", lambda t: (t / "r.csv").open("a").write("garbage,row\n"),
     "--resume: {t}/r.csv line 3: ", "frame="),
    ("a value not a number", lambda t: _edit_row(t / "r.csv", "score", "lots"),
     "--resume: {t}/r.csv line 2: score='lots", "expected a number"),
    ("an expression not a class", lambda t: _edit_row(t / "r.csv", "expression", "joy"),
     "--resume: {t}/r.csv line 2: expression='joy'", "expected one of angry"),
    ("garbage line in progress", _progress_with("not json"),
     "--resume: {t}/r.csv.progress.jsonl line 2: ", "remove the file, or add --overwrite"),
    ("progress of another model", lambda t: (t / "r.csv.progress.jsonl").write_text(
        '{"edge_fer_progress":1,"labels":["a","b"]}\n{}\n'), "--resume: {t}/r.csv.progress.jsonl was written for "
     "the classes a,b", "add --overwrite to start again"),
    ("progress settings not an object", lambda t: (t / "r.csv.progress.jsonl").write_text(
        '{"edge_fer_progress":1,"labels":[],"settings":"blazeface"}\n'), "--resume: {t}/r.csv.progress.jsonl line 1: "
     "settings='blazeface': expected a JSON object", "add --overwrite to start again"),
]


@pytest.mark.parametrize("corrupt, where, what", [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_a_corrupted_previous_output_is_one_line_naming_file_and_row(media_dir, tmp_path, corrupt, where, what):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(media_dir / "justin.jpg", folder / "a.jpg")
    shutil.copy(media_dir / "no-faces.jpg", folder / "b.jpg")
    out = tmp_path / "r.csv"
    assert invoke(folder, "--out", out, "--workers", 1, "--no-progress").exit_code == 0
    corrupt(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = invoke(folder, "--out", out, "--workers", 1, "--no-progress", "--resume")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-fer: error: "), result.stderr
    assert where.format(t=tmp_path) in lines[0] and what in lines[0], lines[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_resume_never_drops_or_doubles_rows(media_dir, tmp_path, caplog):
    """A source whose rows and sources line disagree is read again (once), with a warning; rows
    of a source the sources file does not list are named, not kept twice."""
    folder = images(media_dir, tmp_path / "in", 4)
    out = tmp_path / "r.csv"
    assert invoke(folder, "--out", out, "--workers", 1, "--no-progress").exit_code == 0
    first = out.read_bytes()
    sources = tmp_path / "r.csv.sources.csv"
    lines = sources.read_text().splitlines(keepends=True)
    sources.write_text("".join(lines[:1] + lines[2:]))  # 00.jpg no longer listed
    result = invoke(folder, "--out", out, "--workers", 1, "--no-progress", "--resume")
    assert result.exit_code == 0, result.output
    assert "has rows of 1 source that r.csv.sources.csv does not list" in result.stderr
    assert "(3 kept from the previous output)" in result.stderr
    assert out.read_bytes() == first


def test_resume_reads_the_side_files_old_names(media_dir, tmp_path):
    """Issue 25 item 8: outputs of an edge-fer that named side files r_sources.csv still resume."""
    folder = images(media_dir, tmp_path / "in", 2)
    out = tmp_path / "r.csv"
    assert invoke(folder, "--out", out, "--workers", 1, "--no-progress").exit_code == 0
    for side in ("summary", "failures"):
        (tmp_path / f"r.csv.{side}.csv").rename(tmp_path / f"r_{side}.csv")
    lines = (tmp_path / "r.csv.sources.csv").read_text().splitlines()
    legacy = [",".join(line.split(",")[:8]) for line in lines]  # before dropped_tracks and the rest
    (tmp_path / "r_sources.csv").write_text("\n".join(legacy) + "\n")
    (tmp_path / "r.csv.sources.csv").unlink()
    result = invoke(folder, "--out", out, "--workers", 1, "--no-progress", "--resume", "--min-track-frames", 0)
    assert result.exit_code == 0, result.output
    assert "reading r_sources.csv (the name edge-fer used before r.csv.sources.csv)" in result.stderr
    assert "(2 kept from the previous output)" in result.stderr
    assert (tmp_path / "r.csv.sources.csv").is_file()


def test_resume_applies_a_larger_min_track_frames_and_rereads_for_a_smaller(media_dir, tmp_path):
    """Kept rows are those of tracks of at least the min-track-frames they were written with: a
    larger value now is applied to them; a smaller one needs the source read again."""
    out = tmp_path / "r.csv"
    video = media_dir / "test.mp4"
    assert invoke(video, "--out", out, "--workers", 1, "--no-progress", "--min-track-frames", 0).exit_code == 0
    larger = invoke(video, "--out", out, "--workers", 1, "--no-progress", "--resume")
    assert "(1 kept from the previous output)" in larger.stderr
    dropped = read_csv(tmp_path / "r.csv.sources.csv")[0]["dropped_tracks"]
    smaller = invoke(video, "--out", out, "--workers", 1, "--no-progress", "--resume", "--min-track-frames", 2)
    assert smaller.exit_code == 0 and "kept from the previous output" not in smaller.stderr, smaller.stderr
    assert "reading it again for 2" in smaller.stderr
    assert read_csv(tmp_path / "r.csv.sources.csv")[0]["min_track_frames"] == "2"
    if DetectorOptions().name == "blazeface":  # its two 2-frame false tracks (test_analyze_outputs.py)
        assert dropped == "2" and "2 tracks under 10 frames left out" in larger.stderr
