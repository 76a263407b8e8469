"""PyFER on CK+48, both protocols, 6 and 7 classes: runs `edge-fer train --protocol` once per
configuration and gathers their protocol.json files into one JSON and a Markdown table.

    nice -n 19 python tools/ckplus_protocols.py --out runs/ckplus --epochs 15
    python tools/ckplus_protocols.py --out runs/ckplus --only subject6,subject7   # some of them
    python tools/ckplus_protocols.py --out runs/ckplus --table                   # table only

Configurations (all on ../shared/data/ckplus48, --arch pyfer by default, 10 folds of which fold k tests,
fold k+1 picks the best epoch and the other 8 train):

- random6/random7: the paper's protocol, the last frame of each sequence dealt into folds at random
  (fold 0 is one random 80/10/10 split); 6 classes (no contempt), then 7;
- random6x3/random7x3: the same with all 3 frames of each sequence, so frames of one sequence
  land in train and test: the inflation;
- subject6/subject7: subject-independent 10-fold cross-validation (no subject in two folds),
  the last frame of each sequence.

Each run resumes where it stopped (finished folds are kept): rerun the same command.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ckplus48"
CLASSES = {"6": "pyfer", "7": "angry,contempt,disgust,fear,happy,sad,surprise"}
#: name -> (split, classes, frames per sequence)
CONFIGS = {
    "random6": ("random", "6", 1), "random7": ("random", "7", 1),
    "random6x3": ("random", "6", 3), "random7x3": ("random", "7", 3),
    "subject6": ("subject", "6", 1), "subject7": ("subject", "7", 1),
}


def command(name: str, args) -> list[str]:
    split, classes, frames = CONFIGS[name]
    epochs = args.epochs if frames == 1 else max(1, args.epochs // frames)  # the same number of steps
    cmd = ["edge-fer", "train", "--data", str(args.data), "--arch", args.arch, "--classes", CLASSES[classes],
           "--protocol", split, "--folds", str(args.folds), "--last-frames", str(frames),
           "--epochs", str(epochs), "--seed", str(args.seed), "--out", str(args.out / name)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    for flag in ("lr", "optimizer", "augment", "threads"):
        if getattr(args, flag):
            cmd += [f"--{flag}", str(getattr(args, flag))]
    if name in args.partial:
        cmd += ["--run-folds", str(args.partial[name])]
    return cmd


def table(out: Path, names) -> tuple[dict, str]:
    rows, results = [], {}
    lines = ["| protocol | classes | frames/seq | epochs | folds run | images | test acc. mean +- std | pooled | "
             "test imgs with their sequence / subject in train | train time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        path = out / name / "protocol.json"
        if not path.exists():
            continue
        summary = json.loads(path.read_text())
        results[name] = summary
        split, classes, frames = CONFIGS[name]
        folds = summary["per_fold"]
        leaked = sum(f["test_sequences_in_train"] for f in folds)
        seen = sum(f["test_subjects_in_train"] for f in folds)
        tested = sum(f["n_test"] for f in folds)
        std = summary["test_accuracy_std"]
        rows.append(f"| {split} | {len(summary['classes'])} | {frames} | {summary['epochs']} "
                    f"| {summary['folds_run']}/{summary['folds']} "
                    f"| {summary['n_images']} | {100 * summary['test_accuracy_mean']:.1f}%"
                    f"{'' if std is None else f' +- {100 * std:.1f}'} | {100 * summary['test_accuracy_pooled']:.1f}% "
                    f"| {leaked} / {seen} of {tested} | {summary['train_seconds'] / 60:.0f} min |")
    return results, "\n".join(lines + rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--arch", default="pyfer")
    parser.add_argument("--epochs", type=int, default=15,
                        help="per fold with the last frame; with 3 frames per sequence, a third of it "
                             "(3x the images: the same number of steps)")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--optimizer", help="edge-fer train --optimizer (default: the architecture's)")
    parser.add_argument("--augment", help="edge-fer train --augment (default: full)")
    parser.add_argument("--threads", type=int, help="edge-fer train --threads")
    parser.add_argument("--only", help=f"comma-separated, of {list(CONFIGS)} (default: all, in that order)")
    parser.add_argument("--partial", default="",
                        help="NAME=N,...: run only the first N folds of these configurations")
    parser.add_argument("--table", action="store_true", help="only gather what is there")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; expected some of {list(CONFIGS)}")
    args.partial = {k: int(v) for k, v in (item.split("=") for item in args.partial.split(",") if item)}
    if not args.table:
        edge_fer = Path(sys.executable).with_name("edge-fer")
        for name in names:
            cmd = command(name, args)
            print("$", " ".join(cmd), flush=True)
            subprocess.run([str(edge_fer), *cmd[1:]], check=True)
    results, text = table(args.out, names)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ckplus_protocols.json").write_text(json.dumps(
        {name: {"command": " ".join(command(name, args)), **summary} for name, summary in results.items()},
        indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
