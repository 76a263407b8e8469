"""Connections until their request head is in: one selector thread for all of them.

An accepted connection costs a socket and a small buffer here, no thread. It must deliver its
request head (request line and headers, up to the blank line; the TLS handshake first, where
there is one) within ``header_timeout_s`` of its accept and in at most :data:`MAX_HEAD`
bytes, or it is closed (with a 408 or a 431 where the socket takes it). At most
:data:`MAX_PENDING` wait at once; one more drops the oldest. Only a complete head goes on,
to ``dispatch(sock, address, head)`` (which gives it a thread of its own). So idle and
trickling connections (slowloris) cost almost nothing and never delay anyone else.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import ssl
import threading
import time
from typing import Callable

log = logging.getLogger("edge_fer.serve")

#: Connections still sending their request head at once; one more drops the oldest.
MAX_PENDING = 512
#: The most bytes of a request head (the handler then applies the stdlib's own bounds: a
#: request line over 64 KiB is a 414, more than 100 headers a 431).
MAX_HEAD = 128 * 1024
#: Accepts per round of the loop, so that reads and deadlines keep their turn in a flood.
ACCEPTS_PER_ROUND = 64
HEAD_END = re.compile(rb"\r?\n\r?\n")


class _Pending:
    """One connection still sending its head."""

    __slots__ = ("sock", "address", "deadline", "head", "handshaken")

    def __init__(self, sock: socket.socket, address, deadline: float, handshaken: bool) -> None:
        self.sock, self.address, self.deadline, self.handshaken = sock, address, deadline, handshaken
        self.head = bytearray()


class Front:
    """Accepts on ``listener`` (a bound, listening socket) and reads each connection's head."""

    def __init__(self, listener: socket.socket, tls: ssl.SSLContext | None, header_timeout_s: float,
                 dispatch: Callable[[socket.socket, tuple, bytes], None]) -> None:
        self.listener, self.tls, self.header_timeout_s, self.dispatch = listener, tls, header_timeout_s, dispatch
        self.pending: dict[socket.socket, _Pending] = {}  # in accept order: the oldest first
        self.selector = selectors.DefaultSelector()
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, None)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="edge-fer accept", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, close the waiting connections and the listening socket."""
        self._closed = True
        self._thread.join(5.0)

    def _run(self) -> None:
        try:
            while not self._closed:
                for key, _ in self.selector.select(0.1):
                    if key.data is None:
                        self._accept()
                    else:
                        self._read(key.data)
                self._expire()
        finally:
            for waiting in list(self.pending.values()):
                self._drop(waiting)
            self.selector.close()
            self.listener.close()

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_ROUND):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: the next round tries again
                log.warning("cannot accept a connection: %s", exc)
                return
            sock.setblocking(False)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            waiting = _Pending(sock, address, time.monotonic() + self.header_timeout_s, self.tls is None)
            self.pending[sock] = waiting
            self.selector.register(sock, selectors.EVENT_READ, waiting)
            if len(self.pending) > MAX_PENDING:
                oldest = next(iter(self.pending.values()))
                log.info("dropped %s: %d connections waiting for their request", oldest.address[0], MAX_PENDING)
                self._drop(oldest)

    def _read(self, waiting: _Pending) -> None:
        sock = waiting.sock
        try:
            if not waiting.handshaken:
                sock.do_handshake()
                waiting.handshaken = True
                self.selector.modify(sock, selectors.EVENT_READ, waiting)
            data = sock.recv(65536)
            while data and isinstance(sock, ssl.SSLSocket) and sock.pending():
                data += sock.recv(65536)  # decrypted bytes the selector cannot see
        except ssl.SSLWantWriteError:
            self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, waiting)
            return
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except OSError as exc:  # a reset, a failed handshake (plain HTTP to an HTTPS port)
            log.debug("connection from %s failed: %s", waiting.address[0], exc)
            self._drop(waiting)
            return
        if not data:
            self._drop(waiting)
            return
        waiting.head += data
        if HEAD_END.search(waiting.head):
            self._forget(waiting)
            self.dispatch(sock, waiting.address, bytes(waiting.head))
        elif len(waiting.head) > MAX_HEAD:
            self._refuse(waiting, b"431 Request Header Fields Too Large")

    def _expire(self) -> None:
        now = time.monotonic()
        while self.pending:
            oldest = next(iter(self.pending.values()))
            if oldest.deadline > now:
                return
            log.debug("closed %s: no complete request within %.1f s", oldest.address[0], self.header_timeout_s)
            self._refuse(oldest, b"408 Request Timeout")

    def _refuse(self, waiting: _Pending, status: bytes) -> None:
        """Say why (if the socket takes it at once), then close."""
        try:
            if waiting.handshaken:
                waiting.sock.send(b"HTTP/1.0 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        self._drop(waiting)

    def _forget(self, waiting: _Pending) -> None:
        self.selector.unregister(waiting.sock)
        del self.pending[waiting.sock]

    def _drop(self, waiting: _Pending) -> None:
        self._forget(waiting)
        waiting.sock.close()
