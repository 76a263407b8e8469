"""Would the detect-width downscale pay on the second core? The default loop, three ways.

    python benchmarks/downscale_beside.py [--video woman2.mp4 --video test.mp4] [--rounds 5]
                                          [--json benchmarks/results/downscale_beside.json]

The detectors' first step, ``detectors.downscale`` (596 -> 256 px, ``cv2.resize`` INTER_AREA at
a non-integer factor), costs ~0.8-1.0 ms on every detected frame (``stage_floor.py``), and no
cheaper resize gives the same boxes. This measures whether moving it off the critical path buys
frames/s: the default pipeline over each file as ``run`` reads it (one frame decoded ahead),

- ``inline``: as shipped, the detector downscales the frame itself;
- ``beside``: while frame N is processed, frame N+1's downscale (when N+1 is a detect frame)
  runs in a one-thread pool beside it (``cv2.resize`` releases the GIL); the detector takes it;
- ``free``: every downscale done before the clock starts: the most moving it could buy;

each with the runtimes' default threads (``defaults.LIVE_THREADS``) and with 1. Rounds alternate
the configurations, each round a fresh source and pipeline in this process; frames/s is frames
over the loop's wall time, medians over rounds. The outputs are the same in every configuration
(the same ``downscale`` call on the same frame), which the script checks on each round.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, provenance, rounds_parser, sample_videos  # noqa: E402
from stage_floor import patched  # noqa: E402

from edge_fer import defaults  # noqa: E402
from edge_fer.bench.machine import machine_info  # noqa: E402
from edge_fer.classifier import ClassifierOptions  # noqa: E402
from edge_fer.detectors import DetectorOptions, downscale  # noqa: E402
from edge_fer.detectors import blazeface  # noqa: E402
from edge_fer.fileio import write_json_atomic  # noqa: E402
from edge_fer.pipeline import FerPipeline, PipelineOptions  # noqa: E402
from edge_fer.sources.capture import SourceOptions, open_source  # noqa: E402

MODES = ("inline", "beside", "free")


def one_round(video: Path, mode: str, threads: int, ready: dict | None) -> tuple[float, list]:
    """(frames/s, every frame's faces) of one pass over ``video``; ``ready``: frame index ->
    its downscale, computed before (mode ``free``)."""
    options = PipelineOptions(classifier=ClassifierOptions(num_threads=threads),
                              detector=DetectorOptions(num_threads=threads))
    pending: dict[int, object] = {}  # id(frame) -> the future of its downscale
    current = {"index": -1}

    def taken(frame_bgr, detect_width):
        if mode == "free":
            return ready[current["index"]]
        job = pending.pop(id(frame_bgr), None)
        return job.result() if job is not None else downscale(frame_bgr, detect_width)

    outputs = []
    with ThreadPoolExecutor(1) as pool, patched(blazeface, "downscale", taken if mode != "inline" else downscale), \
            open_source(SourceOptions(video=video)) as source, FerPipeline.create_from_options(options) as pipeline:
        frames = iter(source)
        upcoming = next(frames, None)
        start = time.perf_counter()
        while upcoming is not None:
            (index, time_ms, frame_bgr), upcoming = upcoming, next(frames, None)
            if mode == "beside" and upcoming is not None and (len(outputs) + 1) % pipeline.options.detect_every == 0:
                pending[id(upcoming.frame_bgr)] = pool.submit(downscale, upcoming.frame_bgr, defaults.DETECT_WIDTH)
            current["index"] = index
            result = pipeline.process_video(frame_bgr, index, time_ms)
            outputs.append([(f.face.box_xywh, f.expression.label, round(f.expression.score, 4)) for f in result.faces])
        return len(outputs) / (time.perf_counter() - start), outputs


def decoded(video: Path) -> dict:
    """Frame index -> frame, every frame of ``video``."""
    with open_source(SourceOptions(video=video, read_ahead=0)) as source:
        return {index: frame_bgr for index, _, frame_bgr in source}


def resize_ms(frames: list, rounds: int) -> dict:
    """Median ms of the shipped downscale and of two cheaper resizes that move boxes, per frame."""
    import cv2

    h, w = frames[0].shape[:2]
    small = downscale(frames[0], defaults.DETECT_WIDTH)[0].shape[1::-1]
    ways = {"area (shipped)": (small, cv2.INTER_AREA), "linear": (small, cv2.INTER_LINEAR),
            "area at the integer factor 2": ((w // 2, h // 2), cv2.INTER_AREA)}
    times = {name: [] for name in ways}
    for _ in range(rounds):
        for name, (size, how) in ways.items():
            start = time.perf_counter()
            for frame in frames:
                cv2.resize(frame, size, interpolation=how)
            times[name].append(1000.0 * (time.perf_counter() - start) / len(frames))
    return {f"{name} {w}x{h} -> {ways[name][0][0]}x{ways[name][0][1]}": statistics.median(v)
            for name, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    args = rounds_parser(__doc__).parse_args(argv)
    machine = machine_info()
    report = {"machine": machine, **provenance(machine), "rounds": args.rounds, "videos": {}}
    configs = [(mode, threads) for threads in dict.fromkeys((defaults.LIVE_THREADS, 1)) for mode in MODES]
    for video in sample_videos(args.video):
        frames = decoded(video)
        ready = {index: downscale(frame_bgr, defaults.DETECT_WIDTH) for index, frame_bgr in frames.items()}
        fps = {config: [] for config in configs}
        reference = None
        for _ in range(args.rounds):
            for mode, threads in configs:
                value, outputs = one_round(video, mode, threads, ready)
                fps[(mode, threads)].append(value)
                if threads == defaults.LIVE_THREADS:  # other thread counts may round differently
                    reference = reference or outputs
                    if outputs != reference:
                        raise SystemExit(f"{video.name}: {mode} changed the results")
        base = statistics.median(fps[("inline", defaults.LIVE_THREADS)])
        rows = [{"mode": mode, "threads": threads, "fps_median": statistics.median(fps[(mode, threads)]),
                 "fps_rounds": fps[(mode, threads)], "x_shipped": statistics.median(fps[(mode, threads)]) / base}
                for mode, threads in configs]
        report["videos"][video.name] = {"frames": len(reference), "rows": rows,
                                        "resize_ms": resize_ms(list(frames.values()), args.rounds)}
        print(f"\n{video.name}: {len(reference)} frames, {args.rounds} rounds; resize ms: "
              + ", ".join(f"{k} {v:.3f}" for k, v in report["videos"][video.name]["resize_ms"].items()))
        print(markdown_table(["downscale", "runtime threads", "frames/s (median)", "x shipped"],
                             [[r["mode"], str(r["threads"]), f"{r['fps_median']:.1f}", f"{r['x_shipped']:.2f}"]
                              for r in rows]))
    if args.json:
        write_json_atomic(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
