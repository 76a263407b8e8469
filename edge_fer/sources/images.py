"""Image files: the suffixes edge-fer reads, the built-in demo image, and one safe reader.

Every part of edge-fer that lists or decodes image files (run's ``--image``, analyze, bench,
datasets, calibration, the MediaPipe check) uses these, so they accept the same files and fail
the same way: a file that is not a regular file (a FIFO would block forever), does not decode, or
declares more pixels than OpenCV allows gives None (and a reason), never an exception. What the
decoders print themselves (libpng's ``libpng error: IDAT: CRC error``, libjpeg's ``Premature end
of JPEG file``, OpenCV's TIFF ``[ WARN:0@...]`` lines) never reaches the terminal: it becomes the
reason for a file that does not decode, and a debug line (``-v``) for one that does.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: Suffixes of the image files read from folders (OpenCV decodes them all).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
#: The built-in sample (NASA's astronaut portrait, public domain; see assets/README.md).
DEMO_IMAGE = Path(__file__).parent.parent / "assets" / "astronaut.jpg"
#: The most of a decoder's complaint quoted in a reason.
COMPLAINT_CHARS = 160


def is_image_file(path: Path) -> bool:
    """A regular file (not a folder, FIFO or device) with an image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))


def decode_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> tuple[np.ndarray | None, str]:
    """``(image, "")`` or ``(None, why)``: BGR (or gray with ``cv2.IMREAD_GRAYSCALE``), any
    path encoding; only regular files are opened. The decoder's own lines are kept off the
    terminal: a file that does not decode has the first of them as its reason (``damaged
    (libpng error: IDAT: CRC error)``); one that decodes all the same (a TIFF with a tag
    libtiff does not know, a JPEG with corrupt data) is used, and the complaint logged at debug
    level. Threads may call it: decodes take turns (see :func:`_decode_caught`)."""
    image, why, said = _decode_caught(path, flags)
    if said and image is not None:
        log.debug("%s: the decoder said: %s", path, said)
    return image, why


def decode_image_strict(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> tuple[np.ndarray | None, str]:
    """:func:`decode_image`, but a file the decoder complains about (libjpeg's "Corrupt JPEG data"
    on a damaged file, which still decodes, partly grey) is refused with that complaint as the
    reason. For training data."""
    image, why, said = _decode_caught(path, flags)
    if said and image is not None:
        return None, f"damaged ({said})"
    return image, why


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """The decoded image, or None when the file cannot be read or decoded (see :func:`decode_image`)."""
    return decode_image(path, flags)[0]


# decoding with fd 2 caught -----------------------------------------------------------------------
def _read_bytes(path: str | Path) -> tuple[np.ndarray | None, str]:
    """The file's bytes, or ``(None, why)``: only regular, non-empty files are read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        return None, getattr(exc, "strerror", None) or "cannot be read"
    if not stat.S_ISREG(mode):
        return None, "not a regular file"
    try:
        data = np.fromfile(str(path), np.uint8)
    except (OSError, ValueError) as exc:
        return None, getattr(exc, "strerror", None) or "cannot be read"
    if data.size == 0:
        return None, "the file is empty"
    return data, ""


def _imdecode(data: np.ndarray, flags: int) -> tuple[np.ndarray | None, str]:
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error as exc:  # a header declaring more than CV_IO_MAX_IMAGE_PIXELS (2^30)
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            return None, "it declares more pixels than OpenCV decodes (2^30)"
        return None, "not an image or an unsupported format"
    if image is None or image.size == 0:
        return None, "not an image or an unsupported format"
    return _conform(image, flags), ""


def _conform(image: np.ndarray, flags: int) -> np.ndarray:
    """The layout ``flags`` promise, whatever the decoder gave: OpenCV's PFM reader returns three
    channels for IMREAD_GRAYSCALE and one for IMREAD_COLOR."""
    if image.dtype != np.uint8 and flags in (cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE):
        scale = 255.0 if image.dtype.kind == "f" else 255.0 / np.iinfo(image.dtype).max
        image = np.clip(np.nan_to_num(image.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    if flags == cv2.IMREAD_GRAYSCALE and image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if flags == cv2.IMREAD_COLOR and (image.ndim == 2 or image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if flags == cv2.IMREAD_COLOR and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _decode_caught(path: str | Path, flags: int) -> tuple[np.ndarray | None, str, str]:
    """``(image, why, said)``: the decode, with what it wrote to fd 2 caught as ``said`` (its
    first line, cleaned) instead of reaching the terminal. A file that did not decode and whose
    decoder complained has the complaint as its reason.

    fd 2 is the process's: while one decode has it, a lock keeps other threads' decodes waiting
    (so fd 2 is always given back), and a line another thread writes meanwhile is caught too:
    lines of edge-fer's own (``edge-fer: ...``) are written back to the terminal afterwards."""
    data, why = _read_bytes(path)
    if data is None:
        return None, why, ""
    with _CAUGHT:
        log_fd = _decoder_log()
        saved = _swap_stderr(log_fd) if log_fd is not None else None
        if saved is None:  # no fd 2 to swap (closed, an embedded interpreter): plain decoding
            image, why = _imdecode(data, flags)
            return image, why, ""
        try:
            image, why = _imdecode(data, flags)
        finally:
            _restore_stderr(saved)
        caught = os.pread(log_fd, 1 << 16, 0).decode("utf-8", "replace")
    said = _complaint(caught)
    if said and image is None and why == "not an image or an unsupported format":
        why = f"damaged ({said})"
    return image, why, said


_CAUGHT = threading.Lock()


def _new_lock_after_fork() -> None:  # a child forked while another thread decoded: not locked out
    global _CAUGHT
    _CAUGHT = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)
