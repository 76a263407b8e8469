"""Soak: 10,000 frames (woman2.mp4 looped) through one long-lived pipeline, as `edge-fer run` builds it.

    .venv/bin/python benchmarks/soak.py [--frames 10000] [--video woman2.mp4] [--sample-every 100]
                                        [--serve]

Samples RSS every ``--sample-every`` frames. Reports memory growth after the first 1,000 frames
(goal: < 5 MB; the first frames fill allocator pools and caches) and latency drift: p50 of total
latency (decode + pipeline) over the first vs the last 1,000 frames. Writes
benchmarks/results/soak.json and prints a Markdown summary.

``--serve`` also publishes every frame to a live-view server (``edge-fer run --serve``'s
FerServer, on loopback) watched all along by one /stream.mjpg and one /events client reading
in threads of this process, so the RSS covers the server and its viewers too.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

import _common
from _common import MEDIA, RESULTS, default_model, markdown_table, overrides_for

from edge_fer.bench.harness import SourceSpec, open_frames
from edge_fer.bench.machine import machine_info
from edge_fer.fileio import file_sha256
from edge_fer.bench.report import write_json_atomic
from edge_fer.bench.stats import fps_from_end_times, percentile, summarize
from edge_fer.classifier import ClassifierOptions
from edge_fer.pipeline import FerPipeline, PipelineOptions

GROWTH_GOAL_MB = 5.0
WINDOW = 1000
COLUMNS = ("decode", "detect", "preprocess", "classify", "track", "total", "cpu")


def slope_mb_per_1k(samples: list[dict]) -> float:
    """Least-squares slope of RSS over frames, MB per 1,000 frames."""
    xs = [s["frame"] for s in samples]
    ys = [s["rss_mb"] for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 1000.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def watch(port: int, path: str, stop: threading.Event, received: list) -> None:
    """A viewer: reads ``path`` and throws it away until ``stop``; counts the bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while not stop.is_set():
            chunk = sock.recv(65536)
            if not chunk:
                return
            received[0] += len(chunk)


