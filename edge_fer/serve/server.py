"""A live view of a running pipeline over HTTP: the page, MJPEG, Server-Sent Events, health.

    from edge_fer.serve import FerServer, ServeOptions

    with FerServer.create_from_options(ServeOptions(port=0), info={"source": "camera 0"}) as server:
        print(server.url)                        # http://127.0.0.1:PORT/
        for result, frame_bgr in my_loop():
            server.publish(result, frame_bgr)   # O(1), never waits for a viewer

Routes (the table is ``FerServer.routes``: exact path -> function of the request handler):

    /               the page (package data page.html; offline: no CDN, fonts or external scripts)
    /stream.mjpg    annotated frames, multipart/x-mixed-replace, newest frame each time
    /events         Server-Sent Events, ``data: <the frame's --json object>`` per frame
    /snapshot.jpg   the latest annotated frame
    /healthz        JSON: frames, fps, source state, viewers, JPEG encode cost

One more route is one call: ``server.add_route("/x", func)`` for a function of the handler
(see :mod:`edge_fer.serve.handler` for the helpers it can call), or ``server.mount("/device/",
folder)`` for static files under a prefix (index.html at the prefix; no listing, no traversal).

Security: 127.0.0.1 by default. Any other address must be given explicitly (``host``) and then
needs a token: ``options.token`` or one generated here, part of :attr:`FerServer.url`; requests
without it get 401 (query ``?token=`` or ``Authorization: Bearer``). Ports 1-1023 are refused
unless ``allow_privileged_port`` (a camera server should not run as root; a reverse proxy can
front it). At most ``max_clients`` streaming viewers (/stream.mjpg and /events together, counted
after the token check; more get 503); nothing else counts against them. A connection costs no
thread until its request head is in (:mod:`edge_fer.serve.front`: one selector thread reads
every head, within ``header_timeout_s``, so idle and trickling connections cost almost nothing);
then one thread answers it. A loopback server answers only to ``localhost`` and the address it
bound (the Host header).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..draw import COLORS_BGR
from ..errors import OptionsError
from ..types import FrameResult
from . import handler as routes_module
from .broadcast import ClientSlots, FrameBroadcast
from .front import Front

log = logging.getLogger("edge_fer.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_CLIENTS = 4
#: Connections the kernel queues for accept (a burst of them must not wait on retransmits).
LISTEN_BACKLOG = 1024
TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{8,128}")  # fullmatch: no newline may end it
#: One label of a host name (IDNA names are checked in their ASCII form).
HOST_LABEL_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
#: /healthz calls a running source "stalled" after this long without a frame.
STALLED_S = 2.0
PAGE = Path(__file__).with_name("page.html")


@dataclass(frozen=True)
class ServeOptions:
    """Where and how to serve. ``port`` 0 picks a free port. ``write_timeout_s``: a client
    whose socket takes nothing for this long is dropped (a viewer's socket buffers at most
    64 KiB of its stream, ``handler.STREAM_SNDBUF``, so one that stops reading fills it soon).
    ``header_timeout_s``: the most a request's head (request line and headers) may take."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_clients: int = DEFAULT_MAX_CLIENTS
    jpeg_quality: int = 80
    allow_privileged_port: bool = False
    write_timeout_s: float = 10.0
    header_timeout_s: float = 5.0
    #: PEM certificate chain and private key: serve HTTPS (a phone's camera page needs it).
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not valid_host(self.host):
            raise OptionsError(f"ServeOptions.host={self.host!r}: expected an address or host name (dot-separated "
                               "labels of 1 to 63 letters, digits, - or _), e.g. 127.0.0.1")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise OptionsError(f"ServeOptions.port={self.port!r}: expected 0..65535")
        if 0 < self.port < 1024 and not self.allow_privileged_port:
            raise OptionsError(f"ServeOptions.port={self.port}: privileged (below 1024); expected a port >= 1024, "
                               "or 0 for a free one")
        if self.token is not None and not (isinstance(self.token, str) and TOKEN_RE.fullmatch(self.token)):
            raise OptionsError("ServeOptions.token: expected 8 to 128 characters of A-Z a-z 0-9 . _ ~ -, "
                               f"got {len(str(self.token))} characters"
                               + ("" if str(self.token).isprintable() else " with a control character"))
        if not _is_int(self.max_clients) or not 1 <= self.max_clients <= 64:
            raise OptionsError(f"ServeOptions.max_clients={self.max_clients!r}: expected 1..64")
        if not _is_int(self.jpeg_quality) or not 1 <= self.jpeg_quality <= 100:
            raise OptionsError(f"ServeOptions.jpeg_quality={self.jpeg_quality!r}: expected 1..100")
        for field in ("write_timeout_s", "header_timeout_s"):
            value = getattr(self, field)
            if not (_is_int(value) or isinstance(value, float)) or not 0 < value <= 3600:
                raise OptionsError(f"ServeOptions.{field}={value!r}: expected seconds, > 0 and <= 3600")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise OptionsError("ServeOptions.tls_cert and ServeOptions.tls_key go together: give both (PEM files), or neither")
        for field, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            if path is not None and not Path(path).is_file():
                raise OptionsError(f"ServeOptions.{field}={path!r}: no such file (expected a PEM file; docs/phone.md makes one)")

    @classmethod
    def parse(cls, address: str | None, **kwargs) -> "ServeOptions":
        """From ``--serve [HOST:]PORT``: ``8080``, ``0.0.0.0:8080``, ``[::1]:0``; None or "" is
        127.0.0.1:8080."""
        text = (address or "").strip()
        host, port = DEFAULT_HOST, str(DEFAULT_PORT)
        if text.startswith("["):
            match = re.fullmatch(r"\[([^\]]+)\]:([^:]*)", text)
            if not match:
                raise OptionsError(f"ServeOptions.address={text!r}: expected [IPV6]:PORT, e.g. [::1]:8080")
            host, port = match.groups()
        elif text.count(":") > 1:
            raise OptionsError(f"ServeOptions.address={text!r}: expected an IPv6 address in brackets, e.g. [::1]:8080")
        elif ":" in text:
            host, port = text.split(":")
        elif text:
            port = text
        if not re.fullmatch(r"[0-9]+", port):  # ASCII digits: '²'.isdigit() is True
            raise OptionsError(f"ServeOptions.address={text!r}: expected [HOST:]PORT, e.g. 8080 or 127.0.0.1:8080")
        digits = port.lstrip("0") or "0"
        if len(digits) > 12:  # int() refuses over 4,300 digits (ValueError): no port has 13
            raise OptionsError(f"ServeOptions.port={digits[:8]}... ({len(digits)} digits): expected 0..65535")
        return cls(host=host or DEFAULT_HOST, port=int(digits), **kwargs)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def valid_host(host: str) -> bool:
    """An IP address (IPv6 with an optional %zone) or a host name whose labels fit DNS (1 to 63
    characters each, 253 in all): what getaddrinfo can take without a UnicodeError."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
        return True
    except ValueError:
        pass
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    return len(name) <= 253 and all(HOST_LABEL_RE.fullmatch(label) for label in labels)


def resolve(host: str, port: int) -> tuple[int, tuple, bool]:
    """(address family, socket address, is loopback) for binding ``host``; OptionsError if no
    such address exists."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OptionsError(f"cannot serve on host {host!r}: it does not resolve ({exc.strerror})") from None
    except UnicodeError:
        raise OptionsError(f"ServeOptions.host={host!r}: expected an address or host name, e.g. 127.0.0.1") from None
    family, _, _, _, sockaddr = infos[0]
    loopback = all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)
    return family, sockaddr, loopback


