"""Hostile model files (issue 24, items 8, 9 and 15): whatever a model file holds, the reader and
the classifier give one ModelError line naming the file, the field or output, what was expected
and what was found, never a TypeError, a traceback or gigabytes of memory.

Every hostile file is made here in tmp_path: the shipped TFLite models with their metadata
rewritten (or a tensor, an op, a type changed in the flatbuffer), tiny ONNX models built with
``onnx.helper`` (skipped where ``onnx`` is missing), ``.keras`` archives built with ``zipfile``
and patched. The property-based tests over the same reader are in test_metadata_properties.py.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_fer.classifier import ExpressionClassifier
from edge_fer.errors import ModelError
from edge_fer.metadata import FER2013_LABELS, ModelMeta, read_model_meta
from edge_fer.train.keras_io import META_ENTRY, load_keras, read_keras_meta

MODELS = Path(__file__).resolve().parents[2] / "edge_fer" / "models"
INT8 = MODELS / "edgenet_fer2013_int8.tflite"
PHONE = MODELS / "edgenet_fer2013_phone.tflite"
TINY_META = ModelMeta(FER2013_LABELS, (48, 48)).to_json_text()
ASSETS = MODELS.parent / "assets"
CLI = Path(sys.executable).with_name("edge-fer")

from hostile_files import (SHIPPED, tflite_with_metadata, tflite_edited, last_constant, reshaped_output, uint8_input, tiny_onnx, keras_archive, patch_zip_entry, zip_bomb, peak_bytes)  # noqa: E402


# 8: fields inside a model file, the same in TFLite, ONNX and .keras ---------------------------------
def shipped_with(**changes) -> str:
    return json.dumps({**SHIPPED, **changes})


FIELD = r"{name}: field "
METADATA_CASES = [
    ("labels 5", shipped_with(labels=5), FIELD + r"labels: expected a list of 2 to 1000 distinct names, got 5$"),
    ("labels [1, 2]", shipped_with(labels=[1, 2]),
     FIELD + r"labels\[0\]: expected a non-empty one-line text .*, got 1$"),
    ("labels missing", json.dumps({k: v for k, v in SHIPPED.items() if k != "labels"}),
     FIELD + r"labels: expected a list .*, got nothing \(the field is missing\)$"),
    ("input size ['a', 48]", shipped_with(input_size_hw=["a", 48]),
     FIELD + r"input_size_hw: expected \[height, width\], whole numbers from 8 to 4096, got \['a', 48\]$"),
    ("input size 1e9", shipped_with(input_size_hw=[10 ** 9, 10 ** 9]),
     FIELD + r"input_size_hw: expected .*, got \[1000000000, 1"),
    ("crop margin a dict", shipped_with(crop_margin={"a": 1}),
     FIELD + r"crop_margin: expected a number from 0 to 1, got \{'a': 1\}$"),
    ("integer framing", shipped_with(framing=3),
     FIELD + r"framing: expected an object with points and boxes, or null, got 3$"),
    ("framing points on one spot",
     shipped_with(framing={"points": {"yunet": {"right_eye": [0.3, 0.4], "left_eye": [0.3, 0.4]}}}),
     FIELD + r"framing\.points\.yunet\.left_eye: expected landmarks 0\.01 or more apart, "
     r"got \[0\.3, 0\.4\] beside 'right_eye'"),
    ("framing box of 3", shipped_with(framing={"boxes": {"haar": [0, 0, 1]}}),
     FIELD + r"framing\.boxes\.haar: expected \[dx, dy, sw, sh\] .*, got \[0, 0, 1\]$"),
    ("string scale", shipped_with(scale="0.5"),
     FIELD + r"scale: expected a number with 1e-06 <= \|scale\| <= 1e\+06, got '0\.5'$"),
    ("NaN temperature", shipped_with(temperature=float("nan")),
     FIELD + r"temperature: expected a number from 0\.01 to 100, got nan$"),
    ("colour a list", shipped_with(color=["gray"]), FIELD + r"color: expected one of gray, rgb, bgr, got \['gray'\]$"),
    ("not an object", "[1, 2]", r"{name}: metadata 'edge_fer': expected a JSON object, got \[1, 2\]$"),
    ("not JSON", "{labels: 1", r"{name}: metadata 'edge_fer' is not valid JSON \(.*\): expected one JSON object$"),
    ("nested 100000 deep", "[" * 100_000, r"{name}: metadata 'edge_fer' is not valid JSON \(maximum recursion depth"),
    ("2 MB of metadata", shipped_with(pad="x" * (2 << 20)),
     r"{name}: (metadata 'edge_fer' holds|edge_fer\.json inflates to) 2,09\d,\d{3} bytes: expected at most 1,048,576$"),
    ("not UTF-8", b'{"labels": "\xff\xfe"}',
     r"{name}: metadata 'edge_fer' is not valid JSON \(.*utf-8.*\): expected one JSON object$"),
]


def _not_a_zip(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 not really" * 10)
    return path


def _truncated(path: Path) -> Path:
    path.write_bytes(keras_archive(path).read_bytes()[:-30])
    return path


def _write(kind: str, folder: Path, text: str | bytes) -> Path:
    if kind == "tflite":
        return tflite_with_metadata(folder / "bad.tflite", text)
    if kind == "keras":
        return keras_archive(folder / "bad.keras", text)
    if isinstance(text, bytes):
        pytest.skip("ONNX metadata_props hold UTF-8 text only")
    return tiny_onnx(folder / "bad.onnx", meta=text)


def _read(path: Path) -> ModelMeta | None:
    return read_keras_meta(path) if path.suffix == ".keras" else read_model_meta(path)


@pytest.mark.parametrize("kind", ["tflite", "onnx", "keras"])
@pytest.mark.parametrize("text, pattern", [c[1:] for c in METADATA_CASES], ids=[c[0] for c in METADATA_CASES])
def test_bad_metadata_is_one_line(tmp_path, kind, text, pattern):
    path = _write(kind, tmp_path, text)
    with pytest.raises(ModelError) as caught:
        _read(path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300, message
    assert re.match(pattern.replace("{name}", re.escape(path.name)), message), message


def test_the_classifier_refuses_bad_metadata_before_running(tmp_path):
    path = tflite_with_metadata(tmp_path / "bad.tflite", shipped_with(framing=3))
    with pytest.raises(ModelError, match=r"^bad\.tflite: field framing: expected an object"):
        ExpressionClassifier.create_from_model_path(path)


def test_unknown_fields_still_load(tmp_path):
    """Files from a later version (a new field, a new framing key) load with what is known."""
    text = shipped_with(future_field={"x": 1}, schema=2, framing={**SHIPPED["framing"], "future": [1]})
    assert read_model_meta(tflite_with_metadata(tmp_path / "later.tflite", text)) == read_model_meta(INT8)


# 15 and 8: the .keras archive itself -----------------------------------------------------------------
KERAS_CASES = [
    ("compression 99 on edge_fer.json", lambda p: patch_zip_entry(keras_archive(p), META_ENTRY, method=99),
     r"bad\.keras: zip entry 'edge_fer\.json' uses compression method 99: "
     r"expected one of stored \(0\), deflated \(8\), bzip2 \(12\), lzma \(14\)$"),
    ("compression 99 on the weights", lambda p: patch_zip_entry(keras_archive(p), "model.weights.h5", method=99),
     r"bad\.keras: zip entry 'model\.weights\.h5' uses compression method 99: expected one of"),
    ("encrypted edge_fer.json", lambda p: patch_zip_entry(keras_archive(p), META_ENTRY, flag_bits=0x1),
     r"bad\.keras: zip entry 'edge_fer\.json' is encrypted: expected unencrypted entries$"),
    ("edge_fer.json inflating to 64 MiB", lambda p: zip_bomb(p, 64 << 20),
     r"bad\.keras: edge_fer\.json inflates to 67,108,864 bytes: expected at most 1,048,576$"),
    ("edge_fer.json inflating to 64 MiB, headers saying 100 bytes", lambda p: zip_bomb(p, 64 << 20, lie=True),
     r"bad\.keras: not a valid \.keras archive \(Bad CRC-32 for file 'edge_fer\.json'\)$"),
    ("not a zip", _not_a_zip,
     r"bad\.keras: not a valid \.keras archive \(File is not a zip file\)$"),
    ("truncated", _truncated,
     r"bad\.keras: not a valid \.keras archive \("),
]


@pytest.mark.parametrize("make, pattern", [c[1:] for c in KERAS_CASES], ids=[c[0] for c in KERAS_CASES])
def test_bad_keras_archive_is_one_line(tmp_path, make, pattern):
    path = tmp_path / "bad.keras"
    make(path)
    outcome, peak = peak_bytes(lambda: read_keras_meta(path))
    assert isinstance(outcome, ModelError), outcome
    assert re.match(pattern, str(outcome)), str(outcome)
    assert peak < 8 << 20, f"reading the metadata peaked at {peak / 1e6:.1f} MB"


def test_keras_metadata_is_read_before_keras_is_imported(tmp_path):
    """``load_keras`` refuses a zip bomb in a fresh process without importing Keras, within a
    few hundred MB of memory (the issue's 1 GiB entry peaked at 2.7 GB)."""
    bomb = zip_bomb(tmp_path / "bomb.keras", 16 << 20)
    code = ("import resource, sys\nfrom edge_fer.train.keras_io import load_keras\n"
            "from edge_fer.errors import ModelError\n"
            f"try:\n    load_keras({str(bomb)!r})\nexcept ModelError as exc:\n    print(exc)\n"
            # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec)
            "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
            "print('keras' in sys.modules, hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    message, imported_and_rss = proc.stdout.strip().splitlines()
    imported, rss_kib = imported_and_rss.split()
    assert message.startswith("bomb.keras: edge_fer.json inflates to 16,777,216 bytes"), proc.stdout + proc.stderr
    assert imported == "False" and int(rss_kib) < 400_000, imported_and_rss


def test_good_keras_archive_reads(tmp_path):
    assert read_keras_meta(keras_archive(tmp_path / "ok.keras")) == ModelMeta.from_json_text(TINY_META)
    assert read_keras_meta(keras_archive(tmp_path / "none.keras", meta=None)) is None


@pytest.mark.slow
def test_a_1_gib_metadata_entry_costs_nothing(tmp_path):
    """The issue's case: an ``edge_fer.json`` of 1 GiB (1 MB compressed), honest and lying."""
    for lie in (False, True):
        bomb = zip_bomb(tmp_path / f"bomb{lie}.keras", 1 << 30, lie=lie)
        outcome, peak = peak_bytes(lambda: load_keras(bomb))
        assert isinstance(outcome, ModelError) and "edge_fer.json" in str(outcome), outcome
        assert peak < 8 << 20, f"reading the metadata peaked at {peak / 1e6:.1f} MB"


# 9: what a model computes ----------------------------------------------------------------------------
FACE = np.full((60, 60, 3), 128, np.uint8)

OUTPUT_CASES = [
    ("TFLite: NaN scores", lambda p: tflite_edited(p / "nan.tflite", PHONE, last_constant(np.nan)),
     r"^nan\.tflite gives NaN scores: expected finite numbers \(a broken model file\)$"),
    ("TFLite: infinite scores", lambda p: tflite_edited(p / "inf.tflite", PHONE, last_constant(np.inf)),
     r"^inf\.tflite gives (infinite|NaN) scores: expected finite numbers"),
    ("TFLite: output of rank 3", lambda p: tflite_edited(p / "r3.tflite", PHONE, reshaped_output([1, 1, 7])),
     r"^r3\.tflite: model output shape \[1, 1, 7\]: expected 2 dims \(batch, classes\) with >= 2 classes$"),
    ("TFLite: output of rank 1", lambda p: tflite_edited(p / "r1.tflite", INT8, reshaped_output([7])),
     r"^r1\.tflite: model output shape \[7\]: expected 2 dims \(batch, classes\) with >= 2 classes$"),
    ("TFLite: raw uint8 input", lambda p: tflite_edited(p / "u8.tflite", PHONE, uint8_input),
     r"^u8\.tflite: model input is uint8 with quantization scale 0: expected a finite scale > 0 "
     r"\(a quantized model\) or a float32 input$"),
    ("ONNX: NaN scores", lambda p: tiny_onnx(p / "nan.onnx", bias=[np.nan] * 7),
     r"^nan\.onnx gives NaN scores: expected finite numbers \(a broken model file\)$"),
    ("ONNX: infinite scores", lambda p: tiny_onnx(p / "inf.onnx", bias=[np.inf] + [0.0] * 6),
     r"^inf\.onnx gives infinite scores: expected finite numbers \(a broken model file\)$"),
    ("ONNX: output of rank 3", lambda p: tiny_onnx(p / "r3.onnx", tail="rank3"),
     r"^r3\.onnx: model output shape \['N', 1, 7\]: expected 2 dims \(batch, classes\) with >= 2 classes$"),
    ("ONNX: output of rank 1", lambda p: tiny_onnx(p / "r1.onnx", tail="rank1"),
     r"^r1\.onnx: model output shape \[7\]: expected 2 dims"),
    ("ONNX: uint8 input", lambda p: tiny_onnx(p / "u8.onnx", tail="uint8"),
     r"^u8\.onnx: model input type tensor\(uint8\): expected tensor\(float\) or tensor\(float16\)$"),
    ("ONNX: one class (argmax)", lambda p: tiny_onnx(p / "argmax.onnx", tail="argmax"),
     r"^argmax\.onnx: model output shape \['N', 1\]: expected 2 dims \(batch, classes\) with >= 2 classes$"),
    ("ONNX: int64 scores", lambda p: tiny_onnx(p / "i64.onnx", tail="int64"),
     r"^i64\.onnx: model output type tensor\(int64\): expected tensor\(float\), tensor\(float16\), tensor\(double\)$"),
    ("ONNX: one row for two faces", lambda p: tiny_onnx(p / "row.onnx", tail="one_row"),
     r"^row\.onnx gives scores of shape \[1, 7\]: expected \[2, classes >= 2\], one row per face$"),
]


@pytest.mark.parametrize("make, pattern", [c[1:] for c in OUTPUT_CASES], ids=[c[0] for c in OUTPUT_CASES])
def test_bad_model_output_is_one_line(tmp_path, make, pattern):
    path = make(tmp_path)
    with pytest.raises(ModelError, match=pattern):
        with ExpressionClassifier.create_from_model_path(path) as classifier:
            classifier.predict_proba([FACE, FACE])


def test_scores_summing_to_a_little_over_1_stay_in_range(tmp_path):
    """A softmax-like output whose rows sum to 1.02 (within the tolerance) is clipped to [0, 1]:
    no ``expression score must be in [0, 1]`` from the result's dataclass."""
    path = tiny_onnx(tmp_path / "over.onnx", weight=0.0, bias=[1.012, 0.004] + [0.0] * 5)
    with ExpressionClassifier.create_from_model_path(path) as classifier:
        probs = classifier.predict_proba([FACE])
        assert probs.max() <= 1.0 and classifier.to_expression(probs[0]).score <= 1.0


# the command line, end to end ------------------------------------------------------------------------
def _limit_memory() -> None:  # the 16 TB row fails at once whatever the machine's overcommit policy
    resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))


