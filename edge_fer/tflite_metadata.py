"""Standard TFLite model metadata (what MediaPipe Tasks reads): the flatbuffer writer and reader.

MediaPipe's ``ImageClassifier`` on Android, iOS and Python reads from the model file itself:
the input normalization (``NormalizationOptions`` mean/std: it feeds ``(pixel - mean) / std``
to a float input), the colour space, and the class names (``labels.txt``, an associated file
kept in a zip archive appended to the flatbuffer). This module writes that metadata with
``flatbuffers`` alone, field by field as ``metadata_schema.fbs`` (schema 1.5.0, file identifier
``M001``) lays it out, matching what MediaPipe's own ``image_classifier.MetadataWriter``
writes. Why not call that writer: in mediapipe >= 0.10.30 (1.2.2 included) it cannot be
imported (``mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`` is missing from
the wheel); tflite-support is unmaintained. tests/convert/test_phone.py checks field-for-field parity
with MediaPipe's writer and runs the result through MediaPipe's ``ImageClassifier``.

The phone variant is :mod:`converters.phone`; MediaPipe's own check, :mod:`converters.mediapipe_check`.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ConversionError, ModelError
from .fileio import write_bytes_atomic
from .metadata import ModelMeta
from .metadata_read import tflite_metadata_entries

#: The metadata entry name and file identifier MediaPipe and TFLite Support look for.
STANDARD_KEY = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
#: Every field written here exists since schema 1.0.0 (AssociatedFile.version, 1.4.1, is unused),
#: which is what MediaPipe's GetMinimumMetadataParserVersion returns for this metadata.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"

# Enum values from metadata_schema.fbs and tensorflow/lite/schema/schema.fbs.
_COLOR_SPACES = {"unknown": 0, "rgb": 1, "gray": 2}
_TENSOR_AXIS_LABELS = 2
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2
_NORMALIZATION_OPTIONS = 1
_FLOAT32, _UINT8 = 0, 3

# MediaPipe's image_classifier.MetadataWriter texts, so both writers give the same metadata.
MP_NAME = "ImageClassifier"
MP_DESCRIPTION = "Identify the most prominent object in the image from a known set of categories."
_INPUT_NAME, _INPUT_DESCRIPTION = "image", "Input image to be processed."
_OUTPUT_NAME, _OUTPUT_DESCRIPTION = "score", "Score of the labels respectively."
_LABELS_DESCRIPTION = "Labels for categories that the model can recognize."


@dataclass(frozen=True)
class StandardMetadata:
    """What :func:`read_standard_metadata` finds in a model file."""

    name: str
    description: str
    color_space: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_min: tuple[float, ...]
    input_max: tuple[float, ...]
    labels_file: str
    labels: tuple[str, ...]
    min_parser_version: str


def norm_from_meta(meta: ModelMeta) -> tuple[float, float]:
    """edge-fer's ``input = pixel * scale + offset`` as MediaPipe's ``(pixel - mean) / std``."""
    return 0.0 - meta.offset / meta.scale, 1.0 / meta.scale


# writing ---------------------------------------------------------------------------------
def add_standard_metadata(model: bytes, labels: Sequence[str], mean: Sequence[float] | float,
                          std: Sequence[float] | float, *, name: str = MP_NAME,
                          description: str = MP_DESCRIPTION, version: str = "") -> bytes:
    """``model`` with an image-classifier ``TFLITE_METADATA`` entry and ``labels.txt`` appended.

    An earlier ``TFLITE_METADATA`` entry and appended archive are replaced; other metadata
    entries (``edge_fer``, ``min_runtime_version``...) are kept. Call it last: a later rewrite
    of the flatbuffer would drop the appended ``labels.txt``.
    """
    labels = [str(v) for v in labels]
    mean = [float(v) for v in np.atleast_1d(mean)]
    std = [float(v) for v in np.atleast_1d(std)]
    if len(labels) < 2 or len(set(labels)) != len(labels) or any("\n" in v or not v for v in labels):
        raise ConversionError(f"labels must be >= 2 distinct one-line names, got {labels}")
    if len(mean) != len(std) or not all(s > 0 for s in std) or not all(np.isfinite(mean)):
        raise ConversionError(f"normalization needs as many means as stds, stds > 0; got mean {mean} std {std}")
    schema, obj = _unpack_model(model)
    graph = obj.subgraphs[0] if len(obj.subgraphs or []) == 1 else None
    if graph is None or len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ConversionError("an image classifier needs 1 subgraph with 1 input and 1 output")
    inp, out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    shape_in, shape_out = list(inp.shape), list(out.shape)
    if len(shape_in) != 4 or shape_in[3] not in (1, 3):
        raise ConversionError(f"input shape {shape_in} is not an NHWC image with 1 or 3 channels")
    if shape_out[-1] != len(labels):
        raise ConversionError(f"the model has {shape_out[-1]} outputs but {len(labels)} labels were given")
    if len(mean) not in (1, shape_in[3]):
        raise ConversionError(f"normalization has {len(mean)} values; the input has {shape_in[3]} channels")
    color = "gray" if shape_in[3] == 1 else "rgb"
    metadata = _build_metadata(labels, mean, std, color, inp.type, out.type, name, description, version)
    packed = _pack_model(_set_entry(schema, obj, STANDARD_KEY, metadata))

    archive = io.BytesIO(packed)
    archive.seek(0, io.SEEK_END)
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_STORED) as zf:  # appended after the flatbuffer
        zf.writestr(LABELS_FILE, "\n".join(labels))
    return archive.getvalue()


def set_metadata_entry(model: bytes, key: str, data: bytes | None) -> bytes:
    """``model`` with ``data`` under the flatbuffer ``metadata`` entry ``key`` (replacing an earlier
    one, others kept; None removes it), without TensorFlow. Drops what was appended after the
    flatbuffer (the associated files of standard metadata)."""
    schema, obj = _unpack_model(model)
    return _pack_model(_set_entry(schema, obj, key, data))


def _set_entry(schema, obj, key: str, data: bytes | None):
    for old in obj.metadata or []:
        if _text(old.name) == key:
            obj.buffers[old.buffer].data = None  # the replaced data; the buffer stays, empty
    kept = [m for m in (obj.metadata or []) if _text(m.name) != key]
    if data is None:
        obj.metadata = kept
        return obj
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8)
    obj.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = key, len(obj.buffers) - 1
    obj.metadata = kept + [entry]
    return obj


def write_standard_metadata(tflite_in: str | Path, tflite_out: str | Path, labels: Sequence[str],
                            mean: Sequence[float] | float, std: Sequence[float] | float, **kwargs) -> Path:
    """Write ``tflite_in`` with standard metadata to ``tflite_out`` (atomically; may be the same
    file). ``kwargs``: ``name``, ``description``, ``version`` (see :func:`add_standard_metadata`)."""
    tflite_in, tflite_out = Path(tflite_in), Path(tflite_out)
    if tflite_in.suffix.lower() != ".tflite" or not tflite_in.is_file():
        raise ModelError(f"expected an existing .tflite file, got {tflite_in}")
    if tflite_out.suffix.lower() != ".tflite":
        raise ConversionError(f"output must end in .tflite, got {tflite_out.name!r}")
    data = add_standard_metadata(tflite_in.read_bytes(), labels, mean, std, **kwargs)
    return write_model_file(tflite_out, data)


def write_model_file(path: Path, data: bytes) -> Path:
    """``data`` written atomically (edge_fer.fileio) to ``path``, whose folder must exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ConversionError(f"output folder does not exist: {path.parent}")
    return write_bytes_atomic(path, data)


