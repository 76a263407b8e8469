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

Runs too long for one machine (the paper's 200 epochs: ~20 min per fold on 2 cores) are kept
fold by fold in a committed folder, so a later session on a fresh machine goes on from there:

    python tools/ckplus_protocols.py --out runs/ckplus-paper --record docs/model_card/pyfer_ckplus \
        --card docs/model_card/pyfer_ckplus.json --arch pyfer --optimizer sgd-pyfer --epochs 200 \
        --batch-size 16 --threads 2 --precision mixed_bfloat16 --only random6,random7,subject6

(``--precision mixed_bfloat16``: 1.4x faster on a CPU with AVX512_BF16; each fold records the
precision it trained in, and the card shows it. One 2-thread job beats two 1-thread ones there.)

``--record DIR``: the configurations run one fold at a time; each finished fold's test.json and
history.csv are copied to DIR/<configuration>/foldNN/, and folds found there are put back into
--out first (so they are not trained again). ``--card FILE``: one row per finished fold (the
issue's fields: protocol, classes, fold, epochs, test_accuracy, wall_s, command).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_fer.fileio import portable_path, write_bytes_atomic, write_json_atomic  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "ckplus48"
#: a fold's files kept in --record (small: no weights)
RECORDED = ("test.json", "history.csv")
CLASSES = {"6": "pyfer", "7": "angry,contempt,disgust,fear,happy,sad,surprise"}
#: name -> (split, classes, frames per sequence)
CONFIGS = {
    "random6": ("random", "6", 1), "random7": ("random", "7", 1),
    "random6x3": ("random", "6", 3), "random7x3": ("random", "7", 3),
    "subject6": ("subject", "6", 1), "subject7": ("subject", "7", 1),
}


#: PyFER's reported CK+ accuracy by class count (6 classes; 7 with contempt).
PAPER_ACCURACY = {6: 0.963, 7: 0.8571}


def reaches_paper(accuracy: float, classes: int) -> bool:
    """Whether a fold's test accuracy is at least the paper's figure for ``classes`` (float slack)."""
    return accuracy >= PAPER_ACCURACY[classes] - 1e-9


def epochs_of(name: str, args) -> int:
    """``--epochs`` with the last frame; with 3 frames per sequence a third of it (3x the images:
    the same number of steps)."""
    frames = CONFIGS[name][2]
    return args.epochs if frames == 1 else max(1, args.epochs // frames)


def command(name: str, args) -> list[str]:
    split, classes, frames = CONFIGS[name]
    epochs = epochs_of(name, args)
    cmd = ["edge-fer", "train", "--data", portable_path(args.data), "--arch", args.arch, "--classes", CLASSES[classes],
           "--protocol", split, "--folds", str(args.folds), "--last-frames", str(frames),
           "--epochs", str(epochs), "--seed", str(args.seed), "--out", str(args.out / name)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    for flag in ("lr", "optimizer", "augment", "threads", "precision"):
        if getattr(args, flag):
            cmd += [f"--{flag}", str(getattr(args, flag))]
    if name in args.partial:
        cmd += ["--run-folds", str(args.partial[name])]
    return cmd


def fold_command(name: str, k: int, args) -> list[str]:
    """``name``'s command up to fold ``k`` (the folds before it are done and skipped)."""
    cmd = command(name, args)
    if "--run-folds" in cmd:
        del cmd[cmd.index("--run-folds"):cmd.index("--run-folds") + 2]
    return cmd + ["--run-folds", str(k + 1)]


def train(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run([str(Path(sys.executable).with_name("edge-fer")), *cmd[1:]], check=True)


def run_recorded(name: str, args) -> None:
    """Fold by fold (``--run-folds k+1``: edge-fer train skips the folds already done), each
    finished fold copied to the record; recorded folds are put back into --out first."""
    record, out = args.record / name, args.out / name
    folds, trained = args.partial.get(name, args.folds), False
    for k in range(folds):
        kept, fold = record / f"fold{k:02d}", out / f"fold{k:02d}"
        if (kept / "test.json").is_file() and not (fold / "test.json").is_file():
            fold.mkdir(parents=True, exist_ok=True)
            for file in RECORDED:
                if (kept / file).is_file():
                    shutil.copyfile(kept / file, fold / file)
        trained = not (fold / "test.json").is_file()
        if trained:
            train(fold_command(name, k, args))
        kept.mkdir(parents=True, exist_ok=True)
        for file in RECORDED:
            if (fold / file).is_file():
                write_bytes_atomic(kept / file, (fold / file).read_bytes())
    if not trained:  # every fold came back from the record: gather them into protocol.json
        train(fold_command(name, folds - 1, args))


def card(folder: Path, names, args) -> dict:
    """The issue's rows, one per finished fold of each configuration in ``folder``."""
    runs, invocation = [], " ".join(a for a in sys.argv[1:] if a != "--table")  # the command that trains
    for name in names:
        split, classes, frames = CONFIGS[name]
        for done in sorted((folder / name).glob("fold*/test.json")):
            fold = json.loads(done.read_text())
            precision = fold.get("precision", "float32")  # folds from before the option: float32
            own = argparse.Namespace(**{**vars(args), "precision": None if precision == "float32" else precision})
            runs.append({"protocol": "paper-random" if split == "random" else split, "classes": int(classes),
                         "frames_per_sequence": frames, "fold": fold["fold"], "epochs": epochs_of(name, args),
                         "best_epoch": fold["best_epoch"], "n_test": fold["n_test"],
                         "test_accuracy": fold["accuracy"], "wall_s": fold["seconds"],
                         "precision": precision,
                         "command": "python tools/ckplus_protocols.py " + invocation
                                    + f" (this fold: {' '.join(fold_command(name, fold['fold'], own))})"})
    return {"about": "Issue 22 item 1: PyFER on CK+48 (48x48 crops upscaled to 64x64; the paper cropped the "
                     "640x490 frames itself), one row per fold: fold k tests, fold k+1 picks the epoch",
            "summary": summarise(runs), "runs": runs}


def summarise(runs: list[dict]) -> list[dict]:
    """Per protocol and class count: folds, mean, sd (n - 1), min, max of the test accuracy, and
    how many folds reach the paper's figure."""
    groups: dict[tuple, list[float]] = {}
    for run in runs:
        groups.setdefault((run["protocol"], run["classes"]), []).append(run["test_accuracy"])
    return [{"protocol": protocol, "classes": classes, "folds": len(accs), "mean": statistics.mean(accs),
             "sd": statistics.stdev(accs) if len(accs) > 1 else None, "min": min(accs), "max": max(accs),
             "paper": PAPER_ACCURACY[classes], "folds_reaching_paper": sum(reaches_paper(a, classes) for a in accs)}
            for (protocol, classes), accs in groups.items()]


def table(out: Path, names) -> tuple[dict, str]:
    rows, results = [], {}
    lines = ["| protocol | classes | frames/seq | epochs | folds run | images | test acc. mean +- std | min / max "
             f"| folds >= the paper's {100 * PAPER_ACCURACY[6]:.1f}% (6) / {100 * PAPER_ACCURACY[7]:.2f}% (7) | pooled | "
             "test imgs with their sequence / subject in train | train time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
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
        accs = [f["accuracy"] for f in folds]
        reach = sum(reaches_paper(a, len(summary["classes"])) for a in accs)
        rows.append(f"| {split} | {len(summary['classes'])} | {frames} | {summary['epochs']} "
                    f"| {summary['folds_run']}/{summary['folds']} "
                    f"| {summary['n_images']} | {100 * summary['test_accuracy_mean']:.1f}%"
                    f"{'' if std is None else f' +- {100 * std:.1f}'} | {100 * min(accs):.1f} / {100 * max(accs):.1f} "
                    f"| {reach} of {len(accs)} | {100 * summary['test_accuracy_pooled']:.1f}% "
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
    parser.add_argument("--precision", help="edge-fer train --precision (default: float32)")
    parser.add_argument("--only", help=f"comma-separated, of {list(CONFIGS)} (default: all, in that order)")
    parser.add_argument("--partial", default="",
                        help="NAME=N,...: run only the first N folds of these configurations")
    parser.add_argument("--table", action="store_true", help="only gather what is there")
    parser.add_argument("--record", type=Path, help="keep each finished fold here (committed), resume from it")
    parser.add_argument("--card", type=Path, help="write one row per finished fold here (JSON)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; expected some of {list(CONFIGS)}")
    args.partial = {k: int(v) for k, v in (item.split("=") for item in args.partial.split(",") if item)}
    if not args.table:
        for name in names:
            if args.record:
                run_recorded(name, args)
            else:
                train(command(name, args))
    results, text = table(args.out, names)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.card:
        write_json_atomic(args.card, card(args.record or args.out, names, args))
    (args.out / "ckplus_protocols.json").write_text(json.dumps(
        {name: {"command": " ".join(command(name, args)), **summary} for name, summary in results.items()},
        indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
