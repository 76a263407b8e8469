"""tools/train_gpu.py, proven on CPU with a tiny configuration (issue 21, item 9): the data pack
travels in parts and decodes to the very pixels the trainer reads here; teachers, ensemble and
student train on whatever Keras backend this Python has, and what comes back (models with
edge-fer's metadata, a teacher file `train --teacher` reads, the scores) is usable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

pytest.importorskip("keras")


def tool(name: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, str(REPO / "tools" / name), *map(str, args)], capture_output=True,
                         text=True)
    if check:
        assert run.returncode == 0, run.stderr[-2000:]
    return run


@pytest.fixture(scope="module")
def pack(tmp_path_factory, fer_train) -> Path:
    out = tmp_path_factory.mktemp("pack") / "gpudata"
    summary = json.loads(tool("gpu_pack.py", "--out", out, "--limit-per-class", 6, "--part-mb", 0.03,
                              "--shared", fer_train.parent.parent).stdout)
    assert summary["parts"] >= 2 and summary["train"] == 42  # split, so the parts path is exercised
    return out


def test_pack_decodes_to_the_trainers_pixels(pack, fer_train, fer_val):
    from gpu_pack import load

    from edge_fer.train.datasets import image_key, load_folder

    data = load(pack)
    train = load_folder(fer_train, limit_per_class=6, seed=0)
    assert data["train_keys"] == [image_key(p) for p in train.paths]
    assert np.array_equal(data["train_images"], train.images) and np.array_equal(data["train_labels"], train.labels)
    assert np.allclose(data["train_ferplus"].sum(1), 1.0, atol=1e-2)
    val = load_folder(fer_val, limit_per_class=6, seed=0)
    assert np.array_equal(data["val_images"], val.images)
    assert len(data["ck_images"]) == 309 and set(data["ck_labels"]) == {0, 1, 2, 3, 4, 5}  # no neutral in CK+'s 6


def test_a_missing_part_is_one_line(pack, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    for part in pack.iterdir():
        if part.name != "train-1.npz":
            (partial / part.name).write_bytes(part.read_bytes())
    run = tool("train_gpu.py", "--pack", partial, "--out", tmp_path / "out", check=False)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "train-1.npz not found" in run.stderr


def test_teachers_ensemble_and_student_train_and_come_back_usable(pack, tmp_path):
    from edge_fer.train.distill import teacher_for
    from edge_fer.train.keras_io import read_keras_meta

    out = tmp_path / "out"
    tool("train_gpu.py", "--pack", pack, "--out", out, "--teachers", "edgenet:0", "--teacher-epochs", 1,
         "--student-epochs", 1, "--batch", 32)
    summary = json.loads((out / "summary.json").read_text())
    assert [m["name"] for m in summary["models"]] == ["teacher-edgenet-s0", "student"]
    for scores in (summary["models"][0]["scores_flip"], summary["models"][1]["scores"],
                   summary["ensemble"]["scores_flip"]):
        assert set(scores) == {"val", "val_dedup", "val_ferplus", "ckplus48"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert len(summary["models"][1]["history"]["loss"]) == 1
    for name, arch in (("teacher-edgenet-s0", "edgenet"), ("student", "edgenet")):
        meta = read_keras_meta(out / f"{name}.keras")
        assert meta.name == arch and meta.input_size_hw == (48, 48) and len(meta.labels) == 7
    from gpu_pack import load

    keys = load(pack)["train_keys"]
    probs = teacher_for(str(out / "teacher_probs.npz"), [f"/x/{k}" for k in keys], load(pack)["classes"])
    assert probs.shape == (42, 7) and np.allclose(probs.sum(1), 1.0, atol=1e-2)


def test_bad_teacher_list_is_one_line(pack, tmp_path):
    run = tool("train_gpu.py", "--pack", pack, "--out", tmp_path / "o", "--teachers", "resnet:0", check=False)
    assert run.returncode != 0 and "ARCH:SEED" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_pilots_make_one_row_per_recipe_change(pack, tmp_path):
    out = tmp_path / "pilots"
    tool("train_gpu.py", "--pack", pack, "--out", out, "--pilots", "erase,cutmix", "--pilot-epochs", 1, "--batch", 32)
    summary = json.loads((out / "summary.json").read_text())
    row, cut = summary["pilots"]
    assert row["name"] == "erase" and row["recipe"]["augment"] == "erase" and row["arch"] == "edgenet"
    assert set(row["scores_flip"]) == {"val", "val_dedup", "val_ferplus", "ckplus48"}
    assert cut["name"] == "cutmix" and cut["recipe"]["mix"] == "cutmix" and len(cut["history"]["loss"]) == 1
    assert not list(out.glob("*.keras"))  # pilots keep no model


def test_bad_pilot_name_is_one_line(pack, tmp_path):
    bad = tool("train_gpu.py", "--pack", pack, "--out", tmp_path / "o", "--pilots", "resnet", check=False)
    assert bad.returncode != 0 and "expected names from" in bad.stderr and "Traceback" not in bad.stderr


def test_budget_stops_teachers_and_cuts_the_student(pack, tmp_path):
    """A budget already spent: the teacher stops after its first epoch (it never overruns a
    device call by more than an epoch) and the student is cut to nothing, both recorded."""
    out = tmp_path / "out"
    tool("train_gpu.py", "--pack", pack, "--out", out, "--teachers", "edgenet:0", "--teacher-epochs", 3,
         "--student-epochs", 2, "--batch", 32, "--budget-s", 1)
    summary = json.loads((out / "summary.json").read_text())
    (teacher,) = summary["models"]
    assert (teacher["epochs"], teacher["epochs_run"]) == (3, 1)
    assert summary["student_epochs_cut"] == {"asked": 2, "fit_in_budget": 0}
    assert (out / "teacher_probs.npz").is_file() and not (out / "student.keras").exists()