def _shut(sock: socket.socket) -> None:
    """Wake whatever waits on ``sock`` (its thread then closes it)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class FerServer:
    """The HTTP server thread plus the broadcast it serves; a context manager (closing stops
    the thread, drops every client and frees the port)."""

    def __init__(self, options: ServeOptions = ServeOptions(), info: dict | None = None) -> None:
        self.options = options
        self.info = dict(info or {})
        self.broadcast = FrameBroadcast(options.jpeg_quality)
        self.slots = ClientSlots(options.max_clients)
        self.source_state = "starting"
        self.routes: dict[str, Callable] = {
            "/": routes_module.page, "/index.html": routes_module.page,
            "/stream.mjpg": routes_module.stream_mjpeg, "/events": routes_module.events,
            "/snapshot.jpg": routes_module.snapshot, "/healthz": routes_module.healthz,
        }
        self.mounts: dict[str, Callable] = {}
        self.public_prefixes: set[str] = set()
        self.page_html = render_page(self.info)
        self._times = deque(maxlen=30)
        self._started = time.monotonic()
        family, sockaddr, self.loopback = resolve(options.host, options.port)
        #: What a Host header may name on a loopback server: localhost or the address bound.
        self.host_names = {"localhost", routes_module.normal_name(options.host),
                           routes_module.normal_name(sockaddr[0].split("%")[0])}
        self.token = options.token or (None if self.loopback else secrets.token_urlsafe(16))
        self.open_sockets: set[socket.socket] = set()  # the requests being answered
        self._sockets_lock = threading.Lock()
        tls = self._tls_context() if options.tls_cert is not None else None
        listener = self._bind(family, sockaddr)
        self.port = listener.getsockname()[1]
        self._front: Front | None = Front(listener, tls, options.header_timeout_s, self._dispatch)
        log.debug("serving %s", self.url)

    @classmethod
    def create_from_options(cls, options: ServeOptions = ServeOptions(), info: dict | None = None) -> "FerServer":
        return cls(options, info)

    def _bind(self, family: int, sockaddr: tuple) -> socket.socket:
        where = f"{self.options.host}:{self.options.port}"
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(sockaddr)
            listener.listen(LISTEN_BACKLOG)
            return listener
        except OSError as exc:
            listener.close()
            if exc.errno == errno.EADDRINUSE:
                raise OptionsError(f"cannot serve on {where}: the port is in use (another edge-fer?); "
                                   "choose another port, or 0 for a free one") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise OptionsError(f"cannot serve on {where}: permission denied "
                                   "(ports below 1024 need root)") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise OptionsError(f"cannot serve on {where}: {self.options.host} is not an address "
                                   "of this machine") from None
            raise OptionsError(f"cannot serve on {where}: {exc.strerror or exc}") from None

    def _tls_context(self):
        """HTTPS: a TLS server context. Each connection's handshake runs in the accept thread's
        selector loop, without blocking, within the request head's deadline."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.options.tls_cert, self.options.tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise OptionsError(f"ServeOptions.tls_cert/tls_key: cannot load {self.options.tls_cert} with "
                               f"{self.options.tls_key} ({getattr(exc, 'reason', None) or exc}): expected a PEM "
                               "certificate and its private key") from None
        return context

    def _dispatch(self, sock: socket.socket, address: tuple, head: bytes) -> None:
        """A complete request head: answer it in a thread of its own."""
        sock.settimeout(self.options.write_timeout_s)
        with self._sockets_lock:
            self.open_sockets.add(sock)
        try:
            threading.Thread(target=self._answer, args=(sock, address, head), name="edge-fer request",
                             daemon=True).start()
        except RuntimeError as exc:  # no more threads: this request goes unanswered, not the server
            log.warning("cannot answer %s: %s", address[0], exc)
            with self._sockets_lock:
                self.open_sockets.discard(sock)
            sock.close()

    def _answer(self, sock: socket.socket, address: tuple, head: bytes) -> None:
        try:
            routes_module.Handler(sock, address, self, head)
        except Exception:  # noqa: BLE001 - a client gone mid-answer, a TLS error: one connection's end
            log.debug("request from %s failed", address[0], exc_info=True)
        finally:
            with self._sockets_lock:
                self.open_sockets.discard(sock)
            _shut(sock)
            sock.close()

    # what the loop calls -----------------------------------------------------------------------
    def publish(self, result: FrameResult, frame_bgr: np.ndarray | None = None, *,
                annotated_bgr: np.ndarray | None = None, fps: float | None = None,
                event_json: str | None = None) -> None:
        """Offer one frame to the viewers. ``frame_bgr`` is annotated (and encoded) only if
        someone watches; pass ``annotated_bgr`` when it is drawn already. ``event_json``: the
        text each /events viewer gets, by default ``json.dumps(result.to_json())``. Keep the
        arrays unchanged afterwards (they are read by viewer threads)."""
        if event_json is None:
            event_json = json.dumps(result.to_json())
        self._times.append(time.monotonic())
        self.source_state = "running"
        self.broadcast.publish(result, event_json, frame_bgr, annotated_bgr, fps)

    def set_source_state(self, state: str) -> None:
        """What /healthz says of the source: starting, running, ended, failed..."""
        self.source_state = state

    # routes ------------------------------------------------------------------------------------
    def add_route(self, path: str, route: Callable) -> None:
        """Serve ``route(handler)`` at exactly ``path`` (it must start with /)."""
        if not path.startswith("/") or path in self.routes:
            raise OptionsError(f"route {path!r}: expected a new path starting with /")
        self.routes[path] = route

    def mount(self, prefix: str, directory: str | Path, public: bool = False) -> None:
        """Serve the files under ``directory`` at ``prefix`` (e.g. ``/device/``). ``public``:
        no token needed (static files that show nothing of this machine's camera, such as the
        phone page, whose own requests cannot carry the token)."""
        directory = Path(directory)
        if not prefix.startswith("/") or not prefix.endswith("/") or prefix == "/":
            raise OptionsError(f"mount prefix {prefix!r}: expected /name/")
        if not directory.is_dir():
            raise OptionsError(f"mount {prefix}: {directory} is not a folder")
        self.mounts[prefix] = routes_module.static_files(prefix, directory)
        if public:
            self.public_prefixes.add(prefix)
        self.routes.setdefault(prefix.rstrip("/"), lambda h: h.send_bytes(
            301, "text/plain", b"", {"Location": prefix}))

    def is_public(self, path: str) -> bool:
        return any(path.startswith(prefix) for prefix in self.public_prefixes)

    def route(self, path: str) -> Callable | None:
        if path in self.routes:
            return self.routes[path]
        for prefix, route in self.mounts.items():
            if path.startswith(prefix):
                return route
        return None

    # state -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = self.options.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.options.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def fps(self) -> float:
        times = self._times
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def health(self) -> dict:
        state = self.source_state
        last = self.broadcast.last_publish_s
        if state == "running" and last is not None and time.monotonic() - last > STALLED_S:
            state = "stalled"
        encode_ms = self.broadcast.encode_ms
        return {
            "status": "ok", "frames": self.broadcast.published, "fps": round(self.fps, 2),
            "source": {"name": self.info.get("source"), "state": state},
            "model": self.info.get("model"), "detector": self.info.get("detector"),
            "viewers": self.slots.active, "max_clients": self.options.max_clients,
            "refused": self.slots.refused,
            "jpeg_encodes": self.broadcast.encodes,
            "jpeg_encode_ms": None if encode_ms is None else round(encode_ms, 3),
            "uptime_s": round(time.monotonic() - self._started, 1),
        }

    # lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop serving: wake the viewers, close their sockets, free the port."""
        if self._front is None:
            return
        self.broadcast.close()
        self._front.close()
        self._front = None
        with self._sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:  # a viewer blocked in a write returns at once
            _shut(sock)

    def __enter__(self) -> "FerServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_page(info: dict) -> bytes:
    """page.html with the server's facts (source, model, colours) in its config element."""
    colors = {label: "#%02x%02x%02x" % (r, g, b) for label, (b, g, r) in COLORS_BGR.items()}
    config = json.dumps({**info, "colors": colors}).replace("<", "\\u003c")
    html = PAGE.read_text(encoding="utf-8")
    return html.replace("{{CONFIG}}", config).encode("utf-8")
