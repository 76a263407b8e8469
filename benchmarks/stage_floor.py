"""Each stage beside its floor: the model's raw invoke time, the stage's time, and where the gap goes.

    python benchmarks/stage_floor.py [--video woman2.mp4 --video test.mp4] [--frames 150]
                                     [--threads 1] [--json benchmarks/results/stage_floor.json]

For every detector of the registry (whichever has its files) and the packaged
classifier files, on the same decoded frames (every frame detected, as `bench` does):
``stage_ms`` is the median time of one ``detect(frame)`` / ``classify(frame, faces)`` call,
``invoke_ms`` the median time of the model's own forward inside it (LiteRT ``invoke``, ONNX
Runtime ``run``, OpenCV ``forward``; YuNet's C++ ``detect`` holds its own pre- and
post-processing, so its floor is the same ONNX file's ``cv2.dnn`` forward at the same size,
measured beside it), ``overhead_ms`` the difference, and ``steps_ms`` the medians of the named
Python steps the gap is spent in (resize, letterbox, decoding, NMS, framing, quantization).
Timing wraps the calls in place, so the figures include the wrappers' own cost (~1 us per step);
steps may nest (MTCNN's ``crops`` call its ``area_resize``; its ``invoke`` is every run of its three nets).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DETECTOR_DIR, ROOT, markdown_table, provenance, sample_videos  # noqa: E402

from edge_fer.bench.machine import machine_info  # noqa: E402
from edge_fer.detectors import DetectorOptions, create_detector, detector_files_present  # noqa: E402
from edge_fer.detectors.registry import DETECTORS  # noqa: E402
from edge_fer.fileio import write_json_atomic  # noqa: E402

CLASSIFIERS = ("edgenet_fer2013_int8.tflite", "edgenet_fer2013.onnx", "edgenet_fer2013_phone.tflite")


class Clock:
    """Per-call times of named steps, grouped by the stage call they happened in."""

    def __init__(self) -> None:
        self.calls: list[dict[str, float]] = []

    def begin(self) -> None:
        self.calls.append({})

    def add(self, label: str, seconds: float) -> None:
        if self.calls:
            current = self.calls[-1]
            current[label] = current.get(label, 0.0) + seconds

    def timed(self, label: str, func):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - start)
        return wrapper

    def median_ms(self, label: str) -> float:
        return 1000.0 * statistics.median(call.get(label, 0.0) for call in self.calls)


@contextmanager
def patched(owner, name: str, replacement):
    """``owner.name`` replaced for the duration (a module's function, an object's method)."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield original
    finally:
        setattr(owner, name, original)


class Proxy:
    """Stands in for an OpenCV object whose methods cannot be replaced: times ``method``."""

    def __init__(self, target, method: str, clock: Clock, label: str) -> None:
        self._target, self._method = target, method
        setattr(self, method, clock.timed(label, getattr(target, method)))

    def __getattr__(self, name: str):
        return getattr(self._target, name)


def instrument_detector(detector, clock: Clock, stack: ExitStack) -> None:
    """Wrap the model's forward (``invoke``) and the named Python steps of ``detector``."""
    import importlib

    module = importlib.import_module(type(detector).__module__)
    for step in ("downscale", "to_faces", "weighted_nms", "detection_output",  # mtcnn's below
                 "integral_image", "area_resize", "crops", "normalise", "nms"):
        if hasattr(module, step):
            stack.enter_context(patched(module, step, clock.timed(step, getattr(module, step))))
    for step in ("_letterbox", "_decode"):
        if hasattr(detector, step):
            stack.enter_context(patched(detector, step, clock.timed(step, getattr(detector, step))))
    if getattr(detector, "_sessions", None):  # mtcnn: three ONNX Runtime nets, every run of them
        stack.enter_context(patched(detector, "_run", clock.timed("invoke", detector._run)))
    elif getattr(detector, "_interpreter", None) is not None:  # blazeface: LiteRT
        stack.enter_context(patched(detector._interpreter, "invoke", clock.timed("invoke", detector._interpreter.invoke)))
    elif getattr(detector, "_session", None) is not None:  # rfb, ssd's ONNX file: ONNX Runtime
        stack.enter_context(patched(detector, "_session", Proxy(detector._session, "run", clock, "invoke")))
    elif type(detector).__name__ == "YuNetDetector":  # C++ detect: pre + forward + decode + NMS
        stack.enter_context(patched(detector, "_net", Proxy(detector._net, "detect", clock, "yunet C++ detect")))
    elif getattr(detector, "_net", None) is not None:  # ssd's Caffe net: cv2.dnn
        stack.enter_context(patched(detector, "_net", Proxy(detector._net, "forward", clock, "invoke")))
    elif getattr(detector, "_cascade", None) is not None:  # haar: the cascade is the model
        stack.enter_context(patched(detector, "_cascade", Proxy(detector._cascade, "detectMultiScale", clock, "invoke")))


def yunet_floor_ms(frames: list[np.ndarray], detect_width: int, threads: int) -> float:
    """YuNet's network alone: its ONNX file through cv2.dnn at the size its detect() runs."""
    from edge_fer.detectors import downscale, find_detector_files

    (path,) = find_detector_files("yunet", None)
    net = cv2.dnn.readNet(str(path))
    cv2.setNumThreads(threads)
    times = []
    for frame in frames:
        small, _ = downscale(frame, detect_width)
        h, w = small.shape[:2]
        padded = cv2.copyMakeBorder(small, 0, -h % 32, 0, -w % 32, cv2.BORDER_CONSTANT)  # as FaceDetectorYN pads
        net.setInput(cv2.dnn.blobFromImage(padded))
        start = time.perf_counter()
        net.forward(net.getUnconnectedOutLayersNames())
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times[3:] or times)


