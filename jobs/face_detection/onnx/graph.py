"""A minimal reader of ONNX model files: nodes, attributes and initializer tensors.

Enough of the protobuf wire format to read the graph of a small exported CNN (the weights importer needs the
conv nodes, their attributes and float tensors), so neither ``onnx`` nor ``onnxruntime`` is a dependency.
Field numbers are those of ``onnx.proto3`` (ModelProto.graph = 7, GraphProto.node = 1 / initializer = 5, ...).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
#: TensorProto.DataType -> numpy dtype (the types a float CNN export uses)
_DTYPES = {1: np.float32, 6: np.int32, 7: np.int64, 10: np.float16, 11: np.float64}


class OnnxFormatError(ValueError):
    """The bytes are not an ONNX model this reader understands."""


@dataclass
class OnnxNode:
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass
class OnnxGraph:
    nodes: list[OnnxNode]
    initializers: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]
    producer: str = ""


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise OnnxFormatError("varint too long")


Value = int | memoryview


def _bytes(value: Value) -> bytes:
    if isinstance(value, int):
        raise OnnxFormatError("expected a length-delimited field, found a varint")
    return bytes(value)


def _view(value: Value) -> memoryview:
    if isinstance(value, int):
        raise OnnxFormatError("expected a length-delimited field, found a varint")
    return value


def _int(value: Value) -> int:
    if not isinstance(value, int):
        raise OnnxFormatError("expected a varint field")
    return value


def _fields(buf: memoryview) -> list[tuple[int, int, Value]]:
    """Split one message into (field number, wire type, value) triples; LEN values stay memoryviews."""
    out: list[tuple[int, int, Value]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Value
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _FIXED64:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == _LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise OnnxFormatError("truncated field")
            value, pos = buf[pos : pos + length], pos + length
        elif wire == _FIXED32:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise OnnxFormatError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(wire: int, value: Value) -> list[int]:
    if wire == _VARINT:
        return [_signed(_int(value))]
    ints, pos, buf = [], 0, _view(value)  # packed
    while pos < len(buf):
        number, pos = _read_varint(buf, pos)
        ints.append(_signed(number))
    return ints


def _text(value: Value) -> str:
    return _bytes(value).decode("utf-8")


def _parse_tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype_code, name, raw = 1, "", None
    floats: list[float] = []
    int64s: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            dims.extend(_ints(wire, value))
        elif number == 2:
            dtype_code = _int(value)
        elif number == 4:
            if wire == _LEN:
                floats.extend(np.frombuffer(_bytes(value), "<f4").tolist())
            else:
                floats.append(struct.unpack("<f", _bytes(value))[0])
        elif number == 7:
            int64s.extend(_ints(wire, value))
        elif number == 8:
            name = _text(value)
        elif number == 9:
            raw = _bytes(value)
        elif number == 14 and _int(value) == 1:
            raise OnnxFormatError(f"tensor {name!r} stores its data in an external file")
    if dtype_code not in _DTYPES:
        raise OnnxFormatError(f"tensor {name!r} has unsupported data type {dtype_code}")
    dtype = np.dtype(_DTYPES[dtype_code]).newbyteorder("<")
    if raw is not None:
        array = np.frombuffer(raw, dtype=dtype).copy()
    elif floats:
        array = np.asarray(floats, dtype=dtype)
    else:
        array = np.asarray(int64s, dtype=dtype)
    if array.size != int(np.prod(dims, dtype=np.int64)):
        raise OnnxFormatError(f"tensor {name!r}: {array.size} values for shape {dims}")
    return name, array.reshape(dims).astype(dtype.newbyteorder("="))


def _parse_attribute(buf: memoryview) -> tuple[str, object]:
    name: str = ""
    value_out: object = None
    ints: list[int] = []
    floats: list[float] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:
            value_out = struct.unpack("<f", _bytes(value))[0]
        elif number == 3:
            value_out = _signed(_int(value))
        elif number == 4:
            value_out = _bytes(value)
        elif number == 5:
            value_out = _parse_tensor(_view(value))[1]
        elif number == 7:
            raw = _bytes(value)
            floats.extend(np.frombuffer(raw, "<f4").tolist() if wire == _LEN else struct.unpack("<f", raw))
        elif number == 8:
            ints.extend(_ints(wire, value))
    if ints:
        value_out = ints
    elif floats:
        value_out = floats
    return name, value_out


def _parse_node(buf: memoryview) -> OnnxNode:
    node = OnnxNode(name="", op_type="", inputs=[], outputs=[])
    for number, _, value in _fields(buf):
        if number == 1:
            node.inputs.append(_text(value))
        elif number == 2:
            node.outputs.append(_text(value))
        elif number == 3:
            node.name = _text(value)
        elif number == 4:
            node.op_type = _text(value)
        elif number == 5:
            key, attr = _parse_attribute(_view(value))
            node.attributes[key] = attr
    return node


def _value_info_name(buf: memoryview) -> str:
    for number, _, value in _fields(buf):
        if number == 1:
            return _text(value)
    return ""


def read_onnx_graph(data: bytes) -> OnnxGraph:
    """Parse a serialized ``ModelProto``; raises :class:`OnnxFormatError` on anything it cannot read."""
    view = memoryview(data)
    graph_buf, producer = None, ""
    for number, wire, value in _fields(view):
        if number == 7 and wire == _LEN:
            graph_buf = value
        elif number == 2 and wire == _LEN:
            producer = _text(value)
    if graph_buf is None:
        raise OnnxFormatError("no graph in the model (is this an ONNX file?)")
    graph = OnnxGraph(nodes=[], initializers={}, inputs=[], outputs=[], producer=producer)
    for number, wire, value in _fields(_view(graph_buf)):
        if wire != _LEN:
            continue
        if number == 1:
            graph.nodes.append(_parse_node(_view(value)))
        elif number == 5:
            name, array = _parse_tensor(_view(value))
            graph.initializers[name] = array
        elif number == 11:
            graph.inputs.append(_value_info_name(_view(value)))
        elif number == 12:
            graph.outputs.append(_value_info_name(_view(value)))
    return graph
