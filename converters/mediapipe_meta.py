"""Standard TFLite model metadata (what MediaPipe Tasks reads) and the phone variant.

MediaPipe's ``ImageClassifier`` on Android, iOS and Python reads from the model file itself:
the input normalization (``NormalizationOptions`` mean/std: it feeds ``(pixel - mean) / std``
to a float input), the colour space, and the class names (``labels.txt``, an associated file
kept in a zip archive appended to the flatbuffer). This module writes that metadata with
``flatbuffers`` alone, field by field as ``metadata_schema.fbs`` (schema 1.5.0, file identifier
``M001``) lays it out, matching what MediaPipe's own ``image_classifier.MetadataWriter``
writes. Why not call that writer: in mediapipe >= 0.10.30 (1.2.2 included) it cannot be
imported (``mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`` is missing from
the wheel); tflite-support is unmaintained. tests/test_phone.py checks field-for-field parity
with MediaPipe's writer and runs the result through MediaPipe's ``ImageClassifier``.

MediaPipe's classifier feeds only 3- or 4-channel images, so a grayscale model gets a *phone
variant*: RGB input at the model's size, with ``0.299 R + 0.587 G + 0.114 B`` (OpenCV's
``COLOR_RGB2GRAY`` weights) inside the graph (:func:`make_phone_variant`, needs TensorFlow).

MediaPipe itself (which pulls ``opencv-contrib-python``, clashing with
``opencv-python-headless``) lives in its own environment; :func:`find_mediapipe_python`
finds it and :func:`mediapipe_classify` runs its classifier there in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_fer.errors import ConversionError, ModelError
from edge_fer.fileio import write_bytes_atomic
from edge_fer.metadata import METADATA_KEY, ModelMeta, tflite_metadata_entries

#: The metadata entry name and file identifier MediaPipe and TFLite Support look for.
STANDARD_KEY = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
#: Every field written here exists since schema 1.0.0 (AssociatedFile.version, 1.4.1, is unused),
#: which is what MediaPipe's GetMinimumMetadataParserVersion returns for this metadata.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
#: OpenCV's COLOR_RGB2GRAY weights (ITU-R BT.601); they add up to 1.
GRAY_WEIGHTS_RGB = (0.299, 0.587, 0.114)
PHONE_QUANTIZATIONS = ("none", "fp16", "dynamic")

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
    return write_atomic(tflite_out, data)


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, then rename it over ``path``."""
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


# phone variant -----------------------------------------------------------------------------
def make_phone_variant(source: str | Path, out: str | Path, *, meta: ModelMeta | None = None,
                       quantize: str = "none", unsafe: bool = False) -> Path:
    """A TFLite file MediaPipe's ``ImageClassifier`` can feed, from a Keras model.

    Input: float32 RGB at the model's size, raw pixels 0..255 (standard metadata mean/std fold
    in the model's ``scale``/``offset``); grayscale models get the RGB->gray weighted sum as a
    frozen 1x1 convolution in front, BGR models a channel swap. Output keeps both metadata sets:
    ``edge_fer`` (colour ``rgb``) so edge-fer runs the same file, and the standard one.
    ``quantize``: none (float32), fp16 or dynamic (int8 weights, float compute).
    """
    from edge_fer.train.keras_io import load_keras

    out = Path(out)
    if quantize not in PHONE_QUANTIZATIONS:
        raise ConversionError(f"phone variant quantization must be one of {PHONE_QUANTIZATIONS}, got {quantize!r}")
    if out.suffix.lower() != ".tflite":
        raise ConversionError(f"phone variant output must end in .tflite, got {out.name!r}")
    model, file_meta = load_keras(source, allow_unsafe=unsafe)
    meta = meta or file_meta
    if meta is None:
        raise ConversionError(f"{Path(source).name} carries no edge-fer metadata: pass meta=ModelMeta(...)")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or tuple(shape[1:]) != (*meta.input_size_hw, meta.channels):
        raise ConversionError(f"{Path(source).name}: input {shape} does not match its metadata "
                              f"{meta.input_size_hw} {meta.color}")
    wrapper = _rgb_wrapper(model, meta)
    data = _keras_to_tflite(wrapper, quantize, Path(source).name)
    phone_meta = meta.with_(color="rgb", quantization=quantize,
                            name=f"{meta.name}-phone" if meta.name else "phone")
    data = set_metadata_entry(data, METADATA_KEY, phone_meta.to_json_text().encode("utf-8"))
    mean, std = norm_from_meta(meta)
    data = add_standard_metadata(data, meta.labels, mean, std, name=phone_meta.name or MP_NAME,
                                 description=f"Facial expression classifier ({', '.join(meta.labels)}); "
                                             "RGB input, raw pixels.")
    return write_atomic(out, data)