def measure_detector(name: str, frames: list[np.ndarray], threads: int) -> dict:
    options = DetectorOptions(name=name, num_threads=threads)
    clock = Clock()
    totals = []
    with create_detector(options) as detector, ExitStack() as stack:
        for frame in frames[:3]:  # warm-up, untimed
            detector.detect(frame)
        instrument_detector(detector, clock, stack)
        for frame in frames:
            clock.begin()
            start = time.perf_counter()
            detector.detect(frame)
            totals.append(time.perf_counter() - start)
    stage = 1000.0 * statistics.median(totals)
    steps = {label: round(clock.median_ms(label), 3) for label in sorted({k for c in clock.calls for k in c})}
    invoke = yunet_floor_ms(frames, options.detect_width, threads) if name == "yunet" else steps.pop("invoke", None)
    return row(f"detect {name}", stage, invoke, steps)


def measure_classifier(model: Path, frames: list[np.ndarray], faces_per_frame: list, threads: int) -> dict:
    import edge_fer.backends.litert as litert
    import edge_fer.classifier as classifier_module
    from edge_fer.classifier import ClassifierOptions, ExpressionClassifier

    clock = Clock()
    totals = []
    pairs = [(f, faces) for f, faces in zip(frames, faces_per_frame) if faces]
    with ExpressionClassifier.create_from_options(ClassifierOptions(model_path=model, num_threads=threads)) as clf, \
            ExitStack() as stack:
        for frame, faces in pairs[:3]:
            clf.classify(frame, faces)
        backend = clf._backend
        if getattr(backend, "_interpreter", None) is not None:
            stack.enter_context(patched(backend._interpreter, "invoke", clock.timed("invoke", backend._interpreter.invoke)))
            for step in ("quantize", "dequantize", "to_probabilities"):
                stack.enter_context(patched(litert, step, clock.timed(step, getattr(litert, step))))
        else:
            stack.enter_context(patched(backend, "_session", Proxy(backend._session, "run", clock, "invoke")))
        for step in ("frame_face", "preprocess_crops", "soften"):
            stack.enter_context(patched(classifier_module, step, clock.timed(step, getattr(classifier_module, step))))
        for frame, faces in pairs:
            clock.begin()
            start = time.perf_counter()
            clf.classify(frame, faces)
            totals.append(time.perf_counter() - start)
    steps = {label: round(clock.median_ms(label), 3) for label in sorted({k for c in clock.calls for k in c})}
    return row(f"classify {model.name}", 1000.0 * statistics.median(totals), steps.pop("invoke", None), steps)


def row(stage: str, stage_ms: float, invoke_ms: float | None, steps: dict) -> dict:
    return {"stage": stage, "stage_ms": round(stage_ms, 3),
            "invoke_ms": None if invoke_ms is None else round(invoke_ms, 3),
            "overhead_ms": None if invoke_ms is None else round(stage_ms - invoke_ms, 3), "steps_ms": steps}


def read_frames(path: Path, limit: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"stage_floor: no frames in {path}")
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", action="append", type=Path, help="video files (default: woman2.mp4, test.mp4)")
    parser.add_argument("--frames", type=int, default=150, help="frames per video")
    parser.add_argument("--threads", type=int, default=1, help="model threads (and OpenCV's)")
    parser.add_argument("--detector", action="append", choices=DETECTORS, help="default: every one with its files")
    parser.add_argument("--model", action="append", type=Path,
                        help="classifier files to measure (default: the packaged ones)")
    parser.add_argument("--no-detectors", action="store_true", help="classifier rows only")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    import os

    os.environ.setdefault("EDGE_FER_DETECTORS", str(DETECTOR_DIR))  # rfb and ssd's files
    videos = sample_videos(args.video)
    machine = machine_info()
    report = {"machine": machine, **provenance(machine), "threads": args.threads, "videos": {}}
    for video in videos:
        frames = read_frames(video, args.frames)
        rows = []
        for name in [] if args.no_detectors else args.detector or DETECTORS:
            if detector_files_present(name):
                rows.append(measure_detector(name, frames, args.threads))
        with create_detector(DetectorOptions(num_threads=args.threads)) as detector:
            faces = [detector.detect(frame) for frame in frames]
        for path in args.model or [ROOT / "edge_fer" / "models" / name for name in CLASSIFIERS]:
            if path.is_file():
                rows.append(measure_classifier(path, frames, faces, args.threads))
        report["videos"][video.name] = rows
        print(f"\n{video.name}: {len(frames)} frames, {args.threads} thread(s)")
        print(markdown_table(["stage", "invoke ms", "stage ms", "overhead ms", "where the overhead goes (median ms)"],
                             [[r["stage"], fmt(r["invoke_ms"]), fmt(r["stage_ms"]), fmt(r["overhead_ms"]),
                               ", ".join(f"{k} {v:.3f}" for k, v in r["steps_ms"].items())] for r in rows]))
    if args.json:
        write_json_atomic(args.json, report)
    return 0


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
