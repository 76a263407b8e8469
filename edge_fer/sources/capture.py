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
* ``loop`` (files only): at the end, a video file starts again from its first frame and an
  image list from its first image; frame indexes and a video's ``time_ms`` keep growing across
  passes, so every frame of a run stays distinct. Iteration then ends only when the consumer
  stops (``max_frames``, Ctrl-C).
* ``realtime`` (files only): frames are released at the video's own frame rate, like a player
  (still images at one per :data:`STILL_SECONDS`), instead of as fast as they decode; a consumer
  slower than that gets every frame late rather than a burst to catch up (:class:`Pacer`).

Every source is a context manager: leaving the ``with`` block releases the capture and joins
the reader thread, on every exit path. Files are read here; cameras and streams in
:mod:`edge_fer.live`; :class:`Frame` and :class:`FrameSource` live in :mod:`edge_fer.frames`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2

from .. import defaults
from ..errors import InputError, OptionsError
from .ahead import ReadAhead
from .frames import Frame, FrameSource, open_capture  # noqa: F401 (re-exported)
from .images import DEMO_IMAGE, IMAGE_SUFFIXES, decode_image, list_images, read_image  # noqa: F401 (re-exported)
from .live import (LatestFrameReader, LiveSource, gstreamer_open_error, is_gstreamer_pipeline,  # noqa: F401
                   is_url, open_gstreamer, open_stream)

log = logging.getLogger(__name__)
#: FFmpeg's own lines while a damaged video is read (``[h264 @ 0x5566...] error while decoding MB
#: 36 0``) stay off the terminal: OpenCV sets FFmpeg's log level from this variable when it first
#: opens a file (-8: AV_LOG_QUIET); a frame that does not decode is counted in ``decode_failures``.
#: Set it (16: errors) to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
DEFAULT_CAMERA = 0
#: With ``realtime``, how long each still image is shown; a video without a frame rate plays at 30.
STILL_SECONDS = 1.0
FALLBACK_FPS = 30.0


@dataclass(frozen=True)
class SourceOptions:
    """Give at most one of ``camera``, ``video``, ``image``, ``demo``; none means camera 0.

    ``video``: a file path or a ``scheme://`` URL (rtsp, http...: read as a live source).
    ``image``: an image file or a folder of images (read in sorted name order).
    ``demo``: the built-in image :data:`DEMO_IMAGE`.
    ``retry_seconds``: how long a live source that stops delivering is retried.
    ``open_timeout_s``: a stream URL that sends nothing for this long, while opening or
    between frames, fails (OpenCV's FFmpeg open and read timeouts).
    ``loop``: repeat a video file or the images from the start when they end (files only).
    ``realtime``: release file frames at their own frame rate, like a player (files only;
    ``edge-fer run --serve`` turns it on for files).
    ``read_ahead``: files only: frames decoded ahead in a thread of their own, so decoding
    overlaps the work on the frame before (the second core; :mod:`edge_fer.sources.ahead`);
    0 decodes in the caller's thread. Live sources always read in a thread of their own.
    ``decode_threads``: files only: the video decoder's own threads (0: FFmpeg's choice, one
    per core); the same frames either way.
    """

    camera: int | None = None
    video: str | None = None
    image: str | None = None
    demo: bool = False
    retry_seconds: float = 3.0
    open_timeout_s: float = defaults.STREAM_TIMEOUT_S
    loop: bool = False
    realtime: bool = False
    read_ahead: int = defaults.READ_AHEAD
    decode_threads: int = defaults.DECODE_THREADS

    def __post_init__(self) -> None:
        given = [f"SourceOptions.{name}" for name, value in (("camera", self.camera), ("video", self.video),
                                                            ("image", self.image), ("demo", self.demo or None))
                 if value is not None]
        if len(given) > 1:
            raise OptionsError(f"expected one source, got {' and '.join(given)}")
        if self.camera is not None and self.camera < 0:
            raise OptionsError(f"SourceOptions.camera={self.camera!r}: expected a camera index >= 0")
        if self.retry_seconds < 0:
            raise OptionsError(f"SourceOptions.retry_seconds={self.retry_seconds!r}: expected >= 0")
        if not 0 < self.open_timeout_s < 86400:
            raise OptionsError(f"SourceOptions.open_timeout_s={self.open_timeout_s!r}: expected > 0 and < 86400")
        if isinstance(self.read_ahead, bool) or not isinstance(self.read_ahead, int) or not 0 <= self.read_ahead <= 16:
            raise OptionsError(f"SourceOptions.read_ahead={self.read_ahead!r}: expected frames 0..16 (0: no thread)")
        if isinstance(self.decode_threads, bool) or not isinstance(self.decode_threads, int) \
                or not 0 <= self.decode_threads <= 16:
            raise OptionsError(f"SourceOptions.decode_threads={self.decode_threads!r}: expected threads 0..16 "
                               "(0: FFmpeg's choice)")
        if self.loop and self.live:
            raise OptionsError(f"SourceOptions.loop repeats a video file or images; {self.describe()} is live")

    @property
    def live(self) -> bool:
        """A camera or a stream URL (read by the latest-frame reader; never looped or paced)."""
        return self.kind == "camera" or (self.kind == "video" and (is_url(self.video) or is_gstreamer_pipeline(self.video)))

    def describe(self) -> str:
        """The source as the user named it: ``camera 0``, the path or URL, ``demo``."""
        if self.kind == "camera":
            return f"camera {DEFAULT_CAMERA if self.camera is None else self.camera}"
        return "demo" if self.kind == "demo" else str(getattr(self, self.kind))

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


