"""Writing edge-fer's metadata into model files (the reading side is :mod:`edge_fer.metadata`):
the JSON entry of a TFLite flatbuffer (with the standard image-classifier metadata MediaPipe
reads, :mod:`edge_fer.tflite_metadata`) or an ONNX file's ``metadata_props``, and
:func:`write_model_fields` to change fields of a finished file in place (the framing table, the
temperature). Workstation code: it needs ``flatbuffers`` and, for ONNX, ``onnx``.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError
from .fileio import atomic_path
from .metadata import METADATA_KEY, ModelMeta, read_model_meta


def add_tflite_metadata(model: bytes, meta: ModelMeta) -> bytes:
    """``model`` with ``meta``'s JSON under the flatbuffer ``metadata`` entry ``edge_fer`` (an
    earlier one replaced, others kept), then the standard TFLite image-classifier metadata
    (labels, normalization) that MediaPipe Tasks and Android tooling read. The standard one goes
    last: it appends ``labels.txt`` after the flatbuffer, which a later rewrite would drop."""
    from .tflite_metadata import add_standard_metadata, norm_from_meta, set_metadata_entry

    data = set_metadata_entry(model, METADATA_KEY, meta.to_json_text().encode("utf-8"))
    return add_standard_metadata(data, meta.labels, *norm_from_meta(meta))


def add_onnx_metadata(path: Path, meta: ModelMeta) -> None:
    """Set ``metadata_props['edge_fer']`` to ``meta``'s JSON, in place."""
    import onnx

    model = onnx.load(str(path))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    for key, value in kept + [(METADATA_KEY, meta.to_json_text())]:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def write_model_fields(path: str | Path, **fields) -> Path:
    """Set ``fields`` of the edge-fer metadata of a .tflite or .onnx file, atomically (the other
    metadata, and a TFLite file's standard metadata, kept); checked by reading it back."""
    path = Path(path)
    meta = read_model_meta(path)
    if meta is None:
        raise ModelError(f"{path.name} carries no edge-fer metadata to put {', '.join(fields)} into "
                         "(convert it first)")
    wanted = meta.with_(**fields)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if path.suffix.lower() == ".tflite":
            tmp.write_bytes(add_tflite_metadata(path.read_bytes(), wanted))
        else:
            tmp.write_bytes(path.read_bytes())
            add_onnx_metadata(tmp, wanted)
        if read_model_meta(tmp) != wanted:
            raise ModelError(f"{path.name}: {', '.join(fields)} did not read back as written")
    return path
