"""The model campaign's records: each run's history and its models' three accuracies, committed
as small JSON files under docs/model_card/runs/, and the campaign table built from them.

    python tools/campaign.py record --name c1-edgenet-mix50 --run ../runs/c1-edgenet-mix50 \
        --model ../runs/c1-edgenet-mix50/model.keras --model /tmp/c1_int8.tflite \
        --command "edge-fer train ..." [--note "..."]
    python tools/campaign.py record --name shipped-v1 --model edge_fer/models/edgenet_fer2013_int8.tflite
    python tools/campaign.py table            # markdown, one row per model of every record
    python tools/campaign.py ensemble --name e1 --model A --model B [--flip]   # members and their mean

Each model is scored with ``edge-fer eval``'s library call on: FER2013 val de-duplicated against
train (FER2013's labels), FER2013 val against the FER+ plurality (people's labels), and CK+48's
last frames of the 6 classes both share (posed faces, cross-dataset); plus the ECE on val.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RUNS = REPO / "docs" / "model_card" / "runs"
SHARED = Path(os.environ.get("EDGE_FER_SHARED", REPO.parent / "shared")) / "data"
CKPLUS_SHARED = "angry,disgust,fear,happy,sad,surprise"


def score(model: str, threads: int = 2) -> dict:
    """The campaign's measures of one model file (any format eval reads)."""
    from edge_fer.train.evaluate import EvalOptions, evaluate

    val = evaluate(EvalOptions(model, str(SHARED / "fer2013" / "val"), num_threads=threads,
                               dedup_against=str(SHARED / "fer2013" / "train"),
                               votes=str(SHARED / "ferplus" / "ferplus_votes.csv")))
    ck = evaluate(EvalOptions(model, str(SHARED / "ckplus48"), num_threads=threads, classes=CKPLUS_SHARED))
    return {"model": Path(model).name, "val": round(val.accuracy, 4), "val_dedup": round(val.dedup.accuracy, 4),
            "val_ferplus": round(val.votes.accuracy, 4), "ckplus48": round(ck.accuracy, 4),
            "ece_val": round(val.ece, 4), "val_per_class": {k: round(v, 4) for k, v in val.per_class.items()},
            "val_dedup_per_class": {k: round(v, 4) for k, v in val.dedup.per_class.items()},
            "ckplus48_per_class": {k: round(v, 4) for k, v in ck.per_class.items()}}


def history(run: Path) -> dict:
    """What the run folder says of itself: fingerprint, summary and per-epoch rows."""
    out = {}
    for name in ("run.json", "summary.json"):
        if (run / name).is_file():
            out[name.split(".")[0]] = json.loads((run / name).read_text())
    if (run / "history.csv").is_file():
        with (run / "history.csv").open(newline="") as handle:
            rows = {int(r["epoch"]): r for r in csv.DictReader(handle)}
        out["epochs"] = [{k: (round(float(v), 4) if k != "epoch" else int(v)) for k, v in rows[e].items() if v}
                         for e in sorted(rows)]
    for part in ("run", "summary"):  # machine paths are not committed: keep names only
        for key in ("data",):
            if key in out.get(part, {}):
                out[part][key] = [Path(p).name for p in out[part][key]]
    if "summary" in out:
        out["summary"].pop("model_path", None)
        options = out["summary"].get("options", {})
        for key in ("data", "val", "out", "soft_labels", "teacher", "init_from"):
            value = options.get(key)
            if isinstance(value, str):
                options[key] = Path(value).name
            elif isinstance(value, list):
                options[key] = [Path(v).name for v in value]
    labels = out.get("run", {}).get("labels", {})
    if "file" in labels:
        labels["file"] = Path(labels["file"]).name
    if out.get("run", {}).get("init_from"):
        out["run"]["init_from"] = Path(out["run"]["init_from"]).name
    return out


def record(args) -> Path:
    entry = {"name": args.name, "command": args.command, "note": args.note,
             "models": [score(m, args.threads) for m in args.model]}
    if args.run:
        entry.update(history(Path(args.run)))
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"{args.name}.json"
    path.write_text(json.dumps(entry, indent=1) + "\n")
    for m in entry["models"]:
        print(f"{args.name} {m['model']}: val {m['val']:.4f}, de-dup {m['val_dedup']:.4f}, "
              f"FER+ {m['val_ferplus']:.4f}, CK+48 {m['ckplus48']:.4f}, ECE {m['ece_val']:.4f}")
    return path


