"""``edge-fer analyze`` on the real media (run once per module) and its bad-input table.

The batch: ../shared/data/media, a folder with a truncated copy of woman2.mp4 and an image that
does not decode, and test.mp4 again as an http URL (a local server with Range support, as
object stores give). Other tests run small subsets (images, test.mp4) to compare engines and
formats with the batch's rows.
"""

from __future__ import annotations

import csv
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

import edge_fer
from edge_fer.analyze import AnalyzeOptions, FaceRow, WriteOptions, analyze, write_analysis
from edge_fer.analyze.items import discover
from edge_fer.analyze.resume import record_row
from edge_fer.analyze.writers import INT_COLUMNS
from edge_fer.cli import main
from edge_fer.detectors import DetectorOptions
from edge_fer.metadata import FER2013_LABELS
from edge_fer.pipeline import PipelineOptions

WOMAN2_FRAMES = 464


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range requests (FFmpeg seeks in an mp4)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end = (int(match.group(1)), int(match.group(2) or len(data) - 1)) if match else (0, len(data) - 1)
        self.send_response(206 if match else 200)
        self.send_header("Accept-Ranges", "bytes")
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        try:
            self.wfile.write(data[start:end + 1])
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def media_url(media_dir):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: _RangeHandler(*a, directory=str(media_dir), **k))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def invoke(*args):
    return CliRunner().invoke(main, ["analyze", *map(str, args)])


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def typed(records: list[dict]) -> list[FaceRow]:
    landmarks = [c[:-2] for c in records[0] if c.endswith("_x")] if records else []
    return [record_row(r, FER2013_LABELS, landmarks) for r in records]


@pytest.fixture(scope="module")
def batch(tmp_path_factory, media_dir, media_url):
    """One CLI run over every input kind, with 2 workers and timelines."""
    root = tmp_path_factory.mktemp("analyze")
    bad = root / "bad"
    bad.mkdir()
    (bad / "woman2_truncated.mp4").write_bytes((media_dir / "woman2.mp4").read_bytes()[:300_000])
    (bad / "broken.jpg").write_bytes(b"not a jpeg at all")
    (bad / "notes.txt").write_text("not media: skipped in a folder")
    url = f"{media_url}/test.mp4"
    out = root / "r.csv"
    result = invoke(media_dir, bad, url, "--out", out, "--workers", 2, "--timeline", root / "timeline")
    assert result.exit_code == 1, result.output  # two inputs failed: the others' results are written
    rows = read_csv(out)
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    return {"root": root, "out": out, "stderr": result.stderr, "rows": rows, "by_source": by_source,
            "url": url, "bad": bad, "media": media_dir,
            "summary": read_csv(root / "r.csv.summary.csv"), "failures": read_csv(root / "r.csv.failures.csv"),
            "sources": read_csv(root / "r.csv.sources.csv")}


def test_batch_rows_per_source(batch):
    media, by_source = batch["media"], batch["by_source"]
    woman2 = by_source[str(media / "woman2.mp4")]
    frames = {int(r["frame"]) for r in woman2}
    assert len(frames) >= 0.95 * WOMAN2_FRAMES and max(frames) < WOMAN2_FRAMES
    top_track, count = Counter(r["track_id"] for r in woman2).most_common(1)[0]
    assert count >= 0.95 * len(woman2)
    assert by_source[str(media / "test.mp4")]
    assert len(by_source[str(media / "justin.jpg")]) == 1
    assert by_source[str(media / "justin.jpg")][0]["frame"] == "0"
    assert str(media / "no-faces.jpg") not in by_source
    # The URL gives test.mp4's rows exactly (read in order, like the file).
    strip = [{k: v for k, v in r.items() if k != "source"} for r in by_source[batch["url"]]]
    assert strip == [{k: v for k, v in r.items() if k != "source"} for r in by_source[str(media / "test.mp4")]]


def test_one_person_is_one_track_by_default(batch):
    """test.mp4 shows one person; blazeface finds two 2-frame false faces on the background
    (issue 25 item 6): --min-track-frames (default 10) leaves them out of the rows and the
    summary, and the summary counts them."""
    source = str(batch["media"] / "test.mp4")
    summary = [r for r in batch["summary"] if r["source"] == source]
    assert [(r["track_id"], r["frames"]) for r in summary] == [("1", "115")]
    if DetectorOptions().name == "blazeface":
        assert summary[0]["dropped_tracks"] == "2"
        listed = {r["source"]: r for r in batch["sources"]}[source]
        assert (listed["dropped_tracks"], listed["dropped_rows"], listed["min_track_frames"]) == ("2", "4", "10")
        assert re.search(r"\b4 tracks under 10 frames left out \(8 rows\)", batch["stderr"])  # file + URL
    assert {r["track_id"] for r in batch["by_source"][source]} == {"1"}


