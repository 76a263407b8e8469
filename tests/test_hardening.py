"""Hostile and unlucky input to every command (issue 13): each is one ``edge-fer: error:`` line,
a non-zero exit and no half-written output, never a traceback, a hang or a crash.

Real media and models throughout; the malformed things (a full disk, a read-only folder, a
FIFO, a PNG header declaring 60000x60000 pixels, a SavedModel that writes a file, a server
that accepts and then says nothing) are made here. The full and read-only folders are tmpfs
mounts, which need root; elsewhere those rows are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_fer.cli import main
from edge_fer.defaults import max_threads

MODELS = Path(__file__).resolve().parents[1] / "edge_fer" / "models"
ONNX_MODEL = MODELS / "edgenet_fer2013.onnx"


# things that break ---------------------------------------------------------------------------
def _mount_tmpfs(path: Path, options: str) -> str | None:
    """Mount a tmpfs at ``path``; the reason it cannot be done, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    return None if proc.returncode == 0 else f"mount failed: {proc.stderr.strip()[:200]}"


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory):
    """A 64 KiB tmpfs filled to the last byte: creating a file works, writing one fails."""
    path = tmp_path_factory.mktemp("disk") / "full"
    why = _mount_tmpfs(path, "size=64k,mode=1777")
    if why:
        pytest.skip(f"no full disk to test on: {why}")
    try:
        with open(path / ".filler", "wb", buffering=0) as handle:
            try:
                while handle.write(b"\0" * 4096):
                    pass
            except OSError:  # ENOSPC: full
                pass
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    """An empty 64 KiB tmpfs: a video fills it after a few frames (the issue's reproduction)."""
    path = tmp_path_factory.mktemp("disk") / "small"
    why = _mount_tmpfs(path, "size=64k,mode=1777")
    if why:
        pytest.skip(f"no small disk to test on: {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="module")
def readonly_dir(tmp_path_factory):
    """A read-only folder: a read-only tmpfs as root (mode bits do not stop root), else 0555."""
    path = tmp_path_factory.mktemp("ro") / "readonly"
    if os.geteuid() != 0:
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    why = _mount_tmpfs(path, "size=64k,ro")
    if why:
        pytest.skip(f"no read-only folder to test on: {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def huge_png(path: Path) -> Path:
    """A valid PNG header declaring 60000 x 60000 RGB pixels (10.8 GB decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.fixture(scope="module")
def silent_server():
    """A TCP server that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/live.mjpg"
    server.close()
    for conn in held:
        conn.close()


@pytest.fixture(scope="module")
def savedmodels(tmp_path_factory):
    """A SavedModel whose signature calls tf.io.write_file, and where it would write."""
    tf = pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("savedmodel")
    marker = root / "written-by-the-model.txt"

    class WritesAFile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 48, 48, 1], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(marker), "the graph ran")
            return {"scores": tf.nn.softmax(tf.reduce_mean(x, [1, 2]) * tf.ones([1, 7]))}

    module = WritesAFile()
    tf.saved_model.save(module, str(root / "writes"), signatures={"serving_default": module.serve})
    return {"writes": root / "writes", "marker": marker}


@pytest.fixture(scope="module")
def one_image_folder(tmp_path_factory, fer_val) -> Path:
    folder = tmp_path_factory.mktemp("one") / "faces"
    (folder / "happy").mkdir(parents=True)
    shutil.copy(next(iter(sorted((fer_val / "happy").iterdir()))), folder / "happy")
    return folder


# the table -------------------------------------------------------------------------------------
# id -> (arguments built from the fixtures ``f``, the expected error pattern). Every row must
# exit 2 with exactly that one line on stderr and nothing on stdout.
VIDEO = ("run", "--headless", "--threads", "1", "--video")
EVAL = ("eval", "--model", MODELS / "edgenet_fer2013_int8.tflite", "--limit-per-class", "2")
CONVERT = ("convert", ONNX_MODEL, "--to", "onnx", "--verify-count", "14")

