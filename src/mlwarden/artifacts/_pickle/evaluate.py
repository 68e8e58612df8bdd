"""Evaluate the few pure functions that payloads use to hide their bytes and names.

Protocol 2 writes bytes as ``_codecs.encode(text, "latin1")``; payloads build
import names or nested pickles with base64, hex, rot13, zlib or string joins.
Evaluating these on constants (with bounded output) lets the analyzer see the
name a STACK_GLOBAL really imports and the pickle a loader really receives.
Nothing here imports or runs anything from the pickle.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import zlib
from collections.abc import Callable
from typing import Any

MAX_OUTPUT = 64 * 1024 * 1024

_TEXT_CODECS = frozenset({"latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"})
_B64: dict[str, Callable[[Any], bytes]] = {
    "base64.b64decode": base64.b64decode,
    "base64.standard_b64decode": base64.standard_b64decode,
    "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
    "base64.b32decode": base64.b32decode,
    "base64.b16decode": base64.b16decode,
    "base64.b85decode": base64.b85decode,
    "base64.a85decode": base64.a85decode,
    "base64.decodebytes": base64.decodebytes,
    "binascii.a2b_base64": binascii.a2b_base64,
    "binascii.a2b_hex": binascii.a2b_hex,
    "binascii.unhexlify": binascii.unhexlify,
    "builtins.bytes.fromhex": bytes.fromhex,
}
NO_VALUE = object()
"""Returned when a call cannot be evaluated."""


def _bounded_decompress(data: bytes, wbits: int) -> bytes:
    engine = zlib.decompressobj(wbits)
    out = engine.decompress(data, MAX_OUTPUT)
    if engine.unconsumed_tail:
        raise ValueError("decompressed output too large")
    return out


def _codec(value: object, encoding: str, *, encode: bool) -> object:
    name = encoding.lower().replace("_", "-")
    if name in {"rot13", "rot-13"} and isinstance(value, str):
        return codecs.encode(value, "rot13")
    if name in {"hex", "hex-codec"} and isinstance(value, bytes | str):
        raw = value.encode() if isinstance(value, str) else value
        return binascii.hexlify(raw) if encode else binascii.unhexlify(raw)
    if name in {"base64", "base64-codec"} and isinstance(value, bytes | str):
        raw = value.encode() if isinstance(value, str) else value
        return base64.encodebytes(raw) if encode else base64.decodebytes(raw)
    if name in {"zlib", "zlib-codec"} and isinstance(value, bytes) and not encode:
        return _bounded_decompress(value, 15)
    if name in _TEXT_CODECS:
        if encode and isinstance(value, str):
            return value.encode(name)
        if not encode and isinstance(value, bytes):
            return value.decode(name)
    return NO_VALUE


def evaluate(name: str, args: tuple[object, ...]) -> object:
    """The value of calling `name(*args)` if it is a known pure function, else NO_VALUE."""
    try:
        return _evaluate(name, args)
    except (ValueError, TypeError, binascii.Error, zlib.error, OverflowError):
        return NO_VALUE


def _evaluate(name: str, args: tuple[object, ...]) -> object:
    first = args[0] if args else None
    if name in {"_codecs.encode", "codecs.encode", "_codecs.decode", "codecs.decode"}:
        encoding = args[1] if len(args) > 1 else "utf-8"
        if isinstance(encoding, str) and len(args) <= 3:
            return _codec(first, encoding, encode=name.endswith("encode"))
        return NO_VALUE
    if name in _B64 and len(args) == 1 and isinstance(first, bytes | str):
        return _B64[name](first)
    if name in {"zlib.decompress", "gzip.decompress"} and isinstance(first, bytes):
        return _bounded_decompress(first, 15 if name.startswith("zlib") else 31)
    if name in {"builtins.bytes", "builtins.bytearray"}:
        if isinstance(first, bytes) and len(args) == 1:
            return first
        if isinstance(first, str) and len(args) == 2 and isinstance(args[1], str):
            return _codec(first, args[1], encode=True)
        if isinstance(first, list | tuple) and all(isinstance(v, int) for v in first):
            return bytes(v for v in first if isinstance(v, int))
        return NO_VALUE
    if name in {"builtins.str", "builtins.repr"} and len(args) == 1 and isinstance(first, str):
        return first
    if name in {"operator.add", "operator.concat", "_operator.add", "_operator.concat"} and (
        len(args) == 2
    ):
        left, right = args
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, bytes) and isinstance(right, bytes):
            return left + right
    return NO_VALUE


def evaluate_method(receiver: object, method: str, args: tuple[object, ...]) -> object:
    """Methods of str and bytes constants: "".join([...]), "x".replace(...)."""
    if not isinstance(receiver, str | bytes):
        return NO_VALUE
    try:
        if method == "join" and len(args) == 1 and isinstance(args[0], list | tuple):
            parts = args[0]
            if isinstance(receiver, str) and all(isinstance(p, str) for p in parts):
                return receiver.join(p for p in parts if isinstance(p, str))
            if isinstance(receiver, bytes) and all(isinstance(p, bytes) for p in parts):
                return receiver.join(p for p in parts if isinstance(p, bytes))
        if method in {"__add__", "__radd__"} and len(args) == 1:
            other = args[0]
            if isinstance(receiver, str) and isinstance(other, str):
                return receiver + other if method == "__add__" else other + receiver
            if isinstance(receiver, bytes) and isinstance(other, bytes):
                return receiver + other if method == "__add__" else other + receiver
        if method in {"lower", "upper", "strip", "swapcase", "title"} and not args:
            result: object = getattr(receiver, method)()
            return result
        if method in {"replace", "decode", "encode"} and all(isinstance(a, str) for a in args):
            if method == "replace" and isinstance(receiver, str) and len(args) == 2:
                return receiver.replace(str(args[0]), str(args[1]))
            if method in {"decode", "encode"} and len(args) <= 1:
                return _codec(
                    receiver, str(args[0]) if args else "utf-8", encode=method == "encode"
                )
    except (ValueError, TypeError, binascii.Error, zlib.error):
        return NO_VALUE
    return NO_VALUE
