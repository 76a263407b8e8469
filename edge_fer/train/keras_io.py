"""Save and load ``.keras`` files with edge-fer's metadata inside them, safely.

A ``.keras`` file is a zip archive; edge-fer adds one entry, ``edge_fer.json``, holding the
model's :class:`~edge_fer.metadata.ModelMeta` (class list, input size, colour, scaling).
Loading always uses ``safe_mode=True``: a model file cannot run arbitrary Python.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import ModelError, first_line
from ..fileio import atomic_path
from ..metadata import ModelMeta

META_ENTRY = "edge_fer.json"


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
    try:
        with zipfile.ZipFile(path) as archive:
            if META_ENTRY not in archive.namelist():
                return None
            return ModelMeta.from_json_text(archive.read(META_ENTRY))
    except zipfile.BadZipFile:
        raise ModelError(f"{Path(path).name}: not a valid .keras archive") from None


def load_keras(path: str | Path, allow_unsafe: bool = False):
    """Load a ``.keras`` or legacy ``.h5``/``.hdf5`` model; returns ``(model, meta_or_None)``."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise ModelError(f"model file is empty: {path}")
    import keras

    meta = read_keras_meta(path) if path.suffix == ".keras" else None
    try:
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
