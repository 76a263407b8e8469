"""Decoders and runtimes never talk to the user themselves (issue 24, item 14): whatever libpng,
libtiff, libjpeg, FFmpeg, ONNX Runtime or TensorFlow print on fd 2 while edge-fer reads a hostile
file, the user sees only edge-fer's own lines: one ``edge-fer: error: ...`` line for a file that
cannot be used, nothing but edge-fer's status lines for one that can.

Every hostile input is made here in tmp_path from real files: ../shared's justin.jpg re-encoded
as PNG with a byte flipped inside IDAT, as TIFF with a broken tag, as JPEG with corrupt data;
test.mp4 with bytes flipped in its frames; tiny ONNX models (test_model_files.tiny_onnx) with a
broken initializer or a 16 TB tensor at inference; a small ``.keras`` model built by Keras in a
subprocess. Each row runs the ``edge-fer`` command as a subprocess and reads its real fd 2.
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from test_model_files import CLI, _limit_memory, tiny_onnx

from conftest import FER_VAL, MEDIA

JUSTIN = MEDIA / "justin.jpg"
VIDEO = MEDIA / "test.mp4"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "OPENCV_"))}  # as a user has it

pytestmark = pytest.mark.skipif(not CLI.exists(), reason=f"no edge-fer command beside {sys.executable}")


# hostile files, from real ones -----------------------------------------------------------------------
def _justin(ext: str) -> bytearray:
    image = cv2.imread(str(JUSTIN))
    ok, data = cv2.imencode(ext, image)
    assert ok
    return bytearray(data.tobytes())


def png_bad_idat(path: Path) -> Path:
    """justin.jpg as PNG, the last byte of its IDAT data flipped: ``libpng error: IDAT: CRC error``."""
    data = _justin(".png")
    at = data.find(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    data[at + 4 + length - 1] ^= 0x55
    path.write_bytes(bytes(data))
    return path


def _tiff_entry(data: bytearray, tag: int) -> int:
    """The offset of ``tag``'s 12-byte entry in the first IFD of a little-endian TIFF."""
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", data, entry)[0] == tag:
            return entry
    raise AssertionError(f"no tag {tag}")


def tiff_bad_type(path: Path) -> Path:
    """justin.jpg as TIFF, SampleFormat (339) given type 99: ``TIFFReadDirectory: Incompatible type``."""
    data = _justin(".tif")
    struct.pack_into("<H", data, _tiff_entry(data, 339) + 2, 99)
    path.write_bytes(bytes(data))
    return path


def tiff_unknown_tag(path: Path) -> Path:
    """justin.jpg as TIFF, SampleFormat renumbered 65000: libtiff warns (``Unknown field with tag
    65000``) and the image decodes all the same."""
    data = _justin(".tif")
    struct.pack_into("<H", data, _tiff_entry(data, 339), 65000)
    path.write_bytes(bytes(data))
    return path


def tiff_strips_past_the_end(path: Path) -> Path:
    """justin.jpg as TIFF, its first strip 1 GB past the end of the file (``TIFFFillStrip: Seek
    error``, then OpenCV's WARN and ERROR lines)."""
    data = _justin(".tif")
    entry = _tiff_entry(data, 273)  # StripOffsets
    count, where = struct.unpack_from("<II", data, entry + 4)
    struct.pack_into("<I", data, entry + 8 if count == 1 else where, 10 ** 9)
    path.write_bytes(bytes(data))
    return path


def jpeg_damaged(path: Path) -> Path:
    """justin.jpg with restart markers written over 20 bytes of its data, two thirds in: libjpeg's
    ``Corrupt JPEG data: premature end of data segment``; it decodes all the same."""
    data = bytearray(JUSTIN.read_bytes())
    middle = len(data) * 2 // 3
    data[middle:middle + 20] = b"\xff\xd0" * 10
    path.write_bytes(bytes(data))
    return path


