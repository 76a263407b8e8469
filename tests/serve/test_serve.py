"""``edge-fer run --serve``: the live view end to end on woman2.mp4, the server object fed by
hand (real frames and results), its limits and refusals, SIGTERM, and the file-source options
it relies on (``loop``, real-time pacing). Timeouts here bound waits; nothing asserts a speed."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO, sigint_default
from edge_fer.sources.capture import SourceOptions
from edge_fer.cli import main
from edge_fer.pipeline import FerPipeline, PipelineOptions
from edge_fer.serve import FerServer, ServeOptions

JSON_KEYS = {"frame", "time_ms", "faces", "latency_ms"}


# a served run in a subprocess ----------------------------------------------------------------
class ServedRun:
    """``edge-fer run ... --serve 127.0.0.1:0`` in a subprocess; ``url`` read from its stderr."""

    def __init__(self, args, stdout) -> None:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        # Ctrl-C must reach the run even if this test process was left ignoring SIGINT by an
        # earlier test's library (an ignored signal is inherited across exec).
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_fer.cli", "run", *map(str, args)],
                                     stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                                     preexec_fn=sigint_default)
        self.stderr: list[str] = []
        self.url = None
        self._ready = threading.Event()
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        if not self._ready.wait(90) or self.url is None:
            self.proc.kill()
            raise AssertionError(f"no URL on stderr: {self.stderr}")
        self.port = int(re.search(r":(\d+)/", self.url).group(1))

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))
            match = re.match(r"^edge-fer: serving (http://\S+)$", line.strip())
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def get(self, path: str, timeout: float = 10.0) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request("GET", path)
        return conn.getresponse()


@contextmanager
def served_run(*args, stdout=subprocess.DEVNULL):
    run = ServedRun(args, stdout)
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def mjpeg_frames(response, count: int, timeout_s: float) -> list[bytes]:
    """``count`` JPEG parts of a multipart/x-mixed-replace response (fewer if time runs out),
    split as a browser splits them: a part's body runs from its head's blank line to the next
    delimiter (the parts carry no Content-Length)."""
    from edge_fer.serve.handler import BOUNDARY

    frames, deadline, buffer = [], time.monotonic() + timeout_s, b""
    delimiter = f"\r\n--{BOUNDARY}\r\n".encode()
    while len(frames) < count and time.monotonic() < deadline:
        head_end = buffer.find(b"\r\n\r\n")  # a part's head comes first in the buffer
        end = buffer.find(delimiter, head_end + 4) if head_end >= 0 else -1
        if end >= 0:
            frames.append(buffer[head_end + 4:end])
            buffer = buffer[end + len(delimiter):]
        else:
            buffer += response.fp.read1(65536)
    return frames


def sse_events(response, count: int, timeout_s: float) -> list[str]:
    events, deadline = [], time.monotonic() + timeout_s
    while len(events) < count and time.monotonic() < deadline:
        line = response.fp.readline().decode()
        if line.startswith("data: "):
            events.append(line[6:].rstrip("\n"))
    return events


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_served_video_end_to_end(media_dir, tmp_path):
    stdout = (tmp_path / "out.jsonl").open("w")
    with served_run("--video", media_dir / "woman2.mp4", "--serve", "127.0.0.1:0", "--loop", "--headless",
                    "--json", stdout=stdout) as run:
        page = run.get("/")
        html = page.read().decode()
        assert page.status == 200 and page.getheader("Content-Type").startswith("text/html")
        assert 'id="edge-fer-result"' in html and "woman2.mp4" in html
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing from elsewhere

        stream = run.get("/stream.mjpg")
        assert stream.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        jpegs = mjpeg_frames(stream, 10, timeout_s=60.0)
        assert len({hashlib.sha1(j).hexdigest() for j in jpegs}) >= 10
        assert all(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR).shape == (336, 596, 3) for j in jpegs)
        stream.close()

        frames_before = json.loads(run.get("/healthz").read())["frames"]
        events = sse_events(run.get("/events"), 40, timeout_s=20.0)
        assert len(events) == 40
        parsed = [json.loads(e) for e in events]
        assert all(set(e) == JSON_KEYS for e in parsed)
        assert sum(len(e["faces"]) == 1 for e in parsed) >= 0.9 * len(parsed)
        assert [e["frame"] for e in parsed] == sorted({e["frame"] for e in parsed})
        health = json.loads(run.get("/healthz").read())
        assert health["frames"] > frames_before and health["source"]["state"] == "running"
        assert health["fps"] > 0 and health["jpeg_encodes"] >= 10

        run.proc.send_signal(signal.SIGINT)
        assert run.proc.wait(timeout=120) in (130, 0)  # a generous margin: CI boxes are loaded
        assert port_is_closed(run.port)
    stdout.close()
    printed = {json.loads(line)["frame"]: line for line in (tmp_path / "out.jsonl").read_text().splitlines()}
    assert all(printed[e["frame"]] == text for e, text in zip(parsed, events))  # the --json object, exactly


def test_sigterm_stops_a_served_run_keeps_the_video_and_exits_0_with_the_summary(media_dir, tmp_path):
    out = tmp_path / "rec.mp4"
    with served_run("--video", media_dir / "test.mp4", "--serve", "0", "--headless",
                    "--save-video", out) as run:
        assert run.url.startswith("http://127.0.0.1:")  # a bare port: loopback
        assert len(mjpeg_frames(run.get("/stream.mjpg"), 3, timeout_s=20.0)) == 3
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=120) == 0  # a generous margin: CI boxes are loaded
        run.reader.join(timeout=60)  # stderr read to its end
        assert "edge-fer: stopped (SIGTERM)" in run.stderr
        assert re.match(r"edge-fer: \d+ frames in .* tracks, .*p50/p95 ms detect .*; saved ", run.stderr[-1])
        assert port_is_closed(run.port)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # renamed, no partial file
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and cap.read()[0]
    cap.release()


def test_sigterm_in_any_run_keeps_the_video_like_ctrl_c(media_dir, tmp_path):
    from edge_fer.runner import RunOptions, Terminated, run

    out, seen = tmp_path / "rec.avi", []

    def terminate_at_five(result) -> None:
        seen.append(result.frame_index)
        if len(seen) == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives in this (the main) thread

    before = signal.getsignal(signal.SIGTERM)
    options = RunOptions(SourceOptions(video=str(media_dir / "test.mp4")), headless=True, save_video=str(out))
    with pytest.raises(Terminated):
        run(options, on_result=terminate_at_five)
    assert signal.getsignal(signal.SIGTERM) is before  # restored after the run
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(seen) == 5
    cap.release()


def test_stopping_a_served_camera_run_releases_camera_and_port(media_dir, monkeypatch):
    from edge_fer.sources import capture
    from edge_fer.runner import RunOptions, Terminated, run

    frame = cv2.imread(str(media_dir / "justin.jpg"))
    camera = FakeCamera(frame)
    monkeypatch.setattr(capture, "open_capture", lambda target: camera)
    servers, seen = [], []

    def stop_after_three(result) -> None:
        seen.append(result)
        if len(seen) == 3:
            raise Terminated("signal 15")  # what SIGTERM raises in the main thread

    options = RunOptions(SourceOptions(camera=0), headless=True, serve=ServeOptions(port=0))
    with pytest.raises(Terminated):
        run(options, on_result=stop_after_three, on_serving=servers.append)
    assert camera.released and port_is_closed(servers[0].port)
    assert all(len(r.faces) == 1 for r in seen) and servers[0].broadcast.published == 3


class FakeCamera:
    """A camera (there is none here) that shows one real photo at about 100 fps."""

    def __init__(self, frame) -> None:
        self.frame, self.released = frame, False

    def isOpened(self) -> bool:
        return not self.released

    def read(self):
        time.sleep(0.01)
        return (not self.released), (self.frame.copy() if not self.released else None)

    def get(self, prop) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


# the server object, fed by hand ---------------------------------------------------------------
@pytest.fixture(scope="module")
def woman2_results(media_dir):
    """(frame, FrameResult) for woman2's first 8 frames, from the default pipeline."""
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    frames = [cap.read()[1] for _ in range(8)]
    cap.release()
    with FerPipeline.create_from_options(PipelineOptions()) as pipeline:
        return [(frame, pipeline.process(frame)) for frame in frames]