def _rgb_wrapper(model, meta: ModelMeta):
    """Keras model: RGB image (raw pixels) -> ``model``'s colour -> ``model``."""
    import keras

    h, w = meta.input_size_hw
    image = keras.Input((h, w, 3), name="image", dtype="float32")
    if meta.color == "rgb":
        return keras.Model(image, model(image), name="phone")
    if meta.color == "gray":
        kernel = np.array(GRAY_WEIGHTS_RGB, np.float32).reshape(1, 1, 3, 1)
    else:  # bgr: swap channels 0 and 2
        kernel = np.eye(3, dtype=np.float32)[:, ::-1].reshape(1, 1, 3, 3)
    convert = keras.layers.Conv2D(kernel.shape[-1], 1, use_bias=False, trainable=False, name=f"rgb_to_{meta.color}")
    x = convert(image)
    convert.set_weights([kernel])
    return keras.Model(image, model(x), name="phone")


def _keras_to_tflite(model, quantize: str, source_name: str) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the MLIR converter raises ConverterError/RuntimeError with long texts
        lines = str(exc).strip().splitlines()
        raise ConversionError(f"TFLite converter failed on {source_name} (phone variant): "
                              f"{lines[0][:200] if lines else type(exc).__name__}") from None


# MediaPipe, in its own environment ------------------------------------------------------------
def find_mediapipe_python() -> str | None:
    """A Python that can ``import mediapipe``: $EDGE_FER_MEDIAPIPE_PYTHON, the repo's
    ``.venv-mp``, or this interpreter; None when there is none."""
    repo = Path(__file__).resolve().parents[1]
    candidates = [os.environ.get("EDGE_FER_MEDIAPIPE_PYTHON"), str(repo / ".venv-mp" / "bin" / "python"),
                  sys.executable]
    for python in candidates:
        if not python or not Path(python).exists():
            continue
        try:
            probe = subprocess.run([python, "-c", "import mediapipe"], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return python
    return None


_CLASSIFY_SCRIPT = r"""
import json, sys
import numpy as np
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision
args = json.loads(sys.stdin.read())
options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=args["model"]),
                                        max_results=-1)
out = []
with vision.ImageClassifier.create_from_options(options) as classifier:
    for rgb in np.load(args["images"]):
        rgb = np.ascontiguousarray(rgb)
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        out.append({c.category_name: float(c.score) for c in result.classifications[0].categories})
print(json.dumps({"version": mp.__version__, "scores": out}))
"""


def mediapipe_classify(model_path: str | Path, images_rgb: np.ndarray, python: str | None = None,
                       timeout_s: float = 600) -> tuple[str, list[dict[str, float]]]:
    """Run MediaPipe's ``ImageClassifier`` on uint8 RGB images (N, H, W, 3), as a phone app
    passes camera frames. Returns (mediapipe version, one {label: score} per image, all classes)."""
    python = python or find_mediapipe_python()
    if python is None:
        raise ConversionError("MediaPipe not found: python3.11 -m venv .venv-mp && .venv-mp/bin/pip install "
                              "mediapipe (or set EDGE_FER_MEDIAPIPE_PYTHON)")
    images_rgb = np.asarray(images_rgb)
    if images_rgb.dtype != np.uint8 or images_rgb.ndim != 4 or images_rgb.shape[-1] != 3:
        raise ConversionError(f"images must be uint8 (N, H, W, 3) RGB, got {images_rgb.dtype} {images_rgb.shape}")
    with tempfile.TemporaryDirectory(prefix="edge-fer-mp-") as tmp:
        np.save(Path(tmp) / "images.npy", images_rgb)
        request = json.dumps({"model": str(Path(model_path).resolve()), "images": str(Path(tmp) / "images.npy")})
        run = subprocess.run([python, "-c", _CLASSIFY_SCRIPT], input=request, capture_output=True, text=True,
                             timeout=timeout_s)
    if run.returncode != 0:
        tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConversionError(f"MediaPipe ImageClassifier failed on {Path(model_path).name}: {tail[:300]}")
    reply = json.loads(run.stdout.strip().splitlines()[-1])
    return reply["version"], reply["scores"]


# command line ------------------------------------------------------------------------------------
def _main(argv=None) -> int:
    """``python -m converters.mediapipe_meta phone SOURCE OUT`` / ``check MODEL FACES``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m converters.mediapipe_meta", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    phone = sub.add_parser("phone", help="write the phone variant of a Keras model")
    phone.add_argument("source", help=".keras (with edge-fer metadata) or .h5")
    phone.add_argument("out", help="output .tflite")
    phone.add_argument("--quantize", default="none", choices=PHONE_QUANTIZATIONS)
    check = sub.add_parser("check", help="top-1 agreement of MediaPipe's ImageClassifier with edge-fer")
    check.add_argument("model", help="a .tflite with standard and edge-fer metadata (RGB input)")
    check.add_argument("faces", help="folder-per-class face crops, e.g. fer2013/val")
    check.add_argument("--count", type=int, default=500)
    check.add_argument("--against", help="another model edge-fer runs for the comparison (default: MODEL)")
    args = parser.parse_args(argv)
    try:
        if args.command == "phone":
            path = make_phone_variant(args.source, args.out, quantize=args.quantize)
            std = read_standard_metadata(path.read_bytes())
            print(f"wrote {path} ({path.stat().st_size} bytes): RGB input, mean {std.mean} std {std.std}, "
                  f"labels {','.join(std.labels)}")
        else:
            print(json.dumps(check_agreement(args.model, args.faces, args.count, args.against)))
    except (ConversionError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def check_agreement(model: str | Path, faces: str | Path, count: int = 500, against: str | Path | None = None,
                    seed: int = 0) -> dict:
    """MediaPipe's top-1 on ``count`` face crops (gray or colour files, fed as RGB) vs edge-fer's
    runtime on ``against`` (default: the same file)."""
    import cv2

    from edge_fer.classifier import ClassifierOptions, ExpressionClassifier

    paths = sorted(p for p in Path(faces).glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise ConversionError(f"no face crops (class folders of .jpg/.png) in {faces}")
    picks = np.random.default_rng(seed).choice(len(paths), min(count, len(paths)), replace=False)
    chosen = [paths[i] for i in sorted(picks)]
    crops = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in chosen]
    sizes = {c.shape[:2] for c in crops if c is not None}
    if any(c is None for c in crops) or len(sizes) != 1:
        raise ConversionError(f"face crops in {faces} must be readable images of one size, got sizes {sorted(sizes)}")
    version, scores = mediapipe_classify(model, np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops]))
    with ExpressionClassifier.create_from_options(ClassifierOptions(against or model, num_threads=1)) as clf:
        ours = [clf.meta.labels[i] for i in clf.predict_proba(crops).argmax(1)]
    theirs = [max(s, key=s.get) for s in scores]
    truth = [p.parent.name for p in chosen]
    return {"mediapipe": version, "faces": len(chosen), "agreement": float(np.mean([a == b for a, b in zip(ours, theirs)])),
            "accuracy_mediapipe": float(np.mean([a == b for a, b in zip(theirs, truth)])),
            "accuracy_edge_fer": float(np.mean([a == b for a, b in zip(ours, truth)]))}


if __name__ == "__main__":
    sys.exit(_main())
