"""Property-based tests over the model-metadata reader (issue 24, item 8): for any JSON in any
field, in the text or in a model file, reading gives a checked ModelMeta (typed, in range,
written back as read, usable by the runtime's preprocessing and framing) or one ModelError line
that names the field and what it expects; never another exception.

The normal suite runs a bounded number of examples per property; ``-m slow`` runs the same
properties with 10,500 examples in all.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property-based tests need hypothesis (the test extra)")
from hypothesis import event, given, strategies as st  # noqa: E402
from property_settings import examples  # noqa: E402

from edge_fer.align import ALIGN_POINTS  # noqa: E402
from edge_fer.classifier import frame_face, preprocess_crops  # noqa: E402
from edge_fer.confidence import soften  # noqa: E402
from edge_fer.errors import ModelError  # noqa: E402
from edge_fer.metadata import COLORS, FER2013_LABELS, QUANTIZATIONS, ModelMeta, read_model_meta  # noqa: E402
from edge_fer.train.keras_io import read_keras_meta  # noqa: E402
from edge_fer.types import LANDMARK_NAMES, Face  # noqa: E402
from hostile_files import SHIPPED, keras_archive, tflite_with_metadata, tiny_onnx  # noqa: E402


# random JSON, and values near each field's limits ------------------------------------------------
EDGES = [0, 1, -1, 2, 7, 8, 48, 4096, 4097, 1e-6, -1e-6, 1e-7, 1e6, 1e6 + 1, 0.0099, 0.01, 100, 100.5,
         0.2, 0.19, 5, 5.01, -0.5, 1.5, 1.51, 0.5, -1e300, 1e300, 10 ** 20]
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 30, 10 ** 30),
                    st.sampled_from(EDGES))
TEXTS = st.one_of(st.text(max_size=12), st.sampled_from(
    COLORS + QUANTIZATIONS + FER2013_LABELS + ALIGN_POINTS + ("", "GRAY", "a\nb", "\ud800", "x" * 201, "ab" * 32)))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                     st.dictionaries(TEXTS, inner, max_size=5)), max_leaves=20)
DETECTORS = st.one_of(st.sampled_from(("yunet", "blazeface", "haar", "rfb", "ssd")), TEXTS)
UV = st.one_of(st.lists(st.floats(-0.7, 1.7), min_size=2, max_size=2), st.lists(NUMBERS, max_size=3), JSON)
BOX = st.one_of(st.tuples(st.floats(-1.2, 1.2), st.floats(-1.2, 1.2), st.floats(0.1, 6), st.floats(0.1, 6)).map(list),
                st.lists(NUMBERS, min_size=3, max_size=5), JSON)
FRAMING = st.one_of(st.none(), JSON, st.fixed_dictionaries({}, optional={
    "points": st.one_of(st.dictionaries(DETECTORS, st.one_of(
        st.dictionaries(st.one_of(st.sampled_from(LANDMARK_NAMES), TEXTS), UV, max_size=6), JSON), max_size=3), JSON),
    "boxes": st.one_of(st.dictionaries(DETECTORS, BOX, max_size=3), JSON),
    "fitted_on": st.one_of(TEXTS, JSON)}))
FIELDS = {
    "labels": st.one_of(st.lists(st.one_of(st.sampled_from(FER2013_LABELS), TEXTS, SCALARS), max_size=9), JSON),
    "input_size_hw": st.one_of(st.lists(st.one_of(st.integers(0, 5000), NUMBERS, SCALARS), max_size=3), JSON),
    "color": st.one_of(TEXTS, JSON),
    "quantization": st.one_of(TEXTS, JSON),
    "scale": st.one_of(NUMBERS, JSON),
    "offset": st.one_of(NUMBERS, JSON),
    "crop_margin": st.one_of(st.floats(-0.5, 1.5), NUMBERS, JSON),
    "temperature": st.one_of(st.floats(0, 200), NUMBERS, JSON),
    "source_sha256": st.one_of(st.text("0123456789abcdefABCDEF", min_size=63, max_size=65), TEXTS, JSON),
    "name": st.one_of(TEXTS, JSON),
    "framing": FRAMING,
    "schema": st.one_of(NUMBERS, JSON),
}


@st.composite
def mutated_metadata(draw) -> dict:
    """The shipped model's metadata with 1 to 4 fields replaced by random values (the framing
    table alone in a third of the examples: it is checked last), and maybe a field dropped or
    an unknown one added."""
    data = dict(SHIPPED)
    fields = st.sets(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=4)
    for key in draw(st.one_of(st.just({"framing"}), fields, fields)):
        data[key] = draw(FIELDS[key])
    for key in draw(st.sets(st.sampled_from(sorted(data)), max_size=1)):
        del data[key]
    if draw(st.booleans()):
        data[draw(TEXTS)] = draw(JSON)
    return data


# the property ------------------------------------------------------------------------------------
FRAME = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
LANDMARKS = {"right_eye": (38, 42), "left_eye": (58, 42), "nose": (48, 52), "mouth": (48, 62),
             "mouth_right": (40, 62), "mouth_left": (56, 62), "right_ear": (28, 48), "left_ear": (68, 48)}


def check_read(read, origin: str = "") -> None:
    """``read()`` gives a checked ModelMeta or raises one ModelError line, nothing else."""
    try:
        meta = read()
    except ModelError as exc:
        text = str(exc)
        prefix = re.escape(f"{origin}: ") if origin else ""
        assert re.match(rf"{prefix}(field \S|metadata 'edge_fer')", text), text
        assert "expected" in text and "\n" not in text and len(text) <= 400, text
        event((text[len(origin) + 2:] if origin else text).split(":")[0][:30])
        return
    event("valid")
    if meta is not None:
        check_usable(meta)


def check_usable(meta: ModelMeta) -> None:
    """A ModelMeta that was read is typed and in range, reads back as written, and the
    runtime's preprocessing, framing and temperature work with it."""
    assert 2 <= len(meta.labels) == len(set(meta.labels)) and all(type(v) is str and v for v in meta.labels)
    assert all(type(v) is int and 8 <= v <= 4096 for v in meta.input_size_hw) and len(meta.input_size_hw) == 2
    numbers = (meta.scale, meta.offset, meta.crop_margin, meta.temperature)
    assert all(type(v) is float and math.isfinite(v) for v in numbers)
    assert meta.color in COLORS and meta.quantization in QUANTIZATIONS
    assert ModelMeta.from_json_text(meta.to_json_text()) == meta
    small = meta.with_(input_size_hw=(24, 24))  # the framing at a size that keeps 10,000 examples quick
    batch = preprocess_crops(small, [FRAME[10:70, 20:80]])
    assert batch.shape == (1, 24, 24, small.channels) and np.isfinite(batch).all()
    framing = small.framing
    for detector in ([] if framing is None else sorted({*framing.points, *framing.boxes})[:3]) + [None]:
        crop = frame_face(FRAME, Face((30, 30, 36, 40), 0.9, LANDMARKS, detector), small)
        assert crop.ndim in (2, 3) and crop.size > 0
    probs = soften(np.full((1, len(meta.labels)), 1 / len(meta.labels), np.float32), meta.temperature)
    assert np.isfinite(probs).all() and abs(float(probs.sum()) - 1) < 1e-3


