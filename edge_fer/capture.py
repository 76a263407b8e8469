"""Frame sources: a camera, a video file or stream URL, an image or a folder of images.

    with open_source(SourceOptions(video="clip.mp4")) as source:
        for frame_index, time_ms, frame_bgr in source:
            ...
        print(source.dropped, source.decode_failures)

* Files (videos, images) are read in order, every frame. A frame that fails to decode is
  skipped and counted in ``decode_failures``; its index is skipped too.
* Live sources (a camera index, or a ``scheme://`` URL such as rtsp or http) are read by a
  background thread that keeps only the newest frame: frames the consumer was too slow for are
  dropped and counted in ``dropped``, so frame indexes have gaps. A live source that stops
  delivering is reopened with backoff for ``retry_seconds``, then iteration raises InputError.
* ``time_ms``: the frame's position in a video file; ms since the source opened for a live
  source; 0 for still images.

Every source is a context manager: leaving the ``with`` block releases the capture and joins
the reader thread, on every exit path.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import cv2
import numpy as np

from .backends import quiet_native_stderr
from .errors import InputError, OptionsError

DEMO_IMAGE = Path(__file__).parent / "assets" / "astronaut.jpg"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
DEFAULT_CAMERA = 0


class Frame(NamedTuple):
    """One frame: unpacks as ``frame_index, time_ms, frame_bgr``."""

    index: int
    time_ms: float
    frame_bgr: np.ndarray


@dataclass(frozen=True)
class SourceOptions:
    """Give at most one of ``camera``, ``video``, ``image``, ``demo``; none means camera 0.

    ``video``: a file path or a ``scheme://`` URL (rtsp, http...: read as a live source).
    ``image``: an image file or a folder of images (read in sorted name order).
    ``demo``: the built-in image :data:`DEMO_IMAGE`.
    ``retry_seconds``: how long a live source that stops delivering is retried.
    """

    camera: int | None = None
    video: str | None = None
    image: str | None = None
    demo: bool = False
    retry_seconds: float = 3.0

    def __post_init__(self) -> None:
        given = [name for name, value in (("--camera", self.camera), ("--video", self.video),
                                          ("--image", self.image), ("--demo", self.demo or None))
                 if value is not None]
        if len(given) > 1:
            raise OptionsError(f"give one source, got {' and '.join(given)}")
        if self.camera is not None and self.camera < 0:
            raise OptionsError(f"camera index must be >= 0, got {self.camera}")
        if self.retry_seconds < 0:
            raise OptionsError(f"retry_seconds must be >= 0, got {self.retry_seconds}")

    @property
    def kind(self) -> str:
        """``camera``, ``video``, ``image`` or ``demo``."""
        for kind in ("video", "image"):
            if getattr(self, kind) is not None:
                return kind
        return "demo" if self.demo else "camera"

    @property
    def defaulted(self) -> bool:
        """True when the user named no source (camera 0 is tried)."""
        return self.kind == "camera" and self.camera is None


class FrameSource:
    """Iterate to get :class:`Frame` s; close (or use ``with``) to release the source."""

    name: str = ""
    live: bool = False     # frames are dropped when the consumer is slower than the source
    stills: bool = False   # independent images: no time relation between frames
    fps: float | None = None
    decode_failures: int = 0

    @property
    def dropped(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(options: SourceOptions = SourceOptions()) -> FrameSource:
    """The source ``options`` names; raises InputError (one line) when it cannot be opened."""
    kind = options.kind
    if kind == "demo":
        return ImageSource(DEMO_IMAGE, name="demo")
    if kind == "image":
        return ImageSource(options.image)
    if kind == "video":
        if is_url(options.video):
            return LiveSource(options.video, options.video, retry_seconds=options.retry_seconds)
        return VideoSource(options.video)
    index = DEFAULT_CAMERA if options.camera is None else options.camera
    hint = f"camera index {index} did not open (no such device, or it is in use); try --demo"
    try:
        return LiveSource(index, f"camera {index}", retry_seconds=options.retry_seconds, open_error=hint)
    except InputError:
        if not options.defaulted:  # the user named this camera: never swap in something else
            raise
    # No source named and no camera here (a server, CI): say so and run the built-in sample.
    sys.stderr.write(f"edge-fer: camera {index} did not open and no source was given: running the "
                     f"built-in sample ({DEMO_IMAGE.name}); pass --video, --image or --camera N\n")
    return ImageSource(DEMO_IMAGE, name="demo")


def is_url(target: str) -> bool:
    return "://" in str(target)


def open_capture(target: int | str) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` with what OpenCV and FFmpeg print while it opens hidden (V4L2
    warnings, "Connection refused"): the InputError that follows says what failed, in one line."""
    with quiet_native_stderr():
        return cv2.VideoCapture(target)


