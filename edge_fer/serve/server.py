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
front it). At most ``max_clients`` streaming viewers (/stream.mjpg and /events together; more
get 503) and ``max_clients + 8`` connections in all (more are closed at once, logged).
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
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np

from ..draw import COLORS_BGR
from ..errors import OptionsError
from ..types import FrameResult
from . import handler as routes_module
from .broadcast import ClientSlots, FrameBroadcast

log = logging.getLogger("edge_fer.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_CLIENTS = 4
#: Connections beyond the viewers (page loads, snapshots, health checks) before refusing.
EXTRA_CONNECTIONS = 8
TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{8,128}$")
#: /healthz calls a running source "stalled" after this long without a frame.
STALLED_S = 2.0
PAGE = Path(__file__).with_name("page.html")


@dataclass(frozen=True)
class ServeOptions:
    """Where and how to serve. ``port`` 0 picks a free port. ``write_timeout_s``: a client
    whose socket accepts nothing for this long is dropped."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_clients: int = DEFAULT_MAX_CLIENTS
    jpeg_quality: int = 80
    allow_privileged_port: bool = False
    write_timeout_s: float = 10.0
    #: PEM certificate chain and private key: serve HTTPS (a phone's camera page needs it).
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host or any(c.isspace() or c in "/[]?#@" for c in self.host):
            raise OptionsError(f"ServeOptions.host={self.host!r}: expected an address or host name, e.g. 127.0.0.1")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise OptionsError(f"ServeOptions.port={self.port!r}: expected 0..65535")
        if 0 < self.port < 1024 and not self.allow_privileged_port:
            raise OptionsError(f"ServeOptions.port={self.port}: privileged (below 1024); expected a port >= 1024, "
                               "or 0 for a free one")
        if self.token is not None and not TOKEN_RE.match(self.token):
            raise OptionsError("ServeOptions.token: expected 8 to 128 characters of A-Z a-z 0-9 . _ ~ -, "
                               f"got {len(self.token)} characters")
        if not 1 <= self.max_clients <= 64:
            raise OptionsError(f"ServeOptions.max_clients={self.max_clients!r}: expected 1..64")
        if not 1 <= self.jpeg_quality <= 100:
            raise OptionsError(f"ServeOptions.jpeg_quality={self.jpeg_quality!r}: expected 1..100")
        if not self.write_timeout_s > 0:
            raise OptionsError(f"ServeOptions.write_timeout_s={self.write_timeout_s!r}: expected > 0")
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
            match = re.match(r"^\[([^\]]+)\]:(\d+)$", text)
            if not match:
                raise OptionsError(f"ServeOptions.address={text!r}: expected [IPV6]:PORT, e.g. [::1]:8080")
            host, port = match.groups()
        elif text.count(":") > 1:
            raise OptionsError(f"ServeOptions.address={text!r}: expected an IPv6 address in brackets, e.g. [::1]:8080")
        elif ":" in text:
            host, port = text.split(":")
        elif text:
            port = text
        if not port.isdigit():
            raise OptionsError(f"ServeOptions.address={text!r}: expected [HOST:]PORT, e.g. 8080 or 127.0.0.1:8080")
        return cls(host=host or DEFAULT_HOST, port=int(port), **kwargs)


def resolve(host: str, port: int) -> tuple[int, tuple, bool]:
    """(address family, socket address, is loopback) for binding ``host``; OptionsError if no
    such address exists."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OptionsError(f"cannot serve on host {host!r}: it does not resolve ({exc.strerror})") from None
    family, _, _, _, sockaddr = infos[0]
    loopback = all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)
    return family, sockaddr, loopback


class _HttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection cap and a list of open sockets (to close them)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, app: "FerServer", family: int, sockaddr: tuple) -> None:
        self.address_family = family
        self.app = app
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(sockaddr, routes_module.Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()

    def process_request(self, request, client_address) -> None:
        with self.sockets_lock:
            full = len(self.open_sockets) >= self.app.options.max_clients + EXTRA_CONNECTIONS
            if not full:
                self.open_sockets.add(request)
        if full:
            log.warning("refused connection from %s: %d connections open", client_address[0],
                        len(self.open_sockets))
            self.app.refused_connections += 1
            try:
                request.setblocking(False)
                request.send(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            super().shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        log.debug("request from %s failed", client_address[0], exc_info=True)


class FerServer:
    """The HTTP server thread plus the broadcast it serves; a context manager (closing stops
    the thread, drops every client and frees the port)."""

    def __init__(self, options: ServeOptions = ServeOptions(), info: dict | None = None) -> None:
        self.options = options
        self.info = dict(info or {})
        self.broadcast = FrameBroadcast(options.jpeg_quality)
        self.slots = ClientSlots(options.max_clients)
        self.refused_connections = 0
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
        self.token = options.token or (None if self.loopback else secrets.token_urlsafe(16))
        self._http = self._bind(family, sockaddr)
        if options.tls_cert is not None:
            self._wrap_tls()
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="edge-fer server", daemon=True)
        self._thread.start()
        log.debug("serving %s", self.url)

    @classmethod
    def create_from_options(cls, options: ServeOptions = ServeOptions(), info: dict | None = None) -> "FerServer":
        return cls(options, info)

    def _bind(self, family: int, sockaddr: tuple) -> _HttpServer:
        where = f"{self.options.host}:{self.options.port}"
        try:
            return _HttpServer(self, family, sockaddr)
        except OSError as exc:
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

    def _wrap_tls(self) -> None:
        """HTTPS: the listening socket wrapped in a TLS server context. The handshake runs in
        each request's thread (not in accept), so a slow client never stalls the others."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.options.tls_cert, self.options.tls_key)
        except (ssl.SSLError, OSError) as exc:
            self._http.server_close()
            raise OptionsError(f"ServeOptions.tls_cert/tls_key: cannot load {self.options.tls_cert} with "
                               f"{self.options.tls_key} ({getattr(exc, 'reason', None) or exc}): expected a PEM "
                               "certificate and its private key") from None
        self._http.socket = context.wrap_socket(self._http.socket, server_side=True,
                                                do_handshake_on_connect=False)

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
            "refused": self.slots.refused + self.refused_connections,
            "jpeg_encodes": self.broadcast.encodes,
            "jpeg_encode_ms": None if encode_ms is None else round(encode_ms, 3),
            "uptime_s": round(time.monotonic() - self._started, 1),
        }

    # lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop serving: wake the viewers, close their sockets, join the thread, free the port."""
        if self._http is None:
            return
        self.broadcast.close()
        try:
            self._http.shutdown()
        finally:
            with self._http.sockets_lock:
                sockets = list(self._http.open_sockets)
            for sock in sockets:  # a viewer blocked in a write returns at once
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._http.server_close()
            self._thread.join(5.0)
            self._http = None

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
