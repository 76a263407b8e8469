"""edge-fer against the `fer` package, side by side in one run, on the same frames.

    .venv/bin/python benchmarks/compare_fer.py [--videos woman2.mp4,test.mp4] [--rounds 1]

For each video, every configuration runs in its own fresh process, configurations alternating
(fer, edge-fer default, each detector, each model file, then again for the next round). Every
process reads the same frames with the same looping reader: ``--warmup`` untimed frames, then
as many timed frames as the video has (so each frame is timed once), decode included.
fer runs in benchmarks/.venv-fer (python3.11 -m venv; pip install -r benchmarks/requirements-fer.txt).
Writes benchmarks/results/compare_fer.json and prints a Markdown table per video.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import DETECTOR_DIR, MEDIA, RESULTS, ROOT, available_models, default_model, markdown_table, overrides_for

from edge_fer.bench.harness import BenchOptions, SourceSpec
from edge_fer.bench.machine import machine_info
from edge_fer.fileio import file_sha256
from edge_fer.bench.report import write_json_atomic
from edge_fer.bench.stats import median
from edge_fer.bench.suite import model_format, run_worker
from edge_fer import defaults
from edge_fer.detectors.shipped import shipped_detectors
from edge_fer.detectors import DETECTORS
from edge_fer.errors import EdgeFerError
from edge_fer.pipeline import PipelineOptions

FER_PYTHON = Path(__file__).resolve().parent / ".venv-fer" / "bin" / "python"
FER_WORKER = Path(__file__).resolve().parent / "fer_worker.py"


def count_frames(video: Path) -> int:
    """Frames the reader really yields (the container's count can be off)."""
    import cv2

    cap, count = cv2.VideoCapture(str(video)), 0
    try:
        while cap.grab():
            count += 1
    finally:
        cap.release()
    if not count:
        raise SystemExit(f"compare_fer: no frames in {video}")
    return count


def configurations(args) -> list[dict]:
    """fer first, then edge-fer's default, each other detector, each other model file."""
    default = default_model()
    configs = [{"name": "fer (Haar + mini-Xception TFLite)", "kind": "fer", "use_tflite": True}]
    if args.fer_keras:
        configs.append({"name": "fer (Haar + mini-Xception Keras)", "kind": "fer", "use_tflite": False})
    configs.append({"name": f"edge-fer default ({defaults.DETECTOR})", "kind": "edge", "model": default,
                    "detector": defaults.DETECTOR})
    configs += [{"name": f"edge-fer {d}", "kind": "edge", "model": default, "detector": d}
                for d in DETECTORS if d != defaults.DETECTOR]
    if args.ssd_onnx:
        configs.append({"name": "edge-fer ssd (ONNX)", "kind": "edge", "model": default, "detector": "ssd",
                        "detector_model": args.ssd_onnx})
    extra = [Path(m).resolve() for m in args.extra_model]
    configs += [{"name": f"edge-fer {m.name}", "kind": "edge", "model": m, "detector": defaults.DETECTOR}
                for m in dict.fromkeys([*available_models(), *extra]) if m != default.resolve()]
    if args.choices:  # the rows that chose the defaults: decode in a thread or not, 1 or 2 model threads
        configs += [{"name": f"edge-fer default read-ahead {ahead} threads {threads}", "kind": "edge",
                     "model": default, "detector": defaults.DETECTOR, "read_ahead": ahead, "threads": threads}
                    for ahead in (0, 1) for threads in (1, 2)
                    if (ahead, threads) != (defaults.READ_AHEAD, defaults.LIVE_THREADS)]
        # ... and FFmpeg's decoding threads left to FFmpeg (0: one per core), with and without read-ahead
        configs += [{"name": f"edge-fer default read-ahead {ahead} decode-threads 0", "kind": "edge",
                     "model": default, "detector": defaults.DETECTOR, "read_ahead": ahead, "decode_threads": 0}
                    for ahead in (0, 1)]
    return configs


def run_fer(config: dict, video: Path, frames: int, warmup: int, stem: Path) -> dict:
    job, out = stem.with_suffix(".job.json"), stem.with_suffix(".out.json")
    job.write_text(json.dumps({"video": str(video), "frames": frames, "warmup": warmup,
                               "use_tflite": config["use_tflite"]}))
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    launched = time.monotonic()
    proc = subprocess.run([str(FER_PYTHON), str(FER_WORKER), str(job), str(out), repr(launched)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0 or not out.is_file():
        tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["no message"]
        raise RuntimeError(f"fer worker failed (exit {proc.returncode}): {tail[0][:300]}")
    return json.loads(out.read_text())


def run_edge(config: dict, video: Path, frames: int, warmup: int, stem: Path) -> dict:
    model = Path(config["model"])
    options = BenchOptions(models=(str(model),), detectors=(config["detector"],),
                           threads=(config.get("threads", defaults.LIVE_THREADS),),
                           cv_threads=(PipelineOptions().opencv_threads,),
                           source=SourceSpec("video", str(video), read_ahead=config.get("read_ahead", defaults.READ_AHEAD),
                                             decode_threads=config.get("decode_threads", defaults.DECODE_THREADS)),
                           frames=frames, warmup=warmup,
                           detector_model=config.get("detector_model") or (
                               None if config["detector"] in shipped_detectors() else str(DETECTOR_DIR)),
                           **overrides_for(model))
    return run_worker(options, options.rows()[0], stem)


def summarize_config(config: dict, results: list[dict]) -> dict:
    """Median over rounds."""
    total = [r["latency_ms"]["total"] for r in results]
    out = {
        "name": config["name"],
        "rounds": len(results),
        "p50_ms": median([t["p50"] for t in total]),
        "p95_ms": median([t["p95"] for t in total]),
        "p99_ms": median([t["p99"] for t in total]),
        "cpu_ms_p50": median([r["latency_ms"]["cpu"]["p50"] for r in results]),
        "fps": median([r["fps"] for r in results]),
        "cpu_percent": median([r["cpu_percent"] for r in results]),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in results]),
        "cold_start_s": median([r["cold_start"]["cold_start_s"] for r in results]),
        "faces_per_frame": median([r["faces_per_frame"] for r in results]),
        "backend": results[0]["backend"],
        "per_round": results,
    }
    if config["kind"] == "edge":
        model = Path(config["model"])
        out.update(model=model.name, format=model_format(model), model_bytes=model.stat().st_size,
                   model_sha256=file_sha256(str(model)), detector=config["detector"])
    return out


def markdown(video: str, frames: int, rows: list[dict]) -> str:
    """One table per video; ratios against fer's default (TFLite) row."""
    fer = next((r for r in rows if r["name"].startswith("fer (") and "TFLite" in r["name"]), None)

    def ratio(numerator: float | None, denominator: float | None) -> str:
        return f"{numerator / denominator:.1f}x" if numerator and denominator else "n/a"

    headers = ["configuration", "p50 ms", "p95 ms", "p99 ms", "CPU ms/frame p50", "FPS", "CPU %", "peak RSS MB",
               "cold start s", "faces/frame", "FPS / fer FPS", "fer p50 / p50", "fer CPU / CPU"]
    lines = [[r["name"], f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['cpu_ms_p50']:.2f}",
              f"{r['fps']:.1f}", f"{r['cpu_percent']:.0f}", f"{r['peak_rss_mb']:.1f}", f"{r['cold_start_s']:.2f}",
              f"{r['faces_per_frame']:.2f}", ratio(r["fps"], fer and fer["fps"]),
              ratio(fer and fer["p50_ms"], r["p50_ms"]), ratio(fer and fer["cpu_ms_p50"], r["cpu_ms_p50"])]
             for r in rows]
    return f"### {video} ({frames} frames)\n\n" + markdown_table(headers, lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default="woman2.mp4,test.mp4", help="names in shared/data/media or paths")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; tables show the median")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--fer-keras", action="store_true", help="also time fer with its Keras model")
    parser.add_argument("--only", help="comma-separated configuration names to keep (plus fer)")
    parser.add_argument("--choices", action="store_true",
                        help="add the default with read-ahead 0/1 and 1/2 model threads (the table that chose them)")
    parser.add_argument("--ssd-onnx", help="a folder holding `edge-fer convert-ssd`'s output: adds an 'ssd (ONNX)' row")
    parser.add_argument("--extra-model", action="append", default=[], metavar="FILE",
                        help="also time this model file with the default detector (repeatable)")
    parser.add_argument("--out", default=str(RESULTS / "compare_fer.json"))
    args = parser.parse_args()
    if not FER_PYTHON.is_file():
        sys.exit(f"compare_fer: {FER_PYTHON} not found: python3.11 -m venv benchmarks/.venv-fer && "
                 "benchmarks/.venv-fer/bin/pip install -r benchmarks/requirements-fer.txt")
    # A clean user: no detector files outside the package, an empty cache (the shipped
    # detectors load from the package; ssd and rfb are given their files explicitly).
    clean_cache = tempfile.mkdtemp(prefix="compare-fer-cache-")
    os.environ["XDG_CACHE_HOME"] = clean_cache
    os.environ.pop("EDGE_FER_DETECTORS", None)
    machine = machine_info()
    record = {"provenance": _common.provenance(machine), "machine": machine, "videos": {}, "skipped": {},
              "clean_user": {"XDG_CACHE_HOME": clean_cache, "EDGE_FER_DETECTORS": None}}
    configs = configurations(args)
    if args.only:
        keep = {n.strip() for n in args.only.split(",")}
        configs = [c for c in configs if c["kind"] == "fer" or c["name"] in keep]
    print(record["provenance"]["load_note"], file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="compare-fer-") as workdir:
        for name in args.videos.split(","):
            video = Path(name) if Path(name).is_file() else MEDIA / name
            frames = count_frames(video)
            results: dict[str, list[dict]] = {c["name"]: [] for c in configs}
            for round_ in range(args.rounds):
                for i, config in enumerate(configs):
                    if config["name"] in record["skipped"]:
                        continue
                    print(f"{video.name} round {round_ + 1}: {config['name']}", file=sys.stderr, flush=True)
                    stem = Path(workdir) / f"{video.stem}-{round_}-{i}"
                    try:
                        runner = run_fer if config["kind"] == "fer" else run_edge
                        results[config["name"]].append(runner(config, video, frames, args.warmup, stem))
                    except (EdgeFerError, RuntimeError) as exc:
                        record["skipped"][config["name"]] = str(exc)
                        print(f"  skipped: {exc}", file=sys.stderr)
            rows = [summarize_config(c, results[c["name"]]) for c in configs if results[c["name"]]]
            record["videos"][video.name] = {"path": os.path.relpath(video), "frames": frames, "warmup": args.warmup, "rows": rows}
            print(markdown(video.name, frames, rows) + "\n", flush=True)
    end = machine_info()
    record["machine_at_end"] = {k: end[k] for k in ("load_average_1_5_15", "cpu_busy_percent")}
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
