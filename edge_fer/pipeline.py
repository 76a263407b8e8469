"""One frame through detect -> crop/preprocess -> classify -> track/smooth, with timings.

    with FerPipeline.create_from_options(PipelineOptions()) as pipeline:
        result = pipeline.process(frame_bgr)      # FrameResult
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import defaults
from .classifier import ClassifierOptions, ExpressionClassifier
from .detectors import DetectorOptions, create_detector
from .errors import InputError, OptionsError
from .tracking import IouTracker, drop_nested
from .types import FrameResult, TrackedFace

#: Per-frame timings in FrameResult.latency_ms: detector, tracker (matching and smoothing),
#: framing (alignment or box crop), normalization to the model's input, the model, the sum.
STAGES = ("detect", "track", "align", "preprocess", "classify", "total")


@dataclass(frozen=True)
class PipelineOptions:
    """``detect_every``: run the detector on every Nth frame, carrying tracked boxes between.
    ``smooth``: EMA weight of the past per track (0 = off). ``opencv_threads``: OpenCV's
    thread pool (it competes with the classifier's ``num_threads`` for the cores)."""

    classifier: ClassifierOptions = field(default_factory=ClassifierOptions)
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    detect_every: int = defaults.DETECT_EVERY
    smooth: float = defaults.SMOOTH
    iou_threshold: float = 0.3
    max_track_misses: int = 5
    opencv_threads: int = defaults.OPENCV_THREADS

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise OptionsError(f"PipelineOptions.detect_every={self.detect_every!r}: expected >= 1")
        if not 0.0 <= self.smooth < 1.0:
            raise OptionsError(f"PipelineOptions.smooth={self.smooth!r}: expected 0 <= smooth < 1")
        defaults.check_threads("PipelineOptions.opencv_threads", self.opencv_threads, minimum=0)  # 0: OpenCV's default


class FerPipeline:
    def __init__(self, options: PipelineOptions, detector, classifier: ExpressionClassifier) -> None:
        self.options = options
        self.detector = detector
        self.classifier = classifier
        self._started_s: float | None = None  # perf_counter() of the first frame (time_ms None)
        self.reset()

    @classmethod
    def create_from_options(cls, options: PipelineOptions = PipelineOptions()) -> "FerPipeline":
        cv2.setNumThreads(options.opencv_threads)
        classifier = ExpressionClassifier.create_from_options(options.classifier)
        try:
            detector = create_detector(options.detector)
        except BaseException:
            classifier.close()
            raise
        return cls(options, detector, classifier)

    def process(self, frame_bgr: np.ndarray, frame_index: int | None = None,
                time_ms: float | None = None) -> FrameResult:
        """Detect (or carry tracked boxes), classify every face in one batch, smooth per track.
        ``time_ms`` None: milliseconds since this pipeline processed its first frame (0.0 then),
        the same meaning as a source's timestamps for a camera."""
        if self.classifier is None:
            raise ValueError("this FerPipeline is closed")
        if not isinstance(frame_bgr, np.ndarray) or frame_bgr.ndim not in (2, 3) or frame_bgr.size == 0:
            raise InputError(f"frame must be a non-empty HxWx3 BGR array, got {getattr(frame_bgr, 'shape', type(frame_bgr))}")
        index = self._frames if frame_index is None else frame_index
        t0 = time.perf_counter()
        detect = self._frames % self.options.detect_every == 0 or not self.tracker.live()
        detections = drop_nested(self.detector.detect(frame_bgr)) if detect else None
        t1 = time.perf_counter()
        tracks = self.tracker.update(detections) if detect else self.tracker.live()
        t2 = time.perf_counter()
        crops = [self.classifier.crop(frame_bgr, t.face) for t in tracks]
        t3 = time.perf_counter()
        batch = self.classifier.preprocess(crops) if crops else None
        t4 = time.perf_counter()
        probs = self.classifier.run_batch(batch) if crops else np.zeros((0, 0), np.float32)
        t5 = time.perf_counter()
        faces = tuple(TrackedFace(t.track_id, t.face,
                                  self.classifier.to_expression(self.tracker.smooth_probs(t, p)))
                      for t, p in zip(tracks, probs))
        t6 = time.perf_counter()
        self._frames += 1
        latency = {"detect": t1 - t0, "track": (t2 - t1) + (t6 - t5), "align": t3 - t2,
                   "preprocess": t4 - t3, "classify": t5 - t4, "total": t6 - t0}
        if time_ms is None:  # like a source's: ms since this pipeline's first frame (never wall-clock time)
            if self._started_s is None:
                self._started_s = t0
            time_ms = (t0 - self._started_s) * 1000.0
        return FrameResult(index, time_ms, faces,
                           {k: v * 1000.0 for k, v in latency.items()})

    def process_image(self, image_bgr: np.ndarray, frame_index: int = 0,
                      time_ms: float | None = None) -> FrameResult:
        """One still image, unrelated to the frames before it: detection always runs, and no
        track or smoothing carries over (the image verb; :meth:`process_video` for video)."""
        self.reset()
        return self.process(image_bgr, frame_index, time_ms)

    def process_video(self, frame_bgr: np.ndarray, frame_index: int, time_ms: float) -> FrameResult:
        """The next frame of one video or camera, with its index and timestamp: tracks and
        smoothing carry over, detection runs every ``detect_every`` frames (the video verb)."""
        return self.process(frame_bgr, frame_index, time_ms)

    def reset(self) -> None:
        """Forget every track and its smoothing (call between unrelated images)."""
        o = self.options
        self.tracker = IouTracker(o.iou_threshold, o.max_track_misses, o.smooth)
        self._frames = 0

    def close(self) -> None:
        for handle in (self.detector, self.classifier):
            if handle is not None:
                handle.close()
        self.detector = self.classifier = None

    def __enter__(self) -> "FerPipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
