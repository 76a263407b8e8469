"""Static files from FerServer (`edge-fer serve-web`, run --serve's /device/): gzip copies sent to
clients that take them, revalidation answered with 304, nothing outside the folder, the command's
lifetime (Ctrl-C and SIGTERM end it with exit 0 and a line of what it sent)."""

from __future__ import annotations

import gzip
import http.client
import signal
import subprocess
import sys

import pytest

from conftest import sigint_default
from edge_fer.serve import FerServer, ServeOptions
from edge_fer.serve.handler import accepts_gzip

BODY = b"const x = 1;\n" * 500


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "index.html").write_bytes(b"<!doctype html><title>t</title>\n")
    (tmp_path / "app.js").write_bytes(BODY)
    (tmp_path / "app.js.gz").write_bytes(gzip.compress(BODY, mtime=0))
    (tmp_path / "model.tflite").write_bytes(bytes(range(256)) * 4)
    return tmp_path


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("header, gzipped", [
    ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.5", True), ("*", True), ("identity", False),
    ("", False), ("gzip;q=0", False), ("gzip;q=0.0, identity", False), ("gzip;q=bad", False), ("x-gzip", False),
])
def test_accepts_gzip(header, gzipped):
    assert accepts_gzip(header) is gzipped


@pytest.mark.parametrize("encoding", ["gzip", None])
def test_gzip_copy_sent_only_to_clients_that_take_it(folder, encoding):
    with FerServer.for_folder(folder, ServeOptions(port=0)) as server:
        status, headers, body = _get(server.port, "/app.js", {"Accept-Encoding": encoding} if encoding else {})
        assert status == 200 and headers["content-type"] == "text/javascript"
        assert headers.get("content-encoding") == encoding and headers["vary"] == "Accept-Encoding"
        assert (gzip.decompress(body) if encoding else body) == BODY
        status, headers, body = _get(server.port, "/model.tflite", {"Accept-Encoding": "gzip"})
        assert status == 200 and "content-encoding" not in headers and len(body) == 1024  # no .gz beside it
        assert server.static_sent.files == 2


def test_revalidation_gets_304_and_no_body(folder):
    with FerServer.for_folder(folder, ServeOptions(port=0)) as server:
        _, first, _ = _get(server.port, "/app.js", {"Accept-Encoding": "gzip"})
        assert first["cache-control"] == "no-cache"
        status, headers, body = _get(server.port, "/app.js", {"Accept-Encoding": "gzip", "If-None-Match": first["etag"]})
        assert (status, body, headers["etag"]) == (304, b"", first["etag"])
        status, _, body = _get(server.port, "/app.js", {"If-None-Match": first["etag"]})  # other encoding, other tag
        assert status == 200 and body == BODY
        (folder / "app.js.gz").write_bytes(gzip.compress(BODY + b"//\n", mtime=0))  # changed: new tag
        status, _, body = _get(server.port, "/app.js", {"Accept-Encoding": "gzip", "If-None-Match": first["etag"]})
        assert status == 200 and gzip.decompress(body) == BODY + b"//\n"


@pytest.mark.parametrize("path", ["/../index.html", "/%2e%2e/etc/passwd", "/sub/", "/app.js%00", "/missing.js",
                                  "/healthz", "/stream.mjpg"])
def test_folder_server_serves_its_files_and_nothing_else(folder, path):
    with FerServer.for_folder(folder, ServeOptions(port=0)) as server:
        assert _get(server.port, "/")[0] == 200 and server.token is None
        assert _get(server.port, path)[0] == 404


def _serve_web(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge_fer.cli", "serve-web", *args],
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_web_runs_until_stopped(folder, sig):
    proc = _serve_web(str(folder), "--bind", "127.0.0.1:0")
    try:
        line = proc.stderr.readline()
        assert line.startswith(f"edge-fer: serving {folder} at http://127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        assert _get(port, "/app.js")[2] == BODY
        proc.send_signal(sig)
        rest = proc.communicate(timeout=120)[1]  # bounded: a server that ignored the signal fails here
        assert proc.returncode == 0, rest
    finally:
        proc.kill()
    assert rest.strip() == f"edge-fer: stopped; answered 1 file requests, sent {len(BODY):,} bytes"


@pytest.mark.parametrize("args, message", [
    (["NOWHERE"], "holds no index.html: expected a folder written by edge-fer export-web"),
    (["FOLDER", "--bind", "127.0.0.1:99999"], "--bind 99999: expected 0..65535"),
    (["FOLDER", "--tls-cert", "missing.pem"], "go together"),
])
def test_serve_web_bad_input_is_one_line(folder, tmp_path, args, message):
    args = [str(folder) if a == "FOLDER" else str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in args]
    proc = _serve_web(*args)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode != 0 and len(err.strip().splitlines()) == 1 and message in err, err


def test_serve_web_over_https(folder, tls_pair):
    import ssl
    import urllib.request

    proc = _serve_web(str(folder), "--bind", "127.0.0.1:0", "--tls-cert", str(tls_pair[0]), "--tls-key", str(tls_pair[1]))
    try:
        line = proc.stderr.readline()
        assert line.startswith(f"edge-fer: serving {folder} at https://127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        trusting = ssl.create_default_context(cafile=str(tls_pair[0]))  # the self-signed cert, for 127.0.0.1
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/app.js", context=trusting, timeout=60) as response:
            assert response.read() == BODY
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