#: The process id and the fd of the file that catches a decoder's output (a forked child makes
#: its own: the parent's is shared with it).
_DECODER_LOG: dict[int, int] = {}


def _decoder_log() -> int | None:
    """One anonymous temp file per process that catches a decoder's fd-2 output, emptied."""
    pid = os.getpid()
    if pid not in _DECODER_LOG:
        try:
            handle, name = tempfile.mkstemp(prefix="edge-fer-decoder-")
            os.unlink(name)
        except OSError:
            return None
        _DECODER_LOG.clear()  # (a forked child's copy of the parent's fd stays open: harmless)
        _DECODER_LOG[pid] = handle
    try:
        os.ftruncate(_DECODER_LOG[pid], 0)
        os.lseek(_DECODER_LOG[pid], 0, os.SEEK_SET)
    except OSError:
        return None
    return _DECODER_LOG[pid]


def _swap_stderr(log_fd: int) -> int | None:
    """Point fd 2 at ``log_fd``; returns a copy of the old fd 2 (None where there is none)."""
    stream = sys.stderr
    try:
        if stream is not None:
            stream.flush()  # Python's buffered text goes where it was meant to, before the swap
    except (OSError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:
        return None
    try:
        os.dup2(log_fd, 2)
    except OSError:
        os.close(saved)
        return None
    return saved


def _restore_stderr(saved: int) -> None:
    stream = sys.stderr
    try:
        if stream is not None:
            stream.flush()  # another thread's Python writes meanwhile: into the log, handled below
    except (OSError, ValueError):
        pass
    os.dup2(saved, 2)
    os.close(saved)


#: What OpenCV puts around a decoder's message: its log prefix and the function that logs
#: (``[ WARN:0@0.385] global grfmt_tiff.cpp:122 TIFF_Warning``), and an exception's text
#: (``imdecode_(''): can't read data: OpenCV(4.14.0) /io/.../bitstrm.cpp:59: error:
#: (-2:Unspecified error) Unexpected end of input stream in function 'readMore'``).
_OPENCV_NOISE = (re.compile(r"^\[\s*[A-Z]+:[^\]]*\]\s*(global\s+)?\S+:\d+\s+\S+\s+"),
                 re.compile(r"^imdecode_\(''\):\s*"),
                 re.compile(r"OpenCV\([^)]*\)\s+\S+:\d+:\s+error:\s+\(-?\d+:[^)]*\)\s*"),
                 re.compile(r"\s+in function '[^']*'\s*$"))


def _complaint(caught: str) -> str:
    """The decoder's first line, without OpenCV's log prefix, printable and at most
    :data:`COMPLAINT_CHARS` long; edge-fer's own lines that another thread wrote meanwhile are
    written back to stderr, not taken for the decoder's."""
    lines = [line.strip() for line in caught.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("edge-fer: ")]
    if ours and sys.stderr is not None:
        try:
            sys.stderr.write("".join(line + "\n" for line in ours))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
    theirs = [line for line in lines if not line.startswith("edge-fer: ")]
    if not theirs:
        return ""
    text = theirs[0]
    for noise in _OPENCV_NOISE:
        text = noise.sub("", text)
    text = "".join(c if c.isprintable() else " " for c in text).strip() or "unreadable output"
    return text if len(text) <= COMPLAINT_CHARS else text[:COMPLAINT_CHARS - 3] + "..."
