"""Shared fixtures: real data from ../shared (override with $EDGE_FER_SHARED)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_FER_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
MEDIA = DATA / "media"
FER_TRAIN = DATA / "fer2013" / "train"
FER_VAL = DATA / "fer2013" / "val"
DETECTOR_DIR = DATA / "detectors"
PEER_DIR = DATA / "peers" / "fer"
CKPLUS48 = DATA / "ckplus48"


def _need(path: Path) -> Path:
    """Missing data fails the test (a suite that skips everything proves nothing); set
    EDGE_FER_SKIP_MISSING_DATA=1 to skip instead on a machine that lacks ../shared."""
    if not path.exists():
        message = f"shared test data not found: {path} (set EDGE_FER_SHARED)"
        if os.environ.get("EDGE_FER_SKIP_MISSING_DATA") == "1":
            pytest.skip(message)
        pytest.fail(message)
    return path


@pytest.fixture(scope="session")
def media_dir() -> Path:
    return _need(MEDIA)


@pytest.fixture(scope="session")
def fer_val() -> Path:
    return _need(FER_VAL)


@pytest.fixture(scope="session")
def fer_train() -> Path:
    return _need(FER_TRAIN)


@pytest.fixture(scope="session")
def detector_dir() -> Path:
    return _need(DETECTOR_DIR)


@pytest.fixture(scope="session")
def peer_dir() -> Path:
    return _need(PEER_DIR)


@pytest.fixture(scope="session")
def ckplus48() -> Path:
    return _need(CKPLUS48)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, detector_dir) -> Path:
    """``edge-fer export-web`` of the shipped model, once per session (tests/test_web*.py)."""
    from click.testing import CliRunner

    from edge_fer.cli import main

    out = tmp_path_factory.mktemp("web") / "site"
    result = CliRunner().invoke(main, ["export-web", str(out), "--detector-model",
                                       str(detector_dir / "blazeface_short_range.tflite")])
    assert result.exit_code == 0, result.output
    return out
