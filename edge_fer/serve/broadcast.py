"""Newest-frame-wins hand-off from the processing loop to any number of viewer threads.

The loop calls :meth:`FrameBroadcast.publish` once per frame: O(1), a short lock, never a wait
for a viewer. Viewers (one thread per HTTP client) call :meth:`FrameBroadcast.wait_frame` for
the newest frame they have not seen (frames published meanwhile are simply skipped) and
:meth:`FrameBroadcast.jpeg` for its JPEG, which is drawn and encoded at most once per frame, by
the first viewer that asks, and never when nobody watches. Events (the ``--json`` line of each
frame) go to a short ring, so an event viewer that keeps up gets every one and one that falls
behind skips the oldest: memory stays bounded whatever the clients do.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ..draw import draw_result
from ..types import FrameResult

#: Events kept for viewers that fall behind (about 8 s at 30 fps).
EVENT_RING = 256


@dataclass(frozen=True)
class Published:
    """One frame as the loop handed it over; the arrays are never modified afterwards."""

    seq: int
    result: FrameResult
    frame_bgr: np.ndarray | None
    annotated_bgr: np.ndarray | None
    fps: float | None


class FrameBroadcast:
    """The latest frame, its JPEG (made on demand, once) and the recent events.

    ``clock`` is injectable; ``encodes`` counts JPEG encodes and ``encode_ms`` the time of the
    last one (the cost a viewer adds, for benchmarks and /healthz).
    """

    def __init__(self, jpeg_quality: int = 80, clock: Callable[[], float] = time.monotonic) -> None:
        self.jpeg_quality = jpeg_quality
        self.clock = clock
        self.published = 0
        self.encodes = 0
        self.encode_ms: float | None = None
        self.last_publish_s: float | None = None
        self.closed = False
        self._cond = threading.Condition()
        self._latest: Published | None = None
        self._events: deque[tuple[int, str]] = deque(maxlen=EVENT_RING)
        self._jpeg_lock = threading.Lock()
        self._jpeg: tuple[int, bytes] | None = None

    # the loop's side ---------------------------------------------------------------------------
    def publish(self, result: FrameResult, event_json: str, frame_bgr: np.ndarray | None = None,
                annotated_bgr: np.ndarray | None = None, fps: float | None = None) -> int:
        """Hand over one frame; returns its sequence number. Never blocks on a viewer."""
        with self._cond:
            self.published += 1
            seq = self.published
            self._latest = Published(seq, result, frame_bgr, annotated_bgr, fps)
            self._events.append((seq, event_json))
            self.last_publish_s = self.clock()
            self._cond.notify_all()
        return seq

    def close(self) -> None:
        """Wake every waiting viewer; waits return None from now on."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # the viewers' side -------------------------------------------------------------------------
    @property
    def latest(self) -> Published | None:
        return self._latest

    def wait_frame(self, after_seq: int, timeout_s: float) -> Published | None:
        """The newest frame with ``seq > after_seq``; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self.closed or (self._latest is not None
                                                        and self._latest.seq > after_seq), timeout_s)
            if self.closed or self._latest is None or self._latest.seq <= after_seq:
                return None
            return self._latest

    def wait_events(self, after_seq: int, timeout_s: float) -> list[tuple[int, str]] | None:
        """Events with ``seq > after_seq`` still in the ring ([] on timeout); None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self.closed or (self._events and self._events[-1][0] > after_seq),
                                timeout_s)
            if self.closed:
                return None
            return [(seq, text) for seq, text in self._events if seq > after_seq]

    def jpeg(self, frame: Published) -> bytes:
        """``frame`` annotated and JPEG-encoded; encoded once however many viewers ask."""
        with self._jpeg_lock:
            if self._jpeg is not None and self._jpeg[0] == frame.seq:
                return self._jpeg[1]
            t0 = time.perf_counter()
            image = frame.annotated_bgr
            if image is None:
                image = draw_result(frame.frame_bgr, frame.result, frame.fps)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:  # pragma: no cover - OpenCV always has a JPEG encoder
                raise RuntimeError("JPEG encoding failed")
            self.encodes += 1
            self.encode_ms = (time.perf_counter() - t0) * 1000.0
            self._jpeg = (frame.seq, data.tobytes())
            return self._jpeg[1]


class ClientSlots:
    """At most ``limit`` holders at a time (the streaming viewers); ``try_acquire`` never waits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.active >= self.limit:
                self.refused += 1
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.active -= 1
