"""Property-based tests over the option parsers and the media openers (issue 24, "What must
stay"): for any text an option takes, and any bytes a file holds, edge-fer gives a checked value
or one error line; never another exception, a traceback, or a decoder's own line on the terminal.

* ``ServeOptions.parse`` (``--serve [HOST:]PORT``): a ServeOptions whose host and port are valid,
  or one OptionsError line; an IP-address host it accepts resolves or fails with OptionsError.
* The detector lists of ``calibrate-framing --detectors a,b`` and ``bench --detector a,b``, the
  model lists of ``bench --model a,b`` and ``calibrate-framing --model``: run through the command
  line (click's CliRunner), exit code 2 with one ``edge-fer: error:`` line.
* ``edge_fer.classifier.parse_labels``: names (>= 2, stripped, no commas) or one OptionsError line;
  names it gives are then taken by ModelMeta or refused with one ModelError line.
* The image reader (``decode_image``, ``ImageSource``) on random bytes, on a real image in 16
  encodings (14 formats) with bytes flipped, inserted, cut or overwritten, on format signatures
  followed by junk: an image in the layout asked for, or one reason (InputError); nothing on fd 2.
* ``VideoSource`` on random bytes (InputError) and on damaged real videos (frames or InputError),
  nothing on fd 2.

The normal suite runs a bounded number of examples per property (a few seconds in all);
``-m slow`` runs the same properties with 12,300 examples in all.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property-based tests need hypothesis (the test extra)")
from hypothesis import event, given, strategies as st  # noqa: E402
from property_settings import examples  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from edge_fer.classifier import LABEL_PRESETS, parse_labels  # noqa: E402
from edge_fer.cli import main  # noqa: E402
from edge_fer.detectors import DETECTORS  # noqa: E402
from edge_fer.errors import InputError, ModelError, OptionsError  # noqa: E402
from edge_fer.metadata import ModelMeta  # noqa: E402
from edge_fer.serve import ServeOptions  # noqa: E402
from edge_fer.serve.options import valid_host  # noqa: E402
from edge_fer.serve.server import resolve  # noqa: E402
from edge_fer.sources.capture import ImageSource, VideoSource  # noqa: E402
from edge_fer.sources.images import decode_image  # noqa: E402

from conftest import MEDIA, REPO  # noqa: E402

MODELS = REPO / "edge_fer" / "models"
JUSTIN = MEDIA / "justin.jpg"


def one_line(text: str) -> None:
    assert text and "\n" not in text and "\r" not in text, repr(text)


def only_edge_fer_lines(captured) -> None:
    """Nothing on fd 1 or 2 but edge-fer's own log lines (a decoder's, FFmpeg's, OpenCV's: none)."""
    foreign = [line for line in (captured.out + captured.err).splitlines() if not line.startswith("edge-fer: ")]
    assert not foreign, foreign


# texts --------------------------------------------------------------------------------------------
#: Unicode digits, fullwidth forms, controls, surrogates, separators: what str methods treat oddly.
ODD = ["\u00b2", "\u0668\u0660", "\uff18\uff10", "\u0000", "\n", "\r", "\t", " ", "\u00a0", "\u2028", "\ud800",
       "\udcff", "%", "[", "]", ":", ",", ".", "..", "-", "_", "\u00e9", "\u0131", "\u00df", "\ufb01", "xn--",
       "\u200b", "\u202e", "0x10", "1e3", "-1", "+1", "\u0660"]
TEXT = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(ODD + list("aZ09")), max_size=10).map("".join))
#: Texts a command line can hold: no NUL, and undecodable bytes as os.fsdecode gives them
#: (surrogate escapes U+DC80..U+DCFF), as Python's argv does.
ARGV = st.one_of(TEXT.map(lambda t: os.fsdecode(t.encode("utf-8", "replace").replace(b"\0", b""))),
                 st.binary(max_size=24).map(lambda b: os.fsdecode(b.replace(b"\0", b""))))
PORTS = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(["", "0", "65535", "65536", "08080", "0" * 30 + "1",
                                                                    "9" * 4301, "1" * 13, " 80", "80 "]), TEXT)
LABELS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=63)
HOSTS = st.one_of(
    st.sampled_from(["", "127.0.0.1", "0.0.0.0", "localhost", "::1", "::", "fe80::1%lo", "::1%1", "::1%", "1.2.3",
                     "256.1.1.1", "a..b", ".", "a" * 64, "a" * 63, "-a", "a-", "_a", "xn--nxasmq6b", "\u00e9t\u00e9",
                     "\uff11\uff12\uff17.0.0.1", "[::1]"]),
    st.lists(LABELS, min_size=1, max_size=6).map(".".join),
    st.ip_addresses().map(str), TEXT)


@st.composite
def addresses(draw) -> str | None:
    """``--serve`` texts: HOST:PORT, [IPV6]:PORT, PORT, and anything."""
    host, port = draw(HOSTS), draw(PORTS)
    shape = draw(st.sampled_from(["host:port", "[host]:port", "port", "host", "any", "none", "padded"]))
    if shape == "none":
        return None
    if shape == "any":
        return draw(TEXT)
    text = {"host:port": f"{host}:{port}", "[host]:port": f"[{host}]:{port}", "port": port, "host": host,
            "padded": f" {host}:{port}\t"}[shape]
    return text


def serve_property(address: str | None) -> None:
    try:
        options = ServeOptions.parse(address)
    except OptionsError as exc:
        text = str(exc)
        one_line(text)
        assert re.match(r"ServeOptions\.(address|host|port)=", text) and "expected" in text, text
        event(text.split("=")[0])
        return
    event("valid")
    assert isinstance(options.port, int) and 0 <= options.port <= 65535
    assert isinstance(options.host, str) and valid_host(options.host)
    if _is_numeric(options.host):  # no DNS lookups here: an address resolves locally, or fails with one line
        try:
            resolve(options.host, options.port)
        except OptionsError as exc:
            one_line(str(exc))


def _is_numeric(host: str) -> bool:
    """An IP address, with at most a numeric IPv6 zone (a name getaddrinfo would look up in DNS: no)."""
    import ipaddress

    address, _, zone = host.partition("%")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return not zone or zone.isascii() and zone.isdigit()


# lists of detectors and models, through the command line -------------------------------------------
NAMES = list(DETECTORS)
DETECTOR_ITEMS = st.one_of(st.sampled_from(NAMES), st.sampled_from(NAMES).map(str.upper),
                           st.sampled_from(NAMES).map(lambda n: f" {n} "), st.sampled_from(["", " ", "all", "none"]),
                           ARGV)
DETECTOR_LISTS = st.one_of(st.lists(DETECTOR_ITEMS, max_size=6).map(",".join), ARGV)
#: Files that are, or look like, model files (a README, a folder, the shipped models).
MODEL_ITEMS = st.one_of(st.sampled_from([str(MODELS / "edgenet_fer2013_int8.tflite"),
                                         str(MODELS / "edgenet_fer2013.onnx"), str(MODELS / "README.md"), str(MODELS),
                                         "", " ", "x.tflite", "y.onnx", ".tflite", "m.keras", "/dev/null",
                                         "/dev/null.onnx", "a,b"]), ARGV)
#: One item that is no model file here: a model list holding it fails before anything runs.
NOT_A_MODEL = st.one_of(ARGV, st.sampled_from(["x.tflite", "y.onnx", "/dev/null", str(MODELS), "README.md"])).map(
    lambda t: t if t.strip() and "," not in t and not (Path(t.strip()).suffix.lower() in (".tflite", ".onnx")
                                                       and Path(t.strip()).is_file()) else "missing.tflite")


def check_cli_error(args: list[str]) -> None:
    """The command fails with exit code 2 and one ``edge-fer: error:`` line (after, at most,
    edge-fer's notes), nothing on stdout."""
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and result.stdout == "", (args, result.exit_code, result.output)
    assert lines and all(line.startswith("edge-fer: ") for line in lines), (args, lines)
    errors = [line for line in lines if line.startswith("edge-fer: error: ")]
    assert errors == lines[-1:] and "Traceback" not in result.stderr, (args, lines)
    event(re.sub(r"'.*", "", errors[0][17:])[:40])


def calibrate_detectors_property(text: str) -> None:
    check_cli_error(["calibrate-framing", "--data", "/nonexistent/edge-fer-data", f"--detectors={text}"])


def calibrate_models_property(models: list[str]) -> None:
    check_cli_error(["calibrate-framing", "--data", "/nonexistent/edge-fer-data",
                     *(f"--model={m}" for m in models)])


def bench_models_property(models: list[str], junk: str, at: int, joined: bool) -> None:
    models = list(models)
    models.insert(at % (len(models) + 1), junk)
    given = [",".join(models)] if joined else models
    check_cli_error(["bench", "--images", str(JUSTIN), "--frames", "2", "--warmup", "1",
                     *(f"--model={m}" for m in given)])


def bench_detectors_property(text: str) -> None:
    check_cli_error(["bench", "--images", str(JUSTIN), "--model=/nonexistent/x.tflite", f"--detector={text}"])


# labels -----------------------------------------------------------------------------------------
LABEL_TEXTS = st.one_of(TEXT, st.sampled_from(sorted(LABEL_PRESETS)),
                        st.lists(st.one_of(st.sampled_from(["happy", "sad", "angry", " a ", ""]), TEXT),
                                 max_size=10).map(",".join))


def labels_property(text: str | None) -> None:
    try:
        names = parse_labels(text)
    except OptionsError as exc:
        one_line(str(exc))
        assert str(exc).startswith("ClassifierOptions.labels=") and "expected" in str(exc), str(exc)
        event("refused")
        return
    if text is None:
        assert names is None
        return
    assert isinstance(names, tuple) and len(names) >= 2
    assert all(type(n) is str and n and n == n.strip() and "," not in n for n in names), names
    try:
        ModelMeta(labels=names, input_size_hw=(48, 48))
        event("names")
    except ModelError as exc:  # duplicates, control characters, too long: the model's field check says so
        one_line(str(exc))
        assert "labels" in str(exc) and "expected" in str(exc), str(exc)
        event("names refused by ModelMeta")


# images ---------------------------------------------------------------------------------------------
def _seed_images() -> dict[str, bytes]:
    """justin.jpg at 24x24 in every format this OpenCV writes (and reads)."""
    color = cv2.resize(cv2.imread(str(JUSTIN)), (24, 24), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(color, cv2.COLOR_BGR2GRAY)
    seeds = {}
    for name, image, params in [("jpg", color, []), ("progressive.jpg", color, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                                ("png", color, []), ("16-bit.png", gray.astype(np.uint16) * 257, []),
                                ("bmp", color, []), ("webp", color, []), ("tif", color, []), ("ppm", color, []),
                                ("pgm", gray, []), ("pbm", gray, []), ("pam", color, []), ("pfm", color, []),
                                ("sr", color, []), ("hdr", color, []), ("gif", color, []), ("avif", color, [])]:
        try:
            ok, data = cv2.imencode("." + name.rsplit(".", 1)[-1], image, params)
        except cv2.error:  # a format this OpenCV does not write
            continue
        if ok:
            seeds[name] = data.tobytes()
    return seeds


SEED_IMAGES = _seed_images()
IMAGE_MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb", b"BM", b"II*\x00", b"MM\x00*",
               b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"P1\n", b"P4\n", b"P5\n", b"P6\n", b"P5\n30000 30000\n255\n",
               b"P7\nWIDTH 9\nHEIGHT 9\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n", b"PF\n", b"Pf\n",
               b"\x59\xa6\x6a\x95", b"#?RADIANCE\n", b"GIF89a", b"GIF87a", b"v/1\x01",
               b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\x00\x00\x00\x1cftypavif", b"\xff\x0a"]
VIDEO_MAGIC = [b"\x00\x00\x00\x18ftypmp42", b"\x00\x00\x00\x20ftypisom", b"RIFF\x00\x10\x00\x00AVI LIST",
               b"\x1aE\xdf\xa3", b"FLV\x01\x05", b"OggS\x00\x02", b"\x47\x40\x00\x10", b"\x00\x00\x01\xba",
               b"GIF89a", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n"]


@st.composite
def damaged(draw, seeds: dict[str, bytes]) -> bytes:
    """A real file with 1 to 6 edits: bytes flipped or set, junk inserted, a range cut out or
    overwritten, the file cut short. Positions are fractions of the length (they shrink well)."""
    name = draw(st.sampled_from(sorted(seeds)))
    event(f"seed {name}")
    data = bytearray(seeds[name])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = int(draw(st.floats(0, 1)) * (len(data) - 1))
        head = draw(st.booleans())  # headers are where decoders trust what they read
        if head:
            at = min(at, 64, len(data) - 1)
        op = draw(st.sampled_from(["flip", "set", "insert", "cut", "overwrite", "truncate"]))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(chunk)] = chunk
        else:
            del data[at:]
    return bytes(data)


def junk_after(magic: list[bytes]):
    return st.tuples(st.sampled_from(magic), st.binary(max_size=512)).map(lambda t: t[0] + t[1])


IMAGE_BYTES = st.one_of(st.binary(max_size=2048), junk_after(IMAGE_MAGIC), damaged(SEED_IMAGES))
SUFFIXES = st.sampled_from([".jpg", ".png", ".tif", ".bmp", ".webp", ".pgm", ".bin"])
FLAGS = st.sampled_from([cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE])


def image_property(folder: Path, capfd, data: bytes, suffix: str, flags: int) -> None:
    path = folder / f"x{suffix}"
    path.write_bytes(data)
    capfd.readouterr()
    image, why = decode_image(path, flags)
    if image is None:
        one_line(why)
        assert len(why) <= 220, why
        event("refused: " + why.split(" (")[0])
    else:
        assert why == "" and isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size > 0
        assert image.ndim == (2 if flags == cv2.IMREAD_GRAYSCALE else 3), image.shape
        event("decoded")
    same = flags == cv2.IMREAD_COLOR  # ImageSource reads colour: the same answer
    try:
        with ImageSource(path) as source:
            frames = list(source)
        assert len(frames) == 1 and frames[0].frame_bgr.ndim == 3 and (image is not None or not same)
    except InputError as exc:
        one_line(str(exc))
        assert str(exc).startswith(f"cannot read image {path}: ") and (image is None or not same), str(exc)
    only_edge_fer_lines(capfd.readouterr())


# videos ---------------------------------------------------------------------------------------------
def _seed_videos(folder: Path) -> dict[str, bytes]:
    """Short real videos: 6 frames of justin.jpg (moving) as MJPG/AVI and mp4v/MP4, and the first
    100 KB of ../shared's test.mp4 (H.264)."""
    frame = cv2.resize(cv2.imread(str(JUSTIN)), (48, 48))
    seeds = {}
    for name, fourcc in (("mjpg.avi", "MJPG"), ("mp4v.mp4", "mp4v")):
        path = folder / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (48, 48))
        if writer.isOpened():
            for i in range(6):
                writer.write(np.roll(frame, 3 * i, axis=1))
        writer.release()
        if path.is_file() and path.stat().st_size:
            seeds[name] = path.read_bytes()
    seeds["test.mp4 (first 100 KB)"] = (MEDIA / "test.mp4").read_bytes()[:100_000]
    return seeds


@pytest.fixture(scope="module")
def seed_videos(tmp_path_factory) -> dict[str, bytes]:
    return _seed_videos(tmp_path_factory.mktemp("videos"))


def video_property(folder: Path, capfd, data: bytes, suffix: str, random: bool) -> None:
    path = folder / f"v{suffix}"
    path.write_bytes(data)
    capfd.readouterr()
    frames = 0
    try:
        with VideoSource(path) as source:
            for index, time_ms, frame in source:
                assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3, frame.shape
                assert isinstance(index, int) and index >= 0 and math.isfinite(time_ms), (index, time_ms)
                frames += 1
                if frames == 4:
                    break
        event("frames")
        assert not random or frames == 0, "random bytes gave frames"
    except InputError as exc:
        one_line(str(exc))
        event("InputError: " + re.sub(r" /\S+| \S+/v\.\w+", "", str(exc))[:40])
    only_edge_fer_lines(capfd.readouterr())


VIDEO_SUFFIXES = st.sampled_from([".mp4", ".avi", ".mkv", ".mov", ".bin"])


# the properties, bounded for the normal suite ---------------------------------------------------------
@given(address=addresses())
@examples(500)
def test_serve_address_gives_options_or_one_line(address):
    serve_property(address)


@given(text=DETECTOR_LISTS)
@examples(100)
def test_calibrate_detector_list_is_one_line(text):
    calibrate_detectors_property(text)


@given(models=st.lists(MODEL_ITEMS, min_size=1, max_size=4))
@examples(60)
def test_calibrate_model_list_is_one_line(models):
    calibrate_models_property(models)


@given(models=st.lists(MODEL_ITEMS, max_size=4), junk=NOT_A_MODEL, at=st.integers(0, 4), joined=st.booleans())
@examples(60)
def test_bench_model_list_is_one_line(models, junk, at, joined):
    bench_models_property(models, junk, at, joined)


@given(text=DETECTOR_LISTS)
@examples(60)
def test_bench_detector_list_is_one_line(text):
    bench_detectors_property(text)


@given(text=st.one_of(st.none(), LABEL_TEXTS))
@examples(500)
def test_labels_give_names_or_one_line(text):
    labels_property(text)


@given(data=IMAGE_BYTES, suffix=SUFFIXES, flags=FLAGS)
@examples(500)
def test_any_image_bytes_give_an_image_or_one_reason(tmp_path, capfd, data, suffix, flags):
    image_property(tmp_path, capfd, data, suffix, flags)


@given(data=st.one_of(st.binary(max_size=4096), junk_after(VIDEO_MAGIC)), suffix=VIDEO_SUFFIXES)
@examples(60)
def test_random_bytes_are_no_video(tmp_path, capfd, data, suffix):
    video_property(tmp_path, capfd, data, suffix, random=True)


@given(data=st.data(), suffix=VIDEO_SUFFIXES)
@examples(40)
def test_damaged_videos_give_frames_or_one_line(tmp_path, capfd, seed_videos, data, suffix):
    video_property(tmp_path, capfd, data.draw(damaged(seed_videos)), suffix, random=False)


# the same properties with many more examples under -m slow: 12,300 in all ----------------------------
@pytest.mark.slow
@given(address=addresses())
@examples(3000)
def test_serve_address_gives_options_or_one_line_many(address):
    serve_property(address)


@pytest.mark.slow
@given(text=DETECTOR_LISTS)
@examples(600)
def test_calibrate_detector_list_is_one_line_many(text):
    calibrate_detectors_property(text)


@pytest.mark.slow
@given(models=st.lists(MODEL_ITEMS, min_size=1, max_size=4))
@examples(400)
def test_calibrate_model_list_is_one_line_many(models):
    calibrate_models_property(models)


@pytest.mark.slow
@given(models=st.lists(MODEL_ITEMS, max_size=4), junk=NOT_A_MODEL, at=st.integers(0, 4), joined=st.booleans())
@examples(400)
def test_bench_model_list_is_one_line_many(models, junk, at, joined):
    bench_models_property(models, junk, at, joined)


@pytest.mark.slow
@given(text=DETECTOR_LISTS)
@examples(400)
def test_bench_detector_list_is_one_line_many(text):
    bench_detectors_property(text)


@pytest.mark.slow
@given(text=st.one_of(st.none(), LABEL_TEXTS))
@examples(2000)
def test_labels_give_names_or_one_line_many(text):
    labels_property(text)


@pytest.mark.slow
@given(data=IMAGE_BYTES, suffix=SUFFIXES, flags=FLAGS)
@examples(4000)
def test_any_image_bytes_give_an_image_or_one_reason_many(tmp_path, capfd, data, suffix, flags):
    image_property(tmp_path, capfd, data, suffix, flags)


@pytest.mark.slow
@given(data=st.one_of(st.binary(max_size=4096), junk_after(VIDEO_MAGIC)), suffix=VIDEO_SUFFIXES)
@examples(1000)
def test_random_bytes_are_no_video_many(tmp_path, capfd, data, suffix):
    video_property(tmp_path, capfd, data, suffix, random=True)


@pytest.mark.slow
@given(data=st.data(), suffix=VIDEO_SUFFIXES)
@examples(500)
def test_damaged_videos_give_frames_or_one_line_many(tmp_path, capfd, seed_videos, data, suffix):
    video_property(tmp_path, capfd, data.draw(damaged(seed_videos)), suffix, random=False)
