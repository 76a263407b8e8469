"""What one benchmark row measures, in the process that measures it (see :mod:`.worker`).

A row is one (model, detector, runtime threads, OpenCV threads) combination. Its worker process
imports edge-fer, builds the pipeline, processes the first frame (cold start: from before the
interpreter started to this first result), warms up, then times ``frames`` frames, each frame
split into decode / detect / preprocess / classify / track and ``total`` around all of them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .. import defaults
from ..errors import InputError, OptionsError
from ..sources.images import DEMO_IMAGE
from .stats import MIN_FRAMES, RELEASE_FRAMES, RELEASE_SECONDS, Pacer, deadline_misses, fps_from_end_times, \
    measure_loop, summarize

SOURCE_KINDS = ("builtin", "video", "images", "camera")
PIPELINE_STAGES = ("decode", "detect", "track", "align", "preprocess", "classify", "total", "cpu")
CLASSIFIER_STAGES = ("preprocess", "classify", "total", "cpu")
CROP_SEARCH_FRAMES = 32  # classifier-only: frames searched for real face crops


@dataclass(frozen=True)
class SourceSpec:
    """``builtin`` (the packaged astronaut photo), a ``video`` file, ``images`` (a file or a
    folder) or a ``camera`` index."""

    kind: str = "builtin"
    path: str | None = None
    camera: int = 0
    #: Files: frames decoded ahead in a thread of their own (SourceOptions.read_ahead) and the
    #: decoder's threads (SourceOptions.decode_threads).
    read_ahead: int = defaults.READ_AHEAD
    decode_threads: int = defaults.DECODE_THREADS

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise OptionsError(f"source kind must be one of {SOURCE_KINDS}, got {self.kind!r}")
        if self.kind in ("video", "images") and not (self.path and Path(self.path).exists()):
            raise InputError(f"{self.kind} not found: {self.path}")
        if self.kind == "camera" and self.camera < 0:
            raise OptionsError(f"camera index must be >= 0, got {self.camera}")

    def describe(self) -> str:
        if self.kind == "builtin":
            return f"built-in image {DEMO_IMAGE.name} (repeated)"
        return f"camera {self.camera}" if self.kind == "camera" else f"{self.kind} {self.path}"


@dataclass(frozen=True)
class RowConfig:
    """One row of the table."""

    model_path: str
    detector: str = defaults.DETECTOR
    threads: int = defaults.LIVE_THREADS
    cv_threads: int = defaults.OPENCV_THREADS

    def __post_init__(self) -> None:
        defaults.check_threads("BenchOptions.threads", self.threads)  # a row is one value of each sweep
        defaults.check_threads("BenchOptions.cv_threads", self.cv_threads, minimum=0)  # 0: OpenCV's default


@dataclass(frozen=True)
class BenchOptions:
    """Everything ``edge-fer bench`` was asked; rows are the product of the four sweeps."""

    models: tuple[str, ...]
    detectors: tuple[str, ...] = (defaults.DETECTOR,)
    threads: tuple[int, ...] = (defaults.LIVE_THREADS,)
    cv_threads: tuple[int, ...] = (defaults.OPENCV_THREADS,)
    source: SourceSpec = field(default_factory=SourceSpec)
    frames: int = MIN_FRAMES
    warmup: int = 30
    min_seconds: float = 0.0
    release: bool = False
    fps: float | None = None
    repeat: int = 1
    target_ms: float = 20.0
    classifier_only: bool = False
    data: str | None = None
    labels: tuple[str, ...] | None = None
    scale: float | None = None
    offset: float | None = None
    device: str = "auto"
    detector_model: str | None = None
    detect_width: int = defaults.DETECT_WIDTH
    #: None: not given (the pipeline's default, defaults.DETECT_EVERY).
    detect_every: int | None = None

    def __post_init__(self) -> None:
        from ..detectors import DETECTORS

        if not self.models:
            raise OptionsError(f"BenchOptions.models={self.models!r}: expected at least one model")
        for name, values in (("detectors", self.detectors), ("threads", self.threads),
                             ("cv_threads", self.cv_threads)):
            if not values:
                raise OptionsError(f"BenchOptions.{name}={values!r}: expected at least one value")
        bad = [d for d in self.detectors if d not in DETECTORS]
        if bad:  # the bad value alone, as the CLI took it (--detector VALUE)
            raise OptionsError(f"BenchOptions.detectors={bad[0]!r}: expected one of {', '.join(DETECTORS)}")
        for threads in self.threads:
            defaults.check_threads("BenchOptions.threads", threads)
        for threads in self.cv_threads:
            defaults.check_threads("BenchOptions.cv_threads", threads, minimum=0)  # 0: OpenCV's default
        if self.frames < 2:
            raise OptionsError(f"BenchOptions.frames={self.frames!r}: expected >= 2 (FPS needs two frames)")
        if self.warmup < 1:
            raise OptionsError(f"BenchOptions.warmup={self.warmup!r}: expected >= 1 (the first frame is the "
                               "cold start)")
        if self.min_seconds < 0:
            raise OptionsError(f"BenchOptions.min_seconds={self.min_seconds!r}: expected >= 0")
        if self.fps is not None and not self.fps > 0:
            raise OptionsError(f"BenchOptions.fps={self.fps!r}: expected > 0")
        if self.repeat < 1:
            raise OptionsError(f"BenchOptions.repeat={self.repeat!r}: expected >= 1")
        if not self.target_ms > 0:
            raise OptionsError(f"BenchOptions.target_ms={self.target_ms!r}: expected > 0")
        if self.data is not None and not Path(self.data).is_dir():
            raise InputError(f"BenchOptions.data={str(self.data)!r}: expected a folder DIR/<class>/<image>, "
                             "found none")
        if self.release and (self.frames < RELEASE_FRAMES or self.min_seconds < RELEASE_SECONDS):
            object.__setattr__(self, "frames", max(self.frames, RELEASE_FRAMES))
            object.__setattr__(self, "min_seconds", max(self.min_seconds, RELEASE_SECONDS))

    def rows(self) -> list[RowConfig]:
        return [RowConfig(str(m), d, t, c) for m in self.models for d in self.detectors
                for t in self.threads for c in self.cv_threads]

    def warnings(self) -> list[str]:
        out = []
        if self.frames < MIN_FRAMES:
            out.append(f"BenchOptions.frames={self.frames!r} is below the documented minimum of {MIN_FRAMES}: "
                       "tail percentiles (p99, max) rest on few frames")
        if self.classifier_only and self.detect_every is not None:
            out.append(f"BenchOptions.detect_every={self.detect_every!r} does not apply to "
                       "BenchOptions.classifier_only")
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BenchOptions":
        values = dict(data)
        values["source"] = SourceSpec(**values["source"])
        for name in ("models", "detectors", "threads", "cv_threads", "labels"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# frame sources ------------------------------------------------------------------------------
class TimedFrames:
    """One of :mod:`edge_fer.sources.capture`'s sources, looped for files, read a frame at a time.

    ``read()`` returns the frame and the milliseconds its read took ("decode"): a video frame's
    read and decode (once per pass, the read that reopens the file at its end also pays the
    reopen), an image file's read and decode (images are decoded again on every read), and for
    a camera the wait for its reader thread's newest frame."""

    def __init__(self, source) -> None:
        self._source = source
        self._frames = iter(source)
        self.describe = source.name

    def read(self) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        frame = next(self._frames, None)
        t1 = time.perf_counter()
        if frame is None:
            raise InputError(f"{self.describe} gave no frame")
        return frame.frame_bgr, (t1 - t0) * 1000.0

    def close(self) -> None:
        self._source.close()


