"""How a run ends and what it prints meanwhile: a served run outlives its input, every stop
signal keeps the recording, the summary, the status line, and stdout that cannot be written."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import pytest
from click.testing import CliRunner

from conftest import REPO, sigint_default
from edge_fer.cli import main
from edge_fer.runner import STOP_SIGNALS, RunOptions, Terminated, run
from edge_fer.sinks import SinkItem, StatusLineSink
from edge_fer.sources.capture import SourceOptions
from edge_fer.types import FrameResult


def edge_fer_process(*args, **popen) -> subprocess.Popen:
    """``edge-fer ARGS`` in a child whose Ctrl-C is at its default (an ignored SIGINT is inherited)."""
    return subprocess.Popen([sys.executable, "-m", "edge_fer.cli", *map(str, args)], cwd=REPO, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            preexec_fn=sigint_default, **popen)


def read_until(stream, pattern: str, lines: list[str], timeout_s: float = 120.0) -> re.Match:
    """Lines of ``stream`` into ``lines`` until one matches (a generous wait: CI boxes are loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r}: {lines}")


def test_a_served_run_keeps_serving_after_its_input_ends_and_ctrl_c_ends_it_with_the_summary():
    proc = edge_fer_process("run", "--demo", "--serve", "127.0.0.1:0", stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        lines: list[str] = []
        url = read_until(proc.stderr, r"serving (http://\S+)", lines).group(1)
        read_until(proc.stderr, r"input ended; still serving the last frame .*Ctrl-C to stop", lines)
        time.sleep(10)  # the test: still up 10 s after the input ended
        port = int(re.search(r":(\d+)/", url).group(1))
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/healthz")
        health = json.loads(conn.getresponse().read())
        assert health["source"]["state"] == "ended" and health["frames"] == 1
        conn.request("GET", "/snapshot.jpg")
        assert conn.getresponse().status == 200  # the last frame is still there
        conn.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    tail = err.strip().splitlines()
    assert tail[-2] == "edge-fer: stopped (Ctrl-C)"
    assert re.match(r"edge-fer: 1 frames in .*, 1 tracks, .*p50/p95 ms detect [\d.]+/[\d.]+", tail[-1]), tail
    assert out.count("\n") == 1 and out.startswith("astronaut.jpg: #1 ")  # a still's one human line


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=[signal.Signals(s).name for s in STOP_SIGNALS])
def test_every_stop_signal_keeps_a_playable_recording(signum, media_dir, tmp_path):
    out, seen = tmp_path / "rec.mp4", []

    def signal_at_five(result) -> None:
        seen.append(result.frame_index)
        if len(seen) == 5:
            os.kill(os.getpid(), signum)  # arrives in this (the main) thread

    before = signal.getsignal(signum)
    options = RunOptions(SourceOptions(video=str(media_dir / "test.mp4")), headless=True, save_video=str(out))
    with pytest.raises(Terminated) as stop:
        run(options, on_result=signal_at_five)
    assert signal.getsignal(signum) is before  # restored after the run
    assert stop.value.args == (signal.Signals(signum).name,) and stop.value.summary.frames == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # finished and renamed
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and cap.read()[0]
    cap.release()


def test_a_video_run_without_json_prints_a_status_line_not_a_line_per_frame(media_dir):
    result = CliRunner().invoke(main, ["run", "--video", str(media_dir / "test.mp4"), "--headless",
                                       "--max-frames", "20"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert re.match(r"edge-fer: 20 frames in ", result.stderr.strip().splitlines()[-1])


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def item() -> SinkItem:
    return SinkItem(FrameResult(0, 0.0, ()), None, "frame 0", {}, 30.0, False)


@pytest.mark.parametrize("tty, frames_and_times, shown", [
    (True, [0.0, 0.1, 0.2, 0.3], 2),   # a terminal: rewritten at most every 0.25 s
    (False, [0.0, 1.0, 4.0], 0),       # a log: nothing for a run shorter than 5 s
    (False, [0.0, 5.0, 6.0, 10.5], 2),  # then a plain line every 5 s
])
def test_status_line_refresh(tty, frames_and_times, shown):
    now = [0.0]
    out = FakeTerminal() if tty else io.StringIO()
    sink = StatusLineSink(out, clock=lambda: now[0])
    for t in frames_and_times:
        now[0] = t
        assert sink.write(item())
    sink.close()
    text = out.getvalue()
    if tty:
        assert text.count("\r\x1b[K") == shown and text.endswith("\n")
        assert "edge-fer: frames 4, 30.0 fps, faces 0" in text
    else:
        assert text.count("\n") == shown and "\r" not in text


def test_status_line_counts_viewers():
    class Server:
        def health(self):
            return {"viewers": 2}

    out = FakeTerminal()
    StatusLineSink(out, server=Server()).write(item())
    assert out.getvalue().endswith("edge-fer: frames 1, 30.0 fps, faces 0, viewers 2")


@pytest.mark.parametrize("redirect, message", [
    ("> /dev/full", "edge-fer: error: cannot write to stdout: No space left on device"),
    (">&-", "edge-fer: error: stdout is closed: nothing can take the per-frame lines"),
])
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_stdout_that_cannot_be_written_is_one_line_and_non_zero(redirect, message):
    command = f'"{sys.executable}" -m edge_fer.cli run --demo --headless --json {redirect}'
    done = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1 and lines[0].startswith(message), done.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_any_command_writing_to_a_full_stdout_is_one_line():
    done = subprocess.run(["bash", "-c", f'"{sys.executable}" -m edge_fer.cli fetch-detectors --help > /dev/full'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr == "edge-fer: error: cannot write to stdout: No space left on device\n"


def test_small_images_without_a_face_get_one_hint(fer_val):
    images = sorted((fer_val / "happy").iterdir())[:3]  # FER2013's 48x48 face crops
    folder = images[0].parent
    result = CliRunner().invoke(main, ["run", "--image", str(folder), "--max-frames", "3"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "no face found in" in line]
    assert len(notes) == 1 and "(48x48 px)" in notes[0] and "--min-face" in notes[0] and "edge-fer eval" in notes[0]