# still images ----------------------------------------------------------------------------------
class ImageSource(FrameSource):
    """An image file or a folder of images; ``paths[frame_index]`` is each frame's file.

    In a folder, a file that does not decode is skipped and counted; a single file that does
    not decode, or a folder where none does, raises InputError.
    """

    stills = True

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        path = Path(path)
        if not path.exists():
            raise InputError(f"image not found: {path}")
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.paths:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        else:
            self.paths = [path]
        self.path = path
        self.name = name or str(path)
        self.decode_failures = 0

    def __iter__(self) -> Iterator[Frame]:
        yielded = 0
        for index, path in enumerate(self.paths):
            image = read_image(path)
            if image is None:
                if not self.path.is_dir():
                    raise InputError(f"cannot read image {path}: not an image or an unsupported format")
                self.decode_failures += 1
                continue
            yielded += 1
            yield Frame(index, 0.0, image)
        if yielded == 0:
            raise InputError(f"none of the {len(self.paths)} images in {self.path} could be read")


def read_image(path: Path) -> np.ndarray | None:
    """A BGR image, or None when the file cannot be read or decoded (any path encoding)."""
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


# video files -------------------------------------------------------------------------------------
class VideoSource(FrameSource):
    """A video file read in order. ``max_gap``: consecutive failed reads taken as the end."""

    def __init__(self, path: str | Path, capture_factory: Callable | None = None,
                 max_gap: int = 30) -> None:
        path = Path(path)
        if path.is_dir():
            raise InputError(f"{path} is a folder, not a video: use --image for a folder of images")
        if not path.is_file():
            raise InputError(f"video file not found: {path}")
        self.name = str(path)
        self.max_gap = max_gap
        self.decode_failures = 0
        self._capture = (capture_factory or open_capture)(str(path))
        if not self._capture.isOpened():
            self.close()
            raise InputError(f"cannot open video {path}: not a video or an unsupported codec")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or None
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def __iter__(self) -> Iterator[Frame]:
        index = yielded = failed_in_row = 0
        while self._capture is not None:
            ok, frame = self._capture.read()
            if ok and frame is not None:
                self.decode_failures += failed_in_row
                failed_in_row = 0
                time_ms = self._capture.get(cv2.CAP_PROP_POS_MSEC)
                if time_ms <= 0 and index and self.fps:
                    time_ms = index * 1000.0 / self.fps
                yielded += 1
                yield Frame(index, float(time_ms), frame)
            else:  # a frame that does not decode, or the end: only a later good frame tells
                failed_in_row += 1
                if failed_in_row > self.max_gap or (self.frame_count and index + 1 >= self.frame_count):
                    break
            index += 1
        if yielded == 0:
            raise InputError(f"video {self.name} has no frames that decode")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


# live sources -----------------------------------------------------------------------------------
class LatestFrameReader:
    """Reads a capture in a background thread, keeping only the newest frame.

    ``next_frame()`` blocks for the next unseen frame; a frame replaced before it was taken
    counts in ``dropped``. When reads fail, the capture is reopened with ``reopen`` after a
    growing pause (``first_backoff_s`` doubling up to ``max_backoff_s``); after
    ``retry_seconds`` without a frame the thread ends and ``next_frame`` raises InputError.
    """

    def __init__(self, capture, reopen: Callable[[], object], name: str, retry_seconds: float = 3.0,
                 first_backoff_s: float = 0.05, max_backoff_s: float = 1.0) -> None:
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
        self._t0 = time.monotonic()
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
                    self._latest = Frame(index, (time.monotonic() - self._t0) * 1000.0, frame)
                    self._cond.notify_all()
                index += 1
                continue
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= self.retry_seconds:
                raise InputError(f"{self.name} stopped delivering frames (retried for "
                                 f"{self.retry_seconds:g} s)")
            if self._stop.wait(backoff):
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
