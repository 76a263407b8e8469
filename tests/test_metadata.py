"""edge-fer metadata inside model files: written by the converter, read by the runtime.

Real model files (the `fer` peer's TFLite, a detector's ONNX) get the metadata added here;
malformed files are made in tmp_path.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from edge_fer.errors import ModelError
from edge_fer.metadata import (FER2013_LABELS, METADATA_KEY, ModelMeta, read_model_meta,
                               tflite_metadata_entries)

META = ModelMeta(FER2013_LABELS, (64, 64), "gray", scale=2 / 255, offset=-1.0, quantization="dynamic",
                 source_sha256="ab" * 32, name="fer-peer", crop_margin=0.1)


def test_json_round_trip_keeps_every_field():
    assert ModelMeta.from_json_text(META.to_json_text()) == META
    assert ModelMeta.from_json_text(META.to_json_text().encode()) == META


@pytest.mark.parametrize("text,fragment", [
    ("{not json", "not valid JSON"),
    ('{"labels": ["a", "b"]}', "lacks 'labels' or 'input_size_hw'"),
    ('["a", "b"]', "lacks"),
    ('{"labels": ["a", "b"], "input_size_hw": [48, 48], "color": "cmyk"}', "color must be one of"),
    ('{"labels": ["a"], "input_size_hw": [48, 48]}', "labels must be >= 2"),
    ('{"labels": ["a", "b"], "input_size_hw": [48, 48], "future_field": 1}', None),  # ignored, loads
])
def test_from_json_table(text, fragment):
    if fragment is None:
        assert ModelMeta.from_json_text(text).labels == ("a", "b")
        return
    with pytest.raises(ModelError, match=fragment):
        ModelMeta.from_json_text(text)


def _litert_probs(path, face):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], face)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def test_tflite_round_trip_on_a_real_model(peer_dir, fer_val, tmp_path):
    from edge_fer.metadata_write import add_tflite_metadata

    original = (peer_dir / "emotion_model_quantized.tflite").read_bytes()
    before = tflite_metadata_entries(original)
    assert METADATA_KEY not in before
    path = tmp_path / "peer.tflite"
    path.write_bytes(add_tflite_metadata(original, META))
    assert read_model_meta(path) == META
    after = tflite_metadata_entries(path.read_bytes())
    assert {k: v for k, v in after.items() if k not in (METADATA_KEY, "TFLITE_METADATA")} == before  # others kept
    assert "TFLITE_METADATA" in after  # the standard metadata MediaPipe reads is added too

    changed = META.with_(quantization="int8", name="again")
    path.write_bytes(add_tflite_metadata(path.read_bytes(), changed))
    assert read_model_meta(path) == changed
    assert list(tflite_metadata_entries(path.read_bytes())).count(METADATA_KEY) == 1

    face_path = next((fer_val / "happy").iterdir())
    face = cv2.resize(cv2.imread(str(face_path), cv2.IMREAD_GRAYSCALE), (64, 64))
    face = (face[None, :, :, None].astype(np.float32) * (2 / 255) - 1).astype(np.float32)
    source = tmp_path / "source.tflite"
    source.write_bytes(original)
    np.testing.assert_array_equal(_litert_probs(path, face), _litert_probs(source, face))


def test_onnx_round_trip_on_a_real_model(detector_dir, tmp_path):
    import onnx

    from edge_fer.metadata_write import add_onnx_metadata

    path = tmp_path / "rfb.onnx"
    shutil.copyfile(detector_dir / "ultralight_rfb_320.onnx", path)
    before = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_model_meta(path) is None
    add_onnx_metadata(path, META)
    assert read_model_meta(path) == META
    changed = META.with_(color="rgb", name="again")
    add_onnx_metadata(path, changed)
    assert read_model_meta(path) == changed
    props = [(p.key, p.value) for p in onnx.load(str(path)).metadata_props]
    assert [k for k, _ in props].count(METADATA_KEY) == 1
    assert {k: v for k, v in props if k != METADATA_KEY} == before


def test_model_without_metadata_reads_none(peer_dir):
    assert read_model_meta(peer_dir / "emotion_model_quantized.tflite") is None


@pytest.mark.parametrize("name,data,fragment", [
    ("garbage.tflite", b"\x10\x00\x00\x00TFL3" + b"\xff" * 64, "not a readable TFLite flatbuffer"),
    ("garbage.onnx", b"not a protobuf" * 20, "not a loadable ONNX model"),
    ("model.h5", b"whatever", "expected a .tflite or .onnx file"),
])
def test_read_model_meta_rejects_bad_files(tmp_path, name, data, fragment):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ModelError, match=fragment):
        read_model_meta(path)


def test_known_public_models_are_recognized_by_hash_only(peer_dir, tmp_path):
    from edge_fer.classifier import ClassifierOptions, ExpressionClassifier
    from edge_fer.errors import ModelError
    from edge_fer.metadata import known_model_meta

    peer = peer_dir / "emotion_model_quantized.tflite"
    assert known_model_meta(peer).name == "fer-mini-xception"
    with ExpressionClassifier.create_from_model_path(peer) as classifier:  # no flags needed
        assert classifier.meta.input_size_hw == (64, 64) and classifier.meta.offset == -1.0
    altered = tmp_path / "peer.tflite"
    altered.write_bytes(peer.read_bytes() + b"\0")  # same model, other bytes: not recognized
    assert known_model_meta(altered) is None
    with pytest.raises(ModelError, match="carries no edge-fer metadata"):
        ExpressionClassifier.create_from_options(ClassifierOptions(model_path=altered))
