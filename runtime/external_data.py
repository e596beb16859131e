"""Whether an ONNX graph keeps tensors outside its file ("external data"), read from the
protobuf wire format with the standard library only (no `onnx` package at run time).

An ONNX file may say that a tensor's bytes live in another file (`TensorProto.external_data`,
`data_location = EXTERNAL`), which ONNX Runtime then reads from next to the graph. Such a
file is not the graph the manifest hashes, so `artifacts.load_manifest` refuses every graph
that has one: our exporter never writes external data (one self-contained file per graph),
and refusing is simpler and safer than re-implementing ORT's rules for where it looks.

The scan walks every place a tensor can sit (initializers, sparse initializers, Constant
and other node attributes, subgraphs of If / Loop / Scan, functions, training graphs) and
skips everything else by its length, so a graph of hundreds of MB costs a few page reads
(the file is memory-mapped). Repeated message fields are all visited, a superset of what
protobuf merges.
"""
from __future__ import annotations

import mmap
from pathlib import Path

# message -> {field number: the message that field holds}, from onnx.proto (IR version 10)
_NESTED: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},
}
_TENSOR_NAME, _EXTERNAL_DATA, _DATA_LOCATION, _EXTERNAL = 8, 13, 14, 1


class WireError(ValueError):
    """Not a protobuf message (truncated, or a wire type protobuf does not have)."""


def external_tensor(path: Path) -> str | None:
    """The name of the first tensor of the ONNX graph at `path` whose data is stored in an
    external file ('' if it has no name), or None if there is none. A file that is not a
    protobuf message gives None: ONNX Runtime refuses to load it anyway."""
    with open(path, "rb") as file:
        if file.seek(0, 2) == 0:
            return None
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _scan(data)
            except (WireError, IndexError):
                return None


def _scan(data) -> str | None:
    stack = [("model", 0, len(data))]
    while stack:
        kind, position, end = stack.pop()
        name, external = "", False
        for field, wire, value in _fields(data, position, end):
            nested = _NESTED[kind].get(field)
            if wire == 2 and nested is not None:
                stack.append((nested, *value))
            elif kind == "tensor" and field == _TENSOR_NAME and wire == 2:
                name = bytes(data[value[0]:value[1]]).decode("utf-8", "replace")
            elif kind == "tensor" and (field == _EXTERNAL_DATA or field == _DATA_LOCATION and value == _EXTERNAL):
                external = True
        if external:
            return name
    return None


def _fields(data, position: int, end: int):
    """(field number, wire type, value) of one message's fields: a varint's value, a
    length-delimited field's (start, end), None for fixed-size fields and skipped groups."""
    while position < end:
        field, wire, value, position = _field(data, position)
        if wire == 3:  # a group (proto2): skipped to its end marker
            position = _skip_group(data, position, end)
        elif wire == 4:
            raise WireError(f"a group ends at byte {position} that never began")
        if position > end:
            raise WireError("truncated")
        yield field, wire, value


def _field(data, position: int) -> tuple[int, int, object, int]:
    """One field at `position`: (number, wire type, value, the position after it)."""
    key, position = _varint(data, position)
    field, wire = key >> 3, key & 7
    value = None
    if wire == 0:
        value, position = _varint(data, position)
    elif wire == 1 or wire == 5:
        position += 8 if wire == 1 else 4
    elif wire == 2:
        length, position = _varint(data, position)
        value, position = (position, position + length), position + length
    elif wire not in (3, 4):
        raise WireError(f"wire type {wire} at byte {position}")
    return field, wire, value, position


def _skip_group(data, position: int, end: int) -> int:
    depth = 1
    while depth:
        if position >= end:
            raise WireError("a group that never ends")
        _, wire, _, position = _field(data, position)
        depth += (wire == 3) - (wire == 4)
    return position


def _varint(data, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise WireError(f"varint too long at byte {position}")