CASES = [
    # 1. a full disk: the outputs reopen / sync / rename check
    ("disk full: video", "small", lambda f: [*VIDEO, f["media"] / "test.mp4", "--max-frames", 100,
                                              "--save-video", f["small"] / "o.mp4"],
     r"cannot write video .*o\.mp4: the file reopens with \d+ of the 100 frames written \(is the disk full\?\)"),
    ("disk full: video, from the start", "full", lambda f: [*VIDEO, f["media"] / "test.mp4", "--max-frames", 5,
                                                             "--save-video", f["full"] / "o.mp4"],
     r"cannot write video .*o\.mp4: the disk is full \(0 KiB free\)"),
    ("disk full: image folder", "full", lambda f: ["run", "--headless", "--image", f["media"] / "justin.jpg",
                                                    "--save-video", f["full"] / "annotated"],
     r"cannot write .*annotated/justin\.jpg: No space left on device \(the disk is full\)"),
    ("disk full: eval --out", "full", lambda f: [*EVAL, "--data", f["val"], "--out", f["full"] / "eval"],
     r"cannot write .*confusion\.json: No space left on device"),
    ("disk full: convert --out", "full", lambda f: [*CONVERT, "--verify", f["val"], "--out", f["full"] / "m.onnx"],
     r"cannot write .*m\.onnx: No space left on device"),
    # 2. thread counts
    ("--threads 100000, TFLite", None, lambda f: ["run", "--headless", "--demo", "--threads", 100000],
     rf"--threads 100000: expected an integer from 1 to {max_threads()} \(4 x \d+ logical cores\)"),
    ("--threads 100000, ONNX", None, lambda f: ["run", "--headless", "--demo", "--model", ONNX_MODEL,
                                                 "--threads", 100000], r"--threads 100000: expected an integer from 1 to \d+"),
    ("--cv-threads 100000", None, lambda f: ["run", "--headless", "--demo", "--cv-threads", 100000],
     r"--cv-threads 100000: expected an integer from 0 to \d+"),
    ("bench --threads 100000", None, lambda f: ["bench", "--threads", 100000],
     r"--threads 100000: expected an integer from 1 to \d+"),
    ("convert --threads 100000", None, lambda f: [*CONVERT, "--verify", f["val"], "--threads", 100000,
                                                  "--out", f["tmp"] / "m.onnx"],
     r"--threads 100000: expected an integer from 1 to \d+"),
    # 3. a SavedModel is a program
    ("SavedModel that writes a file", "savedmodel",
     lambda f: ["convert", f["writes"], "--labels", "fer2013", "--input-scale", 0.0039, "--input-offset", 0,
                "--verify", f["val"], "--verify-count", 14, "--out", f["tmp"] / "m.tflite"],
     r"writes: SavedModel runs side-effecting ops WriteFile \(in __inference_serve_\d+\); .*--trust-model"),
    # 4. tracebacks before
    ("60000x60000 image", None, lambda f: ["run", "--headless", "--image", huge_png(f["tmp"] / "huge.png")],
     r"cannot read image .*huge\.png: it declares more pixels than OpenCV decodes"),
    ("read-only folder: run --save-video video", "readonly",
     lambda f: [*VIDEO, f["media"] / "test.mp4", "--max-frames", 3, "--save-video", f["ro"] / "o.mp4"],
     r"cannot write into --save-video folder .*readonly: (Read-only file system|Permission denied)"),
    ("read-only folder: run --save-video images", "readonly",
     lambda f: ["run", "--headless", "--image", f["media"] / "justin.jpg", "--save-video", f["ro"] / "annotated"],
     r"cannot write .*annotated: (Read-only file system|Permission denied)"),
    ("read-only folder: eval --out", "readonly", lambda f: [*EVAL, "--data", f["val"], "--out", f["ro"] / "eval"],
     r"cannot write into --out folder .*readonly: (Read-only file system|Permission denied)"),
    ("read-only folder: convert --out", "readonly",
     lambda f: [*CONVERT, "--verify", f["val"], "--out", f["ro"] / "m.onnx"],
     r"cannot write into --out folder .*readonly: (Read-only file system|Permission denied)"),
    ("--input-scale inf", None, lambda f: ["run", "--headless", "--demo", "--input-scale", "inf"],
     r"--input-scale must be a finite number, got inf"),
    ("--input-offset nan", None, lambda f: ["run", "--headless", "--demo", "--input-offset", "nan"],
     r"--input-offset must be a finite number, got nan"),
    ("eval --input-scale -inf", None, lambda f: [*EVAL, "--data", f["val"], "--input-scale", "-inf"],
     r"--input-scale must be a finite number, got -inf"),
    ("yunet given the RFB-320 file", None,
     lambda f: ["run", "--headless", "--demo", "--detector", "yunet",
                "--detector-model", f["detectors"] / "ultralight_rfb_320.onnx"],
     r"ultralight_rfb_320\.onnx: not a loadable yunet detector file"),
    # 6. hangs before
    ("stream that sends nothing", None, lambda f: ["run", "--headless", "--video", f["silent"], "--open-timeout", 1],
     r"cannot open stream http://127\.0\.0\.1:\d+/live\.mjpg: .*nothing received within 1 s \(--open-timeout\)"),
    ("--image on a FIFO", None, lambda f: ["run", "--headless", "--image", fifo(f["tmp"] / "pipe.jpg")],
     r"cannot read image .*pipe\.jpg: not a regular file"),
    ("bad --open-timeout", None, lambda f: ["run", "--headless", "--demo", "--open-timeout", 0],
     r"--open-timeout 0\.0: expected > 0"),
    # 7. messages
    ("calibration folder with one image", None,
     lambda f: [*CONVERT[:4], "--quantize", "int8", "--calibration", f["one"], "--out", f["tmp"] / "m.onnx"],
     r"calibration folder .*faces has 1 image: full int8 calibrates on 20\+ and verifies on 20\+ other faces "
     r"of one folder, so it needs at least 40 \(add images or set --verify\)$"),
]


