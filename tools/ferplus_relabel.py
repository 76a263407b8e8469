"""A copy of a FER2013 folder relabelled by people: the "FER+-relabelled" arm of issue 22's
cleaning comparison (original / CNN-cleaned by `edge-fer clean` / relabelled by FER+ votes).

    python tools/ferplus_relabel.py --data ../shared/data/fer2013/train \
        --votes ../shared/data/ferplus/ferplus_votes.csv --out ../runs/clean/train-ferplus

Each image goes to the class folder of its FER+ plurality (a unique maximum over FER+'s 10
columns, on one of the folder's classes); an image whose plurality is NF (not a face) is left out;
one without a FER+ row, with a tied maximum, or whose plurality is contempt or unknown keeps its
FER2013 label (FER+ has no opinion we can use). OUT gets data/ and summary.json, built beside it
and renamed into place; the source is never changed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer.errors import EdgeFerError  # noqa: E402
from edge_fer.fileio import folder_atomic, portable_path  # noqa: E402
from edge_fer.train.datasets import load_folder  # noqa: E402
from edge_fer.train.soft_labels import not_a_face, plurality_labels, read_votes  # noqa: E402


def relabel(data_dir: Path, votes_path: Path, out: Path) -> dict:
    if out.exists():
        raise EdgeFerError(f"--out {out} exists; expected a new folder")
    data = load_folder(data_dir)
    votes = read_votes(votes_path)
    people = plurality_labels(votes, data.paths, data.classes)
    not_face = not_a_face(votes, data.paths)
    labels = np.where(people >= 0, people, data.labels)
    with folder_atomic(out) as building:
        for path, label, drop in zip(data.paths, labels, not_face):
            if drop:
                continue
            target = building / "data" / data.classes[label] / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        summary = {"data": portable_path(data_dir), "votes": portable_path(votes_path), "images": len(data),
                   "dropped_not_a_face": int(not_face.sum()),
                   "relabelled": int(((people >= 0) & (people != data.labels) & ~not_face).sum()),
                   "kept_fer2013_label_no_usable_vote": int(((people < 0) & ~not_face).sum()),
                   "counts_before": data.counts(),
                   "counts_after": {c: int(((labels == k) & ~not_face).sum()) for k, c in enumerate(data.classes)}}
        (building / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        os.sync()
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder-per-class FER2013 split")
    parser.add_argument("--votes", type=Path, required=True, help="ferplus_votes.csv")
    parser.add_argument("--out", type=Path, required=True, help="a new folder")
    args = parser.parse_args()
    try:
        summary = relabel(args.data, args.votes, args.out)
    except EdgeFerError as exc:
        print(f"ferplus_relabel: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "counts_before"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
