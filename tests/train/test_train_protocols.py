"""`edge-fer train --protocol`: folds on CK+48's real subjects (no subject in two folds), a real
3-fold run through the CLI that resumes, the PyFER paper's split (one frame per sequence, no image
on two sides) and a 2-epoch run of it, and the protocol's bad input as a CliRunner table."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from edge_fer.cli import main
from edge_fer.train.ckplus import frame_ids
from edge_fer.train.loaders import LoadOptions, load_dataset
from edge_fer.train.protocols import assign_folds, fold_split, protocol_folds

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def ck_ids(ckplus48):
    return frame_ids(load_dataset(ckplus48, LoadOptions(size_hw=(48, 48), last_k=3)))


@pytest.mark.parametrize("folds", [3, 10])
def test_subject_folds_keep_each_subject_on_one_side(ck_ids, folds):
    subjects = [s for s, _, _ in ck_ids]
    fold = assign_folds(subjects, folds, seed=0)
    for subject in set(subjects):
        assert len({fold[i] for i, s in enumerate(subjects) if s == subject}) == 1
    sizes = np.bincount(fold, minlength=folds)
    biggest = max(Counter(subjects).values())
    assert sizes.sum() == len(subjects) and sizes.max() - sizes.min() <= biggest
    for k in range(folds):
        train, val, test = fold_split(fold, k, folds)
        assert sorted(np.concatenate([train, val, test])) == list(range(len(subjects)))
        assert not {subjects[i] for i in test} & {subjects[i] for i in train}
        assert not {subjects[i] for i in val} & {subjects[i] for i in train}
    assert np.array_equal(fold, assign_folds(subjects, folds, seed=0))
    assert not np.array_equal(fold, assign_folds(subjects, folds, seed=1))


def test_random_folds_split_sequences(ck_ids):
    """Dealt at random, the 3 frames of most sequences land in different folds (the leak)."""
    sequences = [q for _, q, _ in ck_ids]
    fold = protocol_folds(ck_ids, "random", 10, seed=0)
    assert np.bincount(fold).max() - np.bincount(fold).min() <= 1
    spread = Counter(len({fold[i] for i, q in enumerate(sequences) if q == seq}) for seq in set(sequences))
    assert spread[1] < len(set(sequences)) / 2


def test_protocol_runs_folds_and_resumes(ckplus48, tmp_path):
    """edgenet, 2 classes of CK+48's last frames (10 each), 3 subject folds of 1 epoch: every
    image tested once, no test subject in training, and a rerun keeps the finished folds."""
    out = tmp_path / "proto"
    args = ["train", "--data", str(ckplus48), "--arch", "edgenet", "--classes", "happy,surprise",
            "--limit-per-class", "10", "--epochs", "1", "--protocol", "subject", "--folds", "3",
            "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"subject split, 3 of 3 folds, 2 classes: test accuracy \d\.\d{4} \+- \d\.\d{4}",
                     result.output), result.output
    summary = json.loads((out / "protocol.json").read_text())
    folds = summary["per_fold"]
    assert [f["fold"] for f in folds] == [0, 1, 2] and summary["classes"] == ["happy", "surprise"]
    assert sum(f["n_test"] for f in folds) == summary["n_images"] == 20
    for f in folds:
        assert f["n_train"] + f["n_val"] + f["n_test"] == 20
        assert f["test_subjects_in_train"] == 0 and f["test_sequences_in_train"] == 0
        assert f["accuracy"] == pytest.approx(np.trace(f["confusion"]) / f["n_test"])
    accs = [f["accuracy"] for f in folds]
    assert summary["test_accuracy_mean"] == pytest.approx(np.mean(accs))
    assert summary["test_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    tested = sum((json.loads((out / f"fold{k:02d}" / "test.json").read_text())["test_paths"]
                  for k in range(3)), [])
    assert len(set(tested)) == 20  # every image tested exactly once
    stamps = [(out / f"fold{k:02d}" / "model.keras").stat().st_mtime_ns for k in range(3)]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert [(out / f"fold{k:02d}" / "model.keras").stat().st_mtime_ns for k in range(3)] == stamps
    assert json.loads((out / "protocol.json").read_text())["per_fold"] == folds


@pytest.mark.parametrize("extra, message", [
    (["--protocol", "subject", "--folds", "2"], "--folds 2: expected >= 3"),
    (["--protocol", "subject", "--run-folds", "11"], r"--run-folds 11: expected 1\.\.10 \(--folds\)"),
    (["--protocol", "random", "--val", "VAL"], "leave --val empty"),
    (["--protocol", "bogus"], "invalid value for --protocol: 'bogus' is not one of"),
    (["--last-frames", "0"], "--last-frames 0: expected >= 1"),
    (["--first-as-neutral"], "leave --first-as-neutral off"),
])
def test_protocol_cli_bad_input(ckplus48, tmp_path, extra, message):
    result = CliRunner().invoke(main, ["train", "--data", str(ckplus48), "--out", str(tmp_path / "o"), *extra])
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
    assert not list(tmp_path.rglob("*.keras"))


def test_protocol_needs_ck_frame_names(fer_val, tmp_path):
    result = CliRunner().invoke(main, ["train", "--data", str(fer_val), "--limit-per-class", "3",
                                       "--protocol", "subject", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.startswith("edge-fer: error: not a CK+ frame name"), result.output


def test_paper_split_is_one_frame_per_sequence_and_no_image_twice(ckplus48):
    """The PyFER paper's protocol (6 classes, last frames, random 80/10/10): every CK+ sequence
    gives exactly one image, and in each of the 10 splits no image (by file or by pixels) is on
    two sides."""
    data = load_dataset(ckplus48, LoadOptions(size_hw=(64, 64), classes="pyfer"))
    ids = frame_ids(data)
    assert len({sequence for _, sequence, _ in ids}) == len(data) == 309
    fold = protocol_folds(ids, "random", 10, seed=0)
    pixels = [image.tobytes() for image in data.images]
    for k in range(10):
        parts = fold_split(fold, k, 10)
        assert sum(map(len, parts)) == len(data)
        assert {len(parts[1]), len(parts[2])} <= {30, 31}  # 10% each for val and test
        for a, b in [(0, 1), (0, 2), (1, 2)]:
            assert not {data.paths[i] for i in parts[a]} & {data.paths[i] for i in parts[b]}
            assert not {pixels[i] for i in parts[a]} & {pixels[i] for i in parts[b]}


def test_paper_protocol_two_epochs_on_30_images(ckplus48, tmp_path):
    """PyFER with the paper's SGD, 2 epochs, fold 0 of the random split on 5 last frames per class."""
    out = tmp_path / "paper"
    result = CliRunner().invoke(main, [
        "train", "--data", str(ckplus48), "--arch", "pyfer", "--classes", "pyfer", "--protocol", "random",
        "--folds", "10", "--last-frames", "1", "--limit-per-class", "5", "--epochs", "2",
        "--optimizer", "sgd-pyfer", "--batch-size", "16", "--run-folds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "protocol.json").read_text())
    assert summary["n_images"] == summary["n_sequences"] == 30 and summary["folds_run"] == 1
    fold0 = json.loads((out / "fold00" / "test.json").read_text())
    assert (fold0["n_train"], fold0["n_val"], fold0["n_test"]) == (24, 3, 3)
    assert fold0["test_sequences_in_train"] == 0
    assert len((out / "fold00" / "history.csv").read_text().strip().splitlines()) == 1 + 2