@pytest.fixture
def paths(request, tmp_path, media_dir, fer_val, detector_dir, silent_server, one_image_folder):
    return {"tmp": tmp_path, "media": media_dir, "val": fer_val, "detectors": detector_dir,
            "silent": silent_server, "one": one_image_folder}


@pytest.mark.parametrize("needs, args, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_table(request, paths, needs, args, pattern, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    f = dict(paths)
    watched = None
    if needs in ("full", "small"):
        f[needs] = watched = request.getfixturevalue(f"{needs}_dir")
    elif needs == "readonly":
        f["ro"] = watched = request.getfixturevalue("readonly_dir")
    elif needs == "savedmodel":
        f.update(request.getfixturevalue("savedmodels"))
    result = CliRunner().invoke(main, [str(a) for a in args(f)])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 2, result.output
    assert "error" not in result.stdout  # (run prints the frames it processed before a late failure)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-fer: error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    if watched is not None:  # nothing half-written left behind: no temp file, no partial output
        left = [p for p in watched.rglob("*") if p.is_file() and p.name != ".filler"]
        assert left == [], left
    if needs == "savedmodel":
        assert not f["marker"].exists(), "the SavedModel's graph ran during convert"


def test_huge_image_in_a_folder_is_skipped_and_counted(media_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(media_dir / "justin.jpg", folder / "justin.jpg")
    huge_png(folder / "huge.png")
    fifo(folder / "pipe.jpg")  # not a regular file: not listed, never opened
    result = CliRunner().invoke(main, ["run", "--headless", "--image", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("justin.jpg: #1 ")
    assert "1 frames in" in result.stderr and "1 failed to decode" in result.stderr


def test_op_scan_passes_a_plain_keras_savedmodel(tmp_path):
    """No false alarm: TensorFlow's own checkpoint functions (SaveV2/RestoreV2) are allowed."""
    keras = pytest.importorskip("keras")
    from converters.op_scan import savedmodel_ops

    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).export(str(tmp_path / "saved"), verbose=False)
    assert savedmodel_ops(tmp_path / "saved") == {}


def test_cli_value_sets_match_the_library():
    """The commands spell the choices out (they import only click); they must not drift."""
    from converters.options import QUANTIZATIONS, TARGETS
    from edge_fer import commands
    from edge_fer.backends import DEVICES
    from edge_fer.commands.clean import CLEAN_ACTIONS
    from edge_fer.detectors import DETECTORS
    from edge_fer.metadata import COLORS
    from edge_fer.train.clean import ACTIONS, CLEAN_DETECTORS
    from edge_fer.train.models import ARCHS

    assert commands.DETECTOR_NAMES == DETECTORS and commands.DEVICE_NAMES == DEVICES
    assert commands.COLOR_NAMES == COLORS and set(commands.ARCH_NAMES) == set(ARCHS)
    assert commands.TARGET_NAMES == TARGETS and commands.QUANTIZATION_NAMES == QUANTIZATIONS
    assert CLEAN_ACTIONS == ACTIONS and {n for n, _ in CLEAN_DETECTORS} <= set(commands.SHIPPED_DETECTORS)