def _build_metadata(labels, mean, std, color, input_type, output_type, name, description, version) -> bytes:
    """The ModelMetadata flatbuffer; slots follow metadata_schema.fbs (a union takes two)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(float(v))
        return b.EndVector()

    def tables(offsets):
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def table(num_fields, offsets=(), bytes_=()):
        """``offsets``: (slot, offset) pairs; ``bytes_``: (slot, int8 value) pairs."""
        b.StartObject(num_fields)
        for slot, off in offsets:
            if off is not None:
                b.PrependUOffsetTRelativeSlot(slot, off, 0)
        for slot, value in bytes_:
            b.PrependInt8Slot(slot, value, 0)
        return b.EndObject()

    def stats(low, high):  # Stats {max, min}
        return table(2, [(0, floats(high)), (1, floats(low))])

    # Input: ImageProperties, NormalizationOptions, value range after normalization.
    if input_type == _UINT8:
        in_stats = stats([0.0], [255.0])
    elif input_type == _FLOAT32:
        in_stats = stats([(0.0 - m) / s for m, s in zip(mean, std)], [(255.0 - m) / s for m, s in zip(mean, std)])
    else:
        in_stats = None
    image_props = table(2, bytes_=[(0, _COLOR_SPACES[color])])
    in_content = table(3, [(1, image_props)], [(0, _IMAGE_PROPERTIES)])
    norm = table(2, [(0, floats(mean)), (1, floats(std))])
    unit = table(2, [(1, norm)], [(0, _NORMALIZATION_OPTIONS)])
    in_name, in_desc = b.CreateString(_INPUT_NAME), b.CreateString(_INPUT_DESCRIPTION)
    units = tables([unit])
    input_md = table(7, [(0, in_name), (1, in_desc), (3, in_content), (4, units), (5, in_stats)])

    # Output: FeatureProperties, probabilities in [0, 1], labels.txt for the class axis.
    out_stats = stats([0.0], [1.0]) if output_type == _FLOAT32 else (
        stats([0.0], [255.0]) if output_type == _UINT8 else None)
    out_content = table(3, [(1, table(0))], [(0, _FEATURE_PROPERTIES)])
    file_name, file_desc = b.CreateString(LABELS_FILE), b.CreateString(_LABELS_DESCRIPTION)
    labels_md = table(5, [(0, file_name), (1, file_desc)], [(2, _TENSOR_AXIS_LABELS)])
    files = tables([labels_md])
    out_name, out_desc = b.CreateString(_OUTPUT_NAME), b.CreateString(_OUTPUT_DESCRIPTION)
    output_md = table(7, [(0, out_name), (1, out_desc), (3, out_content), (5, out_stats), (6, files)])

    inputs, outputs = tables([input_md]), tables([output_md])
    subgraph = table(10, [(2, inputs), (3, outputs)])
    subgraphs = tables([subgraph])
    model_name, model_desc = b.CreateString(name), b.CreateString(description)
    version_off = b.CreateString(version) if version else None
    parser = b.CreateString(MIN_PARSER_VERSION)
    root = table(8, [(0, model_name), (1, model_desc), (2, version_off), (3, subgraphs), (7, parser)])
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def _unpack_model(model: bytes):
    """The TFLite object tree (LiteRT's generated schema: no TensorFlow needed)."""
    from ai_edge_litert import schema_py_generated as schema

    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ModelError("not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct to IndexError
        raise ModelError(f"not a readable TFLite flatbuffer ({type(exc).__name__})") from None
    if any((b.offset or 0) > 1 for b in obj.buffers or []):
        raise ConversionError("models with buffers outside the flatbuffer (> 2 GB) are not supported")
    return schema, obj


def _pack_model(obj) -> bytes:
    """Serialize with weights 16-byte aligned, as the TFLite converter lays them out."""
    import flatbuffers

    class AlignedBuilder(flatbuffers.Builder):
        def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' name)
            if x.dtype != np.uint8:
                return super().CreateNumpyVector(x)
            self.StartVector(1, x.size, 16)
            self.head = self.head - x.size
            self.Bytes[self.head:self.head + x.size] = x.tobytes()
            self.vectorNumElems = x.size
            return self.EndVector()

    builder = AlignedBuilder(1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# reading ---------------------------------------------------------------------------------
def read_standard_metadata(model: bytes) -> StandardMetadata | None:
    """Decode the image-classifier fields this module writes (None when there is no entry)."""
    from flatbuffers import encode, number_types
    from flatbuffers.table import Table

    raw = tflite_metadata_entries(model).get(STANDARD_KEY)
    if raw is None:
        return None
    if raw[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{STANDARD_KEY} is not a {FILE_IDENTIFIER.decode()} metadata flatbuffer")
    buf = bytearray(raw)

    def sub(t, slot):
        off = t.Offset(4 + 2 * slot)
        return Table(t.Bytes, t.Indirect(off + t.Pos)) if off else None

    def items(t, slot):
        off = t.Offset(4 + 2 * slot) if t else 0
        if not off:
            return []
        start = t.Vector(off)
        return [Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(t.VectorLen(off))]

    def text(t, slot):
        off = t.Offset(4 + 2 * slot) if t else 0
        return t.String(off + t.Pos).decode("utf-8") if off else ""

    def floats(t, slot):
        off = t.Offset(4 + 2 * slot) if t else 0
        if not off:
            return ()
        return tuple(float(v) for v in t.GetVectorAsNumpy(number_types.Float32Flags, off))

    def byte(t, slot):
        off = t.Offset(4 + 2 * slot) if t else 0
        return t.Get(number_types.Int8Flags, off + t.Pos) if off else 0

    root = Table(buf, encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))
    graph = items(root, 3)[0]
    inp, out = items(graph, 2)[0], items(graph, 3)[0]
    props = sub(sub(inp, 3), 1)
    color = {v: k for k, v in _COLOR_SPACES.items()}.get(byte(props, 0), "unknown")
    units = items(inp, 4)
    norm = sub(units[0], 1) if units else None
    stats = sub(inp, 5)
    files = items(out, 6)
    labels_file = text(files[0], 0) if files else ""
    return StandardMetadata(text(root, 0), text(root, 1), color, floats(norm, 0), floats(norm, 1),
                            floats(stats, 1), floats(stats, 0), labels_file,
                            _read_associated(model, labels_file), text(root, 7))


def _read_associated(model: bytes, name: str) -> tuple[str, ...]:
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as zf:
            return tuple(zf.read(name).decode("utf-8").splitlines()) if name in zf.namelist() else ()
    except zipfile.BadZipFile:
        return ()