def open_source(options: SourceOptions = SourceOptions()) -> FrameSource:
    """The source ``options`` names; raises InputError (one line) when it cannot be opened.
    Files are read ahead in a thread of their own where ``options.read_ahead`` > 0."""
    source = _open_source(options)
    if options.read_ahead and not source.live:
        return ReadAhead(source, options.read_ahead)
    return source


def _open_source(options: SourceOptions) -> FrameSource:
    kind = options.kind
    files = {"loop": options.loop, "realtime": options.realtime}
    if kind == "demo":
        return ImageSource(DEMO_IMAGE, name="demo", **files)
    if kind == "image":
        return ImageSource(options.image, **files)
    if kind == "video":
        if is_gstreamer_pipeline(options.video):  # e.g. a Jetson CSI camera (nvarguscamerasrc)
            return LiveSource(options.video, "GStreamer pipeline", retry_seconds=options.retry_seconds,
                              capture_factory=open_gstreamer, open_error=gstreamer_open_error())
        if is_url(options.video):
            timeout_s = options.open_timeout_s
            return LiveSource(options.video, options.video, retry_seconds=options.retry_seconds,
                              capture_factory=lambda url: open_stream(url, timeout_s),
                              open_error=f"cannot open stream {options.video}: refused, not a video, or "
                                         f"nothing received within {timeout_s:g} s (SourceOptions.open_timeout_s)")
        return VideoSource(options.video, decode_threads=options.decode_threads, **files)
    index = DEFAULT_CAMERA if options.camera is None else options.camera
    hint = f"camera index {index} did not open (no such device, or it is in use); try --demo"
    try:
        return LiveSource(index, f"camera {index}", retry_seconds=options.retry_seconds, open_error=hint,
                          capture_factory=lambda target: open_capture(target))  # (tests replace open_capture)
    except InputError:
        if not options.defaulted:  # the user named this camera: never swap in something else
            raise
    # No source named and no camera here (a server, CI): say so and run the built-in sample.
    log.info("camera %d did not open and no source was given: running the built-in sample (%s); "
             "set SourceOptions.video, SourceOptions.image or SourceOptions.camera", index, DEMO_IMAGE.name)
    return ImageSource(DEMO_IMAGE, name="demo", **files)


class Pacer:
    """A player's clock: ``wait()`` before each frame sleeps until that frame is due, frame n
    at ``start + n * period_s``. A consumer more than one period late restarts the clock at now
    (no burst of catch-up frames). ``clock``/``sleep`` are injectable for tests."""

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not period_s > 0:
            raise OptionsError(f"Pacer period_s={period_s!r}: expected > 0")
        self.period_s = period_s
        self._clock, self._sleep = clock, sleep
        self._due: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._due is None or now - self._due > self.period_s:
            self._due = now
        elif self._due > now:
            self._sleep(self._due - now)
        self._due += self.period_s


