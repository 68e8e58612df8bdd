"""safetensors: validate the JSON header the way the reference Rust crate does.

The format cannot carry code; what can go wrong is a header that loaders read
differently (overlapping or out-of-range tensors, sizes that disagree with
shapes, duplicate keys that parsers resolve differently). Tensor data is never
read: only the 8-byte length and the header are, so a file of any size scans
in the time to parse its header.
"""

from __future__ import annotations

import json
import struct
from typing import BinaryIO

from mlwarden.artifacts._context import ScanContext
from mlwarden.artifacts._dispatch import Reader
from mlwarden.errors import LimitExceededError, MalformedInputError

RULE = "SAFET001"

# Bits per element, as the safetensors crate defines its Dtype enum.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
_TENSOR_KEYS = frozenset({"dtype", "shape", "data_offsets"})


def sniff(head: bytes, size: int) -> bool:
    if len(head) < 9 or size < 10:
        return False
    (length,) = struct.unpack_from("<Q", head)
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    (length,) = struct.unpack("<Q", stream.read(8))
    if length > ctx.limits.max_header_bytes:
        raise LimitExceededError(
            f"safetensors header of {length} bytes exceeds the limit of "
            f"{ctx.limits.max_header_bytes}",
            rule_id=RULE,
        )
    if length + 8 > size:
        raise MalformedInputError(f"header length {length} runs past the end of the file")
    raw = stream.read(length)
    for problem in header_problems(raw, size - 8 - length):
        ctx.add(RULE, problem, location)


def header_problems(raw: bytes, buffer_size: int) -> list[str]:
    """Every inconsistency of a header against a data buffer of `buffer_size` bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f"header is not valid UTF-8 (byte {exc.start})") from None
    problems: list[str] = []
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        # Trailing spaces are the padding the writers add for alignment.
        header = json.loads(text.rstrip(" "), object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise MalformedInputError("header is not a JSON object")
    problems.extend(
        f"duplicate key {key!r} in the header: parsers disagree on which value wins"
        for key in dict.fromkeys(duplicates)
    )
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            problems.extend(_metadata_problems(entry))
            continue
        span = _tensor_span(name, entry, problems)
        if span is not None:
            spans.append((span[0], span[1], name))
    problems.extend(_layout_problems(spans, buffer_size))
    return problems


def _metadata_problems(entry: object) -> list[str]:
    if not isinstance(entry, dict):
        return ["__metadata__ is not a map of strings to strings"]
    return [
        f"__metadata__ value of {key!r} is a {type(value).__name__}, not a string"
        for key, value in entry.items()
        if not isinstance(value, str)
    ]


def _tensor_span(name: str, entry: object, problems: list[str]) -> tuple[int, int] | None:
    """The tensor's [begin, end) if its entry is consistent; problems appended."""
    if not isinstance(entry, dict):
        problems.append(f"tensor {name!r}: entry is a {type(entry).__name__}, not an object")
        return None
    keys = set(entry)
    if keys != _TENSOR_KEYS:
        missing = sorted(_TENSOR_KEYS - keys)
        extra = sorted(keys - _TENSOR_KEYS)
        problems.append(f"tensor {name!r}: missing fields {missing}, unknown fields {extra}")
        return None
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    ok = True
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        problems.append(f"tensor {name!r}: unknown dtype {dtype!r}")
        ok = False
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        problems.append(f"tensor {name!r}: shape {shape!r} is not a list of non-negative ints")
        ok = False
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        problems.append(f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end]")
        return None
    begin, end = offsets
    if begin > end:
        problems.append(f"tensor {name!r}: data_offsets begin {begin} is after end {end}")
        return None
    if ok and isinstance(dtype, str) and isinstance(shape, list):
        span = end - begin
        count = _element_count(shape, limit=(span + 1) * 8)
        bits = -1 if count is None else count * DTYPE_BITS[dtype]
        if bits % 8 and bits > 0:
            problems.append(f"tensor {name!r}: {bits} bits of {dtype} is not a whole byte count")
        elif bits // 8 != span:
            needs = f"{bits // 8} bytes" if bits >= 0 else f"more than {span} bytes"
            problems.append(
                f"tensor {name!r}: data_offsets span {span} bytes but shape {shape} "
                f"of {dtype} needs {needs}"
            )
    return begin, end


def _element_count(shape: list[int], *, limit: int) -> int | None:
    """prod(shape), or None once it passes `limit`: hostile shapes stay cheap."""
    if 0 in shape:
        return 0
    count = 1
    for dim in shape:
        count *= dim
        if count > limit:
            return None
    return count


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _layout_problems(spans: list[tuple[int, int, str]], buffer_size: int) -> list[str]:
    """Tensors must tile the data buffer exactly: no gap, no overlap, nothing past it."""
    problems: list[str] = []
    cursor = 0
    previous = ""
    for begin, end, name in sorted(spans):
        if begin < cursor:
            problems.append(f"tensor {name!r} overlaps tensor {previous!r} (begins at {begin})")
        elif begin > cursor:
            problems.append(f"{begin - cursor} unclaimed bytes before tensor {name!r}")
        if end > buffer_size:
            problems.append(
                f"tensor {name!r} ends at {end}, past the {buffer_size}-byte data buffer"
            )
        if end >= cursor:
            cursor, previous = end, name
    if cursor < buffer_size:
        problems.append(
            f"{buffer_size - cursor} bytes after the last tensor are claimed by no tensor"
        )
    return problems


READERS: tuple[Reader, ...] = (
    Reader(name="safetensors", malformed_rule=RULE, sniff=sniff, scan=scan),
)
