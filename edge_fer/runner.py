"""``edge-fer run`` as a library call: source -> pipeline -> sinks, with one summary back.

The loop reads a source (:mod:`edge_fer.sources.capture`), runs each frame through the pipeline's image
or video verb and hands the result to every sink (:mod:`edge_fer.sinks`, chosen from the options
by :func:`~edge_fer.sinks.open_sinks`); it knows no output by name.

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

import logging
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .sources.capture import FrameSource, SourceOptions, open_source
from .errors import OptionsError
from .metadata import NO_FRAMING
from .pipeline import FerPipeline, PipelineOptions
from .sinks import VIDEO_CODECS, SinkItem, open_sinks, start_server
from .types import FrameResult

if TYPE_CHECKING:
    from .serve import FerServer, ServeOptions

log = logging.getLogger(__name__)


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
            raise OptionsError(f"RunOptions.max_frames={self.max_frames!r}: expected >= 1")
        stills = self.source.kind in ("image", "demo")
        if self.save_video and not stills and Path(self.save_video).suffix.lower() not in VIDEO_CODECS:
            raise OptionsError(f"RunOptions.save_video={self.save_video!r}: expected a file ending in "
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
    """Process every frame of ``options.source`` (or ``max_frames`` of them) into the sinks."""
    source_options = options.source
    if options.serve is not None and not source_options.live:
        source_options = replace(source_options, realtime=True)  # a player's pace, not a decoder's
    with ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())
        server = (start_server(stack, options.serve, server_info(options), on_serving)
                  if options.serve is not None else None)
        source = stack.enter_context(open_source(source_options))
        pipeline = stack.enter_context(FerPipeline.create_from_options(options.pipeline))
        sinks, file_sink = open_sinks(stack, source=source, json_lines=options.json, headless=options.headless,
                                      save_video=options.save_video, server=server, on_result=on_result)
        warn_without_framing(pipeline)
        tally = Tally()
        for item in processed(source, pipeline, source_options.kind):
            tally.add(item.result)
            if not all(sink.write(item) for sink in sinks) or tally.frames == options.max_frames:
                break
    return tally.summary(source, file_sink)


def processed(source: FrameSource, pipeline: FerPipeline, kind: str) -> Iterator[SinkItem]:
    """Each frame of ``source`` through ``pipeline`` (the image verb for stills, the video verb
    otherwise), as the item every sink is handed."""
    fps = None
    last = time.perf_counter()
    for index, time_ms, frame_bgr in source:
        if source.stills:
            result = pipeline.process_image(frame_bgr, index, time_ms)
        else:
            result = pipeline.process_video(frame_bgr, index, time_ms)
        now = time.perf_counter()
        fps, last = _ema_fps(fps, now - last), now
        path = source.image_path(index) if source.stills else None
        event = result.to_json()
        if path is not None:  # join results to files: the path as given (the demo: its name)
            event["source"] = str(path) if kind == "image" else path.name
        yield SinkItem(result, frame_bgr, path.name if path is not None else f"frame {index}", event,
                       None if source.stills else fps, source.stills)


class Tally:
    """Frames, faces and the loop's wall time, for the :class:`RunSummary`."""

    def __init__(self) -> None:
        self.frames = self.faces = self.with_faces = 0
        self.started = time.perf_counter()

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.faces += len(result.faces)
        self.with_faces += bool(result.faces)

    def summary(self, source: FrameSource, file_sink) -> RunSummary:
        seconds = time.perf_counter() - self.started
        return RunSummary(self.frames, source.dropped, source.decode_failures, self.faces, self.with_faces,
                          self.frames / seconds if self.frames and seconds > 0 else 0.0, seconds,
                          str(file_sink.path) if file_sink is not None and file_sink.written else None)


def warn_without_framing(pipeline: FerPipeline) -> None:
    if pipeline.classifier.meta.framing is None:
        log.warning("warning: %s: %s", Path(pipeline.classifier.model_path).name, NO_FRAMING)


def server_info(options: RunOptions) -> dict:
    """What the live view shows about this run."""
    return {"source": options.source.describe(), "model": Path(options.pipeline.classifier.model_path).name,
            "detector": options.pipeline.detector.name}


def _ema_fps(fps: float | None, dt_s: float) -> float | None:
    """Frames per second from an average of frame intervals (averaging the rates 1/dt instead
    overstates uneven loops: a paced video's or a detect-every-2 loop's short gaps dominate)."""
    if dt_s <= 0:
        return fps
    return 1.0 / dt_s if fps is None else 1.0 / (0.9 / fps + 0.1 * dt_s)


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
