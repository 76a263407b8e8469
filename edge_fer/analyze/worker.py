"""Per-source work: one pipeline, reset for every source, turns a work item into rows.

    with SourceAnalyzer(pipeline_options) as analyzer:
        result = analyzer.analyze(item)        # SourceResult: rows, or the reason it failed

Each worker process (local pool or Ray) owns one SourceAnalyzer. A source that cannot be read
becomes a SourceResult with ``error`` set and no rows; it never raises.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..errors import EdgeFerError
from .items import WorkItem

log = logging.getLogger(__name__)

#: Rounding applied once, when a row is made, so every output format holds the same values.
TIME_DECIMALS = 3
SCORE_DECIMALS = 6
LANDMARK_DECIMALS = 1
#: Frames between two progress reports from a worker.
REPORT_EVERY = 32


@dataclass(frozen=True)
class FaceRow:
    """One face in one frame. ``x, y, w, h``: its box in pixels of the full frame;
    ``landmarks_xy``: ``{name: (x, y)}`` where the detector gives them; ``scores``: every
    class's probability (smoothed per track, as ``edge-fer run`` reports them)."""

    source: str
    frame: int
    time_ms: float
    track_id: int
    x: int
    y: int
    w: int
    h: int
    expression: str
    score: float
    scores: Mapping[str, float]
    landmarks_xy: Mapping[str, tuple[float, float]] | None = None


@dataclass(frozen=True)
class SourceResult:
    """What one source gave: ``frames`` read, its rows, or ``error`` (one line) and no rows.
    ``duration_ms``: the last frame's timestamp; ``seconds``: processing wall time (not part of
    any output, so engines give identical files). ``dropped_tracks``/``dropped_rows``: short
    tracks left out of ``rows`` (``AnalyzeOptions.min_track_frames``, applied once the source
    ended: see :func:`edge_fer.analyze.summary.drop_short_tracks`)."""

    item: WorkItem
    labels: tuple[str, ...]
    frames: int = 0
    rows: tuple[FaceRow, ...] = ()
    error: str | None = None
    decode_failures: int = 0
    duration_ms: float = 0.0
    seconds: float = 0.0
    dropped_tracks: int = 0
    dropped_rows: int = 0
    reused: bool = field(default=False, compare=False)  # taken from a previous output (--resume)

    @property
    def ok(self) -> bool:
        return self.error is None


def face_rows(source: str, result) -> list[FaceRow]:
    """The rows of one :class:`~edge_fer.types.FrameResult`."""
    rows = []
    time_ms = round(float(result.time_ms), TIME_DECIMALS)
    for tracked in result.faces:
        x, y, w, h = (int(v) for v in tracked.face.box_xywh)
        points = tracked.face.landmarks_xy
        landmarks = None if points is None else {
            name: (round(px, LANDMARK_DECIMALS), round(py, LANDMARK_DECIMALS)) for name, (px, py) in points.items()}
        expression = tracked.expression
        rows.append(FaceRow(source, int(result.frame_index), time_ms, int(tracked.track_id), x, y, w, h,
                            expression.label, round(float(expression.score), SCORE_DECIMALS),
                            {k: round(float(v), SCORE_DECIMALS) for k, v in expression.scores.items()},
                            landmarks))
    return rows


def open_item(item: WorkItem):
    """The frame source of ``item``: an image (one frame) or a video file or URL read in order."""
    from ..sources.capture import ImageSource, VideoSource

    return ImageSource(item.source) if item.kind == "image" else VideoSource(item.source)


def one_line(exc: BaseException) -> str:
    if isinstance(exc, EdgeFerError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class SourceAnalyzer:
    """Owns one :class:`~edge_fer.pipeline.FerPipeline` (built from ``pipeline_options``)."""

    def __init__(self, pipeline_options) -> None:
        from ..pipeline import FerPipeline

        self.options = pipeline_options
        self.pipeline = FerPipeline.create_from_options(pipeline_options)
        self.labels = tuple(self.pipeline.classifier.meta.labels)

    def analyze(self, item: WorkItem, report: Callable[[str, int, int], None] | None = None) -> SourceResult:
        """Every frame of ``item`` through the pipeline (reset first). ``report(kind, index,
        value)``: ``("open", index, frame_count)`` once, then ``("frames", index, n)`` per
        ``REPORT_EVERY`` frames (and the rest at the end)."""
        start = time.perf_counter()
        frames = unreported = 0
        rows: list[FaceRow] = []
        last_ms = 0.0
        source = None
        try:
            source = open_item(item)
            if report is not None:
                report("open", item.index, int(getattr(source, "frame_count", 0) or 1))
            self.pipeline.reset()
            for index, time_ms, frame_bgr in source:
                result = self.pipeline.process(frame_bgr, index, time_ms)
                rows.extend(face_rows(item.source, result))
                frames += 1
                unreported += 1
                last_ms = float(time_ms)
                if report is not None and unreported >= REPORT_EVERY:
                    report("frames", item.index, unreported)
                    unreported = 0
            decode_failures = source.decode_failures
        except Exception as exc:  # a bad source is a failure row, never the end of the batch
            log.debug("%s failed: %s", item.source, one_line(exc))
            return SourceResult(item, self.labels, frames, (), one_line(exc),
                                seconds=time.perf_counter() - start)
        finally:
            if source is not None:
                source.close()
            if report is not None and unreported:
                report("frames", item.index, unreported)
        return SourceResult(item, self.labels, frames, tuple(rows), None, decode_failures,
                            round(last_ms, TIME_DECIMALS), time.perf_counter() - start)

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    def __enter__(self) -> "SourceAnalyzer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
