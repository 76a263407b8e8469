"""Knowledge distillation: the loss's math, teacher files (written by `edge-fer teacher-probs`
from the shipped model, read back by name), and a short distilled, warm-started training run."""

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
from edge_fer.errors import InputError, OptionsError

keras = pytest.importorskip("keras")

SHIPPED_TFLITE = Path(__file__).resolve().parents[2] / "edge_fer" / "models" / "edgenet_fer2013_int8.tflite"
SHIPPED_ONNX = SHIPPED_TFLITE.with_name("edgenet_fer2013.onnx")


def small_folder(root: Path, fer_source: Path, per_class: int = 3) -> Path:
    """Real FER2013 faces, ``per_class`` of each of the 7 classes."""
    for folder in sorted(p for p in fer_source.iterdir() if p.is_dir()):
        (root / folder.name).mkdir(parents=True)
        for f in sorted(folder.iterdir())[:per_class]:
            shutil.copy(f, root / folder.name / f.name)
    return root


def reference_kd(p_student, p_teacher, onehot, alpha, temperature, smoothing):
    """The loss written out in numpy from its definition (logits recovered as log p)."""
    def soft(log_p):
        z = log_p / temperature
        z = z - z.max(axis=1, keepdims=True)
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    classes = onehot.shape[1]
    hard = onehot * (1 - smoothing) + smoothing / classes
    ce = -(hard * np.log(p_student)).sum(1)
    t, s = soft(np.log(p_teacher)), soft(np.log(p_student))
    kl = (t * (np.log(t) - np.log(s))).sum(1)
    return (1 - alpha) * ce + alpha * temperature ** 2 * kl


@pytest.mark.parametrize("alpha, temperature, smoothing", [
    (0.0, 3.0, 0.1), (0.5, 3.0, 0.1), (1.0, 2.0, 0.0), (0.7, 4.0, 0.0),
])
def test_distill_loss_matches_its_definition(alpha, temperature, smoothing):
    from edge_fer.train.distill import distill_loss

    rng = np.random.default_rng(1)
    p_s = rng.dirichlet(np.ones(7), 16).astype("float32")
    p_t = rng.dirichlet(np.ones(7), 16).astype("float32")
    onehot = np.eye(7, dtype="float32")[rng.integers(0, 7, 16)]
    loss = distill_loss(7, alpha, temperature, smoothing)
    got = np.asarray(loss(np.concatenate([onehot, p_t], 1), p_s))
    np.testing.assert_allclose(got, reference_kd(p_s, p_t, onehot, alpha, temperature, smoothing),
                               rtol=1e-4, atol=1e-5)
    # One-hot targets alone (validation): plain cross-entropy, whatever alpha is.
    plain = np.asarray(loss(onehot, p_s))
    np.testing.assert_allclose(plain, reference_kd(p_s, p_t, onehot, 0.0, 1.0, smoothing), rtol=1e-4)


def test_distillation_term_vanishes_when_student_equals_teacher():
    from edge_fer.train.distill import distill_loss

    p = np.random.default_rng(2).dirichlet(np.ones(7), 8).astype("float32")
    onehot = np.eye(7, dtype="float32")[np.arange(8) % 7]
    got = np.asarray(distill_loss(7, 1.0, 3.0, 0.0)(np.concatenate([onehot, p], 1), p))
    np.testing.assert_allclose(got, 0.0, atol=1e-4)


