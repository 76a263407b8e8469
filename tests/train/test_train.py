"""Architectures (PyFER's layer sequence, the transfer model offline), a short real training run,
and `edge-fer train`'s bad input as a CliRunner table."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_fer.cli import main
from edge_fer.train.datasets import CLASS_SETS, load_folder

keras = pytest.importorskip("keras")


def layer_kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


# PyFER -------------------------------------------------------------------------------------------
def test_pyfer_layer_sequence_follows_the_paper():
    """conv 3x3 stride 1 no padding -> ReLU -> BatchNorm -> Dropout (x2 per block), max-pool 2x2
    stride 2 after each block; flatten; dense layers; softmax."""
    from edge_fer.train.models import build_pyfer

    model = build_pyfer(6)
    kinds = layer_kinds(model)
    assert kinds[:2] == ["InputLayer", "Rescaling"]
    block = ["Conv2D", "ReLU", "BatchNormalization", "Dropout"] * 2 + ["MaxPooling2D"]
    assert kinds[2:2 + 3 * len(block)] == block * 3
    assert kinds[2 + 3 * len(block):] == ["Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert layer.kernel_size == (3, 3) and layer.strides == (1, 1) and layer.padding == "valid"
        if isinstance(layer, keras.layers.MaxPooling2D):
            assert layer.pool_size == (2, 2) and layer.strides == (2, 2)
    assert model.layers[-1].activation.__name__ == "softmax"
    shapes = {layer.name: layer.output.shape[1:] for layer in model.layers}
    # 64 -> 62 -> 60 -> 30 -> 28 -> 26 -> 13 -> 11 -> 9 -> 4: "valid" convolutions shrink by 2.
    assert shapes["conv0_0"] == (62, 62, 64) and shapes["pool0"] == (30, 30, 64)
    assert shapes["pool1"] == (13, 13, 128) and shapes["pool2"] == (4, 4, 256)
    assert shapes["flatten"] == (4096,) and shapes["probs"] == (6,)


def test_pyfer_optimizer_is_the_papers():
    from edge_fer.train.models import arch_spec, build_pyfer
    from edge_fer.train.trainer import compile_model

    model = build_pyfer(7)
    compile_model(model, arch_spec("pyfer"), steps_per_epoch=10, epochs=2, lr=None)
    opt = model.optimizer
    assert type(opt).__name__ == "SGD"
    assert float(opt.learning_rate) == pytest.approx(0.001)
    assert opt.momentum == pytest.approx(0.9) and opt.weight_decay == pytest.approx(0.01)


def test_pyfer_runs_on_real_faces(fer_val):
    from edge_fer.train.models import build_pyfer

    data = load_folder(fer_val, size_hw=(64, 64), limit_per_class=1)
    probs = build_pyfer(7)(data.images[..., None].astype("float32"), training=False).numpy()
    assert probs.shape == (7, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("arch, widths, params", [("edgenet", (32, 48, 96, 192), 661_095),
                                                   ("edgenet-m", (48, 72, 144, 288), 1_484_119),
                                                   ("edgenet-se", (32, 48, 96, 192), 673_861)])
def test_edgenet_widths(fer_val, arch, widths, params):
    from edge_fer.train.models import build_model

    model = build_model(arch, 7)
    convs = [layer.filters for layer in model.layers if layer.name.endswith("_0") and layer.name.startswith("conv")]
    assert tuple(convs) == widths and model.count_params() == params
    data = load_folder(fer_val, size_hw=(48, 48), limit_per_class=1)
    probs = model(data.images[..., None].astype("float32"), training=False).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    gates = [layer for layer in model.layers if layer.name.endswith("_scale")]
    assert len(gates) == (4 if arch == "edgenet-se" else 0)


def test_transfer_builds_and_runs_offline(fer_val):
    """MobileNetV2 alpha 0.35 at 96x96 RGB with weights=None needs no download."""
    from edge_fer.train.models import build_model

    model = build_model("transfer", 7, weights=None)
    assert model.input_shape == (None, 96, 96, 3) and model.output_shape == (None, 7)
    backbone = next(layer for layer in model.layers if layer.name.startswith("mobilenetv2"))
    assert "0.35" in backbone.name and backbone.output.shape[1:] == (3, 3, 1280)
    data = load_folder(fer_val, size_hw=(96, 96), limit_per_class=1)
    rgb = np.repeat(data.images[..., None], 3, axis=-1).astype("float32")
    probs = model(rgb, training=False).numpy()
    assert probs.shape == (7, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


# training on real data ---------------------------------------------------------------------------
def test_short_training_run_lowers_the_loss(fer_train, fer_val, tmp_path):
    """edgenet, 40 real faces per class of the 6 PyFER classes, 3 epochs: the loss falls, the
    model records its classes, evaluating it works."""
    from edge_fer.train.evaluate import EvalOptions, evaluate
    from edge_fer.train.keras_io import read_keras_meta
    from edge_fer.train.trainer import TrainOptions, train

    result = train(TrainOptions(data=(str(fer_train),), out=str(tmp_path / "run"), epochs=3,
                                limit_per_class=40, classes="pyfer", seed=0, verbose=0))
    assert result.epochs_run == 3
    assert result.train_loss_last < result.train_loss_first
    meta = read_keras_meta(result.model_path)
    assert meta.labels == CLASS_SETS["pyfer"] and meta.input_size_hw == (48, 48)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_counts"] == {c: 40 for c in CLASS_SETS["pyfer"]}
    # The 7-class val folder holds neutral, which this 6-class model lacks: a one-line error.
    from edge_fer.errors import InputError
    with pytest.raises(InputError, match=r"\['neutral'\] are not among the model's labels"):
        evaluate(EvalOptions(result.model_path, str(fer_val), limit_per_class=2))
    six = tmp_path / "val6"
    six.mkdir()
    for name in CLASS_SETS["pyfer"]:
        (six / name).symlink_to(fer_val / name)
    report = evaluate(EvalOptions(result.model_path, str(six), limit_per_class=10))
    assert report.n == 60 and set(report.per_class) == set(CLASS_SETS["pyfer"])
    assert report.accuracy == pytest.approx(np.trace(report.confusion) / 60)


@pytest.mark.slow
def test_longer_training_run_learns_real_expressions(fer_train, fer_val, tmp_path):
    """The slow version of the run above (CI runs the small one): edgenet, 800 real faces per
    class (all 436 of disgust), 8 epochs (enough steps for BatchNorm's moving averages to settle:
    6 epochs of 300 per class still predicted one class), then the exported int8-ready .keras scores well above chance on val/
    (chance 14%, majority class 25%) through `edge-fer eval`'s own code path."""
    from edge_fer.train.evaluate import EvalOptions, evaluate
    from edge_fer.train.trainer import TrainOptions, train

    result = train(TrainOptions(data=(str(fer_train),), out=str(tmp_path / "run"), epochs=8,
                                limit_per_class=800, val=str(fer_val), seed=0, verbose=0))
    assert result.epochs_run == 8 and result.train_loss_last < result.train_loss_first
    report = evaluate(EvalOptions(result.model_path, str(fer_val), limit_per_class=100))
    disgust = len(list((fer_val / "disgust").iterdir()))  # the one class with < 100 val faces
    assert report.n == 600 + min(100, disgust)
    assert report.accuracy >= 0.33, report.accuracy


