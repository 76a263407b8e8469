"""A training run's folder across calls: refusing a different run, resuming after an interruption
with the best epoch kept, 1-based history, the curve, unreadable and empty inputs named, and the
CLI's quiet status output. Small real FER2013 subsets (a few seconds an epoch)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_fer.cli import main

CLASSES = ("happy", "sad", "surprise")


def subset(root: Path, source: Path, classes=CLASSES, per_class: int = 12) -> Path:
    """``root/<class>/`` symlinks to the first ``per_class`` real faces of each class."""
    for name in classes:
        (root / name).mkdir(parents=True)
        for path in sorted((source / name).iterdir())[:per_class]:
            (root / name / path.name).symlink_to(path)
    return root


@pytest.fixture()
def small(tmp_path, fer_train, fer_val) -> dict:
    return {"train": subset(tmp_path / "train", fer_train), "val": subset(tmp_path / "val", fer_val, per_class=8),
            "out": tmp_path / "run"}


def options(small, **kw):
    from edge_fer.train.trainer import TrainOptions

    base = dict(data=(str(small["train"]),), val=str(small["val"]), out=str(small["out"]), epochs=2,
                batch_size=8, seed=0, verbose=0, num_threads=1)
    return TrainOptions(**{**base, **kw})


def history_rows(out: Path) -> list[dict]:
    return list(csv.DictReader((out / "history.csv").open()))


def interrupt_after(monkeypatch, epochs_done: int) -> None:
    """Make the next training call stop like a killed process after ``epochs_done`` epochs
    (after that epoch's backup and history row are written)."""
    import keras

    from edge_fer.train import run_folder, trainer

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= epochs_done:
                raise KeyboardInterrupt

    real = run_folder.make_callbacks
    monkeypatch.setattr(trainer, "make_callbacks", lambda *a, **k: real(*a, **k) + [Stop()])


def test_reusing_a_finished_run_with_other_classes_is_refused(small, tmp_path, fer_train):
    """A finished 3-class run, then 2-class data into the same folder: one line naming the
    difference and --fresh, and the earlier model is left as it was."""
    from edge_fer.train.trainer import train

    train(options(small, epochs=1))
    model = small["out"] / "model.keras"
    before = model.read_bytes()
    two = subset(tmp_path / "two", fer_train, classes=("happy", "sad"))
    result = CliRunner().invoke(main, ["train", "--data", str(two), "--out", str(small["out"]),
                                       "--epochs", "1", "--batch-size", "8"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-fer: error: "), result.output
    assert "classes" in lines[0] and "train_counts" in lines[0] and "--fresh" in lines[0]
    assert model.read_bytes() == before


@pytest.mark.parametrize("change,named", [
    ({"arch": "pyfer"}, "arch \"edgenet\" -> \"pyfer\""),
    ({"epochs": 3}, "epochs 2 -> 3"),  # raising --epochs would restart the cosine schedule
])
def test_resuming_with_another_setting_is_one_line(small, monkeypatch, change, named):
    from edge_fer.errors import OptionsError
    from edge_fer.train.trainer import train

    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(options(small))
    monkeypatch.undo()
    with pytest.raises(OptionsError) as caught:
        train(options(small, **change))
    assert named in str(caught.value) and "TrainOptions.fresh" in str(caught.value)
    assert "\n" not in str(caught.value)
    result = train(options(small, **change, fresh=True))  # --fresh starts over in the same folder
    assert [int(r["epoch"]) for r in history_rows(small["out"])] == list(range(1, result.epochs_run + 1))


def test_resume_keeps_the_best_epoch_of_earlier_parts(small, monkeypatch):
    """Interrupted after epoch 1, resumed: epoch 2 is saved as best only if it beats epoch 1.
    Here epoch 1's recorded val accuracy is made unbeatable, so best.keras must stay epoch 1's
    and the exported model and summary say epoch 1; wall time sums both parts; rows are 1-based."""
    from edge_fer.train.trainer import train

    out = small["out"]
    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(options(small))
    monkeypatch.undo()
    rows = history_rows(out)
    assert [r["epoch"] for r in rows] == ["1"]
    rows[0]["val_accuracy"] = "1.0"
    with (out / "history.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    best_before = (out / "best.keras").read_bytes()
    result = train(options(small))
    assert (out / "best.keras").read_bytes() == best_before
    assert result.best_epoch == 1 and result.val_accuracy == 1.0
    rows = history_rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(float(r["seconds"]) > 0 and float(r["images_per_s"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == 1
    assert summary["seconds"] == pytest.approx(sum(float(r["seconds"]) for r in rows), abs=0.1)


def test_empty_class_folder_is_refused_and_extra_val_classes_named(small, fer_val, caplog):
    from edge_fer.errors import InputError
    from edge_fer.train.trainer import train

    (small["train"] / "fear").mkdir()
    with pytest.raises(InputError, match=r"classes \['fear'\] have no training images"):
        train(options(small))
    (small["train"] / "fear").rmdir()
    subset(small["val"], fer_val, classes=("angry",), per_class=5)
    with caplog.at_level("WARNING", logger="edge_fer"):
        train(options(small, epochs=1))
    assert any("validation classes ['angry']" in r.getMessage() and "5 images" in r.getMessage()
               for r in caplog.records)


def test_unreadable_images_are_named_and_the_decoder_kept_quiet(tmp_path, fer_val, caplog, capfd):
    """A truncated JPEG (``cv2.imread`` prints "Premature end of JPEG file" and returns a half-grey
    face), a JPEG with damaged data in the middle (libjpeg prints "Corrupt JPEG data" and still
    returns pixels) and a text file named .jpg: all skipped and named, nothing from the decoder
    on fd 2; the first few in the warning, every one in the debug log."""
    from edge_fer.train.datasets import NAMED_UNREADABLE, load_folder

    data = subset(tmp_path / "data", fer_val, classes=("happy", "sad"), per_class=5)
    real = bytearray(sorted((fer_val / "happy").iterdir())[10].read_bytes())
    (data / "happy" / "truncated.jpg").write_bytes(real[: len(real) // 2])
    middle = len(real) * 2 // 3
    real[middle:middle + 20] = b"\xff\xd0" * 10  # restart markers inside the entropy-coded data
    (data / "happy" / "corrupt.jpg").write_bytes(bytes(real))
    (data / "sad" / "notes.jpg").write_text("not an image")
    (data / "sad" / "empty.jpg").write_bytes(b"")
    capfd.readouterr()
    with caplog.at_level("DEBUG", logger="edge_fer"):
        loaded = load_folder(data)
    assert len(loaded) == 10 and loaded.skipped == 4
    err = capfd.readouterr().err  # (edge-fer's own log lines may land here too when a CLI test ran first)
    assert not [x for x in err.splitlines() if x.startswith(("Corrupt JPEG", "Premature end"))], err
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert NAMED_UNREADABLE == 3 and "4 unreadable image(s)" in warning and "and 1 more" in warning
    assert "corrupt.jpg (damaged (Corrupt JPEG data" in warning  # the decoder's complaint as the reason
    debug = " ".join(r.getMessage() for r in caplog.records if r.levelname == "DEBUG")
    for name in ("truncated.jpg", "corrupt.jpg", "notes.jpg", "empty.jpg"):
        assert name in debug


def test_cli_status_on_stderr_quiet_tensorflow_and_a_curve(small, tmp_path):
    """The CLI: stdout holds only the result line; epoch lines go to stderr; TensorFlow's
    start-up noise (CUDA probing, absl) and Keras' UserWarnings are hidden; -q keeps only
    warnings; the curve PNG is written beside the history."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    base = [sys.executable, "-m", "edge_fer.cli", "train", "--data", str(small["train"]), "--val",
            str(small["val"]), "--epochs", "2", "--batch-size", "8", "--threads", "1"]
    normal = subprocess.run(base + ["--out", str(tmp_path / "a")], capture_output=True, text=True,
                            timeout=900, env=env)
    assert normal.returncode == 0, normal.stderr[-2000:]
    assert normal.stdout.strip().splitlines() == [normal.stdout.strip()]  # one line
    assert normal.stdout.startswith(f"saved {tmp_path / 'a' / 'model.keras'}: 2 epochs")
    assert re.search(r"^edge-fer: epoch 1/2: loss [0-9.]+, .*val_accuracy [0-9.]+.*; \d+ s, \d+ images/s$", normal.stderr, re.M)
    noise = re.compile(r"cuda|absl|cpu_feature_guard|UserWarning|E0000|I0000|W0000", re.I)
    assert not noise.search(normal.stderr), normal.stderr
    quiet = subprocess.run([sys.executable, "-m", "edge_fer.cli", "-q", *base[3:], "--out", str(tmp_path / "b")],
                           capture_output=True, text=True, timeout=900, env=env)
    assert quiet.returncode == 0 and quiet.stderr.strip() == "", quiet.stderr
    png = (tmp_path / "a" / "curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
