"""Where and how :class:`~edge_fer.serve.server.FerServer` listens: :class:`ServeOptions`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionsError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_CLIENTS = 4
TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{8,128}")  # fullmatch: no newline may end it
#: One label of a host name (IDNA names are checked in their ASCII form).
HOST_LABEL_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


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
