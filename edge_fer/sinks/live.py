"""Sinks people watch: a desktop window, and the live browser view (``--serve``)."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import TYPE_CHECKING, Callable

from ..draw import DisplayUnavailable, open_window
from .base import SinkBase, SinkItem

if TYPE_CHECKING:
    from ..serve import FerServer, ServeOptions

log = logging.getLogger(__name__)


class WindowSink(SinkBase):
    """The annotated frame in an OpenCV window; ``write`` is False once the user closes it (q)."""

    def __init__(self, window) -> None:
        self.window = window

    def write(self, item: SinkItem) -> bool:
        return self.window.show(item.annotated_bgr, 0 if item.still else 1)


def try_window(stack: ExitStack, serving: bool = False) -> WindowSink | None:
    """A window sink where a display exists (closed with ``stack``), else None and a note."""
    try:
        return WindowSink(stack.enter_context(open_window("edge-fer")))
    except DisplayUnavailable as exc:
        if not serving:  # when serving, the browser is the view: nothing to say
            log.info("note: no display (%s); running headless (RunOptions.headless skips this check; "
                     "RunOptions.serve shows the annotated video in a browser)", exc)
        return None


class ServerSink(SinkBase):
    """Publishes each frame to a :class:`~edge_fer.serve.FerServer` (drawn and encoded there only
    while someone watches, unless another sink drew it already: ``reuse_annotated``); on close,
    tells viewers the source ended."""

    def __init__(self, server: FerServer, reuse_annotated: bool) -> None:
        self.server = server
        self.reuse_annotated = reuse_annotated

    def write(self, item: SinkItem) -> bool:
        self.server.publish(item.result, item.frame_bgr,
                            annotated_bgr=item.annotated_bgr if self.reuse_annotated else None,
                            fps=item.fps, event_json=item.event_json)
        return True

    def close(self) -> None:
        self.server.set_source_state("ended")


def start_server(stack: ExitStack, serve: ServeOptions, info: dict,
                 on_serving: Callable[[FerServer], None] | None) -> FerServer:
    """The live view's server (closed with ``stack``), with the phone page on ``/device/``."""
    from ..serve import FerServer
    from ..web import mount_device_page

    server = stack.enter_context(FerServer.create_from_options(serve, info))
    mount_device_page(server, stack)
    if on_serving is not None:
        on_serving(server)
    return server


class CallbackSink(SinkBase):
    """Hands each result to a Python callable (``run(options, on_result=...)``)."""

    def __init__(self, on_result: Callable) -> None:
        self.on_result = on_result

    def write(self, item: SinkItem) -> bool:
        self.on_result(item.result)
        return True


__all__ = ["CallbackSink", "ServerSink", "WindowSink", "start_server", "try_window"]
