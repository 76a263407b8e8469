"""Issue 22's summary files, gathered from the detailed JSON the measuring tools write (nothing is
measured here; rerun it after each of them):

    python tools/seed_cards.py

- docs/model_card/clean_fer2013.json, from cleaning/train_oof_vs_ferplus.json
  (tools/clean_vs_ferplus.py: the flags and their precision and recall against FER+) and
  cleaning/train_compare.json (tools/clean_compare.py: the runs on original, CNN-cleaned and
  FER+-relabelled train);
- docs/model_card/cyclegan_balance.json, from cyclegan/train_compare.json (tools/balance_compare.py),
  when it exists.

``val_accuracy`` is de-duplicated val with FER2013's labels (the campaign's number), and
``val_accuracy_ferplus`` val against the FER+ plurality.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_fer.fileio import write_json_atomic  # noqa: E402

CARD = REPO / "docs" / "model_card"
#: clean_compare's arm names -> the issue's label sources.
LABELS = {"original": "original", "cnn-cleaned": "cleaned", "ferplus-relabelled": "ferplus"}
TRAIN = "edge-fer train --data {data} --val ../shared/data/fer2013/val --arch edgenet --epochs {epochs} --seed {seed}"
ARM_DATA = {"original": "../shared/data/fer2013/train", "cnn-cleaned": "WORK/train-cnn/data",
            "ferplus-relabelled": "WORK/train-ferplus/data", "cyclegan": "WORK/train-cyclegan",
            "oversampled": "WORK/train-oversampled"}


def run_row(run: dict, compare: dict, **extra) -> dict:
    work = re.search(r"--work (\S+)", compare["command"])
    data = ARM_DATA[run["arm"]].replace("WORK", work.group(1) if work else "WORK")
    train = TRAIN.format(data=data, epochs=compare["epochs"], seed=run["seed"])
    return {**extra, "seed": run["seed"], "epochs": compare["epochs"], "val_accuracy": run["val_dedup"],
            "val_accuracy_all": run["val"], "val_accuracy_ferplus": run["val_ferplus"], "ckplus48": run["ckplus48"],
            "ece_val": run["ece_val"], "command": f"python {compare['command']} (this run: {train})"}


def clean_card() -> dict:
    flags = json.loads((CARD / "cleaning" / "train_oof_vs_ferplus.json").read_text())
    compare = json.loads((CARD / "cleaning" / "train_compare.json").read_text())
    return {
        "about": "Issue 22 item 3: edge-fer clean on FER2013 train (out-of-fold probabilities, 5 folds), its "
                 "flags scored against the FER+ votes, and edgenet trained on each label source",
        "flags_command": "edge-fer clean --data ../shared/data/fer2013/train --out ../runs/clean-compare/train-cnn "
                         "--probs ../runs/clean/train_oof.npz --action relabel; python tools/clean_vs_ferplus.py "
                         "--clean ../runs/clean-compare/train-cnn --data ../shared/data/fer2013/train "
                         "--votes ../shared/data/ferplus/ferplus_votes.csv",
        "images": flags["images"],
        "flagged": flags["flagged"],
        "precision_recall_vs_ferplus": {"label_wrong": flags["label_wrong"], "not_a_face": flags["not_a_face"]},
        "runs": [run_row(run, compare, labels=LABELS[run["arm"]]) for run in compare["runs"]],
        "summary": {LABELS[arm]: table for arm, table in compare["arms"].items()},
        "sources": ["cleaning/train_oof_vs_ferplus.json", "cleaning/train_compare.json"],
    }


def balance_card(compare: dict) -> dict:
    """The original arm's runs name clean_compare's command where balance_compare reused its scores
    (``original_from``)."""
    reused = json.loads((REPO / compare["original_from"]).read_text()) if compare.get("original_from") else None

    def row(run: dict) -> dict:
        source = reused if reused and run["arm"] == "original" else compare
        return run_row(run, source, balanced=run["arm"] != "original",
                       balanced_by={"cyclegan": "cyclegan", "oversampled": "repeating real faces"}.get(run["arm"]),
                       disgust_recall=run["val_dedup_per_class"]["disgust"])

    return {
        "about": "Issue 22 item 4: edgenet on FER2013 train as it is, with CycleGAN neutral -> disgust faces added, and "
                 "with disgust's real faces repeated to the same count (the control)",
        "balance": compare.get("balance"),
        "generated_val_judged": compare.get("generated_val_judged"),
        "runs": [row(run) for run in compare["runs"]],
        "summary": compare["arms"],
        "sources": ["cyclegan/train_compare.json", *([compare["original_from"]] if reused else [])],
    }


def main() -> int:
    write_json_atomic(CARD / "clean_fer2013.json", clean_card())
    print(f"wrote {CARD / 'clean_fer2013.json'}")
    balance = CARD / "cyclegan" / "train_compare.json"
    if balance.is_file():
        write_json_atomic(CARD / "cyclegan_balance.json", balance_card(json.loads(balance.read_text())))
        print(f"wrote {CARD / 'cyclegan_balance.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
