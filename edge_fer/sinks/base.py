"""The one sink protocol, and what every sink is handed per processed frame."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..draw import draw_result
from ..types import FrameResult


@dataclass
class SinkItem:
    """One processed frame on its way out: the result, the frame it came from, the name it goes
    by (an image's file name, or ``frame N``), the ``--json`` object (``event``), the loop's
    frame rate (None for still images). The annotated picture and the JSON text are made once,
    on first use, whichever sinks ask for them."""

    result: FrameResult
    frame_bgr: np.ndarray
    name: str
    event: dict
    fps: float | None
    still: bool
    _annotated: np.ndarray | None = field(default=None, repr=False)
    _event_json: str | None = field(default=None, repr=False)

    @property
    def annotated_bgr(self) -> np.ndarray:
        if self._annotated is None:
            self._annotated = draw_result(self.frame_bgr, self.result, self.fps)
        return self._annotated

    @property
    def event_json(self) -> str:
        if self._event_json is None:
            self._event_json = json.dumps(self.event)
        return self._event_json


@runtime_checkable
class Sink(Protocol):
    """Where results go. ``write`` returns False when the run should stop (the reader of stdout
    went away, the window was closed); ``close`` releases what the sink holds, and a sink is a
    context manager that closes on exit."""

    def write(self, item: SinkItem) -> bool: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Sink": ...

    def __exit__(self, *exc) -> None: ...


class SinkBase:
    """Context-manager plumbing for sinks that hold nothing to release."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
