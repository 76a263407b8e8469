"""Image files: the suffixes edge-fer reads, the built-in demo image, and one safe reader.

Every part of edge-fer that lists or decodes image files (run's ``--image``, bench, datasets,
calibration, the MediaPipe check) uses these, so they accept the same files and fail the same
way: a file that is not a regular file (a FIFO would block forever), does not decode, or
declares more pixels than OpenCV allows gives None (and a reason), never an exception.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

#: Suffixes of the image files read from folders (OpenCV decodes them all).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
#: The built-in sample (NASA's astronaut portrait, public domain; see assets/README.md).
DEMO_IMAGE = Path(__file__).parent.parent / "assets" / "astronaut.jpg"


def is_image_file(path: Path) -> bool:
    """A regular file (not a folder, FIFO or device) with an image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))


def decode_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> tuple[np.ndarray | None, str]:
    """``(image, "")`` or ``(None, why)``: BGR (or gray with ``cv2.IMREAD_GRAYSCALE``), any
    path encoding; only regular files are opened."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return None, exc.strerror or "cannot be read"
    if not stat.S_ISREG(mode):
        return None, "not a regular file"
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as exc:
        return None, exc.strerror or "cannot be read"
    if data.size == 0:
        return None, "the file is empty"
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error as exc:  # a header declaring more than CV_IO_MAX_IMAGE_PIXELS (2^30)
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            return None, "it declares more pixels than OpenCV decodes (2^30)"
        return None, "not an image or an unsupported format"
    if image is None or image.size == 0:
        return None, "not an image or an unsupported format"
    return image, ""


def decode_image_strict(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> tuple[np.ndarray | None, str]:
    """:func:`decode_image`, but a file the decoder complains about (libjpeg's "Premature end of
    JPEG file" on a truncated file, which still decodes, half grey) is refused with that complaint
    as the reason, and nothing reaches the terminal. For training data, read by one thread:
    whatever any thread writes to fd 2 meanwhile is taken for the decoder's."""
    log = _decoder_log()
    if log is None:  # no file descriptors to swap (an embedded interpreter): plain decoding
        return decode_image(path, flags)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(2)
    os.ftruncate(log, 0)
    os.lseek(log, 0, os.SEEK_SET)
    os.dup2(log, 2)
    try:
        image, why = decode_image(path, flags)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    said = os.pread(log, 4096, 0).decode("utf-8", "replace").strip()
    if said and image is not None:
        return None, f"damaged ({said.splitlines()[0].strip()})"
    return image, why


_DECODER_LOG: list[int] = []


def _decoder_log() -> int | None:
    """One anonymous temp file per process that catches a decoder's fd-2 output."""
    if not _DECODER_LOG:
        try:
            handle, name = tempfile.mkstemp(prefix="edge-fer-decoder-")
            os.unlink(name)
            _DECODER_LOG.append(handle)
        except OSError:
            return None
    return _DECODER_LOG[0]


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """The decoded image, or None when the file cannot be read or decoded (see :func:`decode_image`)."""
    return decode_image(path, flags)[0]
