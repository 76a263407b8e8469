"""Issue 22's training comparison: the same classifier on original, CNN-cleaned and FER+-relabelled
FER2013 train, a few seeds each at one budget, scored on the campaign's measures.

    python tools/clean_compare.py --oof ../runs/clean/train_oof.npz --work ../runs/clean-compare \
        [--epochs 6] [--seeds 0,1,2] [--json docs/model_card/cleaning/train_compare.json]

Arms (built once in --work, then reused):
- original: ../shared/data/fer2013/train as it is;
- cnn-cleaned: `edge-fer clean --probs OOF --action relabel` (non-faces dropped, confident-learning
  label issues relabelled to the out-of-fold model's class: the second seed's step, with
  out-of-fold probabilities from `edge-fer oof-probs`);
- ferplus-relabelled: tools/ferplus_relabel.py (the FER+ plurality; people's NF dropped).
Each arm x seed is `edge-fer train --arch edgenet --epochs E --seed S` in --work/<arm>-s<S>
(resumable: run the same command again after an interruption), scored with tools/campaign.py's
`score` (de-duplicated val with FER2013's labels, val against the FER+ plurality, CK+48).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from campaign import SHARED, score  # noqa: E402
from edge_fer.fileio import write_json_atomic  # noqa: E402

EDGE_FER = Path(sys.executable).with_name("edge-fer")
MEASURES = ("val_dedup", "val_ferplus", "ckplus48")


def run(*args) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True)


def arms(work: Path, oof: Path, threads: int) -> dict[str, Path]:
    train = SHARED / "fer2013" / "train"
    cnn, people = work / "train-cnn", work / "train-ferplus"
    if not (cnn / "summary.json").is_file():
        run(EDGE_FER, "clean", "--data", train, "--out", cnn, "--probs", oof, "--action", "relabel",
            "--threads", threads)
    if not (people / "summary.json").is_file():
        run(sys.executable, REPO / "tools" / "ferplus_relabel.py", "--data", train,
            "--votes", SHARED / "ferplus" / "ferplus_votes.csv", "--out", people)
    return {"original": train, "cnn-cleaned": cnn / "data", "ferplus-relabelled": people / "data"}


def train_and_score(data: Path, out: Path, seed: int, epochs: int, threads: int) -> dict:
    """Train one arm x seed (resumes) and score it once; the scores are kept in the run folder,
    named by the epochs (a run of other epochs is refused by edge-fer train's fingerprint)."""
    scored = out / f"scores-e{epochs}.json"
    if scored.is_file():
        return json.loads(scored.read_text())
    run(EDGE_FER, "train", "--data", data, "--val", SHARED / "fer2013" / "val", "--arch", "edgenet",
        "--epochs", epochs, "--seed", seed, "--threads", threads, "--out", out)
    scores = score(str(out / "model.keras"), threads)
    write_json_atomic(scored, scores)
    return scores


def summarise(rows: list[dict], extra: tuple[str, ...] = ()) -> dict:
    """Mean and population sd of each measure (and of ``extra`` ones) per arm, over the seeds run so far."""
    arms_run = dict.fromkeys(r["arm"] for r in rows)
    table = {}
    for arm in arms_run:
        mine = [r for r in rows if r["arm"] == arm]
        table[arm] = {m: {"mean": statistics.mean(r[m] for r in mine), "sd": statistics.pstdev(r[m] for r in mine)}
                      for m in (*MEASURES, *extra)}
        table[arm]["runs"] = len(mine)
    return table


def compare(arm_data: dict[str, Path], args, derived: dict | None = None, header: dict | None = None) -> int:
    """Every arm x seed of ``args.seeds`` (seed-major: an interrupted comparison still holds whole
    seeds of every arm), each row printed and the table (``header`` first) rewritten to
    ``args.json`` after every run. ``derived``: name -> function of a run's scores, added to its row
    and summarised like the measures."""
    derived = derived or {}
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm, data in arm_data.items():
            scores = train_and_score(data, args.work / f"{arm}-s{seed}", seed, args.epochs, args.threads)
            rows.append({"arm": arm, "seed": seed, **scores, **{k: f(scores) for k, f in derived.items()}})
            print(json.dumps(rows[-1]), flush=True)
            if args.json:
                write_json_atomic(args.json, {"command": " ".join(sys.argv), "epochs": args.epochs,
                                              "seeds": args.seeds, **(header or {}),
                                              "arms": summarise(rows, tuple(derived)), "runs": rows})
    for arm, measures in summarise(rows, tuple(derived)).items():
        print(arm, {m: f"{100 * v['mean']:.2f} +- {100 * v['sd']:.2f}" for m, v in measures.items() if m != "runs"})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oof", type=Path, required=True, help="edge-fer oof-probs's .npz for train")
    parser.add_argument("--work", type=Path, required=True, help="the arms' data and run folders")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args()
    if not args.oof.is_file():
        print(f"clean_compare: --oof {args.oof} not found: run `edge-fer oof-probs` first", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    return compare(arms(args.work, args.oof, args.threads), args)


if __name__ == "__main__":
    sys.exit(main())