def test_batch_columns_and_order(batch):
    rows = batch["rows"]
    columns = list(rows[0])
    assert columns[:8] == ["source", "frame", "time_ms", "track_id", "x", "y", "w", "h"]
    assert columns[-len(FER2013_LABELS) - 2:] == ["expression", "score"] + [f"p_{l}" for l in FER2013_LABELS]
    landmark_columns = columns[8:-len(FER2013_LABELS) - 2]
    if DetectorOptions().name in ("yunet", "blazeface"):  # the default detector gives landmarks
        assert "right_eye_x" in landmark_columns
    for row in rows[:50] + rows[-50:]:
        probs = [float(row[f"p_{l}"]) for l in FER2013_LABELS]
        assert abs(sum(probs) - 1) < 0.02 and row["expression"] in FER2013_LABELS
        assert float(row["score"]) == max(probs) == float(row[f"p_{row['expression']}"])
        assert int(row["w"]) > 0 and int(row["h"]) > 0
    # Deterministic order: sources as discovered (given order, sorted in folders), frames ascending.
    order = [i.source for i in discover([batch["media"], batch["bad"], batch["url"]])]
    seen = list(dict.fromkeys(r["source"] for r in rows))
    assert seen == [s for s in order if s in seen]
    for source_rows in batch["by_source"].values():
        frames = [int(r["frame"]) for r in source_rows]
        assert frames == sorted(frames)


def test_time_ms_is_the_containers_timestamp(batch):
    """test.mp4 is 24.7 fps with irregular stamps: frame x fps would not match."""
    path = batch["media"] / "test.mp4"
    capture = cv2.VideoCapture(str(path))
    stamps = []
    while True:
        ok, _ = capture.read()
        if not ok:
            break
        stamps.append(round(capture.get(cv2.CAP_PROP_POS_MSEC), 3))
    capture.release()
    rows = batch["by_source"][str(path)]
    assert [float(r["time_ms"]) for r in rows] == [stamps[int(r["frame"])] for r in rows]
    fps_times = [round(int(r["frame"]) * 1000 / 24.7, 3) for r in rows]
    assert [float(r["time_ms"]) for r in rows] != fps_times


def test_summary_failures_and_sources(batch):
    media, summary = batch["media"], {}
    for row in batch["summary"]:
        summary.setdefault(row["source"], []).append(row)
    no_faces = summary[str(media / "no-faces.jpg")]
    assert no_faces == [dict(no_faces[0], track_id="", frames="0", dominant="")]
    assert no_faces[0]["source_frames"] == "1"
    woman2 = summary[str(media / "woman2.mp4")]
    main_track = max(woman2, key=lambda r: int(r["frames"]))
    rows = [r for r in batch["by_source"][str(media / "woman2.mp4")] if r["track_id"] == main_track["track_id"]]
    assert int(main_track["frames"]) == len(rows) and main_track["source_frames"] == str(WOMAN2_FRAMES)
    assert float(main_track["first_ms"]) == float(rows[0]["time_ms"])
    assert float(main_track["last_ms"]) == float(rows[-1]["time_ms"]) > 15_000
    shares = {l: float(main_track[f"share_{l}"]) for l in FER2013_LABELS}
    assert abs(sum(shares.values()) - 1) < 1e-3
    counts = Counter(r["expression"] for r in rows)
    assert main_track["dominant"] == counts.most_common(1)[0][0]
    assert shares[main_track["dominant"]] == round(counts.most_common(1)[0][1] / len(rows), 4)
    failures = {Path(r["source"]).name: r["reason"] for r in batch["failures"]}
    assert set(failures) == {"woman2_truncated.mp4", "broken.jpg"}
    assert "cannot open video" in failures["woman2_truncated.mp4"]
    assert all("\n" not in reason for reason in failures.values())
    assert not any(Path(s).name in failures for s in summary)
    listed = {r["source"]: r for r in batch["sources"]}
    assert set(listed) == set(summary)
    woman2_file = media / "woman2.mp4"
    assert listed[str(woman2_file)]["size_bytes"] == str(woman2_file.stat().st_size)
    assert listed[str(woman2_file)]["mtime_ns"] == str(woman2_file.stat().st_mtime_ns)
    assert listed[batch["url"]]["kind"] == "url"


