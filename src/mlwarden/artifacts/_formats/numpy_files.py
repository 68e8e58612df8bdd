"""NumPy .npy files: check the header, and analyse the pickle an object array carries.

The header is a Python dict literal; it is parsed with `ast.literal_eval` only
after the same strict checks numpy's `_read_array_header` makes, and without
importing numpy. An array of objects is stored as a pickle after the header
(`np.load(allow_pickle=True)` unpickles it), so that pickle is analysed. For
any other array the data is never read: its length must match the header's
shape and dtype exactly, so nothing can hide after it.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import BinaryIO

from mlwarden.artifacts._context import ScanContext
from mlwarden.artifacts._dispatch import Reader
from mlwarden.errors import MalformedInputError

RULE = "NPY001"
MAGIC = b"\x93NUMPY"
# numpy refuses longer headers unless told otherwise; legitimate ones are tiny.
MAX_HEADER = 1024 * 1024
MAX_DIMS = 64
_KEYS = frozenset({"descr", "fortran_order", "shape"})
_SIMPLE_DESCR = re.compile(r"[<>|=]?([?bBhHiIlLqQpPefdgFDGSaUVmMOcu])(\d*)(\[[A-Za-z0-9]+\])?")
# Element sizes of the one-character type codes that carry no explicit size.
_CHAR_SIZES = {
    "?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8,
    "Q": 8, "p": 8, "P": 8, "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32,
    "m": 8, "M": 8, "O": 8, "c": 1,
}  # fmt: skip
_SIZED_KINDS = frozenset("biufcmMSaUV")


def sniff(head: bytes, size: int) -> bool:
    return head.startswith(MAGIC)


def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    header, data_offset = read_header(stream)
    descr, shape = header.descr, header.shape
    if has_objects(descr):
        from mlwarden.artifacts._pickle.analyzer import analyze_pickle

        ctx.formats.append("pickle")
        if data_offset >= size:
            raise MalformedInputError("object array header is not followed by its pickle")
        analyze_pickle(stream, location, ctx, depth, start=data_offset)
        return
    expected = math.prod(shape) * itemsize(descr)
    actual = size - data_offset
    if actual < expected:
        ctx.add(
            RULE,
            f"array data is {actual} bytes, shorter than the {expected} its header says",
            location,
            expected=expected,
            actual=actual,
        )
    elif actual > expected:
        ctx.add(
            RULE,
            f"{actual - expected} bytes follow the array data its header describes",
            location,
            expected=expected,
            actual=actual,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """A validated .npy header."""

    descr: object
    shape: tuple[int, ...]
    fortran_order: bool


def read_header(stream: BinaryIO) -> tuple[Header, int]:
    """The validated header dict and the offset where array data starts."""
    preamble = stream.read(8)
    if len(preamble) < 8 or not preamble.startswith(MAGIC):
        raise MalformedInputError("not an .npy file")
    major, minor = preamble[6], preamble[7]
    if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
        raise MalformedInputError(f"unknown .npy format version {major}.{minor}")
    length_size = 2 if major == 1 else 4
    raw_length = stream.read(length_size)
    if len(raw_length) < length_size:
        raise MalformedInputError("truncated .npy header length")
    length = int.from_bytes(raw_length, "little")
    if length > MAX_HEADER:
        raise MalformedInputError(f".npy header of {length} bytes is implausibly long")
    raw = stream.read(length)
    if len(raw) < length:
        raise MalformedInputError("truncated .npy header")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin1")
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f".npy header is not valid text: {exc}") from None
    header = _parse_header(text)
    return header, 8 + length_size + length


def _parse_header(text: str) -> Header:
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        raise MalformedInputError(".npy header is not a dict literal")
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise MalformedInputError(f".npy header does not parse: {type(exc).__name__}") from None
    if not isinstance(value, dict) or set(value) != _KEYS:
        raise MalformedInputError(f".npy header must have exactly the keys {sorted(_KEYS)}")
    shape = value["shape"]
    if (
        not isinstance(shape, tuple)
        or len(shape) > MAX_DIMS
        or not all(type(dim) is int and dim >= 0 for dim in shape)
    ):
        raise MalformedInputError(f".npy header has an invalid shape: {shape!r:.80}")
    if not isinstance(value["fortran_order"], bool):
        raise MalformedInputError(".npy header's fortran_order is not a bool")
    _check_descr(value["descr"])
    return Header(descr=value["descr"], shape=shape, fortran_order=value["fortran_order"])


def _check_descr(descr: object, level: int = 0) -> None:
    """A dtype description: a type string, or a list of (name, descr[, shape]) fields."""
    if level > 16:
        raise MalformedInputError(".npy dtype nests too deeply")
    if isinstance(descr, str):
        if not _SIMPLE_DESCR.fullmatch(descr):
            raise MalformedInputError(f".npy header has an unknown dtype {descr!r:.80}")
        return
    if not isinstance(descr, list) or not descr:
        raise MalformedInputError(f".npy header has an invalid dtype {descr!r:.80}")
    for field in descr:
        if not isinstance(field, tuple) or len(field) not in (2, 3):
            raise MalformedInputError(f".npy header has an invalid field {field!r:.80}")
        name = field[0]
        names = name if isinstance(name, tuple) else (name,)
        if not all(isinstance(part, str) for part in names) or len(names) > 2:
            raise MalformedInputError(f".npy header has an invalid field name {name!r:.80}")
        _check_descr(field[1], level + 1)
        if len(field) == 3:
            sub_shape = field[2]
            dims = sub_shape if isinstance(sub_shape, tuple) else (sub_shape,)
            if len(dims) > MAX_DIMS or not all(type(dim) is int and dim >= 0 for dim in dims):
                raise MalformedInputError(f".npy header has an invalid field shape {field!r:.80}")


def has_objects(descr: object) -> bool:
    """Whether a (validated) dtype description holds Python objects anywhere."""
    if isinstance(descr, str):
        match = _SIMPLE_DESCR.fullmatch(descr)
        return match is not None and match.group(1) == "O"
    if isinstance(descr, list):
        return any(has_objects(field[1]) for field in descr)
    return False


def itemsize(descr: object) -> int:
    """Bytes per element of a (validated) dtype description without objects.

    Fields of a list description are packed, as numpy lays out such dtypes.
    """
    if isinstance(descr, list):
        total = 0
        for field in descr:
            count = 1
            if len(field) == 3:
                dims = field[2] if isinstance(field[2], tuple) else (field[2],)
                count = math.prod(dims)
            total += itemsize(field[1]) * count
        return total
    match = _SIMPLE_DESCR.fullmatch(str(descr))
    if match is None:
        raise MalformedInputError(f"unknown dtype {descr!r:.80}")
    kind, digits = match.group(1), match.group(2)
    if digits and kind in _SIZED_KINDS:
        count = int(digits)
        return count * 4 if kind == "U" else count
    if kind in "SaUV":
        return 0  # numpy's flexible type with no length: zero-sized elements
    return _CHAR_SIZES[kind]


READERS: tuple[Reader, ...] = (Reader(name="npy", malformed_rule=RULE, sniff=sniff, scan=scan),)
