"""Issue 22 item 4: the same classifier trained on FER2013 train with and without CycleGAN-generated
disgust faces, a few seeds each at one budget, scored on the campaign's measures, and a grid of
real neutral faces beside what the generator makes of them.

    python tools/balance_compare.py --work ../runs/clean-compare [--gan-epochs 50 --gan-decay-epochs 50]
        [--count N] [--epochs 6] [--seeds 0,1,2] [--json docs/model_card/cyclegan/train_compare.json]
        [--grid docs/model_card/cyclegan_faces.png] [--original-from docs/model_card/cleaning/train_compare.json]
        [--oversampled]

Steps (each resumes: run the same command again after an interruption):
1. `edge-fer balance --data fer2013/train --source neutral --target disgust --out WORK/train-cyclegan`
   (its CycleGAN checkpoints every epoch in WORK/train-cyclegan/.cyclegan);
2. per seed, `edge-fer train --arch edgenet --epochs E --seed S` on train as it is ("original", the
   same run folders as tools/clean_compare.py's original arm: share --work and they are trained
   once) and on the balanced copy ("cyclegan"), scored like clean_compare (disgust recall on
   de-duplicated val included);
3. the grid: the first val neutral faces (the generator never saw val) beside the generator's
   disgust made of each; and every val neutral face through the generator, judged by how far it
   moved and by what the shipped classifier calls it (``generated_val_judged``).

``--oversampled``: a third arm, disgust's real faces repeated to the balanced copy's count (the
simple baseline the generated faces must beat). ``--original-from``: take the original arm's scores from clean_compare's JSON (same trainer, data,
epochs and seeds) instead of training them again where their run folders are gone; the table's
``original_from`` names the file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from campaign import SHARED  # noqa: E402
from clean_compare import EDGE_FER, compare, run  # noqa: E402
from edge_fer.fileio import write_json_atomic  # noqa: E402

SOURCE, TARGET = "neutral", "disgust"


def balanced_copy(work: Path, gan_epochs: int, gan_decay_epochs: int, count: int | None) -> Path:
    out = work / "train-cyclegan"
    if not (out / "balance.json").is_file():
        extra = ["--count", count] if count else []
        run(EDGE_FER, "balance", "--data", SHARED / "fer2013" / "train", "--source", SOURCE, "--target", TARGET,
            "--out", out, "--epochs", gan_epochs, "--decay-epochs", gan_decay_epochs, *extra)
    return out


def reuse_original(work: Path, table_path: Path, epochs: int, seeds: list[int]) -> None:
    """Write clean_compare's original-arm scores as the run folders' score files (which
    clean_compare.train_and_score reads instead of training), for the seeds it holds."""
    table = json.loads(table_path.read_text())
    if table["epochs"] != epochs:
        raise SystemExit(f"balance_compare: {table_path} holds {table['epochs']}-epoch runs, not {epochs}")
    for row in table["runs"]:
        if row["arm"] == "original" and row["seed"] in seeds:
            scored = work / f"original-s{row['seed']}" / f"scores-e{epochs}.json"
            if not scored.is_file():
                scores = {k: v for k, v in row.items() if k not in ("arm", "seed")}
                write_json_atomic(scored, scores)


def oversampled_copy(work: Path, balanced: Path) -> Path:
    """The control arm: train with disgust's real faces repeated (symlinks, cycling through them)
    up to the balanced copy's disgust count, so the two arms differ only in what the added
    faces are, not in how many a class gets."""
    out = work / "train-oversampled"
    if out.is_dir():
        return out
    train, target = SHARED / "fer2013" / "train", json.loads((balanced / "balance.json").read_text())["counts"][TARGET]
    building = work / ".train-oversampled.partial"
    if building.exists():
        shutil.rmtree(building)
    for folder in sorted(p for p in train.iterdir() if p.is_dir()):
        (building / folder.name).mkdir(parents=True)
        files = sorted(f for f in folder.iterdir() if f.is_file())
        for file in files:
            (building / folder.name / file.name).symlink_to(file.resolve())
        if folder.name == TARGET:
            for i in range(target - len(files)):
                source = files[i % len(files)]
                (building / folder.name / f"repeat_{i:06d}_{source.name}").symlink_to(source.resolve())
    building.rename(out)
    return out


def generate_val(balanced: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every val neutral face (uint8, N x 48 x 48) and the generator's disgust made of it (the
    generator never saw val)."""
    import keras

    from edge_fer.train.cyclegan import to_uint8, to_unit
    from edge_fer.train.datasets import load_folder

    generator = keras.models.load_model(balanced / ".cyclegan" / f"g_{SOURCE}_to_{TARGET}.keras", compile=False)
    real = load_folder(SHARED / "fer2013" / "val", classes=(SOURCE,)).images
    return real, to_uint8(generator.predict(to_unit(real), verbose=0))


