"""Shared fixtures: real data from ../shared (override with $EDGE_FER_SHARED)."""

from __future__ import annotations

import os
import signal
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


# -- Chromium (Playwright) for the pages' browser tests; skipped without it ----------------------
@pytest.fixture(scope="session")
def chromium_path() -> str:
    from browser_steps import CHROMIUM

    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set EDGE_FER_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def playwright_driver(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def camera_browser(playwright_driver, chromium_path, media_dir, tmp_path_factory):
    """One headless Chromium whose fake camera plays woman2.mp4, converted to MJPEG here."""
    import cv2

    mjpeg = tmp_path_factory.mktemp("camera") / "woman2.mjpeg"
    capture = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(mjpeg), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for _ in range(150):
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    capture.release()
    assert mjpeg.stat().st_size > 0
    from browser_steps import launch

    instance = launch(playwright_driver, chromium_path, f"--use-file-for-fake-video-capture={mjpeg}")
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost and its key (docs/phone.md makes a
    trusted one); skipped where openssl is missing."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def sigint_default() -> None:
    """``preexec_fn`` for a child the tests stop with Ctrl-C: SIGINT at its default, even where
    the test run inherited it ignored (a job started in the background by a non-interactive shell)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
