"""``edge-fer analyze``: its bad-input table, the progress bar, timeline smoothing and input
discovery (the batch on the real media: tests/test_analyze.py)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_fer.analyze.items import discover
from edge_fer.analyze.progress import ProgressBar
from edge_fer.cli import main


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
     "--timeline /proc/tl: cannot create"),
    ("empty folder", lambda m, t: [t / "empty", "--out", t / "r.csv"], "no videos or images in folder"),
    ("glob matches nothing", lambda m, t: [m, "--glob", "*.avi", "--out", t / "r.csv"], "matching --glob '*.avi'"),
    ("unknown out suffix", lambda m, t: [m, "--out", t / "r.txt"], "unknown suffix '.txt'"),
    ("out folder missing", lambda m, t: [m, "--out", t / "no" / "r.csv"], "does not exist"),
    ("out folder unwritable", lambda m, t: [m, "--out", "/proc/r.csv"], "is not writable"),
    ("out is a folder", lambda m, t: [m, "--out", (t / "r.csv").mkdir() or t / "r.csv"], "is a folder"),
    ("workers 0", lambda m, t: [m, "--out", t / "r.csv", "--workers", 0], "--workers must be between 1 and"),
    ("workers huge", lambda m, t: [m, "--out", t / "r.csv", "--workers", 100_000], "--workers must be between 1 and"),
    ("ray address without ray", lambda m, t: [m, "--out", t / "r.csv", "--ray-address", "auto"], "needs --engine ray"),
    ("ray address malformed", lambda m, t: [m, "--out", t / "r.csv", "--engine", "ray", "--ray-address", "x"],
     "expected auto, HOST:PORT"),
    ("ray cluster unreachable", lambda m, t: [m / "justin.jpg", "--out", t / "r.csv", "--engine", "ray",
                                              "--ray-address", "127.0.0.1:1"], "cannot reach a Ray cluster"),
    ("bad model", lambda m, t: [m, "--out", t / "r.csv", "--model", t / "empty"], ""),
    ("unknown detector", lambda m, t: [m, "--out", t / "r.csv", "--detector", "nope"], "unknown detector 'nope'"),
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


@pytest.mark.parametrize("values, window", [([1.0, 2.0], 25), ([1.0, 2.0, 3.0, 4.0], 3), ([], 5), ([0.5], 1)])
def test_timeline_smoothing_keeps_length(values, window):
    import numpy as np

    from edge_fer.analyze.timeline import smooth

    out = smooth(np.array(values), window)
    assert out.shape == (len(values),)
    assert all(min(values) - 1e-9 <= v <= max(values) + 1e-9 for v in out)


def test_discovery_order_glob_and_duplicates(media_dir, tmp_path):
    nested = tmp_path / "day1" / "cam"
    nested.mkdir(parents=True)
    shutil.copy(media_dir / "justin.jpg", nested / "b.jpg")
    shutil.copy(media_dir / "justin.jpg", tmp_path / "a.JPG")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    items = discover([media_dir / "justin.jpg", media_dir, tmp_path])
    assert [Path(i.source).name for i in items] == [
        "justin.jpg", "no-faces.jpg", "test.mp4", "woman2.mp4", "a.JPG", "b.jpg"]
    assert [i.kind for i in items] == ["image", "image", "video", "video", "image", "image"]
    assert [i.index for i in items] == list(range(6))
    assert items[-1].source == str(tmp_path / "day1" / "cam" / "b.jpg")  # the folder as given + relative path
    assert [Path(i.source).name for i in discover([media_dir], glob="*.jpg")] == ["justin.jpg", "no-faces.jpg"]
    assert [Path(i.source).name for i in discover([tmp_path], glob="day1/*/*.jpg")] == ["b.jpg"]
    assert [i.kind for i in discover(["https://host/rec.mp4"])] == ["url"]