def request(server: FerServer, method: str, path: str, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def wait_until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_server_object_serves_what_it_is_fed(woman2_results):
    with FerServer.create_from_options(ServeOptions(port=0), info={"source": "by hand"}) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/" and server.token is None
        assert request(server, "GET", "/snapshot.jpg")[0] == 503  # nothing yet
        for frame, result in woman2_results:
            server.publish(result, frame)
        assert server.broadcast.encodes == 0  # nobody watched: nothing drawn or encoded
        status, body = request(server, "GET", "/snapshot.jpg")
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert status == 200 and image.shape == woman2_results[0][0].shape
        assert request(server, "GET", "/snapshot.jpg")[1] == body and server.broadcast.encodes == 1  # once
        health = json.loads(request(server, "GET", "/healthz")[1])
        assert health["frames"] == 8 and health["source"] == {"name": "by hand", "state": "running"}
        assert health["jpeg_encodes"] == 1 and health["jpeg_encode_ms"] > 0
        assert request(server, "HEAD", "/healthz") == (200, b"")
        assert request(server, "GET", "/healthz", {"Host": "localhost:1"})[0] == 200
        assert request(server, "GET", "/healthz", {"Host": "evil.example:8080"})[0] == 403  # DNS rebinding

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/events")
        events = conn.getresponse()
        first = sse_events(events, 1, timeout_s=60)  # starts with the current frame
        frame, result = woman2_results[0]
        server.publish(result, frame)
        assert first + sse_events(events, 1, timeout_s=60) == [json.dumps(woman2_results[-1][1].to_json()),
                                                               json.dumps(result.to_json())]
        conn.close()


def test_slow_and_vanished_viewers_never_stall_the_loop_or_grow_memory(woman2_results):
    options = ServeOptions(port=0, max_clients=3, write_timeout_s=0.5)
    with FerServer.create_from_options(options) as server:
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", server.port))
        stuck.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # and never reads
        vanished = socket.create_connection(("127.0.0.1", server.port))
        vanished.sendall(b"GET /events HTTP/1.0\r\n\r\n")
        vanished.close()
        assert wait_until(lambda: server.slots.active >= 1)

        tracemalloc.start()
        done, sizes = threading.Event(), []

        def loop() -> None:
            for i, (frame, result) in zip(range(1000), itertools.cycle(woman2_results)):
                server.publish(result, frame)
                time.sleep(0.001)  # let the viewer threads take frames
                if i in (200, 999):
                    sizes.append(tracemalloc.get_traced_memory()[0])
            done.set()

        thread = threading.Thread(target=loop)
        thread.start()
        watcher = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        watcher.request("GET", "/stream.mjpg")
        assert len(mjpeg_frames(watcher.getresponse(), 3, timeout_s=60)) == 3  # others still served
        watcher.close()
        assert done.wait(60), "publish blocked"  # a timeout, not a speed check
        thread.join()
        tracemalloc.stop()
        assert server.broadcast.published == 1000 and server.broadcast.encodes <= 1000
        print(f"traced memory at frame 200 and 1000: {sizes}, {server.broadcast.encodes} encodes")
        assert sizes[1] - sizes[0] < 2_000_000, sizes  # flat: one frame and one JPEG held, not a queue
        assert wait_until(lambda: server.slots.active == 0)  # the stuck client was dropped
        stuck.close()


def test_max_clients_refuses_with_503_then_frees_the_slot(woman2_results):
    with FerServer.create_from_options(ServeOptions(port=0, max_clients=1)) as server:
        frame, result = woman2_results[0]
        server.publish(result, frame)
        first = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        first.request("GET", "/events")
        watching = first.getresponse()  # (held: a collected response closes its socket)
        assert sse_events(watching, 1, timeout_s=60)
        status, body = request(server, "GET", "/stream.mjpg")
        assert status == 503 and b"too many viewers" in body and server.slots.refused == 1
        assert request(server, "GET", "/healthz")[0] == 200  # short requests still answered
        watching.close()
        server.publish(result, frame)  # wakes the viewer thread: it sees the closed socket
        assert wait_until(lambda: server.slots.active == 0)


def test_a_single_frame_arrives_as_a_closed_part(woman2_results):
    """With one frame published and no other to come, the stream's part is already followed by
    the delimiter and the next part's head: a browser takes the image as whole and shows it
    (test_live_page.py::test_page_loads_before_the_first_frame shows it in Chromium)."""
    from edge_fer.serve.handler import BOUNDARY

    with FerServer.create_from_options(ServeOptions(port=0)) as server:
        frame, result = woman2_results[0]
        server.publish(result, frame)
        viewer = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        viewer.request("GET", "/stream.mjpg")
        stream = viewer.getresponse()
        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
        assert stream.fp.read(len(head)) == head
        jpeg = server.broadcast.jpeg(server.broadcast.latest)
        assert stream.fp.read(len(jpeg) + 2 + len(head)) == jpeg + b"\r\n" + head
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == frame.shape
        viewer.close()


@pytest.fixture
def open_server(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("<p>device page</p>")
    (tmp_path / "web" / "sub").mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    with FerServer.create_from_options(ServeOptions(host="0.0.0.0", port=0)) as server:
        server.mount("/device/", tmp_path / "web")
        yield server


@pytest.mark.parametrize("method, path, headers, status", [
    ("GET", "/healthz", {}, 401),
    ("GET", "/healthz?token=wrong-token-123", {}, 401),
    ("GET", "/stream.mjpg", {}, 401),
    ("GET", "/healthz?token={t}", {}, 200),
    ("GET", "/healthz", {"Authorization": "Bearer {t}"}, 200),
    ("POST", "/?token={t}", {}, 405),
    ("DELETE", "/healthz?token={t}", {}, 405),
    ("GET", "/nothing?token={t}", {}, 404),
    ("GET", "/../etc/passwd?token={t}", {}, 404),
    ("GET", "/device/?token={t}", {}, 200),
    ("GET", "/device/../secret.txt?token={t}", {}, 404),
    ("GET", "/device/%2e%2e/secret.txt?token={t}", {}, 404),
    ("GET", "/device/sub/?token={t}", {}, 404),  # a folder: no listing
    ("GET", "/healthz?token={t}", {"Content-Length": "5"}, 413),
    ("GET", "/?token={t}&" + "x" * 70000, {}, 414),
])
def test_token_methods_paths_and_sizes(open_server, method, path, headers, status):
    token = open_server.token
    assert not open_server.loopback and token and f"?token={token}" in open_server.url
    got, body = request(open_server, method, path.format(t=token),
                        {k: v.format(t=token) for k, v in headers.items()})
    assert got == status, body
    if status == 401:
        assert b"token required" in body and token.encode() not in body


@pytest.mark.parametrize("args, pattern", [
    (["--serve", "80"], r"--serve 80: privileged \(below 1024\); expected a port >= 1024, or 0"),
    (["--serve", "nosuch.invalid:0"], r"cannot serve on host 'nosuch\.invalid': it does not resolve"),
    (["--serve", "192.0.2.1:0"], r"cannot serve on 192\.0\.2\.1:0: 192\.0\.2\.1 is not an address of this machine"),
    (["--serve", "localhost:http"], r"--serve 'localhost:http': expected \[HOST:\]PORT"),
    (["--serve", "::1:80"], r"--serve '::1:80': expected an IPv6 address in brackets"),
    (["--serve", "70000"], r"--serve 70000: expected 0\.\.65535"),
    (["--serve", "0", "--token", "short"], r"--token: expected 8 to 128 characters"),
    (["--serve", "0", "--max-clients", "0"], r"--max-clients 0: expected 1\.\.64"),
    (["--token", "abcdefgh1234"], r"--token is for --serve"),
    (["--camera", "0", "--loop"], r"--loop repeats a video file or images; camera 0 is live"),
    (["port in use"], r"cannot serve on 127\.0\.0\.1:\d+: the port is in use"),
])
def test_bad_serve_input_is_one_line(args, pattern):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if args == ["port in use"]:
            args = ["--serve", f"127.0.0.1:{busy.getsockname()[1]}"]
        source = [] if "--camera" in args else ["--demo"]
        result = CliRunner().invoke(main, ["run", *source, "--headless", *args])
    assert result.exit_code == 2 and result.stdout == "" and "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("edge-fer: error: ") and re.search(pattern, line), line
