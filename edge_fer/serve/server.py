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
    /faces.css, /faces.js   the per-face panel, shared with the phone page (edge_fer/web/static/)

One more route is one call: ``server.add_route("/x", func)`` for a function of the handler
(see :mod:`edge_fer.serve.handler` for the helpers it can call), or ``server.mount("/device/",
folder)`` for static files under a prefix (index.html at the prefix; no listing, no traversal;
gzipped copies and 304s: :func:`~edge_fer.serve.handler.static_files`). ``FerServer.for_folder``
serves one folder and nothing else (``edge-fer serve-web``).

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
import secrets
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np

from ..draw import COLORS_BGR
from ..errors import OptionsError
from ..types import FrameResult
from . import handler as routes_module
from .broadcast import ClientSlots, FrameBroadcast
from .front import Front
from .options import ServeOptions

log = logging.getLogger("edge_fer.serve")

#: Connections the kernel queues for accept (a burst of them must not wait on retransmits).
LISTEN_BACKLOG = 1024
#: /healthz calls a running source "stalled" after this long without a frame.
STALLED_S = 2.0
PAGE = Path(__file__).with_name("page.html")


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


class SentCounter:
    """Static files answered and the body bytes sent for them (``FerServer.static_sent``)."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.files += 1
            self.bytes += nbytes


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
            "/faces.css": shared_file("faces.css"), "/faces.js": shared_file("faces.js"),
        }
        self.mounts: dict[str, Callable] = {}
        self.public_prefixes: set[str] = set()
        self.static_sent = SentCounter()
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

    @classmethod
    def for_folder(cls, directory: str | Path, options: ServeOptions = ServeOptions()) -> "FerServer":
        """A server of ``directory``'s files at / and nothing else (``edge-fer serve-web``): no
        live view, no token (the files are public wherever it listens)."""
        server = cls(options, {"source": f"folder {directory}"})
        server.routes, server.token = {}, None
        server.mount("/", directory, public=True)
        return server

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
        if not prefix.startswith("/") or not prefix.endswith("/") or prefix in self.routes:
            raise OptionsError(f"mount prefix {prefix!r}: expected /name/ (or / on a server without a page)")
        if not directory.is_dir():
            raise OptionsError(f"mount {prefix}: {directory} is not a folder")
        self.mounts[prefix] = routes_module.static_files(prefix, directory)
        if public:
            self.public_prefixes.add(prefix)
        if prefix != "/":
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


def shared_file(name: str) -> Callable:
    """A route answering ``name`` of the phone page's folder (edge_fer/web/static/): the faces
    panel's faces.css and faces.js, which the live page shares with the phone page."""
    from ..web.paths import STATIC_DIR

    data = (STATIC_DIR / name).read_bytes()
    content_type = {".css": "text/css", ".js": "text/javascript"}[Path(name).suffix] + "; charset=utf-8"
    return lambda h: h.send_bytes(200, content_type, data)
