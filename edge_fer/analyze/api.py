"""``analyze(paths, options)``: typed rows from many sources; ``write_analysis``: the files.

    analysis = analyze(["sessions/"], AnalyzeOptions(workers=2))
    for row in analysis:                     # FaceRow, in source order then frame order
        ...
    analysis.summary                         # AnalysisSummary: per-track rows, failures

    summary = write_analysis(["sessions/"], WriteOptions(out="r.parquet", timeline_dir="plots"))
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from .. import defaults
from ..errors import InputError, OptionsError
from ..pipeline import PipelineOptions
from .engines import ENGINES, Engine, InlineEngine, LocalEngine, leave_if_spawning, quiet
from .items import discover_all
from .ray_engine import RayEngine, parse_ray_address
from .summary import MIN_TRACK_FRAMES, AnalysisSummary, drop_short_tracks
from .worker import FaceRow, SourceAnalyzer, SourceResult

log = logging.getLogger(__name__)

#: Local workers beyond this many per core only add memory and contention.
MAX_WORKERS_PER_CORE = 4
MAX_RAY_WORKERS = 100_000


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_pipeline() -> PipelineOptions:
    """The pipeline defaults with :data:`~edge_fer.defaults.WORKER_THREADS` model threads: the
    workers, not the threads, fill the cores."""
    pipeline = PipelineOptions()
    return replace(pipeline, classifier=replace(pipeline.classifier, num_threads=defaults.WORKER_THREADS),
                   detector=replace(pipeline.detector, num_threads=defaults.WORKER_THREADS))


@dataclass(frozen=True)
class AnalyzeOptions:
    """``pipeline``: per-worker pipeline (by default one classifier, detector and OpenCV thread
    each, :func:`worker_pipeline`, so ``workers`` processes keep ``workers`` cores busy without
    oversubscribing).
    ``workers``: processes (local) or tasks in flight (ray); None: the cores here, or the
    cluster's CPUs. ``engine``: ``local`` or ``ray``; ``ray_address``: a cluster to join
    (``host:port`` or ``auto``). ``glob``: keep only matching files found in folders.
    ``min_track_frames``: leave out tracks seen in fewer frames (false detections; 0 or 1 keeps
    every track; a track seen in every frame of its source is always kept).
    ``follow_links``: follow symbolic links in folders that lead out of the folders given."""

    pipeline: PipelineOptions = field(default_factory=worker_pipeline)
    workers: int | None = None
    engine: str = "local"
    ray_address: str | None = None
    glob: str | None = None
    min_track_frames: int = MIN_TRACK_FRAMES
    follow_links: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise OptionsError(f"AnalyzeOptions.engine={self.engine!r}: expected one of {', '.join(ENGINES)}")
        if self.ray_address is not None and self.engine != "ray":
            raise OptionsError(f"AnalyzeOptions.ray_address={self.ray_address!r} needs AnalyzeOptions.engine='ray' "
                               f"(got AnalyzeOptions.engine={self.engine!r})")
        parse_ray_address(self.ray_address)
        if self.workers is not None:
            most = MAX_RAY_WORKERS if self.engine == "ray" else MAX_WORKERS_PER_CORE * cpu_cores()
            if not 1 <= self.workers <= most:
                where = "" if self.engine == "ray" else f" ({MAX_WORKERS_PER_CORE} per core on this machine's {cpu_cores()})"
                raise OptionsError(f"AnalyzeOptions.workers={self.workers!r}: expected 1 to {most}{where}")
        if self.glob is not None and not self.glob.strip():
            raise OptionsError(f"AnalyzeOptions.glob={self.glob!r}: expected a non-empty pattern such as '*.mp4'")
        if (not isinstance(self.min_track_frames, int) or isinstance(self.min_track_frames, bool)
                or not 0 <= self.min_track_frames <= 1_000_000):
            raise OptionsError(f"AnalyzeOptions.min_track_frames={self.min_track_frames!r}: expected 0 to 1000000 "
                               f"frames, such as {MIN_TRACK_FRAMES} (0 or 1: keep every track)")

    def local_workers(self, items: int) -> int:
        return max(1, min(self.workers or cpu_cores(), items))


def create_engine(options: AnalyzeOptions, items: int, labels: tuple[str, ...]) -> Engine:
    if options.engine == "ray":
        return RayEngine(options.pipeline, options.ray_address, options.workers, labels)
    workers = options.local_workers(items)
    threads = max(options.pipeline.classifier.num_threads, options.pipeline.opencv_threads)
    if workers * threads > cpu_cores():
        log.warning("%d workers x %d threads each on %d cores: they will compete for the cores",
                    workers, threads, cpu_cores())
    return InlineEngine(options.pipeline) if workers == 1 else LocalEngine(options.pipeline, workers, labels)


class Analysis:
    """An iterable of :class:`FaceRow` over every source (read once), then ``summary``.

    Bad inputs (a missing path, an empty folder, a model that does not load) raise here, before
    any work. ``previous``: results to reuse, keyed by (source, size, mtime_ns) (``--resume``).
    ``on_event(kind, index, value)``: progress (see :mod:`edge_fer.analyze.progress`).
    """

    def __init__(self, paths, options: AnalyzeOptions = AnalyzeOptions(),
                 on_event: Callable[[str, int, int], None] | None = None,
                 previous: dict | None = None) -> None:
        self.options = options
        found = discover_all(paths, options.glob, options.follow_links)
        self.items, self.skipped = found.items, found.skipped
        if options.engine == "local" and options.local_workers(len(self.items)) > 1:
            leave_if_spawning()  # a spawned worker running an unguarded script again: before the model loads
        with SourceAnalyzer(options.pipeline) as probe:  # a model or detector that does not load fails here
            self.labels = probe.labels
            #: the detector's confidence threshold (its default where none is given; None: it has none)
            self.detector_confidence = getattr(probe.pipeline.detector, "min_confidence", None)
        self._summary = AnalysisSummary(self.labels, min_track_frames=options.min_track_frames,
                                        skipped=list(self.skipped))
        self.on_event = on_event or quiet
        self.previous = previous or {}
        self._started = False

    def _reused(self, item) -> SourceResult | None:
        found = self.previous.get(item.key) if item.kind != "url" else None
        return None if found is None else replace(found, item=item)

    def results(self) -> Iterator[SourceResult]:
        """One :class:`SourceResult` per source, in source order (also on failure)."""
        if self._started:
            raise RuntimeError("an Analysis is read once; call analyze() again")
        self._started = True
        start = time.perf_counter()
        todo = [item for item in self.items if self._reused(item) is None]
        self.on_event("start", -1, len(self.items))
        with create_engine(self.options, len(todo), self.labels) if todo else nullcontext() as engine:
            fresh = engine.map_in_order(todo, self.on_event) if todo else iter(())
            for item in self.items:
                reused = self._reused(item)
                if reused is None:  # a whole source: its tracks have ended
                    result = drop_short_tracks(next(fresh), self.options.min_track_frames)
                else:
                    result = reused
                self._summary.add(result)
                self._summary.seconds = time.perf_counter() - start
                self.on_event("skip" if reused is not None else "done", item.index, result.frames)
                yield result

    @property
    def summary(self) -> AnalysisSummary:
        """The summary: complete once the rows are read (reading it first runs the analysis)."""
        if not self._started:
            for _ in self.results():
                pass
        return self._summary

    def __iter__(self) -> Iterator[FaceRow]:
        for result in self.results():
            yield from result.rows
        return self._summary

    def to_arrow(self):
        """Every row as a pyarrow Table with the output's typed columns (needs pyarrow)."""
        import pyarrow as pa

        from .writers import LANDMARK_NAMES, arrow_schema, row_columns, row_record

        rows = list(self)
        names = tuple(n for n in LANDMARK_NAMES if rows and n in (rows[0].landmarks_xy or {}))
        schema = arrow_schema(row_columns(self.labels, names))
        return pa.Table.from_pylist([row_record(r, self.labels, names) for r in rows], schema)

    def to_pandas(self):
        """Every row as a pandas DataFrame (needs pandas and pyarrow)."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise OptionsError("to_pandas() needs pandas: pip install pandas") from None
        return self.to_arrow().to_pandas()


def analyze(paths, options: AnalyzeOptions = AnalyzeOptions(), on_event=None) -> Analysis:
    """Analyze videos, images, folders and recording URLs: iterate for :class:`FaceRow` s
    (``summary = yield from analyze(...)`` also gives the summary), then read ``.summary``."""
    return Analysis(paths, options, on_event)


@dataclass(frozen=True)
class WriteOptions:
    """``out``: the rows file (.csv, .jsonl or .parquet), with its side files named after it
    (``r.csv.summary.csv``, ...: :mod:`edge_fer.analyze.outputs`); ``timeline_dir``: one PNG per
    video; ``resume``: keep the rows of sources already in ``out`` (or in the progress file of
    an interrupted run) with the same path, size and modification time, and read only the
    others; ``overwrite``: replace existing outputs (and write through an ``out`` that is a
    symbolic link). Without either, an existing output is refused before any work."""

    out: str
    analyze: AnalyzeOptions = field(default_factory=AnalyzeOptions)
    timeline_dir: str | None = None
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        from .writers import output_format

        output_format(self.out)


def _prepare_timeline_dir(folder: str) -> Path:
    option = f"WriteOptions.timeline_dir={str(folder)!r}"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise OptionsError(f"{option}: needs matplotlib (pip install matplotlib)") from None
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option}: cannot create the folder ({exc.strerror})") from None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InputError(f"{option}: folder is not writable ({exc.strerror})") from None
    return path


def _timelines(plan, folder: str, items) -> dict:
    """``{item index: Target}`` of the PNGs, each checked (before any work)."""
    from .timeline import timeline_names

    if Path(folder).is_dir():  # check the PNGs it holds first: a refused run creates nothing
        targets = plan.check_timelines(Path(folder), timeline_names(items))
        _prepare_timeline_dir(folder)
        return targets
    _prepare_timeline_dir(folder)
    return plan.check_timelines(Path(folder), timeline_names(items))


def write_analysis(paths, options: WriteOptions, on_event=None) -> AnalysisSummary:
    """Analyze ``paths`` into ``options.out`` and its side files; PNG timelines go to
    ``options.timeline_dir`` as each video finishes.

    Every output path is checked before any work (InputError, one line). Finished sources are
    recorded in the progress file as they come, so an interrupted run loses nothing that
    ``resume`` cannot take back. At the end each file is renamed into place on its own: one
    that cannot be written is logged and listed in ``summary.unwritten``, the others are
    written (the progress file stays while the rows or sources file is missing)."""
    from .outputs import OutputPlan, write_failure
    from .resume import Progress, load_previous
    from .settings import run_settings
    from .writers import FORMATS, OutputFiles

    plan = OutputPlan(options.out, overwrite=options.overwrite, resume=options.resume, suffixes=tuple(FORMATS))
    plan.check()
    analysis = Analysis(paths, options.analyze, on_event)  # bad inputs fail before any folder is made
    min_frames = options.analyze.min_track_frames
    settings = run_settings(options.analyze.pipeline, analysis.detector_confidence)  # recorded, and compared
    keep = None
    if options.resume:  # a corrupted previous output, or other settings, fail here, before any folder is made
        analysis.previous, keep = load_previous(plan, analysis.labels, min_frames, settings)
    pngs = _timelines(plan, options.timeline_dir, analysis.items) if options.timeline_dir else {}
    plan.ready()
    unwritten: list[tuple[str, str]] = []
    with Progress(plan.progress.real, analysis.labels, min_frames, keep, settings) as progress, \
            OutputFiles(plan, analysis.labels, min_frames, settings) as files:
        for result in analysis.results():
            progress.add(result)
            files.add(result)
            target = pngs.get(result.item.index)
            if result.ok and target is not None:
                from .timeline import plot_timeline

                try:
                    plot_timeline(result, target.real)
                except Exception as exc:  # one PNG never costs the rest of the run
                    log.warning("cannot write %s: %s", target.path, write_failure(target.real, exc))
                    unwritten.append((str(target.path), write_failure(target.real, exc)))
        summary = analysis.summary
        for path, reason in files.finish(summary):
            log.warning("cannot write %s: %s", path, reason)
            unwritten.append((path, reason))
        if {"rows", "sources"} <= files.written:
            progress.remove()
        else:
            log.warning("the finished sources stay in %s: rerun with WriteOptions.resume once the outputs can "
                        "be written", plan.progress.path)
    summary.unwritten = unwritten
    return summary
