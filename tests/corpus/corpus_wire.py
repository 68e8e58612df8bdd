"""Minimal writers for binary formats the corpus hand-builds: protobuf, GGUF, safetensors."""

import json
import struct
from collections.abc import Sequence

# --- protocol buffers ---------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_bytes(field: int, data: bytes | str) -> bytes:
    """A length-delimited field (strings, bytes, sub-messages)."""
    raw = data.encode() if isinstance(data, str) else data
    return varint(field << 3 | 2) + varint(len(raw)) + raw


def pb_int(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def tf_node(name: str, op: str, inputs: tuple[str, ...] = (), attrs: bytes = b"") -> bytes:
    """tensorflow.NodeDef: name=1, op=2, input=3, attr=5."""
    body = pb_bytes(1, name) + pb_bytes(2, op)
    for item in inputs:
        body += pb_bytes(3, item)
    return body + attrs


def tf_attr_string(key: str, value: str) -> bytes:
    """One NodeDef.attr map entry whose AttrValue holds a string (s=2)."""
    return pb_bytes(5, pb_bytes(1, key) + pb_bytes(2, pb_bytes(2, value)))


def tf_attr_type(key: str, dtype: int) -> bytes:
    """AttrValue.type = 6."""
    return pb_bytes(5, pb_bytes(1, key) + pb_bytes(2, pb_int(6, dtype)))


def saved_model(nodes: list[bytes], functions: Sequence[tuple[str, list[bytes]]] = ()) -> bytes:
    """tensorflow.SavedModel: schema_version=1, meta_graphs=2 (MetaGraphDef).

    MetaGraphDef: meta_info_def=1 (tags=4), graph_def=2. GraphDef: node=1,
    library=2 (FunctionDefLibrary: function=1), versions=4. FunctionDef:
    signature=1 (OpDef name=1), node_def=3.
    """
    graph = b"".join(pb_bytes(1, node) for node in nodes)
    if functions:
        library = b""
        for name, body in functions:
            function = pb_bytes(1, pb_bytes(1, name))
            function += b"".join(pb_bytes(3, node) for node in body)
            library += pb_bytes(1, function)
        graph += pb_bytes(2, library)
    graph += pb_bytes(4, pb_int(1, 1087))
    meta_info = pb_bytes(4, "serve") + pb_bytes(3, "2.15.0")
    meta_graph = pb_bytes(1, meta_info) + pb_bytes(2, graph)
    return pb_int(1, 1) + pb_bytes(2, meta_graph)


# --- GGUF -------------------------------------------------------------------------

GGUF_UINT32, GGUF_STRING, GGUF_ARRAY, GGUF_UINT64, GGUF_INT32, GGUF_FLOAT32 = 4, 8, 9, 10, 5, 6


def gguf_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def gguf_kv(key: str, value: object) -> bytes:
    head = gguf_string(key)
    if isinstance(value, str):
        return head + struct.pack("<I", GGUF_STRING) + gguf_string(value)
    if isinstance(value, float):
        return head + struct.pack("<If", GGUF_FLOAT32, value)
    if isinstance(value, int):
        return head + struct.pack("<II", GGUF_UINT32, value)
    if isinstance(value, list):
        items = b"".join(gguf_string(v) for v in value)
        return head + struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, len(value)) + items
    raise TypeError(type(value).__name__)


def gguf_file(metadata: dict[str, object], *, tensors: int = 1, version: int = 3) -> bytes:
    """A GGUF v3 file with the given metadata and `tensors` tiny F32 tensors (4 floats)."""
    kvs = b"".join(gguf_kv(k, v) for k, v in metadata.items())
    out = b"GGUF" + struct.pack("<IQQ", version, tensors, len(metadata)) + kvs
    for index in range(tensors):
        out += gguf_string(f"blk.{index}.weight") + struct.pack("<I", 1)
        out += struct.pack("<Q", 4) + struct.pack("<IQ", 0, index * 32)
    out += b"\x00" * (-len(out) % 32)
    for index in range(tensors):
        out += struct.pack("<4f", 0.5, -1.0, 2.0, float(index)) + b"\x00" * 16
    return out


# --- safetensors -------------------------------------------------------------------


def safetensors_file(
    header: dict[str, object] | bytes, data: bytes, *, declared_len: int | None = None
) -> bytes:
    """A safetensors file from a raw header (dict or bytes) and its data block."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(raw) if declared_len is None else declared_len
    return struct.pack("<Q", size) + raw + data
