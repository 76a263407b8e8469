"""Measure the shipped model through each detector's crops (the protocol of
``edge-fer eval --through-detector``: FER2013 val faces upscaled 4x, padded 96 px) and write the
table that chooses the default detector and `edge-fer doctor`'s recommendation:
edge_fer/models/through_detector.json.

    .venv/bin/python tools/measure_through_detector.py [--data ../shared/data/fer2013/val]
    .venv/bin/python tools/measure_through_detector.py --only mtcnn   # one row, the others kept
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_fer.detectors.registry import DETECTOR_FILES, DETECTORS  # noqa: E402
from edge_fer.detectors.shipped import shipped_detectors  # noqa: E402
from edge_fer.fileio import write_json_atomic  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/fer2013/val"))
    parser.add_argument("--detectors-dir", default=str(REPO.parent / "shared/data/detectors"),
                        help="where ssd and rfb's files are (yunet, blazeface and mtcnn ship in the package)")
    parser.add_argument("--only", help="comma-separated detectors to measure; the table's other rows are kept")
    parser.add_argument("--model", default=str(REPO / "edge_fer/models/edgenet_fer2013_int8.tflite"))
    parser.add_argument("--out", default=str(REPO / "edge_fer/models/through_detector.json"))
    args = parser.parse_args()
    exe = Path(sys.executable).parent / "edge-fer"
    names = args.only.split(",") if args.only else DETECTORS
    kept = json.loads(Path(args.out).read_text()) if args.only else {"detectors": {}}
    rows, today = kept["detectors"], datetime.date.today().isoformat()
    for name in names:
        command = [str(exe), "eval", "--model", args.model, "--data", args.data, "--through-detector", name, "--json"]
        files = DETECTOR_FILES.get(name, ())
        if files and name not in shipped_detectors():
            folder = Path(args.detectors_dir)
            command += ["--detector-model", str(folder / files[0] if len(files) == 1 else folder)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
        if args.only:  # the table's date is the other rows'
            rows[name]["date"] = today
        print(f"{name}: found {rows[name]['found_share']:.4f}, through {rows[name]['accuracy_through']:.4f}, "
              f"direct {rows[name]['accuracy_direct_found']:.4f}, gap {rows[name]['gap_points']:+.2f}", flush=True)
    table = {"about": "edge-fer eval --through-detector on each detector (FER2013 val, upscale 4, pad 96); "
                      "the default detector and doctor's recommendation read it",
             "command": "python tools/measure_through_detector.py",
             "date": kept.get("date", today), "model": Path(args.model).name, "detectors": rows}
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