def open_frames(spec: SourceSpec) -> TimedFrames:
    """The source ``spec`` names, through capture (files looped, a camera live)."""
    from ..sources.capture import SourceOptions, open_source

    if spec.kind == "builtin":
        options = SourceOptions(demo=True, loop=True, read_ahead=spec.read_ahead)
    elif spec.kind == "images":
        options = SourceOptions(image=spec.path, loop=True, read_ahead=spec.read_ahead)
    elif spec.kind == "video":
        options = SourceOptions(video=spec.path, loop=True, read_ahead=spec.read_ahead,
                                decode_threads=spec.decode_threads)
    else:
        options = SourceOptions(camera=spec.camera)
    return TimedFrames(open_source(options))


# one row, in the worker ----------------------------------------------------------------------
def classifier_options(options: BenchOptions, model_path: str, threads: int):
    from ..classifier import ClassifierOptions

    return ClassifierOptions(model_path=model_path, num_threads=threads, device=options.device,
                             labels=options.labels, scale=options.scale, offset=options.offset)


def detector_options(options: BenchOptions, row: RowConfig):
    from ..detectors import DetectorOptions

    model = options.detector_model
    if row.detector == "haar" and model and not Path(model).is_file():
        model = None  # a folder of detector files: Haar keeps OpenCV's own cascade
    return DetectorOptions(name=row.detector, model_path=model, detect_width=options.detect_width,
                           num_threads=row.threads)


def pipeline_options(options: BenchOptions, row: RowConfig):
    from ..pipeline import PipelineOptions

    return PipelineOptions(classifier=classifier_options(options, row.model_path, row.threads),
                           detector=detector_options(options, row),
                           detect_every=defaults.DETECT_EVERY if options.detect_every is None else options.detect_every,
                           opencv_threads=row.cv_threads)


def _pipeline_step(pipeline, frames) -> Callable[[], tuple[dict, int]]:
    def step():
        frame, decode_ms = frames.read()
        result = pipeline.process(frame)
        stages = {"decode": decode_ms}
        stages.update((k, result.latency_ms[k]) for k in ("detect", "track", "align", "preprocess", "classify"))
        return stages, len(result.faces)
    return step


