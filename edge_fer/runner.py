"""``edge-fer run`` as a library call: source -> pipeline -> outputs, with one summary back.

    summary = run(RunOptions(source=SourceOptions(video="clip.mp4"), json=True, headless=True))

Per processed frame: ``on_result(result)`` is called; with ``json`` one line of
``FrameResult.to_json()`` goes to stdout; with no window and no ``json``, one human line does.
``save_video``: an annotated video written to a temporary file beside it and renamed when the
run ends normally, by ``max_frames``, by the window's q key or by Ctrl-C (the frames so far are
a valid video); removed when the run fails. For image sources it names a folder that receives
each annotated image under its own file name. Every handle is released on every exit path.

``serve``: a :class:`~edge_fer.serve.ServeOptions`; the run then feeds a live browser view
(:mod:`edge_fer.serve`) with each result, its frame and its ``--json`` object (the same text),
and a video file plays at its own frame rate (``SourceOptions.realtime``); ``on_serving(server)``
is called once it listens (the CLI prints its URL). SIGTERM stops any run as Ctrl-C does (the
exception is :class:`Terminated`, a KeyboardInterrupt: the video is kept, the CLI exits 143).
For image sources each ``--json`` object names its file (``"source"``, the path as given).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np

from .backends import quiet_native_stderr
from .capture import FrameSource, SourceOptions, open_source
from .draw import DisplayUnavailable, draw_result, open_window
from .errors import OptionsError, OutputError
from .fileio import check_writable_folder, commit_file, output_error, write_bytes_atomic
from .metadata import NO_FRAMING
from .pipeline import FerPipeline, PipelineOptions
from .types import FrameResult

if TYPE_CHECKING:
    from .serve import FerServer, ServeOptions

log = logging.getLogger(__name__)
#: --save-video suffix -> FourCC that this OpenCV (FFmpeg backend) writes.
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


@dataclass(frozen=True)
class RunOptions:
    """What to read, how to process it and where results go."""

    source: SourceOptions = field(default_factory=SourceOptions)
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    headless: bool = False
    json: bool = False
    save_video: str | None = None
    max_frames: int | None = None
    serve: ServeOptions | None = None

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise OptionsError(f"max_frames must be >= 1, got {self.max_frames}")
        stills = self.source.kind in ("image", "demo")
        if self.save_video and not stills and Path(self.save_video).suffix.lower() not in VIDEO_CODECS:
            raise OptionsError(f"--save-video {self.save_video!r}: expected a file ending in "
                               f"{', '.join(VIDEO_CODECS)}")


@dataclass(frozen=True)
class RunSummary:
    """``frames``: processed; ``dropped``: skipped by a live source because processing was
    slower; ``decode_failures``: frames or images that did not decode; ``faces``: faces over
    all frames; ``fps``: processed frames per second of the loop's wall time."""

    frames: int
    dropped: int
    decode_failures: int
    faces: int
    frames_with_faces: int
    fps: float
    seconds: float
    saved: str | None = None

    def to_line(self) -> str:
        line = (f"{self.frames} frames in {self.seconds:.2f} s ({self.fps:.1f} fps), faces in "
                f"{self.frames_with_faces}, {self.dropped} dropped, {self.decode_failures} failed to decode")
        return line + (f"; saved {self.saved}" if self.saved else "")