def make_folder(root: Path, fer_val: Path, kind: str) -> Path:
    """Small datasets, good and bad, for the CLI table."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        return root
    if kind == "unlabelled":
        for f in sorted((fer_val / "happy").iterdir())[:3]:
            shutil.copy(f, root / f.name)
        return root
    if kind == "wrong_csv":
        path = root / "fer.csv"
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([["label", "image"], [3, "0 " * 2304]])
        return path
    if kind == "text_file":
        path = root / "data.txt"
        path.write_text("happy,sad\n")
        return path
    for name in ("happy", "sad"):
        (root / name).mkdir()
        for f in sorted((fer_val / name).iterdir())[:4]:
            shutil.copy(f, root / name / f.name)
    return root


@pytest.mark.parametrize("kind, extra, message", [
    ("empty", [], "has no class subfolders"),
    ("unlabelled", [], "has no class subfolders"),
    ("wrong_csv", [], "expected columns emotion,pixels"),
    ("text_file", [], "is a file but not a FER2013 .csv"),
    ("good", ["--arch", "resnet"], "unknown architecture 'resnet'"),
    ("good", ["--classes", "happy"], "--classes 'happy': expected a preset"),
    ("good", ["--classes", "happy,contempt"], r"lacks class folders \['contempt'\]"),
    ("good", ["--epochs", "0"], "--epochs 0: expected >= 1"),
    ("good", ["--val", "MISSING"], "dataset folder not found: MISSING"),
    ("good", ["--first-as-neutral"], "--last-frames and --first-as-neutral apply to CK\\+ folders; no --data is one"),
    ("good", ["--crop-faces", "haar"], r"no usable images \(0 unreadable, 8 without a face\)"),
    ("good", ["--oversample", "sad"], "--oversample 'sad': expected CLASS=COUNT pairs"),
    ("good", ["--oversample", "sad=0"], "--oversample 'sad=0': expected CLASS=COUNT pairs"),
    ("good", ["--oversample", "disgust=10"], r"oversample: class 'disgust' is not in the training data: \['happy', 'sad'\]"),
    ("good", ["--oversample", "sad=3"], "oversample: sad=3 is below the 4 images it already has"),
])
def test_train_cli_bad_input(tmp_path, fer_val, kind, extra, message):
    data = make_folder(tmp_path / "data", fer_val, kind)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--out", str(out), *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-fer: error: "), result.output
    assert re.search(message, lines[0]), lines[0]
    assert not list(out.rglob("*.keras"))  # no model file, not even half of one


def test_commands_import_neither_tensorflow_nor_numpy():
    """`edge-fer --help` stays fast: the command modules import only click."""
    import subprocess
    import sys

    code = ("import sys, edge_fer.commands.train, edge_fer.commands.balance; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'numpy', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_crop_detector_choices_match_the_runtime():
    from edge_fer.commands.train import CROP_DETECTORS
    from edge_fer.detectors import DETECTORS

    assert tuple(CROP_DETECTORS.choices) == DETECTORS


@pytest.mark.parametrize("augment", ["none", "flip"])
def test_light_augmentation_levels(fer_val, augment):
    """--augment none passes the faces through; flip gives each face or its mirror image, nothing else."""
    from edge_fer.train.trainer import make_tf_dataset

    data = load_folder(fer_val, size_hw=(48, 48), limit_per_class=2)
    batches = list(make_tf_dataset(data, "gray", 64, True, seed=3, augment=augment))
    x = np.concatenate([b[0].numpy() for b in batches])[..., 0]
    y = np.concatenate([b[1].numpy() for b in batches]).argmax(1)
    originals = {(img.tobytes(), label) for img, label in zip(data.images.astype("float32"), data.labels)}
    mirrors = {(img[:, ::-1].tobytes(), label) for img, label in zip(data.images.astype("float32"), data.labels)}
    got = [(img.tobytes(), label) for img, label in zip(x, y)]
    assert len(got) == len(data)
    allowed = originals if augment == "none" else originals | mirrors
    assert all(item in allowed for item in got)
    if augment == "flip":
        assert any(item in mirrors and item not in originals for item in got)  # some were mirrored


def test_optimizer_and_augment_choices_match_the_trainer():
    from edge_fer.commands.train import train_command
    from edge_fer.train.augment import AUGMENTS, MIXES
    from edge_fer.train.trainer import OPTIMIZERS

    params = {p.name: p for p in train_command.params}
    assert tuple(params["optimizer"].type.choices) == OPTIMIZERS
    assert tuple(params["augment"].type.choices) == AUGMENTS
    assert tuple(params["mix"].type.choices) == MIXES
    from edge_fer.train.models import PRECISIONS
    assert tuple(params["precision"].type.choices) == PRECISIONS


def test_erase_level_erases_patches_that_full_leaves(fer_val):
    """"erase" is "full" plus one random-erasing step; on real faces it blanks patches (a block of
    one constant value where the face had texture) in some faces and never in "full"."""
    import keras

    from edge_fer.train.augment import augmenter

    full, erase = augmenter("full", 0), augmenter("erase", 0)
    assert [type(l).__name__ for l in erase.layers] == [type(l).__name__ for l in full.layers] + ["RandomErasing"]
    faces = load_folder(fer_val, limit_per_class=8).images[..., None].astype("float32")
    keras.utils.set_random_seed(0)
    erased = np.asarray(erase.layers[-1](faces, training=True))
    changed = (np.abs(erased - faces) > 0.5).reshape(len(faces), -1).mean(axis=1)
    assert 0 < (changed > 0).sum() < len(faces)  # about half the faces (factor 0.5), not all, not none
    assert changed.max() <= 0.5  # one patch, at most a quarter of the area (plus its border pixels)


@pytest.mark.parametrize("smoothing, expected", [(None, 0.1), (0.0, 0.0), (0.2, 0.2)])
def test_label_smoothing_overrides_the_optimizers_own(smoothing, expected):
    from edge_fer.train.models import arch_spec, build_edgenet
    from edge_fer.train.trainer import compile_model

    model = build_edgenet(7)
    compile_model(model, arch_spec("edgenet"), 10, 2, None, label_smoothing=smoothing)
    assert model.loss.label_smoothing == pytest.approx(expected)


def test_label_smoothing_is_checked_and_only_then_part_of_the_run(tmp_path):
    from edge_fer.errors import OptionsError
    from edge_fer.train.models import arch_spec
    from edge_fer.train.run_folder import fingerprint
    from edge_fer.train.trainer import TrainOptions

    with pytest.raises(OptionsError, match=r"label_smoothing=1\.0: expected 0 <= value < 1"):
        TrainOptions(data=("x",), out=str(tmp_path), label_smoothing=1.0)
    data = type("D", (), {"counts": lambda self: {"a": 1}, "classes": ("a",)})()
    plain = fingerprint(TrainOptions(data=("x",), out=str(tmp_path)), data, arch_spec("edgenet"), 64)
    assert "label_smoothing" not in plain  # a run recorded before the option resumes
    smoothed = fingerprint(TrainOptions(data=("x",), out=str(tmp_path), label_smoothing=0.0), data,
                           arch_spec("edgenet"), 64)
    assert smoothed == {**plain, "label_smoothing": 0.0}


def test_mixed_bfloat16_trains_and_exports_a_float32_model(fer_train, tmp_path):
    """mixed_bfloat16 computes in bfloat16 for training only: the run records it (a float32 run
    does not resume it), the exported model is float32 and equals the best epoch's weights, and
    the global dtype policy is left as it was."""
    import keras

    from edge_fer.errors import OptionsError
    from edge_fer.train.keras_io import load_keras
    from edge_fer.train.trainer import TrainOptions, train

    with pytest.raises(OptionsError, match=r"precision='float16': expected one of float32, mixed_bfloat16"):
        TrainOptions(data=("x",), out=str(tmp_path), precision="float16")
    before = keras.config.dtype_policy().name
    options = TrainOptions(data=(str(fer_train),), out=str(tmp_path / "run"), arch="pyfer", epochs=2,
                           limit_per_class=6, classes="pyfer", seed=0, verbose=0, precision="mixed_bfloat16")
    result = train(options)
    assert keras.config.dtype_policy().name == before == "float32"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["precision"] == "mixed_bfloat16"
    best = keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    assert {layer.dtype_policy.name for layer in best.layers if layer.name not in ("face", "probs")} == {"mixed_bfloat16"}
    exported, _ = load_keras(result.model_path)
    assert {layer.dtype_policy.name for layer in exported.layers} == {"float32"}
    for mine, theirs in zip(exported.get_weights(), best.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    faces = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 1)).astype("float32")
    assert np.isfinite(exported.predict(faces, verbose=0)).all()


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_batch_blends_faces_and_targets_alike(fer_val, kind):
    """On real faces with one-hot targets: each mixed target keeps its sum, puts weight w on the
    face's own class, and the face keeps at least that share of its own pixels (cutmix) or is the
    w-blend of itself and one other face of the batch (mixup); a seed repeats the same mixes."""
    from edge_fer.train.augment import mix_batch

    data = load_folder(fer_val, limit_per_class=6)
    x = data.images[..., None].astype("float32")
    y = np.eye(7, dtype="float32")[data.labels]
    mixed_x, mixed_y = mix_batch(x, y, kind, np.random.default_rng(1))
    again = mix_batch(x, y, kind, np.random.default_rng(1))
    assert np.array_equal(mixed_x, again[0]) and np.array_equal(mixed_y, again[1])
    np.testing.assert_allclose(mixed_y.sum(1), 1.0, atol=1e-6)
    own = mixed_y[np.arange(len(y)), data.labels]
    assert (own < 1.0).any()  # something was mixed
    checked = 0
    for i in range(len(x)):
        if kind == "cutmix":
            if own[i] < 1.0:  # a box of another class's face: the rest is its own pixels
                assert (mixed_x[i] == x[i]).mean() >= own[i] - 1e-6
                checked += 1
        elif own[i] < 0.95:  # mixed with a face of another class, weight 1 - w: recover that face
            partner = (mixed_x[i] - own[i] * x[i]) / (1 - own[i])
            assert any(np.allclose(partner, x[j], atol=1e-2) and mixed_y[i, data.labels[j]] > 0
                       for j in range(len(x)) if data.labels[j] != data.labels[i])
            checked += 1
    assert checked > 0
    unchanged = mix_batch(x, y, "none", np.random.default_rng(0))
    assert unchanged[0] is x and unchanged[1] is y


def test_tf_dataset_mixes_when_asked_and_bad_mix_is_named(fer_val, tmp_path):
    from edge_fer.errors import OptionsError
    from edge_fer.train.trainer import TrainOptions, make_tf_dataset

    data = load_folder(fer_val, limit_per_class=10)
    (x, y), = list(make_tf_dataset(data, "gray", 70, True, seed=0, augment="none", mix="mixup").take(1))
    assert x.shape == (70, 48, 48, 1) and y.shape == (70, 7)
    assert (np.asarray(y).max(1) < 1.0).any()  # blended targets
    (x, y), = list(make_tf_dataset(data, "gray", 70, True, seed=0, augment="none").take(1))
    assert np.asarray(y).max(1).min() == 1.0  # one-hot without --mix
    with pytest.raises(OptionsError, match=r"mix='blend': expected one of none, mixup, cutmix"):
        TrainOptions(data=("x",), out=str(tmp_path), mix="blend")
