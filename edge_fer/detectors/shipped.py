"""The detector files that ship inside edge-fer (``detectors/models/``), checked against their
manifest (size and sha256) when loaded: YuNet (MIT), BlazeFace short-range (Apache-2.0) and
MTCNN's three nets (MIT, from facenet-pytorch).
Their license texts are in ``detectors/models/LICENSES``."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..errors import DetectorError

MODELS_DIR = Path(__file__).parent / "models"
MANIFEST = MODELS_DIR / "MANIFEST.json"


@lru_cache(maxsize=1)
def manifest() -> dict[str, list[dict]]:
    """detector name -> its manifest entries (file, size_bytes, sha256, source, license), one
    per file, in the order the detector loads them."""
    try:
        entries = json.loads(MANIFEST.read_text())["files"]
        by_detector: dict[str, list[dict]] = {}
        for entry in entries:
            by_detector.setdefault(entry["detector"], []).append(entry)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DetectorError(f"the package's detector manifest {MANIFEST} is unreadable ({exc}): reinstall edge-fer") from None
    return by_detector


def shipped_detectors() -> tuple[str, ...]:
    return tuple(manifest())


@lru_cache(maxsize=None)
def shipped_files(name: str) -> list[Path] | None:
    """The verified shipped files of detector ``name``, or None if edge-fer ships none for it.
    A file that does not match the manifest is an error (a broken install), never used."""
    from ..fileio import file_sha256

    entries = manifest().get(name)
    if entries is None:
        return None
    paths = []
    for entry in entries:
        path = MODELS_DIR / entry["file"]
        if not path.is_file():
            raise DetectorError(f"edge-fer's {name} file {path} is missing: reinstall edge-fer")
        size = path.stat().st_size
        if size != entry["size_bytes"] or file_sha256(path) != entry["sha256"]:
            raise DetectorError(f"edge-fer's {name} file {path} does not match its manifest "
                                f"({size} bytes; expected {entry['size_bytes']} and sha256 {entry['sha256'][:12]}...): "
                                "reinstall edge-fer")
        paths.append(path)
    return paths
