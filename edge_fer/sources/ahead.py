"""Decoding on the second core: a file source read ahead in a thread of its own.

:class:`ReadAhead` wraps a file source (:class:`~edge_fer.sources.capture.VideoSource`,
:class:`~edge_fer.sources.capture.ImageSource`): a thread decodes the next frames into a bounded
queue while the caller works on the current one. OpenCV releases the GIL while it decodes, so
on a 2-core machine decoding overlaps detection and classification. The frames, their order,
indexes and times are the source's own; an error the source raises comes out of the iteration
where it happened; closing stops the thread and closes the source. Live sources need none of
this: they already read in a thread (:mod:`edge_fer.sources.live`).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

from .frames import Frame, FrameSource

_END = object()
#: How often a blocked reader checks whether it was told to stop.
_POLL_S = 0.1


class ReadAhead(FrameSource):
    """``source``'s frames, up to ``depth`` decoded ahead (``depth`` >= 1)."""

    def __init__(self, source: FrameSource, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth={depth!r}: expected >= 1")
        self.source = source
        self.depth = depth
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # what the runner reads from a source: the wrapped one's (FrameSource's defaults would hide them)
    name = property(lambda self: self.source.name)
    live = property(lambda self: self.source.live)
    stills = property(lambda self: self.source.stills)
    fps = property(lambda self: self.source.fps)
    decode_failures = property(lambda self: self.source.decode_failures)
    dropped = property(lambda self: self.source.dropped)

    def __getattr__(self, name: str):  # the rest: image_path, passes, frame_count, ...
        if name == "source":  # not set yet (a failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    # the reader thread ----------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for frame in self.source:
                if not self._put(frame):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[Frame]:
        if self._thread is not None:
            raise RuntimeError("a ReadAhead source is iterated once")
        self._thread = threading.Thread(target=self._read, name=f"edge-fer read-ahead {self.source.name}",
                                        daemon=True)
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            while True:  # unblock a reader waiting to put, then wait for it
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            thread.join()
        self.source.close()
