"""Save and load ``.keras`` files with edge-fer's metadata inside them, safely.

A ``.keras`` file is a zip archive; edge-fer adds one entry, ``edge_fer.json``, holding the
model's :class:`~edge_fer.metadata.ModelMeta` (class list, input size, colour, scaling).
Loading always uses ``safe_mode=True``: a model file cannot run arbitrary Python. The archive
is checked and its metadata read (at most ``MAX_METADATA_BYTES`` of it) before Keras is imported.
"""

from __future__ import annotations

import contextlib
import logging
import zipfile
import zlib
from pathlib import Path

from ..errors import ModelError, first_line
from ..fileio import atomic_path
from ..metadata import MAX_METADATA_BYTES, ModelMeta, meta_from_entry

META_ENTRY = "edge_fer.json"
#: The zip compression methods Python's zipfile (which Keras uses) can read.
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated",
               zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def save_keras(model, path: str | Path, meta: ModelMeta) -> Path:
    """Write ``model`` with ``meta`` to ``path`` atomically (temp file, then rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ModelError(f"output folder does not exist: {path.parent}")
    with atomic_path(path, ".keras") as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(META_ENTRY, meta.to_json_text())
    return path


def read_keras_meta(path: str | Path) -> ModelMeta | None:
    """The metadata in a ``.keras`` archive (None if it has none), after checking that every
    entry is readable: not encrypted, a compression method zipfile reads. The metadata entry
    is read up to ``MAX_METADATA_BYTES``: one that inflates further is refused unread."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                check_zip_entry(info, path.name)
            if META_ENTRY not in archive.namelist():
                return None
            info = archive.getinfo(META_ENTRY)
            if info.file_size > MAX_METADATA_BYTES:
                raise ModelError(f"{path.name}: {META_ENTRY} inflates to {info.file_size:,} bytes: expected "
                                 f"at most {MAX_METADATA_BYTES:,}")
            with archive.open(info) as entry:
                text = entry.read(MAX_METADATA_BYTES + 1)  # a size field that lies: no further
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise ModelError(f"{path.name}: not a valid .keras archive ({first_line(exc, 80)})") from None
    return meta_from_entry(text, path.name)


def check_zip_entry(info: zipfile.ZipInfo, archive_name: str) -> None:
    """One line for a zip entry that zipfile cannot read: encrypted, or an unknown compression."""
    name = info.filename if len(info.filename) <= 60 else info.filename[:57] + "..."
    if info.flag_bits & 0x1:
        raise ModelError(f"{archive_name}: zip entry {name!r} is encrypted: expected unencrypted entries")
    if info.compress_type not in ZIP_METHODS:
        raise ModelError(f"{archive_name}: zip entry {name!r} uses compression method {info.compress_type}: "
                         f"expected one of {', '.join(f'{v} ({k})' for k, v in ZIP_METHODS.items())}")


def load_keras(path: str | Path, allow_unsafe: bool = False):
    """Load a ``.keras`` or legacy ``.h5``/``.hdf5`` model; returns ``(model, meta_or_None)``."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise ModelError(f"model file is empty: {path}")
    meta = read_keras_meta(path) if path.suffix == ".keras" else None  # before any other work
    with keras_quiet():
        import keras
    try:
        with keras_quiet():
            model = keras.saving.load_model(path, compile=False, safe_mode=not allow_unsafe)
    except ValueError as exc:
        text = str(exc)
        if "Lambda" in text or "safe_mode" in text:
            raise ModelError(f"{path.name} holds a Lambda layer (arbitrary code); refused under "
                             "safe mode: set ConvertOptions.unsafe only if you trust its source") from None
        raise ModelError(f"{path.name}: cannot load Keras model ({first_line(exc)})") from None
    except Exception as exc:  # h5py/zip errors for truncated or foreign files
        raise ModelError(f"{path.name}: not a loadable Keras model ({type(exc).__name__})") from None
    return model, meta


def keras_quiet(quiet: bool = True):
    """Hide what TensorFlow writes on fd 2 while Keras is imported, loads a model (TensorFlow
    sets up its devices: absl's "All log messages before absl::InitializeLog()", "Could not find
    cuda drivers", "failed call to cuInit") or runs one the first time; ``-v`` (edge-fer's log
    at debug level) shows them. Python exceptions still propagate."""
    if not quiet or logging.getLogger("edge_fer").isEnabledFor(logging.DEBUG):
        return contextlib.nullcontext()
    from ..backends import quiet_native_stderr

    return quiet_native_stderr()