def run(options: RunOptions, on_result: Callable[[FrameResult], None] | None = None,
        on_serving: Callable[[FerServer], None] | None = None) -> RunSummary:
    """Process every frame of ``options.source`` (or ``max_frames`` of them)."""
    out = sys.stdout
    frames = faces = with_faces = 0
    fps = None
    source_options = options.source
    if options.serve is not None and not source_options.live:
        source_options = replace(source_options, realtime=True)  # a player's pace, not a decoder's
    with ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())
        server = _start_server(stack, options, on_serving) if options.serve is not None else None
        source = stack.enter_context(open_source(source_options))
        pipeline = stack.enter_context(FerPipeline.create_from_options(options.pipeline))
        sink = stack.enter_context(open_sink(options.save_video, source)) if options.save_video else None
        window = None if options.headless else _try_window(stack, serving=server is not None)
        if pipeline.classifier.meta.framing is None:
            log.warning("warning: %s: %s", Path(pipeline.classifier.model_path).name, NO_FRAMING)
        start = last = time.perf_counter()
        for index, time_ms, frame_bgr in source:
            if source.stills:
                pipeline.reset()
            result = pipeline.process(frame_bgr, index, time_ms)
            frames += 1
            faces += len(result.faces)
            with_faces += bool(result.faces)
            now = time.perf_counter()
            fps = _ema_fps(fps, now - last)
            last = now
            path = source.image_path(index) if source.stills else None
            name = path.name if path is not None else f"frame {index}"
            event = result.to_json()
            if path is not None:  # join results to files: the path as given (the demo: its name)
                event["source"] = str(path) if source_options.kind == "image" else path.name
            event_json = json.dumps(event) if options.json or server is not None else None
            if options.json:
                line = event_json
            else:
                line = None if window is not None else describe(name, result)
            if not _print(out, line):
                break
            annotated = (draw_result(frame_bgr, result, None if source.stills else fps)
                         if sink is not None or window is not None else None)
            if sink is not None:
                sink.write(annotated, name)
            if server is not None:  # drawn and encoded there only if someone watches
                server.publish(result, frame_bgr, annotated_bgr=annotated,
                               fps=None if source.stills else fps, event_json=event_json)
            if on_result is not None:
                on_result(result)
            if window is not None and not window.show(annotated, 0 if source.stills else 1):
                break
            if options.max_frames and frames >= options.max_frames:
                break
        seconds = time.perf_counter() - start
        if server is not None:
            server.set_source_state("ended")
    return RunSummary(frames, source.dropped, source.decode_failures, faces, with_faces,
                      frames / seconds if frames and seconds > 0 else 0.0, seconds,
                      str(sink.path) if sink is not None and sink.written else None)


def describe(name: str, result: FrameResult) -> str:
    """``name: #1 happy 0.91 at [x, y, w, h]; ...`` or ``name: no faces``."""
    parts = [f"#{f.track_id} {f.expression.label} {f.expression.score:.2f} at {list(f.face.box_xywh)}"
             for f in result.faces]
    return f"{name}: {'; '.join(parts) if parts else 'no faces'}"


def _ema_fps(fps: float | None, dt_s: float) -> float | None:
    """Frames per second from an average of frame intervals (averaging the rates 1/dt instead
    overstates uneven loops: a paced video's or a detect-every-2 loop's short gaps dominate)."""
    if dt_s <= 0:
        return fps
    return 1.0 / dt_s if fps is None else 1.0 / (0.9 / fps + 0.1 * dt_s)


def _print(out, line: str | None) -> bool:
    """Write one line; False when the reader went away (``| head``): the run then ends."""
    if line is None:
        return True
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


def _try_window(stack: ExitStack, serving: bool = False):
    try:
        return stack.enter_context(open_window("edge-fer"))
    except DisplayUnavailable as exc:
        if not serving:  # with --serve the browser is the view: nothing to say
            log.info("note: no display (%s); running headless (--headless skips this check; "
                     "--serve shows the annotated video in a browser)", exc)
        return None


def _start_server(stack: ExitStack, options: RunOptions, on_serving) -> FerServer:
    from .serve import FerServer

    info = {"source": options.source.describe(),
            "model": Path(options.pipeline.classifier.model_path).name,
            "detector": options.pipeline.detector.name}
    server = stack.enter_context(FerServer.create_from_options(options.serve, info))
    from .web import mount_device_page

    mount_device_page(server, stack)  # /device/: the phone page
    if on_serving is not None:
        on_serving(server)
    return server


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the run stops as on Ctrl-C (the CLI then exits 143, not 130)."""


@contextmanager
def sigterm_as_interrupt():
    """While inside, the first SIGTERM raises :class:`Terminated` in the main thread (later
    ones are ignored so the cleanup can finish); elsewhere, and outside, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame) -> None:
        if not fired:
            fired.append(signum)
            raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# annotated output --------------------------------------------------------------------------------
def open_sink(path: str, source: FrameSource):
    """A :class:`VideoSink` for videos and cameras, an :class:`ImageFolderSink` for images."""
    if source.stills:
        return ImageFolderSink(path, {p.resolve().parent for p in source.paths})
    if not source.live and Path(path).resolve() == Path(source.name).resolve():
        raise OptionsError(f"--save-video {path} would overwrite the input video")
    return VideoSink(path, source.fps or 30.0)


