"""The detector files that ship inside edge-fer (``detectors/models/``), checked against their
manifest (size and sha256) when loaded: YuNet (MIT) and BlazeFace short-range (Apache-2.0).
Their license texts are in ``detectors/models/LICENSES``."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..errors import DetectorError

MODELS_DIR = Path(__file__).parent / "models"
MANIFEST = MODELS_DIR / "MANIFEST.json"


@lru_cache(maxsize=1)
def manifest() -> dict[str, dict]:
    """detector name -> its manifest entry (file, size_bytes, sha256, source, license)."""
    try:
        entries = json.loads(MANIFEST.read_text())["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise DetectorError(f"the package's detector manifest {MANIFEST} is unreadable ({exc}): reinstall edge-fer") from None
    return {e["detector"]: e for e in entries}


def shipped_detectors() -> tuple[str, ...]:
    return tuple(manifest())


@lru_cache(maxsize=None)
def shipped_file(name: str) -> Path | None:
    """The verified shipped file of detector ``name``, or None if edge-fer ships none for it.
    A file that does not match the manifest is an error (a broken install), never used."""
    from ..fileio import file_sha256

    entry = manifest().get(name)
    if entry is None:
        return None
    path = MODELS_DIR / entry["file"]
    if not path.is_file():
        raise DetectorError(f"edge-fer's {name} file {path} is missing: reinstall edge-fer")
    size = path.stat().st_size
    if size != entry["size_bytes"] or file_sha256(path) != entry["sha256"]:
        raise DetectorError(f"edge-fer's {name} file {path} does not match its manifest "
                            f"({size} bytes; expected {entry['size_bytes']} and sha256 {entry['sha256'][:12]}...): "
                            "reinstall edge-fer")
    return path
