"""Where results go: one :class:`Sink` protocol (``write(item) -> keep going``, ``close()``, a
context manager) and a sink per output of ``edge-fer run``: JSON lines or human lines on stdout
(:mod:`.lines`), an annotated video file or image folder (:mod:`.files`), a window and the live
browser view (:mod:`.live`), and a Python callback. :func:`open_sinks` picks them from the run's
options; the runner hands every processed frame to each, in order.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Callable

from .base import Sink, SinkBase, SinkItem
from .files import VIDEO_CODECS, ImageFolderSink, VideoSink, open_file_sink
from .lines import JsonLinesSink, StatusLineSink, TextLinesSink, describe
from .live import CallbackSink, ServerSink, WindowSink, start_server, try_window

__all__ = ["CallbackSink", "ImageFolderSink", "JsonLinesSink", "ServerSink", "Sink", "SinkBase", "SinkItem",
           "StatusLineSink", "TextLinesSink", "VIDEO_CODECS", "VideoSink", "WindowSink", "describe", "open_file_sink",
           "open_sinks", "start_server", "try_window"]


def open_sinks(stack: ExitStack, *, source, json_lines: bool, headless: bool, save_video: str | None,
               server=None, on_result: Callable | None = None) -> tuple[list[Sink], VideoSink | ImageFolderSink | None]:
    """The run's sinks in the order they are written to (stdout first, so a closed pipe stops the
    run before anything else happens; the window last, so closing it ends the run after the
    frame went everywhere else), each closed with ``stack``; and the file sink, if any.
    Per-frame lines go to stdout with ``json_lines`` (and, for still images, a human line each
    where no window shows them); a video or camera otherwise gets one status line on stderr."""
    file_sink = stack.enter_context(open_file_sink(save_video, source)) if save_video else None
    window = None if headless else try_window(stack, serving=server is not None)
    server_sink = (stack.enter_context(ServerSink(server, reuse_annotated=file_sink is not None or window is not None))
                   if server is not None else None)
    lines = JsonLinesSink() if json_lines else (TextLinesSink() if window is None and source.stills else None)
    status = stack.enter_context(StatusLineSink(server=server)) if not json_lines and not source.stills else None
    callback = CallbackSink(on_result) if on_result is not None else None
    return [s for s in (lines, file_sink, server_sink, callback, status, window) if s is not None], file_sink
