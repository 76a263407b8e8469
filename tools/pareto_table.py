"""Accuracy against classifier cost, for the model card's Pareto table.

Times every model in ONE `edge-fer bench --classifier-only` run (1 thread, fresh processes per
row, the median of their percentiles), so the milliseconds compare side by side; accuracy comes
from `edge-fer eval` on val/ and on de-duplicated val/. Prints a Markdown table, writes JSON.

    python tools/pareto_table.py --out results/pareto.json --repeat 3 \
        edge_fer/models/edgenet_fer2013_int8.tflite runs/kd/v2_int8.tflite ...
    python tools/pareto_table.py --peer ../shared/data/peers/fer/emotion_model_quantized.tflite ...

`--peer FILE`: also a model without edge-fer metadata, with the `fer` peer's labels and scaling.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FER = REPO.parent / "shared" / "data" / "fer2013"
PEER_FLAGS = ["--labels", "fer2013", "--input-scale", "0.00784313725", "--input-offset", "-1"]


def run_edge_fer(*args: str) -> str:
    exe = Path(sys.executable).with_name("edge-fer")
    done = subprocess.run([str(exe), *args], capture_output=True, text=True)
    if done.returncode not in (0, 1):  # bench exits 1 when a row misses the 20 ms target
        raise SystemExit(f"edge-fer {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--peer", action="append", default=[], help="a model with the fer peer's preprocessing")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    rows = {}
    for model in args.models + args.peer:
        flags = PEER_FLAGS if model in args.peer else []
        report = json.loads(run_edge_fer("eval", "--model", model, "--data", str(FER / "val"),
                                     "--dedup-against", str(FER / "train"), "--json", *flags))
        rows[model] = {"model": Path(model).name, "val": report["accuracy"],
                       "val_dedup": report["dedup"]["accuracy"], "bytes": Path(model).stat().st_size}
    bench_json = args.out.with_suffix(".bench.json")
    # One run for all (the peer flags apply only to files without edge-fer metadata).
    run_edge_fer("bench", "--classifier-only", "--model", ",".join(rows), "--repeat", str(args.repeat),
             "--frames", str(args.frames), "--threads", "1", "--json", str(bench_json),
             *(PEER_FLAGS if args.peer else []))
    for row, model in zip(json.loads(bench_json.read_text())["rows"], rows):
        rows[model]["classify_ms_p50"] = row["latency_ms"]["classify"]["p50"]
        rows[model]["classify_ms_p95"] = row["latency_ms"]["classify"]["p95"]
    lines = ["| model | size KB | val | val, de-duplicated | classify p50 ms | p95 ms |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows.values():
        lines.append(f"| {row['model']} | {row['bytes'] / 1024:.0f} | {100 * row['val']:.2f}% "
                     f"| {100 * row['val_dedup']:.2f}% | {row.get('classify_ms_p50', float('nan')):.3f} "
                     f"| {row.get('classify_ms_p95', float('nan')):.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": list(rows.values()), "repeat": args.repeat, "frames": args.frames},
                                   indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
