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
from edge_fer.metadata import FER2013_LABELS, METADATA_KEY, ModelMeta, read_model_meta
from edge_fer.metadata_read import tflite_metadata_entries

META = ModelMeta(FER2013_LABELS, (64, 64), "gray", scale=2 / 255, offset=-1.0, quantization="dynamic",
                 source_sha256="ab" * 32, name="fer-peer", crop_margin=0.1)


def test_json_round_trip_keeps_every_field():
    assert ModelMeta.from_json_text(META.to_json_text()) == META
    assert ModelMeta.from_json_text(META.to_json_text().encode()) == META


@pytest.mark.parametrize("text,fragment", [
    ("{not json", r"^metadata 'edge_fer' is not valid JSON \(.*\): expected one JSON object$"),
    ("[" * 100_000, "is not valid JSON"),  # nesting deeper than the decoder recurses
    ('{"labels": ["a", "b"]}',
     r"^field input_size_hw: expected \[height, width\], .*, got nothing \(the field is missing\)$"),
    ('["a", "b"]', r"^metadata 'edge_fer': expected a JSON object, got \['a', 'b'\]$"),
    ('{"labels": ["a", "b"], "input_size_hw": [48, 48], "color": "cmyk"}',
     r"^field color: expected one of gray, rgb, bgr, got 'cmyk'$"),
    ('{"labels": ["a"], "input_size_hw": [48, 48]}',
     r"^field labels: expected a list of 2 to 1000 distinct names, got \['a'\]$"),
    ('{"labels": ["a", "a"], "input_size_hw": [48, 48]}', r"^field labels: expected distinct names, got 'a' twice$"),
    ('{"labels": ["a", "b"], "input_size_hw": [48, 48], "future_field": 1}', None),  # ignored, loads
    ('{"labels": ["a", "b"], "input_size_hw": [48, 48], "framing": {"future": 1}}', None),  # likewise
    ('{"labels": ["a", "b"], "input_size_hw": [48, 48], "schema": 2}', None),  # a later schema: its known fields
    ('{"labels": ["a", "b"], "input_size_hw": [48, 48], "schema": "1"}',
     r"^field schema: expected a whole number >= 1, got '1'$"),
    ('{"labels": ["a", "b"], "input_size_hw": [48, 48], "pad": "' + "x" * (1 << 20) + '"}',
     r"^metadata 'edge_fer' holds 1,048,6\d\d bytes: expected at most 1,048,576$"),
])
def test_from_json_table(text, fragment):
    if fragment is None:
        assert ModelMeta.from_json_text(text).labels == ("a", "b")
        return
    with pytest.raises(ModelError, match=fragment):
        ModelMeta.from_json_text(text)


GOOD = {"labels": ["a", "b"], "input_size_hw": [48, 48]}
SIZE = "field input_size_hw: expected [height, width], whole numbers from 8 to 4096, got "
LABEL = "field labels[1]: expected a non-empty one-line text of at most 200 characters, got "