CLI_CASES = [
    ("labels 5", lambda p: tflite_with_metadata(p / "bad.tflite", shipped_with(labels=5)), ("run",),
     r"bad\.tflite: field labels: expected a list of 2 to 1000 distinct names, got 5"),
    ("integer framing", lambda p: tflite_with_metadata(p / "bad.tflite", shipped_with(framing=3)), ("run",),
     r"bad\.tflite: field framing: expected an object with points and boxes, or null, got 3"),
    ("NaN scores", lambda p: tflite_edited(p / "nan.tflite", PHONE, last_constant(np.nan)), ("run",),
     r"nan\.tflite gives NaN scores: expected finite numbers"),
    ("output of rank 3", lambda p: tiny_onnx(p / "r3.onnx", tail="rank3"), ("run",),
     r"r3\.onnx: model output shape \['N', 1, 7\]: expected 2 dims"),
    ("16 TB at inference", lambda p: tiny_onnx(p / "huge.onnx", tail="huge"), ("run",),
     r"huge\.onnx: inference failed: the model asks for 16,000\.0 GB at once: "
     r"expected at most the [\d,.]+ GB available"),
    (".keras zip bomb", lambda p: zip_bomb(p / "bomb.keras", 16 << 20), ("eval",),
     r"bomb\.keras: edge_fer\.json inflates to 16,777,216 bytes: expected at most 1,048,576"),
]


@pytest.mark.skipif(not CLI.exists(), reason=f"no edge-fer command beside {sys.executable}")
@pytest.mark.parametrize("make, command, pattern", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_says_one_line(tmp_path, make, command, pattern):
    model = make(tmp_path)
    if command == ("run",):
        args = ["run", "--demo", "--headless", "--threads", "1", "--model", model]
    else:
        for label in ("happy", "sad"):
            (tmp_path / "data" / label).mkdir(parents=True)
            (tmp_path / "data" / label / "face.jpg").write_bytes((ASSETS / "astronaut.jpg").read_bytes())
        args = ["eval", "--model", model, "--data", tmp_path / "data"]
    proc = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_memory, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge-fer: error: ")]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr
    assert "onnxruntime" not in proc.stderr, proc.stderr  # the runtime's own log of a failed run: not shown
    assert re.search(pattern, errors[0]), errors[0]
