"""A bounded walker of the protocol buffer wire format, over a seekable stream.

It yields each field's number, wire type and either its integer value or the
position and length of its payload, without reading the payload: a caller
reads the few strings it needs, descends into the sub-messages it knows, and
skips the rest (tensor `raw_data` of hundreds of megabytes) by position only.
This lets mlwarden check ONNX and SavedModel files without the onnx or
tensorflow packages and without copying weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from mlwarden.errors import MalformedInputError

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_WIRE_NAMES = {VARINT: "varint", I64: "64-bit", LEN: "length-delimited", I32: "32-bit"}
_CHUNK = 1 << 16


class Field(NamedTuple):
    """One field: `value` for varint/64-bit/32-bit; `start`/`length` for the payload
    of a length-delimited field (the payload itself is not read). A named tuple,
    not a dataclass: graphs have millions of fields and tuples build faster."""

    number: int
    wire: int
    value: int
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


class WireSource:
    """Random access to a stream through one small buffer."""

    def __init__(self, stream: BinaryIO | None, size: int, *, data: bytes = b"") -> None:
        self.stream = stream
        self.size = size
        self._buf = data
        self._buf_start = 0

    @classmethod
    def of_bytes(cls, data: bytes) -> WireSource:
        return cls(None, len(data), data=data)

    def _window(self, pos: int, need: int) -> tuple[bytes, int]:
        """A buffer holding as much of [pos, pos+need) as the stream has, and pos in it."""
        offset = pos - self._buf_start
        if offset >= 0 and offset + need <= len(self._buf):
            return self._buf, offset
        if self.stream is None:
            return self._buf, offset
        self.stream.seek(pos)
        self._buf = self.stream.read(max(need, _CHUNK))
        self._buf_start = pos
        return self._buf, 0

    def read(self, pos: int, length: int) -> bytes:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise MalformedInputError(f"protobuf field at {pos} runs past the end of the data")
        buf, offset = self._window(pos, length)
        data = buf[offset : offset + length]
        if len(data) != length:
            raise MalformedInputError(f"protobuf data truncated at {pos}")
        return data

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """The varint at pos and the position after it; at most 10 bytes, never past end."""
        buf, offset = self._buf, pos - self._buf_start
        if offset < 0 or offset + 10 > len(buf):
            buf, offset = self._window(pos, 10)
        if pos < end and 0 <= offset < len(buf) and buf[offset] < 0x80:
            return buf[offset], pos + 1  # the common case: one byte
        result = shift = 0
        for index in range(10):
            if pos + index >= end or offset + index >= len(buf):
                raise MalformedInputError(f"varint at {pos} runs past the end of its message")
            byte = buf[offset + index]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if result >> 64:
                    raise MalformedInputError(f"varint at {pos} exceeds 64 bits")
                return result, pos + index + 1
            shift += 7
        raise MalformedInputError(f"varint at {pos} is longer than 10 bytes")


def fields(source: WireSource, start: int, end: int, *, partial: bool = False) -> Iterator[Field]:
    """The fields of the message in [start, end).

    With `partial`, the last field may extend past `end` (a head of a message
    seen in a sniff) as long as it stays within the source's size.
    """
    pos = start
    while pos < end:
        key, pos = source.varint(pos, end)
        number, wire = key >> 3, key & 7
        if number == 0 or number > 0x1FFFFFFF:
            raise MalformedInputError(f"invalid protobuf field number {number} at {pos}")
        if wire == VARINT:
            value, pos = source.varint(pos, end)
            yield Field(number, wire, value, pos, 0)
            continue
        if wire == LEN:
            length, pos = source.varint(pos, end)
            limit = source.size if partial else end
            if pos + length > limit:
                raise MalformedInputError(
                    f"field {number} at {pos} claims {length} bytes past the end of its message"
                )
            yield Field(number, wire, 0, pos, length)
            pos += length
            continue
        if wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if pos + width > end:
                raise MalformedInputError(f"field {number} at {pos} runs past its message")
            value = int.from_bytes(source.read(pos, width), "little")
            yield Field(number, wire, value, pos, width)
            pos += width
            continue
        raise MalformedInputError(f"unsupported protobuf wire type {wire} at {pos}")


def wire_name(wire: int) -> str:
    return _WIRE_NAMES.get(wire, str(wire))
