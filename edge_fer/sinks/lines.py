"""Sinks that print one line per frame on stdout: the ``--json`` object, or a human line."""

from __future__ import annotations

import os
import sys

from ..types import FrameResult
from .base import SinkBase, SinkItem


class JsonLinesSink(SinkBase):
    """One ``--json`` object per frame (``FrameResult.to_json()``, plus ``source`` for images)."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout

    def write(self, item: SinkItem) -> bool:
        return print_line(self.out, item.event_json)


class TextLinesSink(SinkBase):
    """``name: #1 happy 0.91 at [x, y, w, h]`` per frame (:func:`describe`)."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout

    def write(self, item: SinkItem) -> bool:
        return print_line(self.out, describe(item.name, item.result))


def describe(name: str, result: FrameResult) -> str:
    """``name: #1 happy 0.91 at [x, y, w, h]; ...`` or ``name: no faces``."""
    parts = [f"#{f.track_id} {f.expression.label} {f.expression.score:.2f} at {list(f.face.box_xywh)}"
             for f in result.faces]
    return f"{name}: {'; '.join(parts) if parts else 'no faces'}"


def print_line(out, line: str) -> bool:
    """Write one line; False when the reader went away (``| head``): the run then ends."""
    try:
        out.write(line + "\n")
        out.flush()
        return True
    except BrokenPipeError:
        try:  # keep Python's exit-time flush of stdout from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return False
