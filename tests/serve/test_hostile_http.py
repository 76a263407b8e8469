"""Hostile HTTP against the live view's server (issue 24 items 1, 2 and 10).

A server subprocess (the real FerServer publishing synthetic frames at 15 fps, as a served run
does) on loopback takes, one at a time: slowloris (40 sockets trickling a header byte each
second), 300 idle connections, non-reading /events and /stream.mjpg viewers, and clients
sending 6 MB of headers. Meanwhile a separate client asks ``GET /healthz`` four times a
second: every answer must be a 200 that arrives within 1 s (the issue's bound; nothing waits
on a short timeout, a probe gives up only after 20 s). Each attack is bounded in sockets and
seconds. Single bad requests: test_bad_requests.py; bad ``--serve`` values: test_serve_options.py.

``python tests/serve/test_hostile_http.py`` prints the attack table (for the issue's report).
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_bad_requests import raw

REPO = Path(__file__).resolve().parents[2]
#: The issue's bound on a /healthz answer during any attack.
HEALTHZ_BOUND_S = 1.0
#: What the attacked server is given: short deadlines keep the attacks short.
OPTIONS = {"port": 0, "max_clients": 4, "write_timeout_s": 2.0, "header_timeout_s": 2.0}

SERVER_SCRIPT = r"""
import dataclasses, json, sys, threading
import numpy as np
from edge_fer.serve import FerServer, ServeOptions
from edge_fer.types import FrameResult

wanted = json.loads(sys.argv[1])
known = {f.name for f in dataclasses.fields(ServeOptions)}
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)  # ~60 KB as JPEG
event = json.dumps({"frame": 0, "faces": [], "pad": "x" * 400})
with FerServer(ServeOptions(**{k: v for k, v in wanted.items() if k in known})) as server:
    print(server.port, flush=True)
    i = 0
    while not stop.wait(1 / 15):
        server.publish(FrameResult(i, i * 66.7, ()), frame, event_json=event)
        i += 1
"""


class ServerProcess:
    """FerServer in its own process (its own GIL, as in ``edge-fer run --serve``)."""

    def __init__(self, options: dict, log_path: Path) -> None:
        self.log = log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, json.dumps(options)], cwd=log_path.parent,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready = threading.Event()
        lines: list[str] = []
        threading.Thread(target=lambda: (lines.append(self.proc.stdout.readline()), ready.set()), daemon=True).start()
        if not ready.wait(120) or not lines[0].strip().isdigit():
            self.close()
            raise AssertionError(f"the server did not start: {log_path.read_text()[-2000:]}")
        self.port = int(lines[0])

    def health(self) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request("GET", "/healthz")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def probe(port: int) -> tuple[float, int | None]:
    """(seconds, status) of one GET /healthz on a fresh connection; status None if none came."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        return time.monotonic() - t0, response.status
    except (OSError, http.client.HTTPException):
        return time.monotonic() - t0, None
    finally:
        conn.close()


class Probes:
    """GET /healthz every ``every_s`` from a thread of its own while an attack runs."""

    def __init__(self, port: int, every_s: float = 0.25) -> None:
        self.port, self.every_s, self.results = port, every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append(probe(self.port))
            self._stop.wait(self.every_s)

    def stop(self) -> list[tuple[float, int | None]]:
        self._stop.set()
        self._thread.join(60)
        return self.results


class Sockets:
    """``count`` attacking connections, each opened by sending ``opening``; every ``every_s`` each
    sends one more byte of ``trickle`` (if any). A connection the server closes (it becomes
    readable: an answer or EOF) is noted with its lifetime and, with ``reopen``, opened again."""

    def __init__(self, port: int, count: int, opening: bytes, trickle: bytes = b"", every_s: float = 1.0,
                 reopen: bool = False) -> None:
        self.port, self.opening, self.trickle, self.every_s, self.reopen = port, opening, trickle, every_s, reopen
        self.lifetimes: list[float] = []
        self.selector = selectors.DefaultSelector()
        for _ in range(count):
            self._open()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        if self.opening:
            sock.sendall(self.opening)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, [time.monotonic(), 0])

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.05):
                self.lifetimes.append(time.monotonic() - key.data[0])
                self.selector.unregister(key.fileobj)
                key.fileobj.close()
                if self.reopen and not self._stop.is_set():
                    self._open()
            now = time.monotonic()
            for key in list(self.selector.get_map().values()):
                opened, sent = key.data
                if self.trickle and now - opened > (sent + 1) * self.every_s:
                    try:
                        key.fileobj.send(self.trickle[sent % len(self.trickle):][:1])
                        key.data[1] += 1
                    except OSError:
                        pass

    @property
    def open(self) -> int:
        return len(self.selector.get_map())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(60)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