def judge(real: np.ndarray, fake: np.ndarray,
          model: Path = REPO / "edge_fer" / "models" / "edgenet_fer2013_int8.tflite") -> dict:
    """What the generated faces are, by two measures: how far each moved from its real face
    (mean absolute change, gray levels) and what the shipped classifier calls the real faces
    and the generated ones."""
    from edge_fer.train.evaluate import EvalOptions, open_runner, predict

    with open_runner(EvalOptions(str(model), "")) as runner:
        labels = runner.meta.labels
        calls = {name: np.bincount(predict(runner, faces, 256), minlength=len(labels))
                 for name, faces in (("real", real), ("generated", fake))}
    return {"faces": int(len(real)), "data": f"fer2013/val/{SOURCE}", "model": model.name,
            "mean_abs_change_gray": round(float(np.abs(fake.astype(np.float32) - real).mean()), 2),
            "classifier_calls": {name: dict(zip(labels, map(int, counts))) for name, counts in calls.items()}}


def grid(real: np.ndarray, fake: np.ndarray, path: Path, faces: int = 24, cols: int = 6) -> None:
    """The first ``faces`` pairs (real val neutral | generated disgust), ``cols`` pairs per row, 2x enlarged."""
    import cv2

    from edge_fer.fileio import write_bytes_atomic

    real, fake = real[:faces], fake[:faces]
    gap = np.full((real.shape[1], 4), 255, np.uint8)
    pairs = [np.hstack([r, f, gap, gap]) for r, f in zip(real, fake)]
    rows = [np.hstack(pairs[i:i + cols]) for i in range(0, len(pairs), cols)]
    image = cv2.resize(np.vstack([np.vstack([r, np.full((4, r.shape[1]), 255, np.uint8)]) for r in rows]),
                       None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    write_bytes_atomic(path, png.tobytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="run folders (share clean_compare's)")
    parser.add_argument("--gan-epochs", type=int, default=50, help="CycleGAN epochs at a constant rate")
    parser.add_argument("--gan-decay-epochs", type=int, default=50, help="then epochs of linear decay")
    parser.add_argument("--count", type=int, help="disgust faces to generate (default: up to neutral's count)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the table here")
    parser.add_argument("--grid", type=Path, help="write the real | generated grid here (PNG)")
    parser.add_argument("--oversampled", action="store_true",
                        help="a third arm: disgust's real faces repeated to the same count (the control)")
    parser.add_argument("--original-from", type=Path,
                        help="clean_compare's JSON: reuse its original-arm scores instead of training them again")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    header = {}
    if args.original_from:
        reuse_original(args.work, args.original_from, args.epochs, [int(s) for s in args.seeds.split(",")])
        header["original_from"] = str(args.original_from)
    balanced = balanced_copy(args.work, args.gan_epochs, args.gan_decay_epochs, args.count)
    real, fake = generate_val(balanced)  # once, for the grid and the judging
    if args.grid:
        grid(real, fake, args.grid)
    balance = json.loads((balanced / "balance.json").read_text())
    header["balance"] = {k: balance[k] for k in ("generated", "counts", "epochs_run", "seconds")}
    header["generated_val_judged"] = judge(real, fake)
    arms = {"original": SHARED / "fer2013" / "train", "cyclegan": balanced}
    if args.oversampled:
        arms["oversampled"] = oversampled_copy(args.work, balanced)
    return compare(arms, args,
                   derived={"disgust_recall_dedup": lambda scores: scores["val_dedup_per_class"][TARGET]},
                   header=header)


if __name__ == "__main__":
    sys.exit(main())