def field_property(data: dict) -> None:
    check_read(lambda: ModelMeta.from_json_text(json.dumps(data)))


def text_property(text: str | bytes) -> None:
    check_read(lambda: ModelMeta.from_json_text(text))


def file_property(folder, kind: str, data: dict) -> None:
    text = json.dumps(data)
    if kind == "tflite":
        path, read = tflite_with_metadata(folder / "m.tflite", text), read_model_meta
    elif kind == "onnx":
        path, read = tiny_onnx(folder / "m.onnx", meta=text), read_model_meta
    else:
        path, read = keras_archive(folder / "m.keras", text), read_keras_meta
    check_read(lambda: read(path), path.name)


TEXT = st.one_of(JSON.map(json.dumps), st.text(max_size=300), st.binary(max_size=300),
                 st.dictionaries(st.one_of(st.sampled_from(sorted(FIELDS)), TEXTS), JSON, max_size=12).map(json.dumps))
KINDS = st.sampled_from(["tflite", "keras", "onnx"])


@given(data=mutated_metadata())
@examples(200)
def test_any_field_value_gives_meta_or_one_line(data):
    field_property(data)


@given(text=TEXT)
@examples(200)
def test_any_text_gives_meta_or_one_line(text):
    text_property(text)


@given(kind=KINDS, data=mutated_metadata())
@examples(25)
def test_any_metadata_in_a_model_file_gives_meta_or_one_line(tmp_path, kind, data):
    file_property(tmp_path, kind, data)


# the same properties with many more examples under -m slow: 6,000 + 3,000 + 1,500 = 10,500 ------------
@pytest.mark.slow
@given(data=mutated_metadata())
@examples(6000)
def test_any_field_value_gives_meta_or_one_line_many(data):
    field_property(data)


@pytest.mark.slow
@given(text=TEXT)
@examples(3000)
def test_any_text_gives_meta_or_one_line_many(text):
    text_property(text)


@pytest.mark.slow
@given(kind=KINDS, data=mutated_metadata())
@examples(1500)
def test_any_metadata_in_a_model_file_gives_meta_or_one_line_many(tmp_path, kind, data):
    file_property(tmp_path, kind, data)