# One row per field and way of being wrong: the field named, what it expects, what it got.
@pytest.mark.parametrize("change,message", [
    ({"labels": 5}, "field labels: expected a list of 2 to 1000 distinct names, got 5"),
    ({"labels": None}, "field labels: expected a list of 2 to 1000 distinct names, got None"),
    ({"labels": "ab"}, "field labels: expected a list of 2 to 1000 distinct names, got 'ab'"),
    ({"labels": ["a", 1]}, LABEL + "1"),
    ({"labels": ["a", ""]}, LABEL + "''"),
    ({"labels": ["a", "b\nc"]}, LABEL + "'b\\nc'"),
    ({"labels": ["a", "\ud800"]}, LABEL + "'\\ud800'"),
    ({"labels": [str(i) for i in range(1001)]},
     "field labels: expected a list of 2 to 1000 distinct names, got ['0', "),
    ({"input_size_hw": ["a", 48]}, SIZE + "['a', 48]"),
    ({"input_size_hw": 48}, SIZE + "48"),
    ({"input_size_hw": [48.5, 48]}, SIZE + "[48.5, 48]"),
    ({"input_size_hw": [True, 48]}, SIZE + "[True, 48]"),
    ({"input_size_hw": [48, 48, 1]}, SIZE + "[48, 48, 1]"),
    ({"input_size_hw": [7, 48]}, SIZE + "[7, 48]"),
    ({"input_size_hw": [100000, 100000]}, SIZE + "[100000, 100000]"),
    ({"color": 1}, "field color: expected one of gray, rgb, bgr, got 1"),
    ({"color": ["gray"]}, "field color: expected one of gray, rgb, bgr, got ['gray']"),
    ({"scale": "0.5"}, "field scale: expected a number with 1e-06 <= |scale| <= 1e+06, got '0.5'"),
    ({"scale": 0}, "field scale: expected a number with 1e-06 <= |scale| <= 1e+06, got 0"),
    ({"scale": True}, "field scale: expected a number with 1e-06 <= |scale| <= 1e+06, got True"),
    ({"scale": float("nan")}, "field scale: expected a number with 1e-06 <= |scale| <= 1e+06, got nan"),
    ({"scale": float("inf")}, "field scale: expected a number with 1e-06 <= |scale| <= 1e+06, got inf"),
    ({"offset": None}, "field offset: expected a number from -1e+06 to 1e+06, got None"),
    ({"offset": -1e300}, "field offset: expected a number from -1e+06 to 1e+06, got -1e+300"),
    ({"quantization": {}}, "field quantization: expected one of none, fp16, dynamic, int8, got {}"),
    ({"source_sha256": 5}, "field source_sha256: expected '' or 64 lowercase hex digits, got 5"),
    ({"source_sha256": "xyz"}, "field source_sha256: expected '' or 64 lowercase hex digits, got 'xyz'"),
    ({"name": 5}, "field name: expected a one-line text of at most 200 characters, got 5"),
    ({"name": "x" * 201}, "field name: expected a one-line text of at most 200 characters, got 'xxx"),
    ({"crop_margin": {"a": 1}}, "field crop_margin: expected a number from 0 to 1, got {'a': 1}"),
    ({"crop_margin": "0.1"}, "field crop_margin: expected a number from 0 to 1, got '0.1'"),
    ({"crop_margin": 1.5}, "field crop_margin: expected a number from 0 to 1, got 1.5"),
    ({"temperature": "1"}, "field temperature: expected a number from 0.01 to 100, got '1'"),
    ({"temperature": 0}, "field temperature: expected a number from 0.01 to 100, got 0"),
    ({"framing": 3}, "field framing: expected an object with points and boxes, or null, got 3"),
    ({"framing": [1]}, "field framing: expected an object with points and boxes, or null, got [1]"),
    ({"framing": {"points": "x"}}, "field framing.points: expected an object: detector -> landmark -> [u, v], got 'x'"),
    ({"framing": {"points": {"yunet": [0.3, 0.4]}}},
     "field framing.points.yunet: expected an object of 2 to 32 landmarks: name -> [u, v], got [0.3, 0.4]"),
    ({"framing": {"points": {"yunet": {"right_eye": [0.3, 0.4], "left_eye": "x"}}}},
     "field framing.points.yunet.left_eye: expected [u, v], each from -0.5 to 1.5, got 'x'"),
    ({"framing": {"points": {"yunet": {"right_eye": [0.3, 0.4], "left_eye": [0.3, 0.4]}}}},
     "field framing.points.yunet.left_eye: expected landmarks 0.01 or more apart, got [0.3, 0.4] beside 'right_eye'"),
    ({"framing": {"boxes": {"haar": [0, 0, 1]}}},
     "field framing.boxes.haar: expected [dx, dy, sw, sh] with dx, dy from -1 to 1 and sw, sh from 0.2 to 5, "
     "got [0, 0, 1]"),
    ({"framing": {"boxes": {"haar": "abcd"}}}, "field framing.boxes.haar: expected [dx, dy, sw, sh]"),
    ({"framing": {"boxes": {"haar": [0, 0, 1, 1]}, "fitted_on": 3}},
     "field framing.fitted_on: expected a one-line text of at most 2000 characters, got 3"),
])
def test_every_field_is_checked(change, message):
    import json

    with pytest.raises(ModelError) as caught:
        ModelMeta.from_json_text(json.dumps({**GOOD, **change}))
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_checked_fields_are_normalized():
    meta = ModelMeta(["a", "b"], [np.int64(48), 48], scale=1, offset=np.float32(0.5),
                     framing={"boxes": {"haar": [0, 0, 1, 1]}})
    assert meta.labels == ("a", "b") and meta.input_size_hw == (48, 48)
    assert type(meta.input_size_hw[0]) is int and type(meta.scale) is float and type(meta.offset) is float
    assert meta.framing.boxes == {"haar": (0.0, 0.0, 1.0, 1.0)}
    assert ModelMeta.from_json_text(meta.to_json_text()) == meta


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
    ("garbage.tflite", b"\x10\x00\x00\x00TFL3" + b"\xff" * 64, "garbage.tflite: not a readable TFLite flatbuffer"),
    ("garbage.onnx", b"not a protobuf" * 20, "garbage.onnx: not a loadable ONNX model"),
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
