"""The `fer` package (PyPI) timed like an edge-fer bench worker, in benchmarks/.venv-fer.

    benchmarks/.venv-fer/bin/python benchmarks/fer_worker.py JOB.json OUT.json LAUNCHED_MONOTONIC

JOB: {"video": path, "warmup": W, "frames": N, "use_tflite": true}. Frames come from the same
looping reader (edge_fer.bench.harness.open_frames) and are timed by the same loop
(edge_fer.bench.stats.measure_loop) as edge-fer's own worker: both modules need only the
standard library, numpy and cv2, so this venv imports them from the checkout (PYTHONPATH).
fer's default pipeline: Haar cascade (scaleFactor 1.1, minNeighbors 5, min face 50 px, full
frame) + mini-Xception, by default its dynamic-range TFLite (`use_tflite=True` since 25.x).
"""

import time

STARTED_MONOTONIC = time.monotonic()

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402


def peak_rss_mb(usage) -> float:
    """VmHWM (per address space: not inherited across fork + exec as ru_maxrss is), the same
    figure edge_fer.bench.machine.peak_rss_bytes reports for edge-fer's side."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return usage.ru_maxrss / 1024.0


def main(argv: list[str]) -> int:
    job_path, out_path, launched = argv
    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    warnings.filterwarnings("ignore")
    import cv2
    import fer
    from fer.fer import FER

    from edge_fer.bench.harness import SourceSpec, open_frames
    from edge_fer.bench.report import write_json_atomic
    from edge_fer.bench.stats import fps_from_end_times, measure_loop, summarize

    t_imported = time.monotonic()
    detector = FER(use_tflite=job.get("use_tflite", True))
    frames = open_frames(SourceSpec("video", job["video"]))
    t_built = time.monotonic()

    def step():
        frame, decode_ms = frames.read()
        t0 = time.perf_counter()
        faces = detector.detect_emotions(frame)
        return {"decode": decode_ms, "fer": (time.perf_counter() - t0) * 1000.0}, len(faces)

    step()
    t_first = time.monotonic()
    for _ in range(job["warmup"] - 1):
        step()
    usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    loop = measure_loop(step, job["frames"], cpu_clock=time.process_time)
    usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    frames.close()
    busy = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    faces = loop.faces
    write_json_atomic(out_path, {
        "frames": loop.frames,
        "fps": fps_from_end_times(loop.end_times_s),
        "latency_ms": {k: summarize(v) for k, v in loop.stages_ms.items()},
        "cpu_percent": 100.0 * busy / (wall1 - wall0),
        "peak_rss_mb": peak_rss_mb(usage1),
        "cold_start": {"cold_start_s": t_first - float(launched),
                       "interpreter_and_imports_s": t_imported - float(launched),
                       "imports_s": t_imported - STARTED_MONOTONIC,
                       "build_s": t_built - t_imported, "first_result_s": t_first - t_built},
        "faces_per_frame": sum(faces) / len(faces),
        "frames_without_face": sum(1 for f in faces if f == 0),
        "backend": "fer " + ("tflite" if job.get("use_tflite", True) else "keras"),
        "fer_version": fer.__version__,
        "opencv": cv2.__version__,
        "opencv_threads_effective": cv2.getNumThreads(),
        "tf_cpp_min_log_level": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
        "raw_total_ms": [round(t, 4) for t in loop.stages_ms["total"]],
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