def mp4_damaged(path: Path) -> Path:
    """test.mp4 with 200 bytes flipped after its first tenth: FFmpeg's ``[h264 @ 0x...] error
    while decoding MB`` lines while the frames are read; the frames still decode."""
    data = bytearray(VIDEO.read_bytes())
    rng = random.Random(1)
    for _ in range(200):
        data[rng.randrange(len(data) // 10, len(data))] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def folder_of(*makers):
    """A maker of a folder holding justin.jpg and the files the makers write into it."""
    def make(tmp: Path) -> Path:
        folder = tmp / "in"
        folder.mkdir()
        (folder / "justin.jpg").write_bytes(JUSTIN.read_bytes())
        for name, maker in makers:
            maker(folder / name)
        return folder
    return make


def onnx_bad_initializer(path: Path) -> Path:
    """A tiny ONNX classifier whose weight initializer holds 100 bytes of its 64,512."""
    onnx = pytest.importorskip("onnx", reason="the ONNX rows build their models with onnx")
    model = onnx.load(str(tiny_onnx(path)))
    for init in model.graph.initializer:
        if init.name == "w":
            init.raw_data = init.raw_data[:100]
    onnx.save(model, str(path))
    return path


KERAS_SCRIPT = """
import sys
import keras
from edge_fer.metadata import FER2013_LABELS, ModelMeta
from edge_fer.train.keras_io import save_keras
inputs = keras.Input((48, 48, 1))
outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs))
save_keras(keras.Model(inputs, outputs), sys.argv[1], ModelMeta(FER2013_LABELS, (48, 48)))
"""


def small_keras(path: Path) -> Path:
    """A 48x48 gray 7-class ``.keras`` model with edge-fer metadata, saved by Keras (in a
    subprocess: TensorFlow stays out of the test process)."""
    pytest.importorskip("keras", reason="the .keras row needs Keras")
    proc = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(path)], capture_output=True, text=True,
                          timeout=300, env={**ENV, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0 and path.is_file(), proc.stderr[-2000:]
    return path


# the table ------------------------------------------------------------------------------------------
ERROR = r"^edge-fer: error: "
RUN = ["run", "--headless", "--threads", "1"]

# (id, make(tmp) -> path, args with {} for the path, exit code, a pattern stderr must hold or None)
CASES = [
    ("PNG, IDAT CRC error: run --image", lambda t: png_bad_idat(t / "bad.png"), [*RUN, "--image", "{}"], 2,
     ERROR + r"cannot read image .*bad\.png: damaged \(libpng error: IDAT: CRC error\)$"),
    ("PNG, IDAT CRC error: analyze", folder_of(("bad.png", png_bad_idat)),
     ["analyze", "{}", "--out", "{out}", "--no-progress", "--workers", "1"], 1,
     r"^edge-fer: failed: .*bad\.png: .*damaged \(libpng error: IDAT: CRC error\)$"),
    ("PNG and TIFF: analyze in 2 worker processes",
     folder_of(("bad.png", png_bad_idat), ("tag.tif", tiff_bad_type), ("unknown.tif", tiff_unknown_tag)),
     ["analyze", "{}", "--out", "{out}", "--no-progress", "--workers", "2"], 1,
     r"^edge-fer: failed: .*tag\.tif: .*damaged \(TIFFReadDirectory: Incompatible type"),
    ("TIFF, a tag of the wrong type: run --image", lambda t: tiff_bad_type(t / "tag.tif"), [*RUN, "--image", "{}"], 2,
     ERROR + r"cannot read image .*tag\.tif: damaged \(TIFFReadDirectory: Incompatible type for \"SampleFormat\"\)$"),
    ("TIFF, strips past the end: run --image", lambda t: tiff_strips_past_the_end(t / "strip.tif"),
     [*RUN, "--image", "{}"], 2, ERROR + r"cannot read image .*strip\.tif: damaged \(TIFFFillStrip: Seek error"),
    ("TIFF, an unknown tag (decodes): run --image", lambda t: tiff_unknown_tag(t / "unknown.tif"),
     [*RUN, "--image", "{}"], 0, r"^edge-fer: 1 frames in "),
    ("JPEG, corrupt data (decodes): run --image", lambda t: jpeg_damaged(t / "corrupt.jpg"),
     [*RUN, "--image", "{}"], 0, r"^edge-fer: 1 frames in "),
    ("MP4, damaged frames: run --video", lambda t: mp4_damaged(t / "damaged.mp4"),
     [*RUN, "--video", "{}", "--max-frames", "40"], 0, r"^edge-fer: 40 frames in "),
    ("ONNX, a broken initializer: run", lambda t: onnx_bad_initializer(t / "broken.onnx"),
     [*RUN, "--image", str(JUSTIN), "--model", "{}"], 2, ERROR + r"broken\.onnx: not a loadable ONNX model"),
    ("ONNX, 16 TB at inference: run", lambda t: tiny_onnx(t / "huge.onnx", tail="huge"),
     [*RUN, "--image", str(JUSTIN), "--detector", "yunet", "--model", "{}"], 2,
     ERROR + r"huge\.onnx: inference failed: the model asks for 16,000\.0 GB at once"),
    pytest.param("ONNX with the default detector: run", lambda t: tiny_onnx(t / "ok.onnx"),
                 [*RUN, "--image", str(JUSTIN), "--model", "{}"], 0, r"^edge-fer: 1 frames in ",
                 id="ONNX with the default detector: run"),
    (".keras: eval -q", lambda t: small_keras(t / "small.keras"),
     ["-q", "eval", "--model", "{}", "--data", str(FER_VAL), "--limit-per-class", "5"], 0, None),
]


def _id(case) -> str:
    return case.id if hasattr(case, "id") else case[0]


def foreign_lines(stderr: str) -> list[str]:
    """The lines on stderr that are not edge-fer's own."""
    return [line for line in stderr.splitlines() if not line.startswith("edge-fer: ")]


@pytest.mark.parametrize("name, make, args, code, pattern", CASES, ids=[_id(c) for c in CASES])
def test_the_user_sees_only_edge_fers_lines(tmp_path, media_dir, fer_val, name, make, args, code, pattern):
    target = make(tmp_path)
    out = tmp_path / "out" / "rows.csv"
    out.parent.mkdir()
    argv = [str(CLI), *(a.replace("{}", str(target)).replace("{out}", str(out)) for a in args)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=ENV,
                          preexec_fn=_limit_memory if "16 TB" in name else None)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not foreign_lines(proc.stderr), proc.stderr  # libpng, libtiff, FFmpeg, ORT, TensorFlow: none
    assert proc.returncode == code, proc.stderr
    errors = re.findall(ERROR + ".*$", proc.stderr, re.M)
    assert len(errors) == (1 if code == 2 else 0), proc.stderr
    if pattern is not None:
        assert re.search(pattern, proc.stderr, re.M), proc.stderr


def test_decoding_from_threads_keeps_fd_2(tmp_path, capfd, media_dir):
    """decode_image swaps fd 2 while the decoder runs: from 4 threads at once, every decode gets
    its own complaint as its reason, nothing reaches fd 2, and fd 2 is the terminal's again after."""
    from concurrent.futures import ThreadPoolExecutor

    from edge_fer.sources.images import decode_image

    bad, good = png_bad_idat(tmp_path / "bad.png"), tiff_unknown_tag(tmp_path / "unknown.tif")
    before = os.fstat(2)
    capfd.readouterr()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(decode_image, [bad, good] * 40))
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
    assert all(why == "damaged (libpng error: IDAT: CRC error)" for _, why in results[::2]), results[::2]
    assert all(image is not None and why == "" for image, why in results[1::2])
    assert not foreign_lines(capfd.readouterr().err)