def _check_parent(path: Path) -> None:
    if not path.parent.is_dir():
        raise OptionsError(f"--save-video {path}: folder {path.parent} does not exist")


class VideoSink:
    """Writes frames to ``.<name>.partial-<pid><suffix>`` beside ``path``; the rename happens
    on a normal exit or KeyboardInterrupt, the partial file is removed on any other error."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        _check_parent(self.path)
        check_writable_folder(self.path.parent, "--save-video")
        self.fourcc = VIDEO_CODECS[self.path.suffix.lower()]
        self.fps = fps
        self.written = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix}")
        self._writer = None
        self._size_wh = None

    def write(self, image_bgr: np.ndarray, name: str = "") -> None:
        if self._writer is None:
            self._size_wh = (image_bgr.shape[1], image_bgr.shape[0])
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc),
                                           self.fps, self._size_wh)
            if not self._writer.isOpened():
                self._writer = None
                raise OutputError(f"cannot write video {self.path}: {self._why_not_opened()}")
        if (image_bgr.shape[1], image_bgr.shape[0]) != self._size_wh:
            image_bgr = cv2.resize(image_bgr, self._size_wh)
        with quiet_native_stderr():  # "Failed to write frame" per frame on a full disk: close() says it once
            self._writer.write(image_bgr)
        self.written += 1

    def close(self, keep: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if keep and self.written and self._tmp.exists():
            try:
                self._check_written()
                commit_file(self._tmp, self.path)
            except BaseException:
                self.written = 0
                self._tmp.unlink(missing_ok=True)
                raise
        else:
            self.written = 0
            self._tmp.unlink(missing_ok=True)

    def _why_not_opened(self) -> str:
        """cv2.VideoWriter says only that it did not open: a full disk, or a missing codec."""
        try:
            disk = os.statvfs(self.path.parent)
            free_bytes = disk.f_bavail * disk.f_frsize
        except OSError:
            free_bytes = None
        if free_bytes is not None and free_bytes < 1 << 20:
            return f"the disk is full ({free_bytes // 1024} KiB free)"
        return f"this OpenCV cannot encode {self.fourcc} into {self.path.suffix} (try another suffix)"

    def _check_written(self) -> None:
        """cv2.VideoWriter reports no write errors (a full disk included): reopen the file and
        count its frames before it takes the output's name."""
        with quiet_native_stderr():  # FFmpeg's "moov atom not found" for a truncated file
            capture = cv2.VideoCapture(str(self._tmp))
        try:
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture.isOpened() else 0
            if capture.isOpened() and frames <= 0:  # no count in the container: read them
                while capture.grab():
                    frames += 1
        finally:
            capture.release()
        if frames != self.written:
            raise OutputError(f"cannot write video {self.path}: the file reopens with {frames} of the "
                              f"{self.written} frames written (is the disk full?); nothing saved")

    def __enter__(self) -> "VideoSink":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(keep=exc_type is None or issubclass(exc_type, KeyboardInterrupt))


class ImageFolderSink:
    """Writes each annotated image into a folder under its source file's name, atomically."""

    def __init__(self, folder: str | Path, input_folders: set[Path]) -> None:
        self.path = Path(folder)
        if self.path.exists() and not self.path.is_dir():
            raise OptionsError(f"--save-video {folder}: for images this must be a folder, and it is a file")
        _check_parent(self.path)
        if self.path.resolve() in input_folders:
            raise OptionsError(f"--save-video {folder} would overwrite the input images: choose another folder")
        try:
            self.path.mkdir(exist_ok=True)
        except OSError as exc:
            raise output_error(self.path, exc) from None
        check_writable_folder(self.path, "--save-video")
        self.written = 0

    def write(self, image_bgr: np.ndarray, name: str) -> None:
        target = self.path / name
        ok, data = cv2.imencode(target.suffix, image_bgr)
        if not ok:
            raise OptionsError(f"cannot encode {target.name} as {target.suffix}")
        write_bytes_atomic(target, data.tobytes())
        self.written += 1

    def close(self) -> None:
        pass

    def __enter__(self) -> "ImageFolderSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
