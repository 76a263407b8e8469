"""Property-based tests over the media openers (issue 24, "What must stay"): for any bytes a
file holds, edge-fer gives an image, frames or one reason; never another exception, a traceback,
or a decoder's own line on the terminal. (The option parsers' properties:
test_parser_properties.py.)

* The image reader (``decode_image``, ``ImageSource``) on random bytes, on a real image in 16
  encodings (14 formats) with bytes flipped, inserted, cut or overwritten, on format signatures
  followed by junk: an image in the layout asked for, or one reason (InputError); nothing on fd 2.
* ``VideoSource`` on random bytes (InputError) and on damaged real videos (frames or InputError),
  nothing on fd 2.

The normal suite runs a bounded number of examples per property (a few seconds in all);
``-m slow`` runs the same properties with 5,500 examples in all.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property-based tests need hypothesis (the test extra)")
from hypothesis import event, strategies as st  # noqa: E402
from property_settings import bounded_and_many, one_line, only_edge_fer_lines  # noqa: E402

from edge_fer.errors import InputError  # noqa: E402
from edge_fer.sources.capture import ImageSource, VideoSource  # noqa: E402
from edge_fer.sources.images import decode_image  # noqa: E402

from conftest import MEDIA  # noqa: E402

JUSTIN = MEDIA / "justin.jpg"


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


def image_property(tmp_path: Path, capfd, data: bytes, suffix: str, flags: int) -> None:
    path = tmp_path / f"x{suffix}"
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


def random_video_property(tmp_path, capfd, data: bytes, suffix: str) -> None:
    video_property(tmp_path, capfd, data, suffix, random=True)


def damaged_video_property(tmp_path, capfd, seed_videos, data, suffix: str) -> None:
    video_property(tmp_path, capfd, data.draw(damaged(seed_videos)), suffix, random=False)


# the tests: bounded in the suite, many more examples under -m slow --------------------------------
test_any_image_bytes_give_an_image_or_one_reason, test_any_image_bytes_give_an_image_or_one_reason_many = \
    bounded_and_many(500, 4000, data=IMAGE_BYTES, suffix=SUFFIXES, flags=FLAGS)(image_property)
test_random_bytes_are_no_video, test_random_bytes_are_no_video_many = \
    bounded_and_many(60, 1000, data=st.one_of(st.binary(max_size=4096), junk_after(VIDEO_MAGIC)),
                     suffix=VIDEO_SUFFIXES)(random_video_property)
test_damaged_videos_give_frames_or_one_line, test_damaged_videos_give_frames_or_one_line_many = \
    bounded_and_many(40, 500, data=st.data(), suffix=VIDEO_SUFFIXES)(damaged_video_property)