@pytest.mark.parametrize("alpha, temperature, message", [
    (1.5, 3.0, r"TrainOptions.distill_alpha=1.5: expected a weight in \[0, 1\]"),
    (0.5, 0.0, "TrainOptions.distill_temperature=0.0: expected > 0"),
])
def test_distill_loss_refuses_bad_settings(alpha, temperature, message):
    from edge_fer.train.distill import distill_loss

    with pytest.raises(OptionsError, match=message):
        distill_loss(7, alpha, temperature, 0.1)


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory, fer_train):
    data = small_folder(tmp_path_factory.mktemp("kd") / "train", fer_train)
    out = data.parent / "runs" / "kd" / "teacher.npz"  # as in docs/train.md: runs/kd/ does not exist yet
    result = CliRunner().invoke(main, ["teacher-probs", "--model", str(SHIPPED_TFLITE), "--model",
                                       str(SHIPPED_ONNX), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert re.search(r"^wrote .*teacher\.npz: 21 images, 7 classes; accuracy on them: "
                     r"\S*/edgenet_fer2013_int8\.tflite [01]\.\d{4}, \S*/edgenet_fer2013\.onnx [01]\.\d{4}; "
                     r"ensemble accuracy [01]\.\d{4}$", result.stdout.strip()), result.output
    return data, out


def test_teacher_file_holds_the_models_flip_averaged_probabilities(teacher_file):
    """The cached probabilities are the mean of the two models', each averaged over the face and
    its mirror image and renormalized, in the folder's class order (checked against the runtime
    classifier)."""
    from edge_fer.classifier import ClassifierOptions, ExpressionClassifier
    from edge_fer.train.datasets import load_folder
    from edge_fer.train.distill import teacher_for

    data_dir, path = teacher_file
    data = load_folder(data_dir)
    cached = teacher_for(str(path), data.paths, data.classes)
    assert cached.shape == (21, 7)
    np.testing.assert_allclose(cached.sum(1), 1.0, atol=2e-3)
    expected = []
    for model in (SHIPPED_TFLITE, SHIPPED_ONNX):
        with ExpressionClassifier.create_from_options(ClassifierOptions(model_path=str(model))) as clf:
            order = [list(clf.meta.labels).index(c) for c in data.classes]
            p = (clf.predict_proba(list(data.images)) + clf.predict_proba(list(data.images[:, :, ::-1]))) / 2
            expected.append(p[:, order] / p.sum(1, keepdims=True))  # int8 scores sum to ~1 only
    np.testing.assert_allclose(cached, np.mean(expected, 0), atol=2e-3)  # float16 on disk


def test_teacher_file_is_matched_by_name_not_by_order(teacher_file):
    from edge_fer.train.datasets import load_folder
    from edge_fer.train.distill import teacher_for

    data_dir, path = teacher_file
    data = load_folder(data_dir)
    order = np.arange(len(data))[::-1]
    reversed_rows = teacher_for(str(path), [data.paths[i] for i in order], data.classes)
    np.testing.assert_array_equal(reversed_rows, teacher_for(str(path), data.paths, data.classes)[order])


def test_teacher_file_mismatches_are_one_line_errors(teacher_file, tmp_path):
    from edge_fer.train.datasets import load_folder
    from edge_fer.train.distill import teacher_for

    data_dir, path = teacher_file
    data = load_folder(data_dir)
    with pytest.raises(InputError, match=r"1 training images have no teacher probabilities .* \(first: happy/x\.png\)"):
        teacher_for(str(path), data.paths + ["/d/happy/x.png"], data.classes)
    with pytest.raises(InputError, match="teacher classes .* differ from the training classes"):
        teacher_for(str(path), data.paths, tuple(reversed(data.classes)))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="is not a teacher file from `edge-fer teacher-probs`"):
        teacher_for(str(junk), data.paths, data.classes)


def test_distilled_warm_started_run(teacher_file, tmp_path):
    """Two epochs with --teacher, --init-from (an earlier run's model) and the SGD option: the
    model starts from exactly those weights, the history logs the one-hot accuracy, it exports."""
    import csv

    from edge_fer.train.keras_io import load_keras
    from edge_fer.train.models import build_edgenet
    from edge_fer.train.trainer import init_weights

    data_dir, path = teacher_file
    base = ["train", "--data", str(data_dir), "--batch-size", "8", "--threads", "1"]
    first = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a"), "--epochs", "2"])
    assert first.exit_code == 0, first.output
    start = tmp_path / "a" / "model.keras"
    model = build_edgenet(7)
    init_weights(model, str(start))
    for mine, theirs in zip(model.get_weights(), load_keras(start)[0].get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    warm = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "b"), "--epochs", "2",
                                     "--teacher", str(path), "--init-from", str(start),
                                     "--optimizer", "sgd-nesterov-cosine", "--lr", "0.001"])
    assert warm.exit_code == 0, warm.output
    rows = list(csv.DictReader((tmp_path / "b" / "history.csv").open()))
    assert len(rows) == 2
    for row in rows:
        assert np.isfinite(float(row["loss"])) and 0.0 <= float(row["accuracy"]) <= 1.0
    assert (tmp_path / "b" / "model.keras").is_file()