def test_progress_and_timelines(batch):
    assert re.search(r"\] 7/7 files, \d+ frames, \d+ frames/s, ETA 0:00:00", batch["stderr"])
    assert "2 failed" in batch["stderr"]
    timeline = batch["root"] / "timeline"
    assert sorted(p.name for p in timeline.iterdir()) == ["test-2.png", "test.png", "woman2.png"]
    image = cv2.imread(str(timeline / "woman2.png"))
    assert image is not None and image.shape[1] >= 800
    assert sorted(p.name for p in batch["root"].iterdir()) == [
        "bad", "r.csv", "r.csv.failures.csv", "r.csv.sources.csv", "r.csv.summary.csv", "timeline"]  # no temp files
    # The failures are named on stderr; the file skipped in the folder is counted.
    for name in ("woman2_truncated.mp4", "broken.jpg"):
        assert re.search(rf"^edge-fer: failed: \S*{name}: ", batch["stderr"], re.M), batch["stderr"]
    assert "1 file skipped (not a video or image) (-v names them)" in batch["stderr"]


@pytest.fixture(scope="module")
def small_inputs(batch):
    media = batch["media"]
    return [media / "test.mp4", media / "justin.jpg", media / "no-faces.jpg", batch["bad"] / "woman2_truncated.mp4"]


def expected_rows(batch, sources) -> list[FaceRow]:
    return typed([r for s in sources for r in batch["by_source"].get(str(s), [])])


