"""Measure the shipped model through each detector's crops (the protocol of
``edge-fer eval --through-detector``: FER2013 val faces upscaled 4x, padded 96 px) and write the
table that chooses the default detector and `edge-fer doctor`'s recommendation:
edge_fer/models/through_detector.json.

    .venv/bin/python tools/measure_through_detector.py [--data ../shared/data/fer2013/val]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ("blazeface", "yunet", "haar", "ssd", "rfb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/fer2013/val"))
    parser.add_argument("--detectors-dir", default=str(REPO.parent / "shared/data/detectors"),
                        help="where ssd and rfb's files are (yunet and blazeface ship in the package)")
    parser.add_argument("--model", default=str(REPO / "edge_fer/models/edgenet_fer2013_int8.tflite"))
    parser.add_argument("--out", default=str(REPO / "edge_fer/models/through_detector.json"))
    args = parser.parse_args()
    exe = Path(sys.executable).parent / "edge-fer"
    rows = {}
    for name in DETECTORS:
        command = [str(exe), "eval", "--model", args.model, "--data", args.data, "--through-detector", name, "--json"]
        if name == "ssd":
            command += ["--detector-model", args.detectors_dir]
        elif name == "rfb":
            command += ["--detector-model", str(Path(args.detectors_dir) / "ultralight_rfb_320.onnx")]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: found {rows[name]['found_share']:.4f}, through {rows[name]['accuracy_through']:.4f}, "
              f"direct {rows[name]['accuracy_direct_found']:.4f}, gap {rows[name]['gap_points']:+.2f}", flush=True)
    table = {"about": "edge-fer eval --through-detector on each detector (FER2013 val, upscale 4, pad 96); "
                      "the default detector and doctor's recommendation read it",
             "command": "python tools/measure_through_detector.py",
             "date": datetime.date.today().isoformat(), "model": Path(args.model).name, "detectors": rows}
    sys.path.insert(0, str(REPO))
    from edge_fer.fileio import write_json_atomic

    write_json_atomic(args.out, table)
    print(f"wrote {args.out}\n")
    print(markdown(table))
    return 0


def markdown(table: dict) -> str:
    """The README's table: found share, accuracy through the detector and direct, on the same faces."""
    lines = ["| detector | framing | faces found | through the detector | direct, same faces | points lost |",
             "|---|---|---|---|---|---|"]
    for name, row in table["detectors"].items():
        lines.append(f"| {name} | {row['framing']} | {100 * row['found_share']:.1f}% | "
                     f"{100 * row['accuracy_through']:.2f}% | {100 * row['accuracy_direct_found']:.2f}% | "
                     f"{row['gap_points']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