@pytest.mark.parametrize("extra, message", [
    (["--teacher", "MISSING.npz"], "teacher file not found: MISSING.npz"),
    (["--init-from", "MISSING.keras"], "model file not found: MISSING.keras"),
    (["--optimizer", "lbfgs"], "invalid value for --optimizer: 'lbfgs' is not one of"),
    (["--augment", "heavy"], "invalid value for --augment: 'heavy' is not one of"),
    (["--teacher", "T.npz", "--distill-alpha", "2"], "--distill-alpha 2.0: expected a weight in [0, 1]"),
])
def test_train_distill_options_bad_input(teacher_file, tmp_path, extra, message):
    data_dir, _ = teacher_file
    result = CliRunner().invoke(main, ["train", "--data", str(data_dir), "--out", str(tmp_path / "o"),
                                       "--epochs", "1", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output.strip().splitlines()[-1], result.output


def test_init_from_another_architecture_is_refused(teacher_file, tmp_path):
    data_dir, _ = teacher_file
    from edge_fer.train.models import build_pyfer
    other = tmp_path / "pyfer.keras"
    build_pyfer(7).save(other)
    result = CliRunner().invoke(main, ["train", "--data", str(data_dir), "--out", str(tmp_path / "o"),
                                       "--epochs", "1", "--init-from", str(other)])
    assert result.exit_code == 2, result.output
    assert "do not fit the edgenet being trained" in result.output, result.output


def test_teacher_probs_bad_out_folder_fails_before_loading(tmp_path, fer_val, monkeypatch):
    """A parent that cannot be a folder (a file is in the way) fails at once, one line, before
    any image or model loads (the data loader would fail this test if it were reached)."""
    import edge_fer.train.datasets as datasets

    def never(*args, **kwargs):
        raise AssertionError("loaded the data before checking --out")

    monkeypatch.setattr(datasets, "load_folder", never)
    (tmp_path / "runs").write_text("a file, not a folder")
    result = CliRunner().invoke(main, ["teacher-probs", "--model", str(SHIPPED_TFLITE), "--data", str(fer_val),
                                       "--out", str(tmp_path / "runs" / "kd" / "teacher.npz")])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(r"edge-fer: error: cannot create --out folder .*runs/kd: Not a directory", line), line


def test_teacher_probs_bad_out_suffix(tmp_path, fer_val):
    result = CliRunner().invoke(main, ["teacher-probs", "--model", str(SHIPPED_TFLITE), "--data",
                                       str(fer_val), "--out", str(tmp_path / "t.csv")])
    expected = f"--out {str(tmp_path / 't.csv')!r}: expected a path ending in .npz"
    assert result.exit_code == 2 and expected in result.output, result.output
    assert not (tmp_path / "t.csv").exists()


def test_edgenet_rebuilt_from_the_shipped_onnx_predicts_what_it_does(fer_val, tmp_path):
    """tools/edgenet_from_onnx.py folds the batch norms back out of the shipped ONNX file: the
    rebuilt Keras edgenet (flip-averaged like the file) gives the file's probabilities."""
    import subprocess
    import sys

    import onnxruntime as ort

    from edge_fer.train.datasets import load_folder
    from edge_fer.train.keras_io import load_keras

    out = tmp_path / "edgenet.keras"
    done = subprocess.run([sys.executable, "tools/edgenet_from_onnx.py", str(SHIPPED_ONNX), str(out),
                           "--data", str(fer_val), "--limit", "200"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert re.search(r"top-1 agreement with edgenet_fer2013\.onnx: 1\.0000", done.stdout), done.stdout
    model, meta = load_keras(out)
    faces = load_folder(fer_val, (48, 48), meta.labels, limit_per_class=5).images[..., None].astype("float32")
    session = ort.InferenceSession(str(SHIPPED_ONNX), providers=["CPUExecutionProvider"])
    ref = session.run(None, {session.get_inputs()[0].name: faces})[0]
    mine = (model.predict(faces, verbose=0) + model.predict(faces[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(mine, ref, atol=1e-4)


# soft labels (FER+ votes) ----------------------------------------------------------------------
FERPLUS_HEADER = "split,file,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


def test_soft_targets_from_the_real_votes(fer_train):
    """The shared FER+ file against hand-computed rows: emotion votes regrouped onto FER2013's
    names, contempt/unknown/not-a-face dropped and the rest renormalised; faces with no votes left
    or not listed keep their folder label."""
    from edge_fer.train.datasets import load_folder
    from edge_fer.train.soft_labels import plurality_labels, soft_targets

    votes = fer_train.parent.parent / "ferplus" / "ferplus_votes.csv"
    data = load_folder(fer_train, limit_per_class=30, seed=0)
    soft = soft_targets(votes, data.paths, data.labels, data.classes)
    rows = {r["file"].split("/", 1)[1]: r for r in csv.DictReader(votes.open())}
    order = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
             "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}
    checked = 0
    for i, path in enumerate(data.paths):
        key = "/".join(Path(path).parts[-2:])
        if key not in rows:
            np.testing.assert_array_equal(soft.probs[i], np.eye(7)[data.labels[i]])
            continue
        counts = np.array([float(rows[key][order[c]]) for c in data.classes])
        expected = counts / counts.sum() if counts.sum() else np.eye(7)[data.labels[i]]
        np.testing.assert_allclose(soft.probs[i], expected, atol=1e-6)
        checked += 1
    assert checked > 150 and soft.voted + soft.no_votes + soft.unlisted == len(data)
    np.testing.assert_allclose(soft.probs.sum(axis=1), 1.0, atol=1e-6)
    # the plurality agrees with the folder label far more often than chance, far from always
    plural = plurality_labels(votes, data.paths, data.classes)
    agree = float(np.mean(plural[plural >= 0] == data.labels[plural >= 0]))
    assert 0.45 < agree < 0.85


def test_soft_targets_edge_rows_and_bad_files(tmp_path):
    from edge_fer.errors import InputError, OptionsError
    from edge_fer.train.soft_labels import check_weight, plurality_labels, read_votes, soft_targets

    classes = ("angry", "happy", "neutral")
    votes = tmp_path / "votes.csv"
    votes.write_text(FERPLUS_HEADER
                     + "train,train/happy/a.jpg,2,6,0,0,0,0,0,1,1,0\n"   # contempt and unknown dropped
                     + "train,train/happy/b.jpg,0,0,0,0,0,0,0,0,0,10\n"  # not a face: label kept
                     + "train,train/angry/c.jpg,5,0,0,0,5,0,0,0,0,0\n")  # a tie: no plurality
    paths = ["x/happy/a.jpg", "x/happy/b.jpg", "x/angry/c.jpg", "x/neutral/d.jpg"]
    soft = soft_targets(votes, paths, np.array([1, 1, 0, 2]), classes)
    np.testing.assert_allclose(soft.probs, [[0, 0.75, 0.25], [0, 1, 0], [0.5, 0, 0.5], [0, 0, 1]])
    assert (soft.voted, soft.no_votes, soft.unlisted) == (2, 1, 1)
    assert plurality_labels(votes, paths, classes).tolist() == [1, -1, -1, -1]
    read = read_votes(votes)  # a file read once gives what its path gives
    assert plurality_labels(read, paths, classes).tolist() == [1, -1, -1, -1]
    np.testing.assert_array_equal(soft_targets(read, paths, np.array([1, 1, 0, 2]), classes).probs, soft.probs)
    with pytest.raises(InputError, match="columns .* missing"):
        bad = tmp_path / "bad.csv"
        bad.write_text("file,neutral\nx,1\n")
        read_votes(bad)
    with pytest.raises(InputError, match="must be numbers"):
        bad.write_text(FERPLUS_HEADER + "train,a/b.jpg,x,0,0,0,0,0,0,0,0,0\n")
        read_votes(bad)
    with pytest.raises(InputError, match="none of the 1 training images"):
        soft_targets(votes, ["x/sad/z.jpg"], np.array([0]), classes)
    with pytest.raises(OptionsError, match=r"in \[0, 1\]"):
        check_weight(1.5)


def test_train_with_soft_labels(fer_train, fer_val, tmp_path):
    """A real run on votes mixed with labels; soft labels and a teacher together are refused."""
    from edge_fer.errors import OptionsError
    from edge_fer.train.trainer import TrainOptions, train

    votes = fer_train.parent.parent / "ferplus" / "ferplus_votes.csv"
    result = train(TrainOptions(data=(str(fer_train),), out=str(tmp_path / "s"), epochs=1,
                                limit_per_class=10, seed=0, verbose=0, num_threads=1, batch_size=16,
                                soft_labels=str(votes), soft_label_weight=0.7))
    assert result.epochs_run == 1 and np.isfinite(result.train_loss_last)
    run = json.loads((tmp_path / "s" / "run.json").read_text())
    assert run["labels"] == {"source": "soft-labels", "file": str(votes.resolve()), "weight": 0.7}
    with pytest.raises(OptionsError, match="cannot be combined"):
        TrainOptions(data=("x",), out="y", soft_labels="v.csv", teacher="t.npz")
