"""Live sources: a camera index, a stream URL or a GStreamer pipeline, read by a background
thread that keeps only the newest frame (:class:`LatestFrameReader`); see :mod:`edge_fer.capture`.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import cv2

from .. import defaults
from ..backends import quiet_native_stderr
from ..errors import InputError
from .frames import Frame, FrameSource, open_capture


def is_url(target: str) -> bool:
    return "://" in str(target)


def is_gstreamer_pipeline(target: str) -> bool:
    """A GStreamer pipeline string: elements joined by ``!``, ending in an ``appsink``."""
    return " ! " in str(target) and "appsink" in str(target).rsplit("!", 1)[-1]


def open_gstreamer(pipeline: str) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` on OpenCV's GStreamer backend (unopened where it has none)."""
    with quiet_native_stderr():
        return cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)


def gstreamer_open_error() -> str:
    if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        return (f"cannot open the GStreamer pipeline: this OpenCV {cv2.__version__} has no GStreamer "
                "backend (the PyPI wheels have none; on a Jetson use JetPack's OpenCV)")
    return "cannot open the GStreamer pipeline (a missing element, or no such camera)"


def open_stream(url: str, timeout_s: float = defaults.STREAM_TIMEOUT_S) -> cv2.VideoCapture:
    """:func:`open_capture` for a URL, with FFmpeg's open and read timeouts: a server that
    accepts the connection and then sends nothing no longer blocks until it hangs up."""
    ms = int(timeout_s * 1000)
    with quiet_native_stderr():
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])


class LatestFrameReader:
    """Reads a capture in a background thread, keeping only the newest frame.

    ``next_frame()`` blocks for the next unseen frame; a frame replaced before it was taken
    counts in ``dropped``. When reads fail, the capture is reopened with ``reopen`` after a
    growing pause (``first_backoff_s`` doubling up to ``max_backoff_s``); after
    ``retry_seconds`` without a frame the thread ends and ``next_frame`` raises InputError.
    ``clock`` (seconds) and ``wait`` (pause for the backoff; returns True when stopped) are
    injectable for tests, like :class:`Pacer`'s; ``wait`` defaults to the stop event's.
    """

    def __init__(self, capture, reopen: Callable[[], object], name: str, retry_seconds: float = 3.0,
                 first_backoff_s: float = 0.05, max_backoff_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], bool] | None = None) -> None:
        self.name = name
        self.retry_seconds = retry_seconds
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.dropped = 0
        self.reopens = 0
        self._capture = capture
        self._reopen = reopen
        self._latest: Frame | None = None
        self._error: InputError | None = None
        self._done = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._clock = clock
        self._wait = wait or self._stop.wait
        self._t0 = clock()
        self._thread = threading.Thread(target=self._loop, name=f"edge-fer reader ({name})", daemon=True)

    def start(self) -> "LatestFrameReader":
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        try:
            self._read_until_stopped()
        except InputError as exc:
            self._set_error(exc)
        except Exception as exc:  # a driver error: end the run with one line, not a traceback
            self._set_error(InputError(f"{self.name}: reading failed ({type(exc).__name__}: {exc})"))
        finally:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _read_until_stopped(self) -> None:
        index, failing_since, backoff = 0, None, self.first_backoff_s
        while not self._stop.is_set():
            ok, frame = self._capture.read() if self._capture is not None else (False, None)
            if ok and frame is not None:
                failing_since, backoff = None, self.first_backoff_s
                with self._cond:
                    self.dropped += self._latest is not None
                    self._latest = Frame(index, (self._clock() - self._t0) * 1000.0, frame)
                    self._cond.notify_all()
                index += 1
                continue
            now = self._clock()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= self.retry_seconds:
                raise InputError(f"{self.name} stopped delivering frames (retried for "
                                 f"{self.retry_seconds:g} s)")
            if self._wait(backoff) or self._stop.is_set():
                break
            backoff = min(2 * backoff, self.max_backoff_s)
            self._reconnect()

    def _reconnect(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = None
        self.reopens += 1
        capture = self._reopen()
        if capture is not None and capture.isOpened():
            self._capture = capture
        elif capture is not None:
            capture.release()

    def _set_error(self, exc: InputError) -> None:
        with self._cond:
            self._error = exc
            self._cond.notify_all()

    def next_frame(self, poll_s: float = 0.2) -> Frame | None:
        """The newest unseen frame; None once stopped; InputError when the source failed."""
        with self._cond:
            while self._latest is None and self._error is None and not self._done:
                self._cond.wait(poll_s)
            if self._latest is not None:
                frame, self._latest = self._latest, None
                return frame
            if self._error is not None:
                raise self._error
            return None

    def stop(self, join_timeout_s: float = 5.0) -> bool:
        """Stop and join the thread (it releases the capture); False if it did not end in time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(join_timeout_s)
        elif self._thread.ident is None and self._capture is not None:  # never started
            self._capture.release()
            self._capture = None
        return not self._thread.is_alive()


class LiveSource(FrameSource):
    """A camera index or a stream URL, read by a :class:`LatestFrameReader`."""

    live = True

    def __init__(self, target: int | str, name: str, retry_seconds: float = 3.0,
                 capture_factory: Callable | None = None, open_error: str | None = None,
                 **reader_options) -> None:
        self.name = name
        self.decode_failures = 0
        capture_factory = capture_factory or open_capture
        capture = capture_factory(target)
        if not capture.isOpened():
            capture.release()
            raise InputError(open_error or f"cannot open stream {name}")
        self.fps = capture.get(cv2.CAP_PROP_FPS) or None
        self.reader = LatestFrameReader(capture, lambda: capture_factory(target), name,
                                        retry_seconds, **reader_options).start()

    @property
    def dropped(self) -> int:
        return self.reader.dropped

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.reader.next_frame()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        self.reader.stop()
