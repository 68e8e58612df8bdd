"""GGUF (llama.cpp): parse the header and metadata, check the chat templates.

GGUF tensors are plain numbers; the code risk is the Jinja chat template in
the metadata, which inference servers render (CVE-2024-34359 in
llama-cpp-python rendered it outside a sandbox). Templates are parsed to an
AST, never rendered. Every count and length is checked against the bytes that
remain before anything is allocated; tensor data is never read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Literal

from mlwarden.artifacts._context import ScanContext
from mlwarden.artifacts._dispatch import Reader
from mlwarden.artifacts._formats._jinja_check import template_threats
from mlwarden.errors import LimitExceededError, MalformedInputError

RULE = "GGUF002"
MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
_CHUNK = 1 << 20

# Value types: (struct code, size) for the fixed-size ones.
_STRING, _ARRAY = 8, 9
_FIXED: dict[int, tuple[str, int]] = {
    0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
    6: ("f", 4), 7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8),
}  # fmt: skip
# ggml tensor types: (elements per block, bytes per block), from ggml's type traits.
GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
    8: (32, 34), 9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144),
    13: (256, 176), 14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74),
    18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 31: (32, 18), 32: (32, 18), 33: (32, 18),
    34: (256, 54), 35: (256, 66), 36: (32, 18), 37: (32, 18), 38: (32, 18), 39: (32, 17),
}  # fmt: skip


def sniff(head: bytes, size: int) -> bool:
    return size >= 16 and head[:4] == MAGIC


class _Cursor:
    """Sequential reads over a stream, buffered, that fail cleanly at the end."""

    def __init__(self, stream: BinaryIO, size: int, order: str) -> None:
        self.stream, self.size, self.order = stream, size, order
        self.pos = 0
        self._buf = b""
        self._buf_start = 0

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise MalformedInputError(f"GGUF header runs past the end of the file at {self.pos}")
        offset = self.pos - self._buf_start
        if offset < 0 or offset + n > len(self._buf):
            self.stream.seek(self.pos)
            self._buf = self.stream.read(max(n, _CHUNK))
            self._buf_start, offset = self.pos, 0
            if len(self._buf) < n:
                raise MalformedInputError(f"GGUF file truncated at {self.pos}")
        self.pos += n
        return self._buf[offset : offset + n]

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise MalformedInputError(f"GGUF value runs past the end of the file at {self.pos}")
        self.pos += n

    def skip_strings(self, count: int, width: int, max_length: int) -> None:
        """Skip `count` strings with `width`-byte lengths (token lists of 100k+ entries)."""
        byteorder: Literal["little", "big"] = "little" if self.order == "<" else "big"
        for _ in range(count):
            offset = self.pos - self._buf_start
            if offset < 0 or offset + width > len(self._buf):
                self.read(width)
                self.pos -= width
                offset = 0
            length = int.from_bytes(self._buf[offset : offset + width], byteorder)
            if length > max_length:
                raise LimitExceededError(f"GGUF string of {length} bytes", rule_id=RULE)
            self.skip(width + length)

    def unpack(self, code: str, size: int) -> int | float | bool:
        value: int | float | bool = struct.unpack(self.order + code, self.read(size))[0]
        return value


@dataclass(slots=True)
class _Header:
    version: int
    cursor: _Cursor

    def count(self) -> int:
        """Counts and lengths: u32 in version 1, u64 after."""
        return int(self.cursor.unpack("I", 4) if self.version == 1 else self.cursor.unpack("Q", 8))

    def string(self, ctx: ScanContext, *, keep: bool = True) -> str:
        length = self.count()
        if length > ctx.limits.max_header_bytes:
            raise LimitExceededError(f"GGUF string of {length} bytes", rule_id=RULE)
        if not keep:
            self.cursor.skip(length)
            return ""
        raw = self.cursor.read(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedInputError(
                f"GGUF string at {self.cursor.pos - length} is not UTF-8"
            ) from None


def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    head = stream.read(8)
    if head[:4] != MAGIC or len(head) < 8:
        raise MalformedInputError("not a GGUF file")
    # Big-endian GGUF files exist (s390x); their version reads byte-swapped.
    order = "<" if struct.unpack("<I", head[4:8])[0] in (1, 2, 3) else ">"
    cursor = _Cursor(stream, size, order)
    cursor.pos = 4
    version = int(cursor.unpack("I", 4))
    if version not in (1, 2, 3):
        raise MalformedInputError(f"unknown GGUF version {version}")
    header = _Header(version, cursor)
    n_tensors, n_kv = header.count(), header.count()
    # Each KV needs >= 12 bytes (v1) and each tensor info >= 16: reject impossible counts early.
    if n_kv * 12 + n_tensors * 16 > size:
        raise MalformedInputError(f"{n_kv} metadata entries and {n_tensors} tensors cannot fit")
    metadata = _read_metadata(header, n_kv, location, ctx)
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise MalformedInputError(f"general.alignment {alignment!r} is not a power of two")
    _check_tensors(header, n_tensors, alignment, location, ctx)


def _read_metadata(
    header: _Header, n_kv: int, location: str, ctx: ScanContext
) -> dict[str, object]:
    """Read the KV pairs; scalar values kept, chat templates checked on the way."""
    values: dict[str, object] = {}
    for index in range(n_kv):
        if index % 1000 == 0:
            ctx.check_time()
        key = header.string(ctx)
        if key in values:
            raise MalformedInputError(f"duplicate metadata key {key!r}")
        kind = int(header.cursor.unpack("I", 4))
        if kind == _STRING:
            value: object = header.string(ctx)
        elif kind == _ARRAY:
            _skip_array(header, ctx, nesting=0)
            value = None
        elif kind in _FIXED:
            value = header.cursor.unpack(*_FIXED[kind])
        else:
            raise MalformedInputError(f"metadata {key!r} has unknown value type {kind}")
        values[key] = value
        if header.cursor.pos > ctx.limits.max_header_bytes:
            raise LimitExceededError(
                f"GGUF metadata longer than {ctx.limits.max_header_bytes} bytes", rule_id=RULE
            )
        if isinstance(value, str) and key.startswith("tokenizer.chat_template"):
            _check_template(key, value, location, ctx)
    return values


def _skip_array(header: _Header, ctx: ScanContext, *, nesting: int) -> None:
    if nesting > 8:
        raise MalformedInputError("GGUF arrays nested more than 8 deep")
    kind = int(header.cursor.unpack("I", 4))
    count = header.count()
    if kind in _FIXED:
        header.cursor.skip(count * _FIXED[kind][1])
        return
    if kind not in (_STRING, _ARRAY):
        raise MalformedInputError(f"GGUF array of unknown value type {kind}")
    # Each element takes at least 4 bytes: an impossible count fails before the loop.
    if count * 4 > header.cursor.size - header.cursor.pos:
        raise MalformedInputError(f"GGUF array of {count} elements cannot fit in the file")
    width = 4 if header.version == 1 else 8
    for start in range(0, count, 65536):
        ctx.check_time()
        batch = min(65536, count - start)
        if kind == _STRING:
            header.cursor.skip_strings(batch, width, ctx.limits.max_header_bytes)
        else:
            for _ in range(batch):
                _skip_array(header, ctx, nesting=nesting + 1)


def _check_template(key: str, template: str, location: str, ctx: ScanContext) -> None:
    try:
        threats = template_threats(template)
    except MalformedInputError as exc:
        ctx.add(RULE, f"{key}: {exc.message}", location, key=key)
        return
    for threat in threats:
        ctx.add(
            "GGUF001",
            f"{key}: {threat}; rendering the template outside a sandbox runs code",
            location,
            key=key,
        )


def _check_tensors(
    header: _Header, n_tensors: int, alignment: int, location: str, ctx: ScanContext
) -> None:
    cursor = header.cursor
    spans: list[tuple[int, int, str]] = []
    names: set[str] = set()
    for index in range(n_tensors):
        if index % 1000 == 0:
            ctx.check_time()
        name = header.string(ctx)
        if name in names:
            raise MalformedInputError(f"duplicate tensor name {name!r}")
        names.add(name)
        n_dims = int(cursor.unpack("I", 4))
        if n_dims > MAX_DIMS:
            raise MalformedInputError(f"tensor {name!r} has {n_dims} dimensions (max {MAX_DIMS})")
        dims = [header.count() for _ in range(n_dims)]
        kind = int(cursor.unpack("I", 4))
        offset = int(cursor.unpack("Q", 8))
        if kind not in GGML_TYPES:
            raise MalformedInputError(f"tensor {name!r} has unknown ggml type {kind}")
        block, block_bytes = GGML_TYPES[kind]
        if dims and dims[0] % block:
            raise MalformedInputError(
                f"tensor {name!r}: first dimension {dims[0]} is not a multiple of the "
                f"block size {block} of its type {kind}"
            )
        elements = 1
        for dim in dims:
            elements *= dim
        spans.append((offset, offset + elements // block * block_bytes, name))
    data_start = -(-cursor.pos // alignment) * alignment
    data_size = cursor.size - data_start
    end_of_previous, previous = 0, ""
    for begin, end, name in sorted(spans):
        if begin % alignment:
            ctx.add(RULE, f"tensor {name!r} offset {begin} is not aligned to {alignment}", location)
        if end > data_size:
            ctx.add(
                RULE,
                f"tensor {name!r} data [{begin}, {end}) runs past the "
                f"{data_size}-byte data section",
                location,
            )
        if begin < end_of_previous:
            ctx.add(RULE, f"tensor {name!r} overlaps tensor {previous!r}", location)
        end_of_previous, previous = max(end, end_of_previous), name


READERS: tuple[Reader, ...] = (Reader(name="gguf", malformed_rule=RULE, sniff=sniff, scan=scan),)
