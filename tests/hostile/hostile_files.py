"""Builders of hostile model files for test_model_files.py: the shipped TFLite models with their
metadata rewritten (or a tensor, an op, a type changed in the flatbuffer), tiny ONNX models
built with ``onnx.helper``, ``.keras`` archives built with ``zipfile`` and patched, zip bombs;
and a peak-memory probe."""

from __future__ import annotations

import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_fer.metadata import FER2013_LABELS, METADATA_KEY, ModelMeta, read_model_meta
from edge_fer.tflite_metadata import _pack_model, _unpack_model, set_metadata_entry
from edge_fer.train.keras_io import META_ENTRY

INT8 = Path(__file__).resolve().parents[2] / "edge_fer" / "models" / "edgenet_fer2013_int8.tflite"
TINY_META = ModelMeta(FER2013_LABELS, (48, 48)).to_json_text()
#: The shipped default's metadata, as JSON values (the base every hostile edit starts from).
SHIPPED = json.loads(read_model_meta(INT8).to_json_text())


def tflite_with_metadata(path: Path, text: str | bytes) -> Path:
    """The shipped int8 model with ``text`` as its edge-fer metadata."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    path.write_bytes(set_metadata_entry(INT8.read_bytes(), METADATA_KEY, data))
    return path


def tflite_edited(path: Path, source: Path, edit) -> Path:
    """``source`` with ``edit(schema, model, subgraph)`` applied to its flatbuffer object tree."""
    schema, model = _unpack_model(source.read_bytes())
    edit(schema, model, model.subgraphs[0])
    path.write_bytes(_pack_model(model))
    return path


def _opcode(schema, model, code: int) -> int:
    for i, known in enumerate(model.operatorCodes):
        if known.builtinCode == code:
            return i
    entry = schema.OperatorCodeT()
    entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), 1
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _tensor(schema, model, graph, shape, kind: int, name: bytes) -> int:
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.name = np.array(shape, np.int32), kind, name
    model.buffers.append(schema.BufferT())
    tensor.buffer = len(model.buffers) - 1
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def last_constant(value: float):
    """The constant of the final MUL (0.5: the mean of the flip-TTA branches) set to ``value``."""
    def edit(schema, model, graph):
        for index in graph.operators[-1].inputs:
            buffer = model.buffers[graph.tensors[index].buffer]
            if buffer.data is not None and len(buffer.data):
                buffer.data = np.frombuffer(np.full(len(buffer.data) // 4, value, np.float32).tobytes(), np.uint8)
    return edit


def reshaped_output(shape: list[int]):
    """A RESHAPE to ``shape`` appended after the output."""
    def edit(schema, model, graph):
        old = graph.outputs[0]
        new = _tensor(schema, model, graph, shape, graph.tensors[old].type, b"reshaped")
        graph.tensors[new].quantization = graph.tensors[old].quantization
        op = schema.OperatorT()
        op.opcodeIndex = _opcode(schema, model, schema.BuiltinOperator.RESHAPE)
        op.inputs, op.outputs = np.array([old], np.int32), np.array([new], np.int32)
        op.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
        op.builtinOptions = schema.ReshapeOptionsT()
        op.builtinOptions.newShape = list(shape)
        graph.operators.append(op)
        graph.outputs = np.array([new], np.int32)
    return edit


def uint8_input(schema, model, graph):
    """A raw uint8 input (no quantization parameters) CAST to the float input."""
    old = graph.inputs[0]
    new = _tensor(schema, model, graph, graph.tensors[old].shape, schema.TensorType.UINT8, b"raw")
    op = schema.OperatorT()
    op.opcodeIndex = _opcode(schema, model, schema.BuiltinOperator.CAST)
    op.inputs, op.outputs = np.array([new], np.int32), np.array([old], np.int32)
    graph.operators.insert(0, op)
    graph.inputs = np.array([new], np.int32)


def tiny_onnx(path: Path, *, bias=(0.0,) * 7, weight: float = 1e-4, tail: str = "",
              meta: str | None = TINY_META) -> Path:
    """A 48x48 gray classifier: scores = flatten(face) @ weight + bias, then ``tail``: ``rank3``,
    ``rank1``, ``one_row`` (one row for any batch), ``argmax`` (one int64 column), ``int64``
    (int64 scores), ``uint8`` (a raw uint8 input), ``huge`` (a 200000 x 200000 x 100 float
    tensor at inference: 16 TB, which no machine has, so the test cannot fill a big one)."""
    onnx = pytest.importorskip("onnx", reason="the ONNX rows build their models with onnx.helper")
    from onnx import TensorProto as T, helper as h, numpy_helper

    const = {"w": np.full((48 * 48, 7), weight, np.float32), "b": np.asarray(bias, np.float32),
             "axis": np.array([1], np.int64), "n": np.array([200000], np.int64), "k": np.array([100], np.int64)}
    nodes = [h.make_node("Cast", ["face"], ["float_face"], to=T.FLOAT)] if tail == "uint8" else []
    nodes += [h.make_node("Flatten", ["float_face" if tail == "uint8" else "face"], ["flat"]),
              h.make_node("MatMul", ["flat", "w"], ["product"]),
              h.make_node("Add", ["product", "b"], ["logits"])]
    out_shape, out_type = ["N", 7], T.FLOAT
    if tail == "rank3":
        nodes.append(h.make_node("Unsqueeze", ["logits", "axis"], ["scores"]))
        out_shape = ["N", 1, 7]
    elif tail in ("rank1", "one_row"):
        nodes.append(h.make_node("ReduceMean", ["logits"], ["scores"], axes=[0], keepdims=int(tail == "one_row")))
        out_shape = [1, 7] if tail == "one_row" else [7]
    elif tail == "argmax":
        nodes.append(h.make_node("ArgMax", ["logits"], ["scores"], axis=1, keepdims=1))
        out_shape, out_type = ["N", 1], T.INT64
    elif tail == "int64":
        nodes.append(h.make_node("Cast", ["logits"], ["scores"], to=T.INT64))
        out_type = T.INT64
    elif tail == "huge":
        nodes += [h.make_node("Shape", ["face"], ["batch"], end=1),
                  h.make_node("Mul", ["batch", "n"], ["rows"]),
                  h.make_node("Concat", ["rows", "n", "k"], ["dims"], axis=0),
                  h.make_node("ConstantOfShape", ["dims"], ["big"],
                              value=numpy_helper.from_array(np.array([1.0], np.float32))),
                  h.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
                  h.make_node("Add", ["logits", "total"], ["scores"])]
    else:
        nodes[-1].output[0] = "scores"
    used = {name for node in nodes for name in node.input}
    graph = h.make_graph(nodes, "hostile",
                         [h.make_tensor_value_info("face", T.UINT8 if tail == "uint8" else T.FLOAT, ["N", 48, 48, 1])],
                         [h.make_tensor_value_info("scores", out_type, out_shape)],
                         [numpy_helper.from_array(v, k) for k, v in const.items() if k in used])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        model.metadata_props.add(key=METADATA_KEY, value=meta)
    onnx.save(model, str(path))
    return path


def keras_archive(path: Path, meta: str | bytes | None = TINY_META) -> Path:
    """A ``.keras``-shaped zip: Keras's entries (placeholders) and edge-fer's ``edge_fer.json``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\0" * 256)
        if meta is not None:
            archive.writestr(META_ENTRY, meta)
    return path


