"""``edge-fer train --protocol``: k-fold evaluation of one training recipe on a small labelled set
(CK+), each fold trained from scratch with :func:`~edge_fer.train.trainer.train_on`.

- ``random``: images dealt into ``folds`` folds at random, as the PyFER paper's random 80/10/10
  split (its split is fold 0). With several frames per sequence (``--last-frames 3``), frames of
  one sequence land on both sides: each fold's ``test_sequences_in_train`` counts them.
- ``subject``: CK+ subjects (the ``S###`` of each file name) dealt into folds, so no subject is
  in two folds (``test_subjects_in_train`` is 0).

Fold k tests on fold k, picks its best epoch on fold k+1 and trains on the other ``folds - 2``:
80/10/10 for 10 folds. ``OUT/foldNN/`` holds each fold's run and ``test.json``; a finished fold
is not run again, an interrupted one resumes. ``OUT/protocol.json`` gathers them: test accuracy
of each fold, their mean and sample standard deviation, and the accuracy over all test images.
``run_folds`` runs only the first folds of the split (fold 0 alone is one 80/10/10 split).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionsError
from ..fileio import write_json_atomic
from .ckplus import frame_ids
from .datasets import FaceDataset
from .models import arch_spec
from .trainer import TrainOptions, load_training_data, train_on

SPLITS = ("random", "subject")


@dataclass(frozen=True)
class ProtocolOptions:
    train: TrainOptions
    split: str = "subject"
    folds: int = 10
    run_folds: int | None = None  # run folds 0..run_folds-1 only (a partial protocol); None: all

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise OptionsError(f"ProtocolOptions.split={self.split!r}: expected one of {', '.join(SPLITS)}")
        if self.folds < 3:
            raise OptionsError(f"ProtocolOptions.folds={self.folds!r}: expected >= 3 (test, val, train)")
        if self.run_folds is not None and not 1 <= self.run_folds <= self.folds:
            raise OptionsError(f"ProtocolOptions.run_folds={self.run_folds!r}: expected 1..{self.folds} "
                               "(ProtocolOptions.folds)")
        if self.train.val:
            raise OptionsError("a protocol makes its own validation folds: leave TrainOptions.val empty")
        if self.train.strategy == "multiworker":
            raise OptionsError(f"TrainOptions.strategy={self.train.strategy!r}: expected default or mirrored "
                               "for a protocol")


def assign_folds(groups: list[str], folds: int, seed: int) -> np.ndarray:
    """The fold of each item: the items of one group share a fold, groups are shuffled with
    ``seed`` and dealt largest first into the fold with the fewest items so far."""
    sizes = Counter(groups)
    if len(sizes) < folds:
        raise InputError(f"{len(sizes)} groups cannot fill {folds} folds")
    names = sorted(sizes)
    np.random.default_rng(seed).shuffle(names)
    load, fold_of = np.zeros(folds, np.int64), {}
    for name in sorted(names, key=lambda g: -sizes[g]):  # stable: shuffled order within a size
        fold_of[name] = int(np.argmin(load))
        load[fold_of[name]] += sizes[name]
    return np.asarray([fold_of[g] for g in groups], np.int64)


def protocol_folds(ids: list[tuple[str, str, int]], split: str, folds: int, seed: int) -> np.ndarray:
    """The fold of each CK+ image (its :func:`~edge_fer.train.ckplus.frame_ids` entry): ``subject``
    deals subjects, ``random`` deals each image on its own."""
    groups = [subject for subject, _, _ in ids] if split == "subject" else [str(i) for i in range(len(ids))]
    return assign_folds(groups, folds, seed)


def fold_split(fold: np.ndarray, k: int, folds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, val, test)`` indexes for fold ``k``: test fold k, val fold k+1, train the rest."""
    test, val = fold == k, fold == (k + 1) % folds
    return np.flatnonzero(~(test | val)), np.flatnonzero(val), np.flatnonzero(test)


def test_scores(model_path: str, test: FaceDataset, data_path: str) -> dict:
    """Accuracy, per-class recall and confusion of the saved model on ``test`` (eval's code path)."""
    from .evaluate import EvalOptions, KerasRunner, label_map, predict, score

    with KerasRunner(EvalOptions(model_path, data_path)) as runner:
        true = label_map(test.classes, runner.meta.labels)[test.labels]
        pred = predict(runner, test.images, 256)
        return asdict(score(true, pred, runner.meta.labels)) | {"pred": pred.tolist(), "true": true.tolist()}


def run_protocol(options: ProtocolOptions) -> dict:
    """Run every fold (skipping finished ones); write and return ``OUT/protocol.json``."""
    base = options.train
    spec = arch_spec(base.arch)
    data = load_training_data(base.data, spec, base.limit_per_class, base.seed, base.classes,
                              base.crop_faces, base.last_frames, base.first_as_neutral)
    ids = frame_ids(data)
    subjects = [subject for subject, _, _ in ids]
    sequences = [sequence for _, sequence, _ in ids]
    fold = protocol_folds(ids, options.split, options.folds, base.seed)
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for k in range(options.run_folds or options.folds):
        train_idx, val_idx, test_idx = fold_split(fold, k, options.folds)
        fold_out = out / f"fold{k:02d}"
        done = fold_out / "test.json"
        if done.exists() and not base.fresh:
            results.append(json.loads(done.read_text()))
            continue
        import keras

        keras.backend.clear_session()
        run = train_on(data.subset(train_idx), data.subset(val_idx), replace(base, out=str(fold_out)))
        test = data.subset(test_idx)
        train_subjects = {subjects[j] for j in train_idx}
        train_sequences = {sequences[j] for j in train_idx}
        result = {
            "fold": k, "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_idx),
            "test_subjects_in_train": sum(subjects[j] in train_subjects for j in test_idx),
            "test_sequences_in_train": sum(sequences[j] in train_sequences for j in test_idx),
            "best_epoch": run.best_epoch, "val_accuracy": run.val_accuracy, "seconds": run.seconds,
            "precision": base.precision, **test_scores(run.model_path, test, base.data[0]),
            "test_paths": [Path(p).name for p in test.paths],
        }
        write_json_atomic(done, result, indent=None)
        results.append(result)
    accs = np.asarray([r["accuracy"] for r in results])
    pooled = sum(r["accuracy"] * r["n"] for r in results) / sum(r["n"] for r in results)
    summary = {
        "split": options.split, "folds": options.folds, "classes": list(data.classes),
        "n_images": len(data), "n_subjects": len(set(subjects)), "n_sequences": len(set(sequences)),
        "counts": data.counts(), "epochs": base.epochs, "arch": base.arch,
        "folds_run": len(results),
        "test_accuracy_mean": float(accs.mean()),
        "test_accuracy_std": float(accs.std(ddof=1)) if len(accs) > 1 else None,
        "test_accuracy_pooled": float(pooled),
        "train_seconds": float(sum(r["seconds"] for r in results)),
        "options": asdict(base),
        "per_fold": [{k: v for k, v in r.items() if k not in ("pred", "true", "test_paths")} for r in results],
    }
    write_json_atomic(out / "protocol.json", summary, indent=1)
    return summary
