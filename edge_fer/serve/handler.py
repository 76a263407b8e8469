"""The HTTP side of :class:`~edge_fer.serve.server.FerServer`: one request per connection.

Every request: its head (request line and headers) within ``header_timeout_s`` of the
connection (else the connection is closed: slowloris), GET or HEAD only (others 405, unknown
methods 501), no request body (413), on a loopback server a Host header naming ``localhost``
or the bound address (403: no DNS rebinding), the token checked when the server has one (401),
then the path looked up in the server's route table (404 otherwise; no directory listing
anywhere). The stdlib bounds the request line (64 KiB, else 414) and the header count (100,
else 431). After the head, the socket timeout (``write_timeout_s``) bounds every write, so a
client that stops reading is dropped; streams keep a small send buffer so that happens soon.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import mimetypes
import os
import re
import select
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("edge_fer.serve")

BOUNDARY = "edge-fer-frame"
#: A /stream.mjpg part's delimiter and head, sent at once after each frame (a browser takes a
#: part as whole only when it has the next part's head).
PART_HEAD = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
#: How often an idle /events stream sends a comment line (finds vanished clients).
KEEPALIVE_S = 5.0
#: A streaming viewer's socket send buffer (the kernel doubles it).
STREAM_SNDBUF = 32 * 1024
GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout, OSError)


class SocketWriter:
    """Unbuffered writes (``sendall``: the socket's timeout bounds each one)."""

    closed = False

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Handler(BaseHTTPRequestHandler):
    server_version = "edge-fer"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection, closed after the response
    sent_head = False

    # set up --------------------------------------------------------------------------------------
    def __init__(self, sock: socket.socket, address: tuple, app, head: bytes) -> None:
        """Answers the one request whose ``head`` (request line and headers) the server's
        :class:`~edge_fer.serve.front.Front` has read from ``sock`` already."""
        self.head_bytes = head
        super().__init__(sock, address, app)

    @property
    def app(self):
        """The FerServer this request belongs to."""
        return self.server

    def setup(self) -> None:
        """The request is read from the head in memory; responses go straight to the socket,
        whose timeout (``write_timeout_s``) bounds every write."""
        self.connection = self.request
        self.rfile = io.BytesIO(self.head_bytes)
        self.wfile = SocketWriter(self.connection)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.address_string(), format % args)

    # methods -----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _method_not_allowed(self) -> None:
        self.send_text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _method_not_allowed

    def _dispatch(self, head: bool) -> None:
        self.head = head
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length", "0").strip() != "0":
            self.send_text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "requests carry no body here\n")
            return
        url = urlsplit(self.path)
        if self.app.loopback and not self._loopback_host():
            log.info("refused %s: Host %r on a loopback server", self.address_string(), self.headers.get("Host"))
            self.send_text(HTTPStatus.FORBIDDEN, "this server answers only to localhost / 127.0.0.1\n")
            return
        if not self.app.is_public(url.path) and not self._authorized(url.query):
            log.info("refused %s %s: missing or wrong token", self.address_string(), url.path)
            self.send_text(HTTPStatus.UNAUTHORIZED, "token required: open the URL that edge-fer printed "
                           "(it ends in ?token=...)\n", {"WWW-Authenticate": 'Bearer realm="edge-fer"'})
            return
        route = self.app.route(url.path)
        if route is None:
            self.send_text(HTTPStatus.NOT_FOUND, f"no such page: {url.path[:200]}\n")
            return
        try:
            route(self)
        except GONE as exc:
            log.debug("client %s gone: %s", self.address_string(), exc)
        except Exception:  # a route's own bug: say so, never just close the connection
            log.exception("%s %s failed", self.command, url.path[:200])
            if not self.sent_head:
                self.send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (logged)\n")

    def _loopback_host(self) -> bool:
        """A loopback server answers only requests addressed to it: ``localhost`` or the address
        it is bound to (any port: a tunnel may forward another). A web page elsewhere cannot
        read it through DNS rebinding: its Host header would be its own name. A request with
        no Host header at all (HTTP/1.0 tools) is not a browser's, and is answered."""
        value = self.headers.get("Host")
        return value is None or host_name(value) in self.app.host_names

    def _authorized(self, query: str) -> bool:
        expected = self.app.token
        if expected is None:
            return True
        given = parse_qs(query).get("token", [""])[0]
        auth = self.headers.get("Authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), expected.encode())

    # responses ---------------------------------------------------------------------------------
    def send_head(self, status: int, content_type: str, length: int | None = None,
                  extra: dict[str, str] | None = None) -> None:
        self.sent_head = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        extra = {"Cache-Control": "no-store", **(extra or {})}
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()

    def send_bytes(self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_head(status, content_type, len(body), extra)
        if not self.head:
            self.wfile.write(body)

    def send_text(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        self.head = getattr(self, "head", self.command == "HEAD")
        self.send_bytes(status, "text/plain; charset=utf-8", text.encode(), extra)

    def send_json(self, status: int, value) -> None:
        self.send_bytes(status, "application/json", json.dumps(value).encode())

    def client_gone(self) -> bool:
        """True once the client closed its end (it sends nothing after its one request, so
        a readable socket means EOF or a reset): lets a viewer's slot go before its next write."""
        try:
            if not select.select([self.connection], [], [], 0)[0]:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def start_stream(self, content_type: str) -> None:
        """The head of an endless response, on a socket with a small send buffer: a viewer that
        stops reading fills it soon, and its next write times out (``write_timeout_s``)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        self.send_head(HTTPStatus.OK, content_type)

    def refuse_busy(self) -> None:
        limit = self.app.options.max_clients
        log.warning("refused viewer %s: %d of %d already watching (ServeOptions.max_clients)",
                    self.address_string(), limit, limit)
        self.send_text(HTTPStatus.SERVICE_UNAVAILABLE, f"too many viewers: {limit} already watching "
                       "(edge-fer run --max-clients)\n", {"Retry-After": "5"})


# routes: each takes the handler -------------------------------------------------------------
def page(h: Handler) -> None:
    h.send_bytes(HTTPStatus.OK, "text/html; charset=utf-8", h.app.page_html,
                 {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                  "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"})


def healthz(h: Handler) -> None:
    h.send_json(HTTPStatus.OK, h.app.health())


def snapshot(h: Handler) -> None:
    frame = h.app.broadcast.latest
    data = h.app.broadcast.jpeg(frame) if frame is not None else None
    if data is None:
        h.send_text(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet\n", {"Retry-After": "1"})
        return
    h.send_bytes(HTTPStatus.OK, "image/jpeg", data)


def stream_mjpeg(h: Handler) -> None:
    """Annotated frames as multipart/x-mixed-replace: the newest one each time, never a queue.
    Each frame is followed at once by the delimiter and the next part's head (the parts carry
    no Content-Length: the delimiter ends each), so a browser shows it without waiting for the
    next frame, which may never come (a paused or ended source, one published frame). The
    live page starts this stream after its load event (page.html)."""
    if not h.app.slots.try_acquire():
        h.refuse_busy()
        return
    try:
        h.start_stream(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        h.wfile.write(PART_HEAD)
        seq = 0
        while not h.head and not h.client_gone():
            frame = h.app.broadcast.wait_frame(seq, KEEPALIVE_S)
            if frame is None:
                if h.app.broadcast.closed:
                    return
                continue
            seq = frame.seq
            data = h.app.broadcast.jpeg(frame)
            if data is None:
                continue
            h.wfile.write(data + b"\r\n" + PART_HEAD)
            h.wfile.flush()
    finally:
        h.app.slots.release()


def events(h: Handler) -> None:
    """Server-Sent Events: ``data: <the frame's --json object>`` per frame."""
    if not h.app.slots.try_acquire():
        h.refuse_busy()
        return
    try:
        h.start_stream("text/event-stream; charset=utf-8")
        latest = h.app.broadcast.latest
        seq = latest.seq - 1 if latest is not None else 0  # start with the current frame
        while not h.head and not h.client_gone():
            batch = h.app.broadcast.wait_events(seq, KEEPALIVE_S)
            if batch is None:
                return
            if not batch:
                h.wfile.write(b": keepalive\n\n")
            else:
                seq = batch[-1][0]
                h.wfile.write("".join(f"id: {s}\ndata: {text}\n\n" for s, text in batch).encode())
            h.wfile.flush()
    finally:
        h.app.slots.release()


def host_name(value: str) -> str | None:
    """The name in a Host header (``name``, ``name:port``, ``[v6]``, ``[v6]:port``) as
    :func:`normal_name` gives it; None for anything else (``[::1].evil.com``)."""
    match = re.fullmatch(r"\[([0-9a-f:.]+)\](?::[0-9]{1,5})?|([a-z0-9._-]+?)\.?(?::[0-9]{1,5})?",
                         value.strip().lower())
    if match is None:
        return None
    if match.group(1) is None:
        return normal_name(match.group(2))
    try:
        return ipaddress.ip_address(match.group(1)).compressed  # brackets hold an address only
    except ValueError:
        return None


def normal_name(name: str) -> str:
    """A host name in lower case, an IP address in its short form (``::1``, ``127.0.0.1``)."""
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name.lower().rstrip(".")


def static_files(prefix: str, directory: Path):
    """A route serving the files under ``directory`` at ``prefix`` (``prefix`` + ``/`` gives its
    index.html); no listing, nothing outside ``directory`` (``..``, links out, NUL all 404).
    A file with a ``NAME.gz`` beside it (``export-web`` writes them) is sent compressed to a client
    that accepts gzip. ETag and ``Cache-Control: no-cache``: a browser revalidates (304, no
    body) instead of downloading a file again. Answers and their body bytes are counted in ``app.static_sent``."""
    root = directory.resolve()

    def route(h: Handler) -> None:
        rel = unquote(urlsplit(h.path).path)[len(prefix):].lstrip("/") or "index.html"
        target = _static_target(root, rel)
        if target is None:
            h.send_text(HTTPStatus.NOT_FOUND, "no such file\n")
            return
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        extra = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        packed = target.with_name(target.name + ".gz")
        if accepts_gzip(h.headers.get("Accept-Encoding", "")) and packed.is_file():
            target, extra["Content-Encoding"] = packed, "gzip"
        try:
            stat = target.stat()
            extra["ETag"] = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}{"-gz" if target is packed else ""}"'
            if extra["ETag"] in [tag.strip() for tag in h.headers.get("If-None-Match", "").split(",")]:
                h.app.static_sent.add(0)
                h.send_head(HTTPStatus.NOT_MODIFIED, content_type, None, extra)
                return
            data = target.read_bytes()
        except OSError:
            h.send_text(HTTPStatus.NOT_FOUND, "no such file\n")
            return
        h.app.static_sent.add(0 if h.head else len(data))  # counted first: a client may act on the reply at once
        h.send_bytes(HTTPStatus.OK, content_type, data, extra)

    return route


def _static_target(root: Path, rel: str) -> Path | None:
    """The file ``rel`` names under ``root``, or None (outside it, a folder, a bad name)."""
    parts = rel.split("/")
    if "\x00" in rel or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        return None
    try:
        target = root.joinpath(*parts).resolve()
        inside = os.path.commonpath([str(root), str(target)]) == str(root)
        return target if inside and target.is_file() else None
    except (OSError, RuntimeError, ValueError):  # a name too long for the file system, a link loop
        return None


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (``gzip`` or ``*`` without ``q=0``)."""
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params.strip().startswith("q=") or float(q) > 0
            except ValueError:
                return False
    return False
