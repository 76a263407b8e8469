"""CycleGAN balancing on real FER faces: a few training steps, checkpoint/resume, the learning
rate schedule, and `edge-fer balance` end to end plus its bad input."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge_fer.cli import main
from edge_fer.errors import OptionsError
from edge_fer.train.cyclegan import CycleGan, CycleGanOptions, to_uint8, to_unit
from edge_fer.train.datasets import load_folder

pytest.importorskip("tensorflow")

TINY = dict(filters=8, res_blocks=1, steps_per_epoch=4)


@pytest.fixture(scope="module")
def faces(fer_train):
    data = load_folder(fer_train, classes=("neutral", "disgust"), limit_per_class=16)
    return data.images[data.labels == 0], data.images[data.labels == 1]


def test_scaling_round_trips_real_faces(faces):
    source, _ = faces
    unit = to_unit(source)
    assert unit.shape == (16, 48, 48, 1) and unit.min() >= -1.0 and unit.max() <= 1.0
    np.testing.assert_array_equal(to_uint8(unit), source)


def test_learning_rate_constant_then_linear_to_zero():
    options = CycleGanOptions(epochs=100)
    rates = [options.lr_at(e) for e in range(options.total_epochs)]
    assert options.total_epochs == 200 and options.decay_epochs == 100
    assert rates[:100] == [2e-4] * 100
    assert all(a > b for a, b in zip(rates[99:], rates[100:]))
    assert rates[-1] == pytest.approx(2e-4 / 101)
    np.testing.assert_allclose(np.diff(rates[100:]), -2e-4 / 101)


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "CycleGanOptions.epochs=0: expected >= 1"),
    ({"label_flip": 0.5}, r"CycleGanOptions.label_flip=0.5: expected a probability in \[0, 0.5\)"),
    ({"size_hw": (50, 50)}, r"CycleGanOptions.size_hw=\(50, 50\): expected sides that are multiples of 4"),
    ({"steps_per_epoch": 0}, "CycleGanOptions.steps_per_epoch=0: expected >= 1"),
])
def test_options_reject_bad_values(changes, message):
    with pytest.raises(OptionsError, match=message):
        CycleGanOptions(**changes)


def test_few_steps_on_real_faces_then_resume(faces, tmp_path):
    """Four training steps: finite losses, 48x48 uint8 outputs; a second run resumes from the
    checkpoint (same weights) and trains only the epoch that is left."""
    source, target = faces
    gan = CycleGan(CycleGanOptions(epochs=1, decay_epochs=0, **TINY))
    result = gan.fit(source, target, tmp_path / "ckpt", log=lambda _: None)
    assert [e.epoch for e in result.logs] == [1]
    entry = result.logs[0]
    assert all(np.isfinite([entry.g_loss, entry.d_loss, entry.cycle_loss, entry.identity_loss]))
    assert entry.cycle_loss > 0 and entry.d_loss > 0
    fake = gan.generate(source[:5])
    assert fake.shape == (5, 48, 48) and fake.dtype == np.uint8
    assert fake.std() > 0 and not np.array_equal(fake, source[:5])
    with (tmp_path / "ckpt" / "losses.csv").open() as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1]

    again = CycleGan(CycleGanOptions(epochs=2, decay_epochs=0, **TINY))
    assert again.restore(tmp_path / "ckpt") == 1
    for a, b in zip(gan.g_ab.get_weights(), again.g_ab.get_weights()):
        np.testing.assert_array_equal(a, b)
    resumed = again.fit(source, target, tmp_path / "ckpt", log=lambda _: None)
    assert [e.epoch for e in resumed.logs] == [2] and resumed.epochs_run == 2


def fer_subset(root: Path, fer_train: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for f in sorted((fer_train / name).iterdir())[:n]:
            shutil.copy(f, root / name / f.name)
    return root


def test_balance_writes_a_new_dataset(fer_train, tmp_path):
    data = fer_subset(tmp_path / "data", fer_train, {"neutral": 10, "disgust": 4, "happy": 3})
    out = tmp_path / "balanced"
    args = ["balance", "--data", str(data), "--source", "neutral", "--target", "disgust", "--out", str(out),
            "--epochs", "1", "--decay-epochs", "0", "--steps-per-epoch", "2", "--count", "5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "5 generated disgust images added" in result.stdout
    counts = {p.name: len(list(p.iterdir())) for p in out.iterdir() if p.is_dir() and p.name[0] != "."}
    assert counts == {"neutral": 10, "disgust": 9, "happy": 3}
    generated = sorted((out / "disgust").glob("cyclegan_neutral_*.png"))
    assert len(generated) == 5
    for path in generated:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (48, 48) and image.dtype == np.uint8
    for name in ("neutral", "happy"):  # originals untouched
        for f in (data / name).iterdir():
            assert (out / name / f.name).read_bytes() == f.read_bytes()
    summary = json.loads((out / "balance.json").read_text())
    assert summary["generated"] == 5 and summary["counts"]["disgust"] == 9
    assert load_folder(out).counts() == {"disgust": 9, "happy": 3, "neutral": 10}  # trainable as is
    assert (out / ".cyclegan" / "g_neutral_to_disgust.keras").is_file()
    # Running again into the same folder refuses instead of mixing two datasets.
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already holds a dataset" in again.output


@pytest.mark.parametrize("source, target, extra, message", [
    ("neutral", "neutral", [], "--target 'neutral': expected a class other than --source"),
    ("neutral", "contempt", [], r"target class 'contempt' is not in the dataset"),
    ("calm", "disgust", [], r"source class 'calm' is not in the dataset"),
    ("neutral", "disgust", ["--count", "0"], "--count 0: expected >= 1"),
    ("neutral", "disgust", ["--epochs", "0"], "--epochs 0: expected >= 1"),
    ("neutral", "disgust", ["--lr", "0"], r"--lr 0\.0: expected > 0"),
])
def test_balance_bad_input(fer_train, tmp_path, source, target, extra, message):
    data = fer_subset(tmp_path / "data", fer_train, {"neutral": 2, "disgust": 2})
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["balance", "--data", str(data), "--source", source, "--target", target,
                                       "--out", str(out), *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("edge-fer: error: ") and re.search(message, lines[-1]), result.output
    assert not out.exists()


def test_balance_refuses_a_file_as_output(fer_train, tmp_path):
    data = fer_subset(tmp_path / "data", fer_train, {"neutral": 2, "disgust": 2})
    (tmp_path / "out").write_text("keep me")
    result = CliRunner().invoke(main, ["balance", "--data", str(data), "--source", "neutral", "--target",
                                       "disgust", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "is a file; expected a new folder" in result.output
    assert (tmp_path / "out").read_text() == "keep me"
