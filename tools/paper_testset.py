"""What the second seed's 91.76% measured: one model scored on plain de-duplicated FER2013 val and
on the paper's kind of test set built from it (cleaned, then class-balanced).

    python tools/paper_testset.py --model edge_fer/models/edgenet_fer2013_int8.tflite \
        --clean runs/clean/val-v1 --clean runs/clean/val-c3 --json paper_testset.json

Rows, all on val de-duplicated against train:
- plain: every face (the campaign's number);
- cleaned by `edge-fer clean` (each --clean folder: its report's flagged images left out; a clean
  run whose probabilities came from the scored model itself removes the faces it disagrees with);
- cleaned by people: only faces whose FER2013 label is the FER+ plurality (--votes);
- each cleaned set "balanced": the mean of the per-class recalls, i.e. the expected accuracy on a
  test set with the same number of faces per class (the paper balanced its test set too).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer.fileio import portable_path  # noqa: E402
from edge_fer.train.datasets import dedup_against, load_folder  # noqa: E402
from edge_fer.train.evaluate import EvalOptions, label_map, open_runner, predict  # noqa: E402
from edge_fer.train.soft_labels import plurality_labels  # noqa: E402


def row(name: str, mask: np.ndarray, true: np.ndarray, pred: np.ndarray, classes) -> dict:
    t, p = true[mask], pred[mask]
    recalls = {c: float((p[t == k] == k).mean()) for k, c in enumerate(classes) if (t == k).any()}
    return {"set": name, "faces": int(mask.sum()), "accuracy": float((t == p).mean()),
            "balanced_accuracy": float(np.mean(list(recalls.values()))), "recall": recalls,
            "counts": {c: int((t == k).sum()) for k, c in enumerate(classes)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="../shared/data/fer2013/val", type=Path)
    parser.add_argument("--train", default="../shared/data/fer2013/train", type=Path)
    parser.add_argument("--clean", action="append", default=[], type=Path, help="An `edge-fer clean` output of --data.")
    parser.add_argument("--votes", default="../shared/data/ferplus/ferplus_votes.csv", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    data = load_folder(args.data, size_hw=None)
    keep = np.zeros(len(data), bool)
    keep[dedup_against(data, load_folder(args.train))] = True
    with open_runner(EvalOptions(args.model, str(args.data), num_threads=2)) as runner:
        columns = label_map(data.classes, runner.meta.labels)
        pred_model = predict(runner, data.images, 256)
    # back to the dataset's class order
    to_data = {int(m): d for d, m in enumerate(columns)}
    pred = np.asarray([to_data.get(int(p), -1) for p in pred_model])
    true = data.labels
    keys = [Path(p).relative_to(args.data).as_posix() for p in data.paths]
    rows = [row("plain de-duplicated val", keep, true, pred, data.classes)]
    for folder in args.clean:
        flagged = {r["path"] for r in csv.DictReader((folder / "report.csv").open(newline=""))}
        kept = keep & np.asarray([k not in flagged for k in keys])
        rows.append(row(f"cleaned by edge-fer clean ({folder.name})", kept, true, pred, data.classes))
    people = plurality_labels(args.votes, data.paths, data.classes)
    rows.append(row("cleaned by people (FER+ plurality = label)", keep & (people == true), true, pred, data.classes))
    print(f"model {args.model}")
    print("| test set | faces | accuracy | balanced (mean recall) | fewest per class |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['faces']} | {100 * r['accuracy']:.2f}% | {100 * r['balanced_accuracy']:.2f}% "
              f"| {min(r['counts'].values())} |")
    if args.json:
        args.json.write_text(json.dumps({"model": portable_path(args.model), "data": portable_path(args.data),
                                         "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