def main() -> int:
    import psutil

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--video", default="woman2.mp4")
    parser.add_argument("--model", default=None, help="default: the packaged model (or the peer's TFLite)")
    parser.add_argument("--sample-every", type=int, default=100)
    parser.add_argument("--serve", action="store_true",
                        help="also publish each frame to a FerServer with an MJPEG and an SSE viewer attached")
    parser.add_argument("--out", default=str(RESULTS / "soak.json"))
    args = parser.parse_args()
    if args.frames < 2 * WINDOW:
        sys.exit(f"soak: --frames must be >= {2 * WINDOW} (first and last {WINDOW} frames are compared)")
    video = Path(args.video) if Path(args.video).is_file() else MEDIA / args.video
    model = Path(args.model) if args.model else default_model()
    machine = machine_info()
    print(_common.provenance(machine)["load_note"], file=sys.stderr)
    process = psutil.Process()
    options = PipelineOptions(classifier=ClassifierOptions(model_path=model, **overrides_for(model)))
    # Every per-frame figure goes into arrays allocated before the first frame, so that the
    # soak's own bookkeeping does not show up as RSS growth (Python lists of 10,000 floats do).
    # np.full writes every page now (np.zeros' pages would be committed only as frames fill them).
    timings = np.full((args.frames, len(COLUMNS)), np.nan)
    end_times = np.full(args.frames, np.nan)
    faces = np.full(args.frames, -1, np.int32)
    samples = [{"frame": 0, "seconds": 0.0, "rss_mb": process.memory_info().rss / 2**20}]
    start = time.perf_counter()
    stop, received, server = threading.Event(), [0], None
    with ExitStack() as stack:
        pipeline = stack.enter_context(FerPipeline.create_from_options(options))
        if args.serve:
            from edge_fer.serve import FerServer, ServeOptions

            server = stack.enter_context(FerServer(ServeOptions(port=0), info={"source": str(video)}))
            stack.callback(stop.set)
            for path in ("/stream.mjpg", "/events"):
                threading.Thread(target=watch, args=(server.port, path, stop, received), daemon=True).start()
        frames = open_frames(SourceSpec("video", str(video)))
        try:
            for i in range(args.frames):
                c0, t0 = time.process_time(), time.perf_counter()
                frame, decode_ms = frames.read()
                result = pipeline.process(frame)
                if server is not None:
                    server.publish(result, frame)
                t1, c1 = time.perf_counter(), time.process_time()
                latency = result.latency_ms
                timings[i] = (decode_ms, latency["detect"], latency["preprocess"], latency["classify"],
                              latency["track"], (t1 - t0) * 1000.0, (c1 - c0) * 1000.0)
                end_times[i], faces[i] = t1, len(result.faces)
                if (i + 1) % args.sample_every == 0:
                    samples.append({"frame": i + 1, "seconds": round(t1 - start, 3),
                                    "rss_mb": process.memory_info().rss / 2**20})
                    if (i + 1) % 1000 == 0:
                        print(f"  {i + 1} frames, RSS {samples[-1]['rss_mb']:.1f} MB", file=sys.stderr, flush=True)
        finally:
            frames.close()
    totals = timings[:, COLUMNS.index("total")].tolist()
    cpu = timings[:, COLUMNS.index("cpu")].tolist()
    baseline = next(s for s in samples if s["frame"] >= WINDOW)
    after = [s for s in samples if s["frame"] >= WINDOW]
    growth = samples[-1]["rss_mb"] - baseline["rss_mb"]
    first_p50, last_p50 = percentile(totals[:WINDOW], 50), percentile(totals[-WINDOW:], 50)
    result = {
        "provenance": _common.provenance(machine),
        "machine": machine,
        "video": str(video),
        "model": str(model),
        "model_sha256": file_sha256(str(model)),
        "served": None if server is None else {"viewers": ["/stream.mjpg", "/events"], "bytes_received": received[0],
                                               "jpeg_encodes": server.broadcast.encodes},
        "pipeline_options": "PipelineOptions() defaults with the model above (as `edge-fer run` builds it)",
        "frames": args.frames,
        "seconds": float(end_times[-1] - end_times[0]),
        "fps": fps_from_end_times(end_times.tolist()),
        "latency_ms": {name: summarize(timings[:, j].tolist()) for j, name in enumerate(COLUMNS)},
        "faces_per_frame": float(faces.mean()),
        "rss_mb": {"start": samples[0]["rss_mb"], f"after_{WINDOW}_frames": baseline["rss_mb"],
                   "end": samples[-1]["rss_mb"], "max": max(s["rss_mb"] for s in samples)},
        "rss_growth_mb": growth,
        "rss_growth_goal_mb": GROWTH_GOAL_MB,
        "rss_growth_pass": growth < GROWTH_GOAL_MB,
        "rss_slope_mb_per_1k_frames": slope_mb_per_1k(after),
        "latency_drift": {"p50_first_ms": first_p50, "p50_last_ms": last_p50,
                          "change_percent": 100.0 * (last_p50 - first_p50) / first_p50,
                          "p95_first_ms": percentile(totals[:WINDOW], 95), "p95_last_ms": percentile(totals[-WINDOW:], 95),
                          "cpu_p50_first_ms": percentile(cpu[:WINDOW], 50), "cpu_p50_last_ms": percentile(cpu[-WINDOW:], 50)},
        "rss_samples": samples,
        "machine_at_end": {k: machine_info()[k] for k in ("load_average_1_5_15", "cpu_busy_percent")},
    }
    write_json_atomic(args.out, result)
    drift = result["latency_drift"]
    print(markdown_table(
        ["frames", "FPS", "RSS after 1k MB", "RSS end MB", "growth MB (goal < 5)", "slope MB/1k fr",
         "p50 first 1k ms", "p50 last 1k ms", "drift", "CPU ms p50 first / last 1k"],
        [[str(args.frames), f"{result['fps']:.1f}", f"{baseline['rss_mb']:.1f}", f"{samples[-1]['rss_mb']:.1f}",
          f"{growth:+.2f} ({'pass' if result['rss_growth_pass'] else 'FAIL'})",
          f"{result['rss_slope_mb_per_1k_frames']:+.3f}", f"{first_p50:.2f}", f"{last_p50:.2f}",
          f"{drift['change_percent']:+.1f}%", f"{drift['cpu_p50_first_ms']:.2f} / {drift['cpu_p50_last_ms']:.2f}"]]))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