def non_readers(port: int, paths: list[str]) -> list[socket.socket]:
    """Viewers that send their request and never read a byte (a tiny receive buffer)."""
    socks = []
    for path in paths:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        socks.append(sock)
    return socks


def big_header_client(port: int, size: int, lines: bool, answers: list) -> None:
    """Sends a request whose headers are ``size`` bytes (one header, or 8 KB lines); notes the
    status line it gets back (or what went wrong)."""
    filler = b"".join(b"X-Fill-%d: %s\r\n" % (i, b"a" * 8170) for i in range(size // 8192)) if lines \
        else b"X-Big: " + b"a" * size + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + filler + b"\r\n")
        except OSError as exc:
            answers.append(type(exc).__name__)
        try:
            answers.append(sock.recv(64).split(b"\r\n")[0].decode(errors="replace") or "EOF")
        except OSError as exc:
            answers.append(type(exc).__name__)


def wait_until(predicate, timeout_s: float) -> float | None:
    """Seconds until ``predicate()`` held (polled every 0.25 s), None if it never did."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.25)
    return None


# the attacks: each returns (probes, facts) --------------------------------------------------
SLOW_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def slowloris(server: ServerProcess, sockets: int = 40, seconds: float = 8.0):
    attack = Sockets(server.port, sockets, SLOW_REQUEST, trickle=b"X-Trickle: 1\r\n", every_s=1.0, reopen=True)
    probes = Probes(server.port)
    time.sleep(seconds)
    results = probes.stop()
    attack.close()
    return results, {"closed by the server": len(attack.lifetimes),
                     "longest held s": round(max(attack.lifetimes, default=0.0), 1)}


def idle_connections(server: ServerProcess, sockets: int = 300, seconds: float = 6.0):
    rss_before = server.rss_mb()
    attack = Sockets(server.port, sockets, b"", reopen=True)
    probes = Probes(server.port)
    time.sleep(1.0)
    facts = {"server RSS +MB with them open": round(server.rss_mb() - rss_before, 1)}
    viewer = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)  # not capped by them
    viewer.request("GET", "/events")
    facts["a viewer meanwhile"] = viewer.getresponse().status
    viewer.close()
    time.sleep(max(0.0, seconds - 1.0))
    results = probes.stop()
    facts["closed by the server"] = len(attack.lifetimes)
    facts["longest held s"] = round(max(attack.lifetimes, default=0.0), 1)
    attack.close()
    return results, facts


def non_reading_viewers(server: ServerProcess, per_path: int = 4, seconds: float = 6.0):
    socks = non_readers(server.port, ["/events"] * per_path + ["/stream.mjpg"] * per_path)
    t0 = time.monotonic()
    probes = Probes(server.port)
    time.sleep(seconds)
    results = probes.stop()
    freed = wait_until(lambda: server.health()["viewers"] == 0, 180.0)
    facts = {"slots freed after s": None if freed is None else round(time.monotonic() - t0, 1)}
    viewer = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    viewer.request("GET", "/stream.mjpg")
    facts["a viewer then"] = viewer.getresponse().status
    viewer.close()
    for sock in socks:
        sock.close()
    return results, facts


def big_headers(server: ServerProcess, clients: int = 8, size: int = 6_000_000, settle_s: float = 20.0):
    rss_start = server.rss_mb()
    answers: list = []
    threads = [threading.Thread(target=big_header_client, args=(server.port, size, i % 2 == 1, answers))
               for i in range(clients)]
    probes = Probes(server.port)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    time.sleep(1.0)
    results = probes.stop()
    rss_peak = server.rss_mb()
    back = wait_until(lambda: server.rss_mb() - rss_start < 10.0, settle_s)
    return results, {"answers": sorted(set(answers)), "RSS start MB": round(rss_start, 1),
                     "RSS after MB": round(server.rss_mb(), 1), "RSS +MB right after": round(rss_peak - rss_start, 1),
                     "back within 10 MB after s": back}


def summary(results) -> dict:
    return {"probes": len(results), "worst s": round(max(s for s, _ in results), 3),
            "not 200": sum(status != 200 for _, status in results)}


# the tests ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(OPTIONS, tmp_path_factory.mktemp("hostile") / "server.log")
    yield process
    process.close()


def assert_answered(results) -> None:
    late = [(round(s, 3), status) for s, status in results if status != 200 or s > HEALTHZ_BOUND_S]
    assert results and not late, f"{len(late)} of {len(results)} /healthz probes late or refused: {late}"


def test_slowloris_never_delays_healthz_and_each_sender_is_cut_at_the_header_deadline(server):
    results, facts = slowloris(server)
    print(summary(results), facts)
    assert_answered(results)
    assert facts["closed by the server"] >= 40  # every trickler met the deadline once at least
    assert facts["longest held s"] < OPTIONS["header_timeout_s"] + 3.0


def test_300_idle_connections_cost_little_and_never_count_as_viewers(server):
    results, facts = idle_connections(server)
    print(summary(results), facts)
    assert_answered(results)
    assert facts["a viewer meanwhile"] == 200
    assert facts["closed by the server"] >= 300  # each at the header deadline, then opened again
    assert facts["longest held s"] < OPTIONS["header_timeout_s"] + 3.0
    assert facts["server RSS +MB with them open"] < 5  # no thread each: a socket and a buffer


def test_non_reading_viewers_are_dropped_and_never_delay_healthz(server):
    results, facts = non_reading_viewers(server)
    print(summary(results), facts)
    assert_answered(results)
    # write_timeout_s (2 s) after their 64 KiB send buffers fill (MJPEG at once, events in seconds);
    # before issue 24 they held the slots for minutes. A wide margin for a loaded box.
    assert facts["slots freed after s"] is not None and facts["slots freed after s"] < 60, facts
    assert facts["a viewer then"] == 200


def test_6mb_headers_are_refused_and_their_memory_returned(server):
    results, facts = big_headers(server)
    print(summary(results), facts)
    assert_answered(results)
    assert facts["back within 10 MB after s"] is not None, facts


@pytest.mark.slow
def test_a_heavier_flood_1000_idle_and_200_slowloris_at_once(server):
    """More waiting connections than the server keeps (512): the oldest go first."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    idle = Sockets(server.port, 1000, b"", reopen=True)
    trickle = Sockets(server.port, 200, SLOW_REQUEST, trickle=b"X-Trickle: 1\r\n", reopen=True)
    probes = Probes(server.port)
    time.sleep(8.0)
    results = probes.stop()
    trickle.close()
    idle.close()
    print(summary(results), {"closed": len(idle.lifetimes) + len(trickle.lifetimes)})
    assert_answered(results)


def test_https_idle_and_plain_http_clients_never_delay_healthz(tls_pair):
    """With TLS the handshake is part of the request head's time: a socket that never starts
    one, or speaks plain HTTP, is closed there and costs no thread meanwhile."""
    import ssl

    from edge_fer.serve import FerServer, ServeOptions

    cert, key = tls_pair
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    options = ServeOptions(port=0, header_timeout_s=1.0, tls_cert=str(cert), tls_key=str(key))
    with FerServer(options) as server:
        idle = Sockets(server.port, 50, b"")
        plain = raw(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")  # no handshake: closed, no answer
        latencies = []
        for _ in range(5):
            t0 = time.monotonic()
            conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=20, context=insecure)
            conn.request("GET", "/healthz")
            latencies.append((time.monotonic() - t0, conn.getresponse().status))
            conn.close()
        closed = wait_until(lambda: len(idle.lifetimes) == 50, 60.0)
        idle.close()
    assert plain == b"" and closed is not None
    assert_answered(latencies)


def main() -> None:
    """Runs each attack once against a fresh server and prints the table."""
    import tempfile

    options = {**OPTIONS, **json.loads(os.environ.get("HOSTILE_OPTIONS", "{}"))}
    rows = []
    for name, attack in (("slowloris, 40 sockets", slowloris), ("300 idle connections", idle_connections),
                         ("4 /events + 4 /stream.mjpg never reading", non_reading_viewers),
                         ("8 clients x 6 MB headers", big_headers)):
        process = ServerProcess(options, Path(tempfile.mkdtemp()) / "server.log")
        try:
            results, facts = attack(process)
        finally:
            process.close()
        rows.append((name, summary(results), facts))
        print(name, summary(results), facts, flush=True)
    print("\n| attack | probes | worst /healthz s | not 200 | facts |\n| --- | --- | --- | --- | --- |")
    for name, s, facts in rows:
        print(f"| {name} | {s['probes']} | {s['worst s']} | {s['not 200']} | {facts} |")


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
