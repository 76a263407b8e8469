"""Scaling of `edge-fer analyze`: --workers 1 vs 2 over copies of the media videos, and its
cost per frame against `edge-fer run`, side by side in one run.

    .venv/bin/python benchmarks/analyze_scaling.py [--copies 8] [--rounds 3] [--workers 1,2]

Copies woman2.mp4 and test.mp4 ``--copies`` times each into a temp folder, then per round runs
(in this order) ``edge-fer analyze FOLDER --out r.csv --workers N --no-progress`` for each N, with
``--fer`` the ``fer`` package's own ``Video(...).analyze`` over the same files (one ``FER()``,
every frame; benchmarks/fer_video_worker.py), and
``edge-fer run --video V --headless --json`` (same detector: the default) for each of the two videos, every one a fresh
process (so start-up, worker spawn and model loading are included). Reported: the median over
rounds of wall time and of CPU time (user + sys of the process and its workers); throughput
(frames / wall s), frames/s per worker, speedup against the first N (ratio of the medians,
and the ratio within each round), and CPU ms per frame.
Writes benchmarks/results/analyze_scaling.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import MEDIA, RESULTS, markdown_table

from edge_fer.analyze.outputs import side_path
from edge_fer.bench.machine import machine_info
from edge_fer.detectors import DetectorOptions
from edge_fer.fileio import write_json_atomic

VIDEOS = ("woman2.mp4", "test.mp4")
EDGE_FER = str(Path(sys.executable).with_name("edge-fer"))
FER_PYTHON = Path(__file__).resolve().parent / ".venv-fer" / "bin" / "python"
FER_VIDEO_WORKER = Path(__file__).resolve().parent / "fer_video_worker.py"


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the process and every descendant it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed_fer(folder: Path, outdir: Path) -> tuple[float, float, int]:
    """fer's own Video.analyze over every video of ``folder`` (benchmarks/fer_video_worker.py, in
    benchmarks/.venv-fer): (wall s, CPU s, the frames fer reports)."""
    import json

    outdir.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(FER_PYTHON), str(FER_VIDEO_WORKER), str(folder), str(outdir)], check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=outdir,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))  # fer writes data.csv in its cwd
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    frames = json.loads(proc.stdout.strip().splitlines()[-1])["frames"]
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), frames


def frames_in(out: Path) -> int:
    with side_path(out, "sources").open(newline="") as handle:
        return sum(int(r["frames"]) for r in csv.DictReader(handle))


def video_frames(path: Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--fer", action="store_true",
                        help="also time the fer package's own Video.analyze on the same folder (benchmarks/.venv-fer)")
    parser.add_argument("--out", type=Path, default=RESULTS / "analyze_scaling.json")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    detector = ["--detector", DetectorOptions().name]  # the same (default) detector for both commands
    machine = machine_info()
    record = _common.provenance(machine)
    runs: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="edge-fer-scaling-") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for copy in range(args.copies):
            for name in VIDEOS:
                shutil.copy(MEDIA / name, folder / f"{Path(name).stem}_{copy}.mp4")
        frames = {}
        for round_index in range(args.rounds):
            for n in workers:
                out = Path(tmp) / f"r{n}.csv"
                runs.setdefault(f"analyze --workers {n}", []).append(timed(
                    [EDGE_FER, "analyze", str(folder), "--out", str(out), "--workers", str(n), "--no-progress",
                     "--overwrite", *detector]))
                frames[f"analyze --workers {n}"] = frames_in(out)
            if args.fer:
                wall, cpu, frames["fer Video.analyze"] = timed_fer(folder, Path(tmp) / "fer-out")
                runs.setdefault("fer Video.analyze", []).append((wall, cpu))
            for name in VIDEOS:
                runs.setdefault(f"run --video {name}", []).append(timed(
                    [EDGE_FER, "run", "--video", str(MEDIA / name), "--headless", "--json", *detector]))
                frames[f"run --video {name}"] = video_frames(MEDIA / name)
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    base = f"analyze --workers {workers[0]}"
    base_wall = statistics.median(w for w, _ in runs[base])
    rows, results = [], {}
    for name, samples in runs.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        n = int(name.rsplit(" ", 1)[1]) if name.startswith("analyze") else 1
        results[name] = {"frames": frames[name], "wall_s": [round(w, 3) for w, _ in samples],
                         "cpu_s": [round(c, 3) for _, c in samples], "median_wall_s": round(wall, 3),
                         "median_cpu_s": round(cpu, 3), "fps": round(frames[name] / wall, 1),
                         "fps_per_worker": round(frames[name] / wall / n, 1),
                         "cpu_ms_per_frame": round(1000 * cpu / frames[name], 3),
                         "speedup": round(base_wall / wall, 2) if name.startswith("analyze") else None,
                         # the same ratio within each round (the commands ran side by side), then the median
                         "speedup_per_round": [round(b / w, 2) for (b, _), (w, _) in zip(runs[base], samples)]
                         if name.startswith("analyze") else None}
        r = results[name]
        paired = (f" (per round {', '.join(f'{v:.2f}' for v in r['speedup_per_round'])})"
                  if r["speedup_per_round"] else "")
        rows.append([name, str(r["frames"]), f"{wall:.2f}", f"{r['fps']:.1f}", f"{r['fps_per_worker']:.1f}",
                     f"{r['speedup']:.2f}x{paired}" if r["speedup"] else "", f"{r['cpu_ms_per_frame']:.2f}"])
    record.update({"machine": machine, "detector": detector[1], "copies": args.copies, "rounds": args.rounds, "results": results,
                   "cores": os.cpu_count()})
    write_json_atomic(args.out, record)
    print(record["load_note"])
    print(markdown_table(["command", "frames", "median wall s", "frames/s", "frames/s per worker",
                          "speedup", "CPU ms/frame"], rows))


if __name__ == "__main__":
    main()