# still images ----------------------------------------------------------------------------------
class ImageSource(FrameSource):
    """An image file or a folder of images; ``paths[frame_index]`` is each frame's file.

    In a folder, a file that does not decode is skipped and counted; a single file that does
    not decode, or a folder where none does, raises InputError. With ``loop`` the list repeats
    (frame indexes keep growing: :meth:`image_path` maps one back to its file).
    """

    stills = True

    def __init__(self, path: str | Path, name: str | None = None, loop: bool = False,
                 realtime: bool = False, pacer: Pacer | None = None) -> None:
        path = Path(path)
        if not path.exists():
            raise InputError(f"image not found: {path}")
        if path.is_dir():
            self.paths = list_images(path)  # regular files only
            if not self.paths:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        elif not path.is_file():  # a FIFO or a device would block the read forever
            raise InputError(f"cannot read image {path}: not a regular file")
        else:
            self.paths = [path]
        self.path = path
        self.name = name or str(path)
        self.decode_failures = 0
        self.loop = loop
        self.pacer = pacer or (Pacer(STILL_SECONDS) if realtime else None)

    def image_path(self, frame_index: int) -> Path:
        """The file a frame came from (looped runs included)."""
        return self.paths[frame_index % len(self.paths)]

    def __iter__(self) -> Iterator[Frame]:
        yielded, base = 0, 0
        while True:
            for offset, path in enumerate(self.paths):
                image, why = decode_image(path)
                if image is None:
                    if not self.path.is_dir():
                        raise InputError(f"cannot read image {path}: {why}")
                    self.decode_failures += 1
                    continue
                yielded += 1
                if self.pacer is not None:
                    self.pacer.wait()
                yield Frame(base + offset, 0.0, image)
            if yielded == 0:
                raise InputError(f"none of the {len(self.paths)} images in {self.path} could be read")
            if not self.loop:
                return
            base += len(self.paths)


# video files -------------------------------------------------------------------------------------
class VideoSource(FrameSource):
    """A video file read in order. ``max_gap``: consecutive failed reads taken as the end.
    ``loop``: reopen at the end and read again (``passes`` counts the completed ones);
    ``realtime`` or an explicit ``pacer``: release frames at the file's frame rate.
    ``decode_threads``: the decoder's threads (0: FFmpeg's choice)."""

    def __init__(self, path: str | Path, capture_factory: Callable | None = None,
                 max_gap: int = 30, loop: bool = False, realtime: bool = False,
                 pacer: Pacer | None = None, decode_threads: int = 0) -> None:
        url = is_url(str(path))  # a recording at a URL (edge-fer analyze): read in order, like a file
        path = str(path) if url else Path(path)
        if not url and path.is_dir():
            raise InputError(f"{path} is a folder, not a video: a folder of images is SourceOptions.image")
        if not url and not path.is_file():
            raise InputError(f"video file not found: {path}")
        self.name = str(path)
        self.max_gap = max_gap
        self.decode_failures = 0
        self.loop = loop
        self.passes = 0
        self._open = capture_factory or (lambda target: open_capture(target, decode_threads))
        self._capture = self._open(str(path))
        if not self._capture.isOpened():
            self.close()
            raise InputError(f"cannot open video {path}: not a video or an unsupported codec")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or None
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.pacer = pacer or (Pacer(1.0 / (self.fps or FALLBACK_FPS)) if realtime else None)

    def __iter__(self) -> Iterator[Frame]:
        base_index, base_ms, yielded = 0, 0.0, 0
        period_ms = 1000.0 / (self.fps or FALLBACK_FPS)
        while self._capture is not None:
            last_ms = -period_ms
            for index, time_ms, frame in self._one_pass():
                yielded += 1
                last_ms = time_ms
                if self.pacer is not None:
                    self.pacer.wait()
                yield Frame(base_index + index, base_ms + time_ms, frame)
            if yielded == 0:
                raise InputError(f"video {self.name} has no frames that decode")
            if not self.loop or self._capture is None:
                return
            self.passes += 1
            base_index += self._pass_length
            base_ms += last_ms + period_ms
            self._capture.release()
            self._capture = self._open(self.name)
            if not self._capture.isOpened():
                self.close()
                raise InputError(f"cannot reopen video {self.name} to loop it")

    def _one_pass(self) -> Iterator[Frame]:
        """The file once, from where the capture stands; ``_pass_length``: positions read."""
        index = failed_in_row = self._pass_length = 0
        while self._capture is not None:
            ok, frame = self._capture.read()
            if ok and frame is not None:
                self.decode_failures += failed_in_row
                failed_in_row = 0
                time_ms = self._capture.get(cv2.CAP_PROP_POS_MSEC)
                if time_ms <= 0 and index and self.fps:
                    time_ms = index * 1000.0 / self.fps
                self._pass_length = index + 1
                yield Frame(index, float(time_ms), frame)
            else:  # a frame that does not decode, or the end: only a later good frame tells
                failed_in_row += 1
                if failed_in_row > self.max_gap or (self.frame_count and index + 1 >= self.frame_count):
                    break
            index += 1

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


