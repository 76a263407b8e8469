"""What `edge-fer run --serve` costs the processing loop: 0 and 1 viewers against no server.

    .venv/bin/python benchmarks/serve_cost.py [--video woman2.mp4] [--frames 300] [--rounds 3]

Each condition runs in its own process (``--worker``), rounds rotate the order, medians over
rounds are reported side by side:

* ``none``: ``pipeline.process`` per frame, as `edge-fer run` without --serve;
* ``idle``: the same plus ``json.dumps`` and ``FerServer.publish`` (a server, nobody watching);
* ``viewer``: the same with one MJPEG viewer, a separate process reading /stream.mjpg.

Frames are decoded into memory first and the loop is unpaced, so the figures are the loop's own
cost. Per frame: the loop thread's wall ms (median, mean), the loop thread's own CPU ms, and
the process's CPU ms (all its threads: the loop plus the server's, where the JPEG encode
happens). On a shared machine the CPU figures are the ones to read: wall time includes waiting
for a core. The JPEG encode (draw +
imencode of one annotated frame) is timed alone in every worker. Writes
benchmarks/results/serve_cost.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common
from _common import MEDIA, RESULTS, markdown_table

CONDITIONS = ("none", "idle", "viewer")
VIEWER = r"""
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
conn.request("GET", "/stream.mjpg")
response = conn.getresponse()
while response.fp.read(65536):
    pass
"""


def worker(condition: str, video: Path, frames: int) -> dict:
    import cv2

    from edge_fer.draw import draw_result
    from edge_fer.pipeline import FerPipeline, PipelineOptions
    from edge_fer.serve import FerServer, ServeOptions

    cap = cv2.VideoCapture(str(video))
    images = [cap.read()[1] for _ in range(frames)]
    cap.release()
    viewer = None
    with FerPipeline.create_from_options(PipelineOptions()) as pipeline, \
            FerServer.create_from_options(ServeOptions(port=0)) as server:
        for image in images[:20]:  # warm up
            pipeline.process(image)
        encode_ms = []
        for image in images[:50]:
            result = pipeline.process(image)
            t0 = time.perf_counter()
            cv2.imencode(".jpg", draw_result(image, result, 30.0), [cv2.IMWRITE_JPEG_QUALITY, 80])
            encode_ms.append((time.perf_counter() - t0) * 1000.0)
        pipeline.reset()
        if condition == "viewer":
            viewer = subprocess.Popen([sys.executable, "-c", VIEWER, str(server.port)])
            deadline = time.monotonic() + 30
            while server.slots.active < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        encodes_before = server.broadcast.encodes
        loop_ms = []
        cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
        for image in images:
            t0 = time.perf_counter()
            result = pipeline.process(image)
            if condition != "none":
                server.publish(result, image, fps=30.0, event_json=json.dumps(result.to_json()))
            loop_ms.append((time.perf_counter() - t0) * 1000.0)
        cpu_ms = (time.process_time() - cpu0) * 1000.0 / len(images)
        loop_cpu_ms = (time.thread_time() - thread0) * 1000.0 / len(images)
        wall_s = time.perf_counter() - wall0
        encodes = server.broadcast.encodes - encodes_before
    if viewer is not None:
        viewer.kill()
        viewer.wait()
    return {"condition": condition, "frames": len(images), "loop_ms_median": statistics.median(loop_ms),
            "loop_ms_mean": statistics.fmean(loop_ms), "cpu_ms_per_frame": cpu_ms, "loop_cpu_ms_per_frame": loop_cpu_ms, "wall_s": wall_s,
            "jpeg_encodes": encodes, "encode_ms_median": statistics.median(encode_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=MEDIA / "woman2.mp4")
    parser.add_argument("--frames", type=int, default=464)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", choices=CONDITIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.video, args.frames)))
        return

    from edge_fer.bench.machine import machine_info
    from edge_fer.fileio import write_json_atomic

    machine = machine_info()
    runs: dict[str, list[dict]] = {c: [] for c in CONDITIONS}
    for r in range(args.rounds):
        order = CONDITIONS[r % 3:] + CONDITIONS[:r % 3]
        for condition in order:
            out = subprocess.run([sys.executable, __file__, "--worker", condition, "--video", str(args.video),
                                  "--frames", str(args.frames)], capture_output=True, text=True, check=True)
            runs[condition].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {condition}: {runs[condition][-1]}", file=sys.stderr)

    def med(condition: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[condition])

    encode = statistics.median(run["encode_ms_median"] for c in CONDITIONS for run in runs[c])
    base_cpu, base_loop = med("none", "cpu_ms_per_frame"), med("none", "loop_ms_mean")
    base_thread = med("none", "loop_cpu_ms_per_frame")
    rows = []
    for condition in CONDITIONS:
        cpu, loop = med(condition, "cpu_ms_per_frame"), med(condition, "loop_ms_mean")
        encoded = med(condition, "jpeg_encodes") / args.frames
        thread = med(condition, "loop_cpu_ms_per_frame")
        rows.append([condition, f"{med(condition, 'loop_ms_median'):.2f}", f"{loop:.2f}",
                     f"{loop / base_loop:.3f}", f"{thread:.2f}", f"{thread - base_thread:+.2f}",
                     f"{cpu:.2f}", f"{cpu - base_cpu:+.2f}", f"{encoded:.2f}"])
    table = markdown_table(["condition", "loop wall ms p50", "loop wall ms mean", "wall mean / none",
                            "loop thread CPU ms/frame", "vs none", "process CPU ms/frame", "vs none",
                            "JPEGs per frame"], rows)
    summary = (f"{table}\n\nJPEG encode (draw + imencode q80, {args.video.name}): {encode:.2f} ms median. "
               f"Medians of {args.rounds} processes per condition, {args.frames} frames each.")
    record = {"provenance": _common.provenance(machine), "machine": machine, "runs": runs,
              "encode_ms_median": encode, "summary_markdown": summary}
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "serve_cost.json", record)
    print(record["provenance"]["load_note"])
    print(summary)


if __name__ == "__main__":
    main()