def find_crops(frames, detector, classifier, limit: int = CROP_SEARCH_FRAMES) -> list[np.ndarray]:
    """Real face crops (as the pipeline would cut them) from the source's first frames."""
    crops = []
    for _ in range(limit):
        frame, _ = frames.read()
        crops.extend(classifier.crop(frame, face) for face in detector.detect(frame))
    return [c for c in crops if c.size]


def _classifier_step(classifier, crops) -> Callable[[], tuple[dict, int]]:
    state = {"i": 0}

    def step():
        crop = crops[state["i"] % len(crops)]
        state["i"] += 1
        t0 = time.perf_counter()
        batch = classifier.preprocess([crop])
        t1 = time.perf_counter()
        classifier.run_batch(batch)
        t2 = time.perf_counter()
        return {"preprocess": (t1 - t0) * 1000.0, "classify": (t2 - t1) * 1000.0}, 1
    return step


def _peak_rss_mb(samples_bytes: list[int]) -> float:
    """The process's peak resident set (the kernel's high-water mark where there is one)."""
    from .machine import peak_rss_bytes

    peak = max(max(samples_bytes) if samples_bytes else 0, peak_rss_bytes())
    return peak / 2**20


def measure_row(options: BenchOptions, row: RowConfig, launched_monotonic: float | None = None,
                started_monotonic: float | None = None) -> dict:
    """Build, cold-start, warm up and time one row in this process; a JSON-ready dict."""
    from ..classifier import ExpressionClassifier
    from ..detectors import create_detector
    from ..pipeline import FerPipeline

    t_imported = time.monotonic()
    handles = []
    try:
        frames = open_frames(options.source)
        handles.append(frames)
        if options.classifier_only:
            cv2.setNumThreads(row.cv_threads)
            classifier = ExpressionClassifier.create_from_options(
                classifier_options(options, row.model_path, row.threads))
            handles.append(classifier)
            detector = create_detector(detector_options(options, row))
            try:
                crops = find_crops(frames, detector, classifier)
            finally:
                detector.close()
            if not crops:
                raise InputError(f"no face found in the first {CROP_SEARCH_FRAMES} frames of "
                                 f"{options.source.describe()}: BenchOptions.classifier_only needs real face crops")
            step, stages = _classifier_step(classifier, crops), CLASSIFIER_STAGES
            backend = classifier.backend_name
        else:
            pipeline = FerPipeline.create_from_options(pipeline_options(options, row))
            handles.append(pipeline)
            step, stages = _pipeline_step(pipeline, frames), PIPELINE_STAGES
            backend = pipeline.classifier.backend_name
        t_built = time.monotonic()
        step()  # the first result
        t_first = time.monotonic()
        for _ in range(options.warmup - 1):
            step()
        return _timed(options, step, stages, backend, cold_start={
            "cold_start_s": (t_first - launched_monotonic) if launched_monotonic else None,
            "interpreter_and_imports_s": (t_imported - launched_monotonic) if launched_monotonic else None,
            "imports_s": (t_imported - started_monotonic) if started_monotonic else None,
            "build_s": t_built - t_imported,
            "first_result_s": t_first - t_built,
        })
    finally:
        for handle in reversed(handles):
            handle.close()


def _timed(options: BenchOptions, step, stages, backend: str, cold_start: dict) -> dict:
    import psutil

    process = psutil.Process()
    rss: list[int] = [process.memory_info().rss]

    def sample(i: int) -> None:
        if i % 10 == 0:
            rss.append(process.memory_info().rss)

    pacer = Pacer(options.fps) if options.fps else None
    cpu0, wall0 = process.cpu_times(), time.perf_counter()
    loop = measure_loop(step, options.frames, options.min_seconds, pacer, every=sample, cpu_clock=time.process_time)
    cpu1, wall1 = process.cpu_times(), time.perf_counter()
    rss.append(process.memory_info().rss)
    busy_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    totals = loop.stages_ms["total"]
    interval_ms = 1000.0 / options.fps if options.fps else None
    faces = np.asarray(loop.faces)
    return {
        "frames": loop.frames,
        "seconds": loop.seconds,
        "fps": fps_from_end_times(loop.end_times_s),
        "latency_ms": {s: summarize(loop.stages_ms[s]) for s in stages if s in loop.stages_ms},
        "cpu_percent": 100.0 * busy_s / max(wall1 - wall0, 1e-9),
        "peak_rss_mb": _peak_rss_mb(rss),
        "rss_start_mb": rss[0] / 2**20,
        "rss_end_mb": rss[-1] / 2**20,
        "cold_start": cold_start,
        "faces_per_frame": float(faces.mean()),
        "frames_without_face": int((faces == 0).sum()),
        "deadline_misses": dict(deadline_misses(totals, options.target_ms, interval_ms), late_starts=loop.late)
        if options.fps else None,
        "backend": backend,
        "opencv_threads_effective": cv2.getNumThreads(),
        "raw_total_ms": [round(t, 4) for t in totals],
    }
