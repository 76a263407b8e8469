"""Reading the metadata entries out of model containers, with no model runtime where possible:
a TFLite flatbuffer's ``metadata`` list, an ONNX file's ``metadata_props`` (the writers:
:mod:`edge_fer.metadata_write`; what the entries mean: :mod:`edge_fer.metadata`)."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError, first_line


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
        if count > len(table.Bytes) // 4:  # a corrupt length: do not build billions of tables
            raise ValueError(f"a vector of {count} tables in {len(table.Bytes)} bytes")
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
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct.error to IndexError
        raise ModelError(f"not a readable TFLite flatbuffer ({type(exc).__name__})") from None


def onnx_metadata_props(path: Path) -> dict[str, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only, as the ONNX backend: no graph-cleanup warnings
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"not a loadable ONNX model ({first_line(exc)})") from None
    return dict(session.get_modelmeta().custom_metadata_map)
