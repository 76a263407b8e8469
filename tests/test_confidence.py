"""Temperature scaling: the math, the fit on real faces, the value in the shipped files, every
runtime applying it, and ``calibrate-confidence``'s outputs and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_fer.classifier import ClassifierOptions, ExpressionClassifier
from edge_fer.cli import main
from edge_fer.confidence import expected_calibration_error, fit_temperature, nll, soften
from edge_fer.metadata import read_model_meta
from edge_fer.train.datasets import load_folder

MODELS = Path(__file__).parent.parent / "edge_fer" / "models"
SHIPPED = ("edgenet_fer2013_int8.tflite", "edgenet_fer2013.onnx", "edgenet_fer2013_phone.tflite")
REPORT = Path(__file__).parent.parent / "docs" / "model_card" / "confidence" / "confidence.json"


def raw_probs(path: Path, faces) -> np.ndarray:
    """The file's scores with its temperature undone (a copy with temperature 1)."""
    with ExpressionClassifier.create_from_options(ClassifierOptions(model_path=str(path))) as c:
        return soften(c.predict_proba(list(faces.images)), 1.0 / c.meta.temperature)


@pytest.fixture(scope="module")
def val_faces(fer_val):
    return load_folder(fer_val, limit_per_class=60, seed=1)


def test_soften_keeps_the_ranking_and_inverts():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7) * 0.5, size=200).astype(np.float32)
    probs = np.maximum(probs, 1e-4)
    probs /= probs.sum(axis=1, keepdims=True)
    for t in (0.5, 0.9153, 2.0):
        out = soften(probs, t)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
        assert (out.argmax(1) == probs.argmax(1)).all()
        if t >= 0.9:  # sharper than that, the 1e-6 floor of the logarithm loses the smallest scores
            np.testing.assert_allclose(soften(out, 1.0 / t), probs, atol=1e-4)
    assert (soften(probs, 2.0).max(1) < probs.max(1)).all()  # T > 1 softens, T < 1 sharpens
    assert soften(probs, 1.0) is not None and np.array_equal(soften(probs, 1.0), probs)


def test_fit_lowers_the_nll_on_real_faces(val_faces):
    """Fitted on one half of real val faces, the temperature lowers the NLL on the other half;
    an over-confident copy (scores sharpened, T = 1/1.5) is fitted back to about 1.5 times T."""
    probs = raw_probs(MODELS / SHIPPED[0], val_faces)
    names = ExpressionClassifier.create_from_options(ClassifierOptions()).meta.labels
    true = np.asarray([names.index(val_faces.classes[i]) for i in val_faces.labels])
    fit, held = np.arange(len(true)) % 2 == 0, np.arange(len(true)) % 2 == 1
    t = fit_temperature(probs[fit], true[fit])
    assert 0.5 < t < 2.0
    assert nll(soften(probs[held], t), true[held]) <= nll(probs[held], true[held]) + 1e-3
    sharp = soften(probs, 1.0 / 1.5)
    assert fit_temperature(sharp, true) == pytest.approx(1.5 * fit_temperature(probs, true), rel=0.05)
    assert expected_calibration_error(soften(sharp, fit_temperature(sharp, true)), true) < \
        expected_calibration_error(sharp, true)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_carry_their_fitted_temperature(name):
    """Each shipped file's metadata holds the temperature that calibrate-confidence fitted and
    recorded in the model card, and it lowered the ECE on val."""
    rows = {Path(r["model"]).name: r for r in json.loads(REPORT.read_text())}
    meta = read_model_meta(MODELS / name)
    assert meta.temperature == rows[name]["temperature"] != 1.0
    assert rows[name]["ece_after"] < rows[name]["ece_before"] and rows[name]["ece_after_dedup"] <= 0.03


@pytest.mark.parametrize("name", SHIPPED[:2])
def test_runtimes_apply_the_temperature(name, tmp_path, val_faces):
    """LiteRT and ONNX Runtime: a file's scores are its raw scores softened by its temperature."""
    from edge_fer.metadata_write import write_model_fields

    plain, warm = tmp_path / f"plain_{name}", tmp_path / f"warm_{name}"
    shutil.copy(MODELS / name, plain)
    shutil.copy(MODELS / name, warm)
    write_model_fields(plain, temperature=1.0)
    write_model_fields(warm, temperature=2.5)
    faces = list(val_faces.images[:40])
    with ExpressionClassifier.create_from_options(ClassifierOptions(model_path=str(plain))) as a, \
            ExpressionClassifier.create_from_options(ClassifierOptions(model_path=str(warm))) as b:
        np.testing.assert_allclose(b.predict_proba(faces), soften(a.predict_proba(faces), 2.5), atol=1e-5)


def test_web_export_passes_the_temperature():
    """The phone page's config carries the phone file's temperature (app.js applies it)."""
    from edge_fer.web.export import WebExportOptions, page_config

    options = WebExportOptions()
    config = page_config(options, Path(options.model_path).name, "blazeface.tflite")
    assert Path(options.model_path).name == SHIPPED[2]
    assert config["model"]["temperature"] == read_model_meta(MODELS / SHIPPED[2]).temperature != 1.0


def test_calibrate_confidence_cli(tmp_path, fer_val, fer_train):
    model = tmp_path / "m.tflite"
    shutil.copy(MODELS / SHIPPED[0], model)
    result = CliRunner().invoke(main, ["calibrate-confidence", "--model", str(model), "--data", str(fer_val),
                                       "--out", str(tmp_path / "report"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "(not written)" in result.stdout and "ECE (15 bins, 3589 faces)" in result.stdout
    assert read_model_meta(model).temperature == read_model_meta(MODELS / SHIPPED[0]).temperature
    assert (tmp_path / "report" / "reliability.png").read_bytes().startswith(b"\x89PNG")
    bad = CliRunner().invoke(main, ["calibrate-confidence", "--model", str(tmp_path / "m.keras"), "--data", str(fer_val)])
    assert bad.exit_code == 2 and bad.output.strip().startswith("edge-fer: error: --model ")
    assert "expected a .tflite or .onnx file (a temperature is written into it)" in bad.output