def patch_zip_entry(path: Path, name: str, *, method: int | None = None, flag_bits: int = 0,
                    file_size: int | None = None) -> Path:
    """Rewrite ``name``'s local header and central directory record: its compression method,
    general-purpose flags (bit 0: encrypted) or uncompressed size (a size that lies)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(name).header_offset
    central = data.find(b"PK\x01\x02")
    while central != -1:
        length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + length] == name.encode():
            break
        central = data.find(b"PK\x01\x02", central + 46)
    for flags_at, method_at, size_at in ((local + 6, local + 8, local + 22), (central + 8, central + 10, central + 24)):
        struct.pack_into("<H", data, flags_at, struct.unpack_from("<H", data, flags_at)[0] | flag_bits)
        if method is not None:
            struct.pack_into("<H", data, method_at, method)
        if file_size is not None:
            struct.pack_into("<I", data, size_at, file_size)
    path.write_bytes(bytes(data))
    return path


def zip_bomb(path: Path, inflated: int, *, lie: bool = False) -> Path:
    """A ``.keras`` whose ``edge_fer.json`` inflates to ``inflated`` bytes (written in 1 MiB
    chunks: the test itself never holds it); ``lie``: its headers say 100 bytes."""
    keras_archive(path, meta=None)
    info = zipfile.ZipInfo(META_ENTRY)
    info.compress_type = zipfile.ZIP_DEFLATED
    chunk = b" " * (1 << 20)
    with zipfile.ZipFile(path, "a") as archive, archive.open(info, "w") as entry:
        for _ in range(inflated // len(chunk)):
            entry.write(chunk)
    return patch_zip_entry(path, META_ENTRY, file_size=100) if lie else path


def peak_bytes(call) -> tuple[object, int]:
    """``call()``'s outcome (its result or the exception it raised) and its peak Python memory."""
    tracemalloc.start()
    try:
        outcome = call()
    except Exception as exc:  # noqa: BLE001 (the caller checks which)
        outcome = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, peak