def test_parquet_same_rows_typed(batch, small_inputs, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "r.parquet"
    result = invoke(*small_inputs, "--out", out, "--workers", 1, "--no-progress")
    assert result.exit_code == 1, result.output  # the truncated video fails
    table = pq.read_table(out)
    for column in INT_COLUMNS:
        assert table.schema.field(column).type == pa.int64()
    for column in ["time_ms", "score"] + [f"p_{l}" for l in FER2013_LABELS]:
        assert table.schema.field(column).type == pa.float64()
    assert typed(table.to_pylist()) == expected_rows(batch, small_inputs)  # inline == the 2-worker pool
    assert read_csv(tmp_path / "r.parquet.failures.csv")[0]["source"] == str(small_inputs[-1])


def crash_on_crash_jpg(item):
    """A pool task (runs in a spawned worker) that kills its process on sources named crash*."""
    from edge_fer.analyze import engines

    if Path(item.source).name.startswith("crash"):
        os._exit(1)
    return engines._pool_analyze(item)


def test_worker_crash_is_a_failure_row_and_the_rest_completes(media_dir, tmp_path):
    from edge_fer.analyze.engines import LocalEngine

    names = ["crash.jpg"] + [f"face{i}.jpg" for i in range(9)]
    for name in names:
        shutil.copy(media_dir / "justin.jpg", tmp_path / name)
    items = discover([tmp_path / n for n in names])
    with LocalEngine(PipelineOptions(), 2, FER2013_LABELS, task=crash_on_crash_jpg) as engine:
        results = list(engine.map_in_order(items))
    assert [r.item.index for r in results] == list(range(len(names)))
    assert "worker process died while reading this source" in results[0].error and not results[0].rows
    # The sources in flight with it are retried one at a time: only the culprit fails.
    assert all(r.ok and len(r.rows) == 1 for r in results[1:])
    assert len({(r.rows[0].x, r.rows[0].y, r.rows[0].expression) for r in results[1:]}) == 1


#: A user's script around edge_fer.analyze with 2 workers; ``{call}``: how it calls main().
SCRIPT = """import sys

from edge_fer.analyze import AnalyzeOptions, analyze


def main() -> None:
    rows = list(analyze(sys.argv[1:], AnalyzeOptions(workers=2)))
    print(len(rows), "rows")


{call}
"""


def run_script(path: Path, call: str, sources: list[Path]) -> subprocess.CompletedProcess:
    path.write_text(SCRIPT.format(call=call))
    return subprocess.run([sys.executable, str(path), *map(str, sources)], capture_output=True, text=True,
                          timeout=300, cwd=path.parent, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_a_script_without_a_main_guard_fails_with_one_clear_error(media_dir, tmp_path):
    """Spawned workers import the main script again: unguarded, each would start an analysis of
    its own and the pool never starts. analyze raises one clear error (before, it yielded no rows
    and no error); the workers leave quietly; the same script guarded gives its row."""
    sources = [media_dir / "justin.jpg", media_dir / "no-faces.jpg"]
    unguarded = run_script(tmp_path / "unguarded.py", "main()", sources)
    assert unguarded.returncode == 1 and unguarded.stdout == "", unguarded.stdout + unguarded.stderr
    last = unguarded.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"edge_fer\.errors\.WorkerError: the 2 analyze worker processes exited while starting, "
                        r"before reading any source: a script that calls edge_fer\.analyze with workers > 1 must "
                        r"call it under `if __name__ == \"__main__\":` .*", last), unguarded.stderr
    assert "bootstrapping phase" not in unguarded.stderr and unguarded.stderr.count("Traceback") == 1
    guarded = run_script(tmp_path / "guarded.py", 'if __name__ == "__main__":\n    main()', sources)
    assert guarded.returncode == 0 and guarded.stdout == "1 rows\n", guarded.stdout + guarded.stderr


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs (slow to start: once per module)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_engine_same_rows(batch, small_inputs, local_ray, tmp_path):
    import json

    out = tmp_path / "r.jsonl"
    result = invoke(*small_inputs, "--out", out, "--engine", "ray", "--no-progress")
    assert result.exit_code == 1, result.output
    assert local_ray.is_initialized()  # it used the instance the fixture started, and left it running

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert typed(rows) == expected_rows(batch, small_inputs)
    assert read_csv(tmp_path / "r.jsonl.failures.csv")[0]["source"] == str(small_inputs[-1])


def read_rows(out: Path) -> list[FaceRow]:
    """The typed rows of an output file, whatever its format."""
    import json

    import pyarrow.parquet as pq

    if out.suffix == ".parquet":
        return typed(pq.read_table(out).to_pylist())
    if out.suffix == ".jsonl":
        return typed([json.loads(line) for line in out.read_text().splitlines()])
    return typed(read_csv(out))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_resume_skips_unchanged_sources(media_dir, tmp_path, suffix):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("justin.jpg", "no-faces.jpg"):
        shutil.copy(media_dir / name, folder / name)
    out = tmp_path / f"r{suffix}"
    options = WriteOptions(out=str(out), resume=True, analyze=AnalyzeOptions(workers=1))
    write_analysis([folder], options)
    first = read_rows(out)
    shutil.copy(media_dir / "justin.jpg", folder / "again.jpg")           # new
    os.utime(folder / "no-faces.jpg", ns=(1, 1))                           # changed mtime
    events = []
    summary = write_analysis([folder], options, lambda kind, index, value: events.append((kind, index)))
    assert sorted(e for e in events if e[0] in ("done", "skip")) == [("done", 0), ("done", 2), ("skip", 1)]
    assert summary.reused == 1 and summary.sources == 3
    rows = read_rows(out)
    assert [Path(r.source).name for r in rows] == ["again.jpg", "justin.jpg"]
    assert rows[1] == first[0]  # justin's row kept, typed values unchanged
    assert {**rows[0].__dict__, "source": ""} == {**rows[1].__dict__, "source": ""}
    second = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    events.clear()
    write_analysis([folder], options, lambda kind, index, value: events.append((kind, index)))
    assert sorted(e for e in events if e[0] in ("done", "skip")) == [("skip", 0), ("skip", 1), ("skip", 2)]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == second


def test_python_api(media_dir, detector_dir):
    options = edge_fer.AnalyzeOptions(pipeline=PipelineOptions(detector=DetectorOptions(
        name="yunet", model_path=str(detector_dir / "face_detection_yunet_2023mar.onnx"))), workers=1)
    analysis = analyze([media_dir / "justin.jpg", media_dir / "no-faces.jpg"], options)
    rows = list(analysis)
    assert len(rows) == 1 and isinstance(rows[0], edge_fer.FaceRow)
    row = rows[0]
    assert isinstance(row.frame, int) and isinstance(row.track_id, int) and isinstance(row.score, float)
    assert set(row.scores) == set(FER2013_LABELS) and row.expression in FER2013_LABELS
    assert set(row.landmarks_xy) >= {"right_eye", "left_eye", "nose"}
    ex, ey = row.landmarks_xy["right_eye"]
    assert row.x <= ex <= row.x + row.w and row.y <= ey <= row.y + row.h
    assert analysis.summary.sources == 2 and analysis.summary.rows == 1
    assert [t.track_id for t in analysis.summary.tracks] == [row.track_id, None]
    # As a generator: ``summary = yield from analyze(...)``.
    def collect():
        return (yield from analyze([media_dir / "justin.jpg"], options))
    gen, seen = collect(), []
    with pytest.raises(StopIteration) as stop:
        while True:
            seen.append(next(gen).expression)
    assert seen == [row.expression] and stop.value.value.rows == 1
    only_summary = analyze([media_dir / "no-faces.jpg"], options).summary  # runs it
    assert only_summary.sources == 1 and only_summary.frames == 1 and only_summary.tracks[0].frames == 0
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(edge_fer.OptionsError, match="needs pandas"):
            analyze([media_dir / "justin.jpg"], options).to_pandas()
    else:
        assert len(analyze([media_dir / "justin.jpg"], options).to_pandas()) == 1
    table = analyze([media_dir / "justin.jpg"], options).to_arrow()
    assert table.column("right_eye_x").to_pylist() == [ex] and table.column("frame").to_pylist() == [0]