def table() -> str:
    lines = ["| run | model | epochs | wall h | de-dup val | val vs FER+ | CK+48 | ECE | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RUNS.glob("*.json")):
        entry = json.loads(path.read_text())
        epochs = len(entry.get("epochs", [])) or "-"
        seconds = entry.get("summary", {}).get("seconds")
        hours = f"{seconds / 3600:.2f}" if seconds else "-"
        for m in entry["models"]:
            lines.append(f"| {entry['name']} | {m['model']} | {epochs} | {hours} | {100 * m['val_dedup']:.2f}% | "
                         f"{100 * m['val_ferplus']:.2f}% | {100 * m['ckplus48']:.1f}% | {100 * m['ece_val']:.1f}% | "
                         f"{entry.get('note') or ''} |")
    return "\n".join(lines)


def eval_sets(shared: Path = SHARED, limit_per_class: int | None = None, train=None) -> dict:
    """The campaign's three sets: ``val`` (FER2013 val) and ``val_labels``, ``val_dedup`` (True where a val
    face has no pixel twin in ``train``, default FER2013 train), ``val_ferplus`` (the FER+
    plurality, -1: none), ``ck`` (CK+48's 6 shared classes) and ``ck_labels`` (as val's class
    indexes: a CK+ face called neutral is wrong). ``limit_per_class``: a subset, for tests."""
    import numpy as np

    from edge_fer.train.datasets import dedup_against, load_folder, resolve_classes
    from edge_fer.train.loaders import LoadOptions, load_dataset
    from edge_fer.train.soft_labels import plurality_labels

    val = load_folder(shared / "fer2013" / "val", limit_per_class=limit_per_class, seed=0)
    if train is None:
        train = load_folder(shared / "fer2013" / "train", limit_per_class=limit_per_class, seed=0)
    keep = np.zeros(len(val), bool)
    keep[dedup_against(val, train)] = True
    ck = load_dataset(shared / "ckplus48", LoadOptions(classes=resolve_classes(CKPLUS_SHARED)))
    return {"val": val, "val_labels": val.labels, "val_dedup": keep,
            "val_ferplus": plurality_labels(shared / "ferplus" / "ferplus_votes.csv", val.paths, val.classes),
            "ck": ck, "ck_labels": np.asarray([val.classes.index(c) for c in ck.classes])[ck.labels]}


def measures(val_probs, ck_probs, sets: dict) -> dict:
    """The campaign's accuracies from probabilities over val's classes (val and CK+48 rows of
    ``sets``: :func:`eval_sets`, or the same arrays from tools/gpu_pack.py's pack)."""
    pred, truth = val_probs.argmax(1), sets["val_labels"]
    dedup, voted = sets["val_dedup"], sets["val_ferplus"] >= 0
    return {"val": float((pred == truth).mean()), "val_dedup": float((pred[dedup] == truth[dedup]).mean()),
            "val_ferplus": float((pred[voted] == sets["val_ferplus"][voted]).mean()),
            "ckplus48": float((ck_probs.argmax(1) == sets["ck_labels"]).mean())}


def ensemble(args) -> Path:
    """Each member's and the members' mean probabilities (flip-averaged with ``--flip``) scored on
    the campaign's three sets; recorded like a run, one row per member plus one for the mean."""
    import numpy as np

    from edge_fer.confidence import expected_calibration_error
    from edge_fer.train.distill import model_probs

    sets = eval_sets()
    val, ck = sets["val"], sets["ck"]
    rows, val_probs, ck_probs = [], [], []
    for model in args.model:
        pv = model_probs(model, val.images, val.classes, args.flip, 256, args.threads)
        # over all 7 outputs, as eval scores it: a CK+ face called neutral is wrong, not re-ranked
        pc = model_probs(model, ck.images, val.classes, args.flip, 256, args.threads)
        val_probs.append(pv)
        ck_probs.append(pc)
        rows.append((Path(model).name + (" (flip)" if args.flip else ""), pv, pc))
    rows.append((f"mean of {len(args.model)}", np.mean(val_probs, axis=0), np.mean(ck_probs, axis=0)))
    models = []
    for name, pv, pc in rows:
        models.append({"model": name, **{k: round(v, 4) for k, v in measures(pv, pc, sets).items()},
                       "ece_val": round(expected_calibration_error(pv, val.labels), 4)})
        m = models[-1]
        print(f"{name}: val {m['val']:.4f}, de-dup {m['val_dedup']:.4f}, FER+ {m['val_ferplus']:.4f}, "
              f"CK+48 {m['ckplus48']:.4f}, ECE {m['ece_val']:.4f}")
    path = RUNS / f"{args.name}.json"
    path.write_text(json.dumps({"name": args.name, "command": args.command, "note": args.note,
                                "models": models}, indent=1) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    rec = sub.add_parser("record", help="score models (and a run folder's history) into docs/model_card/runs/")
    rec.add_argument("--name", required=True)
    rec.add_argument("--model", action="append", required=True)
    rec.add_argument("--run", help="the run folder (run.json, summary.json, history.csv)")
    rec.add_argument("--command", default="")
    rec.add_argument("--note", default="")
    rec.add_argument("--threads", type=int, default=2)
    ens = sub.add_parser("ensemble", help="members and their mean on the three sets")
    ens.add_argument("--name", required=True)
    ens.add_argument("--model", action="append", required=True)
    ens.add_argument("--flip", action="store_true", help="average each member over the face and its mirror")
    ens.add_argument("--command", default="")
    ens.add_argument("--note", default="")
    ens.add_argument("--threads", type=int, default=2)
    sub.add_parser("table", help="the campaign table (markdown)")
    args = parser.parse_args()
    if args.verb == "record":
        print(record(args))
    elif args.verb == "ensemble":
        print(ensemble(args))
    else:
        print(table())


if __name__ == "__main__":
    main()
