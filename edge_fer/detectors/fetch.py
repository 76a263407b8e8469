"""Detector files: where each comes from, its pinned size and sha256, and a verified fetch.

:func:`fetch_detectors` downloads them (on a machine with internet) or copies them from a folder
(``source_dir``, the offline path), checks every file against its pins and writes it with
edge_fer.fileio's atomic write (a temp file in the destination folder, synced, renamed): a
wrong, truncated or HTML file is never saved. Nothing else in edge-fer downloads anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import DetectorError, OptionsError, OutputError
from ..fileio import atomic_path, file_sha256
from . import DETECTOR_FILES, detector_search_dirs

CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """``name``: the file's name in the cache folder; ``pins``: accepted (size_bytes, sha256);
    ``upstream_name``: its name at ``url`` (a ``source_dir`` may hold it under either name)."""

    name: str
    url: str
    pins: tuple[tuple[int, str], ...]
    upstream_name: str


# Pins computed from the files in shared/data/detectors (each also matches digests that other
# public projects pin for the same URL).
REMOTE_FILES = {f.name: f for f in (
    RemoteFile("res10_300x300_ssd_iter_140000.caffemodel",
               "https://raw.githubusercontent.com/opencv/opencv_3rdparty/dnn_samples_face_detector_20170830/"
               "res10_300x300_ssd_iter_140000.caffemodel",
               ((10666211, "2a56a11a57a4a295956b0660b4a3d76bbdca2206c4961cea8efe7d95c7cb2f2d"),),
               "res10_300x300_ssd_iter_140000.caffemodel"),
    # The URL serves LF line ends (28,092 bytes); copies saved on Windows have CRLF (29,881 bytes,
    # the shared copy). Same text otherwise: both are accepted.
    RemoteFile("res10_300x300_ssd_deploy.prototxt",
               "https://raw.githubusercontent.com/opencv/opencv/4.0.1/samples/dnn/face_detector/deploy.prototxt",
               ((28092, "f62621cac923d6f37bd669298c428bb7ee72233b5f8c3389bb893e35ebbcf795"),
                (29881, "34d850436faf158ca4e690533ba27c1decf29653559299d80db9274146332ca7")),
               "deploy.prototxt"),
    RemoteFile("face_detection_yunet_2023mar.onnx",
               "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
               "face_detection_yunet_2023mar.onnx",
               ((232589, "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"),),
               "face_detection_yunet_2023mar.onnx"),
    RemoteFile("blazeface_short_range.tflite",
               "https://storage.googleapis.com/mediapipe-assets/face_detection_short_range.tflite"
               "?generation=1677044301978921",
               ((229714, "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),),
               "face_detection_short_range.tflite"),
    RemoteFile("ultralight_rfb_320.onnx",
               "https://raw.githubusercontent.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/master/"
               "models/onnx/version-RFB-320.onnx",
               ((1270727, "34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017"),),
               "version-RFB-320.onnx"),
)}

FETCHABLE = tuple(DETECTOR_FILES)  # haar ships with OpenCV


@dataclass(frozen=True)
class FetchOptions:
    """``detectors``: which detectors' files (empty: all). ``dest_dir``: None is the user cache
    folder the detectors look in. ``source_dir``: copy from this folder instead of downloading.
    ``force``: replace files that are already there and verified."""

    detectors: tuple[str, ...] = FETCHABLE
    dest_dir: str | None = None
    source_dir: str | None = None
    force: bool = False
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in self.detectors:
            if name not in FETCHABLE:
                raise DetectorError(f"cannot fetch detector {name!r}: expected one of {', '.join(FETCHABLE)} "
                                    "(haar ships with OpenCV)")
        if self.source_dir is not None and not Path(self.source_dir).is_dir():
            raise DetectorError(f"FetchOptions.source_dir={self.source_dir!r}: folder not found")
        if self.timeout_s <= 0:
            raise OptionsError(f"FetchOptions.timeout_s={self.timeout_s!r}: expected > 0")


@dataclass(frozen=True)
class FetchedFile:
    """``action``: downloaded, copied, or present (already there and verified)."""

    path: Path
    size_bytes: int
    sha256: str
    action: str


def file_digest(path: Path) -> tuple[int, str]:
    """(size_bytes, sha256) of a file."""
    return path.stat().st_size, file_sha256(path)


def _read_file(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            yield from iter(lambda: f.read(CHUNK_BYTES), b"")
    except OSError as exc:
        raise DetectorError(f"cannot read {path}: {exc.strerror}") from None


def _read_url(url: str, timeout_s: float) -> Iterator[bytes]:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            yield from iter(lambda: response.read(CHUNK_BYTES), b"")
    except OSError as exc:  # URLError, HTTPError, timeouts, resets
        reason = getattr(exc, "reason", None) or exc
        raise DetectorError(f"download of {url} failed ({reason}); download it another way and run "
                            "`edge-fer fetch-detectors --from FOLDER`") from None


def _save_verified(chunks: Iterator[bytes], remote: RemoteFile, dest_dir: Path, origin: str) -> tuple[int, str]:
    """Write ``chunks`` to ``dest_dir/remote.name`` if they match a pin; else leave nothing
    (fileio's atomic write: a temp file beside it, synced, renamed only when verified)."""
    max_bytes = max(size for size, _ in remote.pins)
    try:
        with atomic_path(dest_dir / remote.name, ".part") as tmp, tmp.open("wb") as out:
            digest, size = hashlib.sha256(), 0
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise DetectorError(f"{origin}: larger than the pinned {remote.name} ({max_bytes} bytes); not saved")
                digest.update(chunk)  # hashed as it streams: the download is read once
                out.write(chunk)
            if (size, digest.hexdigest()) not in remote.pins:
                want = " or ".join(f"{s} bytes, sha256 {h[:16]}..." for s, h in remote.pins)
                raise DetectorError(f"{origin}: {size} bytes, sha256 {digest.hexdigest()[:16]}... is not the pinned "
                                    f"{remote.name} ({want}); not saved")
    except OutputError as exc:  # writing (not reading: those are DetectorErrors already)
        raise DetectorError(str(exc)) from None
    return size, digest.hexdigest()


def fetch_detectors(options: FetchOptions = FetchOptions()) -> list[FetchedFile]:
    """Put every file the chosen detectors need into the destination folder, verified."""
    dest = Path(options.dest_dir) if options.dest_dir else detector_search_dirs()[-1]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DetectorError(f"cannot create the detector folder {dest}: {exc.strerror}") from None
    names = dict.fromkeys(f for d in (options.detectors or FETCHABLE) for f in DETECTOR_FILES[d])
    results = []
    for name in names:
        remote, target = REMOTE_FILES[name], dest / name
        if target.is_file() and not options.force:
            size_sha = file_digest(target)
            if size_sha in remote.pins:
                results.append(FetchedFile(target, *size_sha, "present"))
                continue
        if options.source_dir:
            folder = Path(options.source_dir)
            found = [folder / n for n in (name, remote.upstream_name) if (folder / n).is_file()]
            if not found:
                raise DetectorError(f"{name} not found in {folder} (nor as {remote.upstream_name})")
            size, sha = _save_verified(_read_file(found[0]), remote, dest, str(found[0]))
            results.append(FetchedFile(target, size, sha, "copied"))
        else:
            size, sha = _save_verified(_read_url(remote.url, options.timeout_s), remote, dest, remote.url)
            results.append(FetchedFile(target, size, sha, "downloaded"))
    return results
