"""``edge-fer convert``: which faces calibrate and which verify when ``--calibration`` is the only
folder (float needs no calibration sample; full int8 splits a small folder), and the warning for
a converted model without a framing table. On the shipped ONNX model (no TensorFlow needed) and
real fer2013/val faces. The rest of convert is in test_convert.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_fer.cli import main
from edge_fer.metadata import NO_FRAMING, read_model_meta

SHIPPED_ONNX = Path(__file__).resolve().parents[2] / "edge_fer" / "models" / "edgenet_fer2013.onnx"


def invoke(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)])


@pytest.fixture
def few_faces(tmp_path, fer_val) -> Path:
    """42 real val faces, 6 in each of the 7 class folders: fewer than the default 300 + 500."""
    root = tmp_path / "few"
    for folder in sorted(p for p in fer_val.iterdir() if p.is_dir()):
        (root / folder.name).mkdir(parents=True)
        for f in sorted(folder.iterdir())[:6]:
            (root / folder.name / f.name).write_bytes(f.read_bytes())
    return root


def stderr_lines(result) -> list[str]:
    return result.stderr.strip().splitlines()


def test_float_conversion_draws_no_calibration_faces(few_faces, tmp_path):
    """A float conversion given --calibration (and no --verify) verifies on that folder: no
    calibration sample takes the faces first. The source here has no framing table (the shipped
    ONNX with it taken out), so convert says so, once."""
    from edge_fer.metadata_write import add_onnx_metadata

    plain = tmp_path / "plain.onnx"
    plain.write_bytes(SHIPPED_ONNX.read_bytes())
    add_onnx_metadata(plain, read_model_meta(plain).with_(framing=None))
    out = tmp_path / "out.onnx"
    result = invoke(plain, "--to", "onnx", "--quantize", "none", "--calibration", few_faces, "--verify-count", 30,
                    "--out", out)
    assert result.exit_code == 0, result.output
    assert "agreement 100.0% on 30 faces" in result.stdout
    assert stderr_lines(result) == [f"edge-fer: warning: out.onnx: {NO_FRAMING}"]
    assert read_model_meta(out).framing is None


def test_int8_splits_a_folder_too_small_for_both_samples(few_faces, tmp_path):
    """Full int8 from one folder of 42 faces with the default 300 + 500: half calibrates, the
    other half verifies, and a warning says so. The shipped model carries a framing table (kept
    in the output), so there is no framing warning."""
    out = tmp_path / "int8.onnx"
    result = invoke(SHIPPED_ONNX, "--to", "onnx", "--quantize", "int8", "--calibration", few_faces,
                    "--min-agreement", 0.5, "--out", out)
    assert result.exit_code == 0, result.output
    assert " on 21 faces" in result.stdout
    (line,) = stderr_lines(result)
    assert line.startswith(f"edge-fer: calibration folder {few_faces} has 42 images, fewer than the 300 "
                           "calibration faces + 500 verification asked for: calibrating on 21, verifying on 21 others")
    assert NO_FRAMING not in result.stderr and read_model_meta(out).framing == read_model_meta(SHIPPED_ONNX).framing
