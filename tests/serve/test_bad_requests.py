"""Single bad requests to the live view's server, one row each (issue 24 item 2): names too long
for the file system, a route's own bug, Host headers a loopback server must refuse (DNS
rebinding), an IPv6 loopback server. The attacks (slowloris, idle sockets, huge headers):
test_hostile_http.py."""

from __future__ import annotations

import socket

import pytest


def raw(port: int, request: bytes, host: str = "127.0.0.1") -> bytes:
    """Everything the server answers to ``request`` (it closes after one; a reset ends it too)."""
    chunks = []
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(request)
        try:
            chunk = sock.recv(65536)
            while chunk:
                chunks.append(chunk)
                chunk = sock.recv(65536)
        except ConnectionResetError:  # closed with our bytes unread
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    parts = answer.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@pytest.fixture(scope="module")
def loopback_server(tmp_path_factory):
    from edge_fer.serve import FerServer, ServeOptions

    folder = tmp_path_factory.mktemp("device")
    (folder / "index.html").write_text("<p>device page</p>")
    with FerServer(ServeOptions(port=0)) as server:
        server.mount("/device/", folder, public=True)
        server.add_route("/broken", lambda h: 1 / 0)
        yield server


@pytest.mark.parametrize("target, host, status", [
    ("/device/" + "a" * 5000, "127.0.0.1", 404),  # a name too long for the file system
    ("/device/" + "a/" * 3000 + "b", "127.0.0.1", 404),
    ("/device/", "127.0.0.1", 200),
    ("/broken", "127.0.0.1", 500),  # a route's bug is an answer, not a closed connection
    ("/healthz", "[::1].evil.com", 403),
    ("/healthz", "127.0.0.1.nip.io", 403),
    ("/healthz", "localhost.evil.com", 403),
    ("/healthz", "evil.com:80@localhost", 403),
    ("/healthz", "127.0.0.2", 403),  # loopback, but not the address bound
    ("/healthz", "[::1]:8080", 403),
    ("/healthz", "[localhost]", 403),
    ("/healthz", "", 403),
    ("/healthz", "localhost", 200),
    ("/healthz", "LocalHost.:9", 200),
    ("/healthz", "127.0.0.1:1234", 200),  # any port: a tunnel may forward another
    ("/healthz", None, 200),  # no Host header: an HTTP/1.0 tool, not a browser
])
def test_bad_paths_and_hosts_get_an_answer(loopback_server, target, host, status):
    head = f"GET {target} HTTP/1.0\r\n" + ("" if host is None else f"Host: {host}\r\n") + "\r\n"
    answer = raw(loopback_server.port, head.encode())
    assert status_of(answer) == status, answer[:300]


def test_an_ipv6_loopback_server_answers_to_its_own_address_only():
    from edge_fer.serve import FerServer, ServeOptions

    try:
        server = FerServer(ServeOptions(host="::1", port=0))
    except Exception as exc:  # no IPv6 on this machine
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with server:
        def get(host):
            return status_of(raw(server.port, f"GET /healthz HTTP/1.0\r\nHost: {host}\r\n\r\n".encode(), "::1"))

        assert [get("[::1]:9"), get("localhost"), get("127.0.0.1"), get("[::1].evil.com")] == [200, 200, 403, 403]
