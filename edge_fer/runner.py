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
is called once it listens (the CLI prints its URL). When the input ends the server stays up,
showing the last frame and its results, until Ctrl-C or a terminating signal.
SIGTERM, SIGHUP and SIGQUIT stop any run as Ctrl-C does (the exception is :class:`Terminated`,
a KeyboardInterrupt: the video is kept). Once frames were processed, the interrupt carries the
run's :class:`RunSummary` so far as its ``summary`` attribute (the CLI prints it and exits 0).
For image sources each ``--json`` object names its file (``"source"``, the path as given).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from .sources.capture import FrameSource, SourceOptions, open_source
from .errors import OptionsError
from .metadata import NO_FRAMING
from .pipeline import FerPipeline, PipelineOptions
from .signals import STOP_SIGNALS, Terminated, stop_signals_raise  # noqa: F401 (re-exported)
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
    all frames; ``tracks``: distinct face tracks; ``fps``: processed frames per second of the
    loop's wall time; ``latency_p50_ms``/``latency_p95_ms``: per stage (``FrameResult.latency_ms``
    keys), over the last :data:`LATENCY_WINDOW` frames."""

    frames: int
    dropped: int
    decode_failures: int
    faces: int
    frames_with_faces: int
    fps: float
    seconds: float
    saved: str | None = None
    tracks: int = 0
    latency_p50_ms: dict = field(default_factory=dict)
    latency_p95_ms: dict = field(default_factory=dict)

    def to_line(self) -> str:
        line = (f"{self.frames} frames in {self.seconds:.2f} s ({self.fps:.1f} fps), faces in "
                f"{self.frames_with_faces}, {self.tracks} tracks, {self.dropped} dropped, "
                f"{self.decode_failures} failed to decode")
        if self.latency_p50_ms:
            line += "; p50/p95 ms " + ", ".join(f"{stage} {p50:.2f}/{self.latency_p95_ms[stage]:.2f}"
                                                for stage, p50 in self.latency_p50_ms.items())
        return line + (f"; saved {self.saved}" if self.saved else "")


#: Frames whose per-stage latencies the summary's percentiles cover (the most recent ones).
LATENCY_WINDOW = 100_000
#: Seconds between checks for Ctrl-C while a served run shows its last frame.
HOLD_POLL_S = 0.5


def run(options: RunOptions, on_result: Callable[[FrameResult], None] | None = None,
        on_serving: Callable[[FerServer], None] | None = None) -> RunSummary:
    """Process every frame of ``options.source`` (or ``max_frames`` of them) into the sinks."""
    source_options = options.source
    if options.serve is not None and not source_options.live:
        source_options = replace(source_options, realtime=True)  # a player's pace, not a decoder's
    with ExitStack() as stack:
        stack.enter_context(stop_signals_raise())
        server = (start_server(stack, options.serve, server_info(options), on_serving)
                  if options.serve is not None else None)
        source = stack.enter_context(open_source(source_options))
        pipeline = stack.enter_context(FerPipeline.create_from_options(options.pipeline))
        sinks, file_sink = open_sinks(stack, source=source, json_lines=options.json, headless=options.headless,
                                      save_video=options.save_video, server=server, on_result=on_result)
        warn_without_framing(pipeline)
        tally, sinks_stopped = Tally(), False
        with summary_on_interrupt(lambda: tally.summary(source, file_sink) if tally.frames else None):
            for item in processed(source, pipeline, source_options.kind):
                tally.add(item.result)
                sinks_stopped = not all(sink.write(item) for sink in sinks)
                if sinks_stopped or tally.frames == options.max_frames:
                    break
        summary = tally.summary(source, file_sink)
        if server is not None and not sinks_stopped:
            with summary_on_interrupt(lambda: summary):
                hold_last_frame(server)
    return summary


@contextmanager
def summary_on_interrupt(summary: Callable[[], RunSummary | None]):
    """A KeyboardInterrupt (Ctrl-C, :class:`Terminated`) leaves with ``summary()`` attached
    (None: nothing was processed yet)."""
    try:
        yield
    except KeyboardInterrupt as stop:
        stop.summary = summary()
        raise


def hold_last_frame(server: FerServer) -> None:
    """The input ended: keep the live view up with the last frame and its results until Ctrl-C
    or a terminating signal (which raise here)."""
    server.set_source_state("ended")
    log.info("input ended; still serving the last frame at %s, Ctrl-C to stop", server.url)
    while True:
        time.sleep(HOLD_POLL_S)


def processed(source: FrameSource, pipeline: FerPipeline, kind: str) -> Iterator[SinkItem]:
    """Each frame of ``source`` through ``pipeline`` (the image verb for stills, the video verb
    otherwise), as the item every sink is handed."""
    fps, noted_small = None, False
    last = time.perf_counter()
    for index, time_ms, frame_bgr in source:
        if source.stills:
            result = pipeline.process_image(frame_bgr, index, time_ms)
        else:
            result = pipeline.process_video(frame_bgr, index, time_ms)
        now = time.perf_counter()
        fps, last = _ema_fps(fps, now - last), now
        path = source.image_path(index) if source.stills else None
        if source.stills and not result.faces and not noted_small:
            noted_small = small_image_note(frame_bgr, path, pipeline.options.detector.min_face_px)
        event = result.to_json()
        if path is not None:  # join results to files: the path as given (the demo: its name)
            event["source"] = str(path) if kind == "image" else path.name
        yield SinkItem(result, frame_bgr, path.name if path is not None else f"frame {index}", event,
                       None if source.stills else fps, source.stills)


#: A still image this small that shows no face is likely a face crop already (FER2013's are 48 px).
SMALL_IMAGE_PX = 128


def small_image_note(frame_bgr, path: Path | None, min_face_px: int) -> bool:
    """A small image without a face is probably a face crop already, which the detectors cannot
    find (they look for a face inside a larger picture): say so (once a run). True if said."""
    height, width = frame_bgr.shape[:2]
    if min(height, width) >= SMALL_IMAGE_PX:
        return False
    log.info("note: no face found in %s (%dx%d px): the detectors look for faces of at least %d px "
             "(DetectorOptions.min_face_px) inside a larger picture; images that are face crops already "
             "(like FER2013's 48x48) are scored as they are by `edge-fer eval --data FOLDER` (one subfolder per class)",
             path.name if path is not None else "the image", width, height, min_face_px)
    return True


class Tally:
    """Frames, faces, tracks, per-stage latencies and the loop's wall time, for the :class:`RunSummary`."""

    def __init__(self) -> None:
        self.frames = self.faces = self.with_faces = 0
        self.track_ids: set[int] = set()
        self.latency_ms: dict[str, deque] = {}
        self.started = time.perf_counter()
        self.ended: float | None = None

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.faces += len(result.faces)
        self.with_faces += bool(result.faces)
        self.track_ids.update(face.track_id for face in result.faces)
        for stage, value in result.latency_ms.items():
            self.latency_ms.setdefault(stage, deque(maxlen=LATENCY_WINDOW)).append(value)
        self.ended = time.perf_counter()

    def summary(self, source: FrameSource, file_sink) -> RunSummary:
        seconds = (self.ended or time.perf_counter()) - self.started
        p50 = {stage: float(np.percentile(values, 50)) for stage, values in self.latency_ms.items()}
        p95 = {stage: float(np.percentile(values, 95)) for stage, values in self.latency_ms.items()}
        return RunSummary(self.frames, source.dropped, source.decode_failures, self.faces, self.with_faces,
                          self.frames / seconds if self.frames and seconds > 0 else 0.0, seconds,
                          str(file_sink.path) if file_sink is not None and file_sink.written else None,
                          len(self.track_ids), p50, p95)


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
