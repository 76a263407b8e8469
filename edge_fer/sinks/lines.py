"""Sinks that print lines: one per frame on stdout (the ``--json`` object, or a human line for
still images), or one status line on stderr for videos and cameras."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

from ..errors import OutputError
from ..types import FrameResult
from .base import SinkBase, SinkItem


def stdout_or_error():
    """``sys.stdout``, or OutputError where the process started with it closed (``>&-``)."""
    if sys.stdout is None:
        raise OutputError("stdout is closed: nothing can take the per-frame lines (give the run a stdout, "
                          "or drop RunOptions.json)")
    return sys.stdout


class JsonLinesSink(SinkBase):
    """One ``--json`` object per frame (``FrameResult.to_json()``, plus ``source`` for images)."""

    def __init__(self, out=None) -> None:
        self.out = out or stdout_or_error()

    def write(self, item: SinkItem) -> bool:
        return print_line(self.out, item.event_json)


class TextLinesSink(SinkBase):
    """``name: #1 happy 0.91 at [x, y, w, h]`` per frame (:func:`describe`)."""

    def __init__(self, out=None) -> None:
        self.out = out or stdout_or_error()

    def write(self, item: SinkItem) -> bool:
        return print_line(self.out, describe(item.name, item.result))


#: A terminal's status line is rewritten at most this often; elsewhere (a log file, a pipe) a
#: plain line is written every PLAIN_EVERY_S.
REFRESH_S = 0.25
PLAIN_EVERY_S = 5.0


class StatusLineSink(SinkBase):
    """``frames N, F fps, faces K[, viewers V]`` on stderr instead of a line per frame: rewritten
    in place on a terminal, a plain line every :data:`PLAIN_EVERY_S` otherwise (none for a run
    shorter than that). ``server``: a live view whose viewers are counted."""

    def __init__(self, out=None, server=None, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out or sys.stderr
        self.server = server
        self.clock = clock
        try:
            self.tty = self.out.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.frames = self.faces = 0
        self.fps: float | None = None
        self._shown_at = None if self.tty else clock()
        self._shown = False

    def write(self, item: SinkItem) -> bool:
        self.frames += 1
        self.faces = len(item.result.faces)
        self.fps = item.fps
        now = self.clock()
        if self._shown_at is None or now - self._shown_at >= (REFRESH_S if self.tty else PLAIN_EVERY_S):
            self._shown_at = now
            self.show()
        return True

    def text(self) -> str:
        text = f"frames {self.frames}, {self.fps or 0.0:.1f} fps, faces {self.faces}"
        if self.server is not None:
            text += f", viewers {self.server.health()['viewers']}"
        return text

    def show(self) -> None:
        line = f"edge-fer: {self.text()}"
        try:  # the status is optional: a closed stderr never stops the run
            self.out.write(f"\r\x1b[K{line}" if self.tty else line + "\n")
            self.out.flush()
            self._shown = True
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self.tty and self._shown:
            try:
                self.out.write("\n")
                self.out.flush()
            except (OSError, ValueError):
                pass


def describe(name: str, result: FrameResult) -> str:
    """``name: #1 happy 0.91 at [x, y, w, h]; ...`` or ``name: no faces``."""
    parts = [f"#{f.track_id} {f.expression.label} {f.expression.score:.2f} at {list(f.face.box_xywh)}"
             for f in result.faces]
    return f"{name}: {'; '.join(parts) if parts else 'no faces'}"


def print_line(out, line: str) -> bool:
    """Write one line; False when the reader went away (``| head``): the run then ends.
    OutputError when the output cannot take it (a full disk, ``> /dev/full``)."""
    try:
        out.write(line + "\n")
        out.flush()
        return True
    except BrokenPipeError:
        silence(out)
        return False
    except OSError as exc:
        silence(out)
        raise OutputError(f"cannot write to {str(getattr(out, 'name', 'the output')).strip('<>')}: "
                          f"{exc.strerror or type(exc).__name__}") from None


def silence(out) -> None:
    """Point ``out``'s file descriptor at /dev/null, so Python's exit-time flush does not fail
    again (with a traceback-like note) on what could not be written."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    except (OSError, ValueError, AttributeError):
        pass
