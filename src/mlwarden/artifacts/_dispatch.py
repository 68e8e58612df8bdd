"""Recognise a stream's format by its content and hand it to that format's reader.

The registry is an explicit tuple, in sniffing order: containers and formats
with a magic number first, the magic-less ones (protocol buffers, pickle) last.
Each reader runs isolated: its parse errors become its own "malformed" finding,
a limit becomes the limit's finding, and an unexpected exception is recorded
as malformed too (never clean), so one bad reader never aborts a scan.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import BinaryIO

from mlwarden.artifacts._context import ScanContext
from mlwarden.errors import LimitExceededError, MalformedInputError, MlwardenError

HEAD_BYTES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Reader:
    """One format: how to recognise it and how to scan it.

    `sniff(head, size)` sees the first HEAD_BYTES bytes and the stream's size
    and must be cheap. `scan(stream, location, ctx, depth)` reads what it needs
    from the seekable stream (positioned at 0) and records findings in `ctx`.
    """

    name: str
    malformed_rule: str
    sniff: Callable[[bytes, int], bool]
    scan: Callable[[BinaryIO, str, ScanContext, int], None]


def _maybe_compressed(head: bytes, size: int) -> bool:
    return (
        head[:2] in (b"\x1f\x8b", b"ZF")
        or head[:3] in (b"BZh", b"\x5d\x00\x00")
        or head[:1] == b"\x78"
        or head[:6] == b"\xfd7zXZ\x00"
        or head[:4] == b"\x28\xb5\x2f\xfd"
    )


def _maybe_tar(head: bytes, size: int) -> bool:
    # ustar, or a pre-POSIX header whose checksum field holds an octal digit.
    return len(head) >= 512 and (
        head[257:262] == b"ustar" or any(48 <= c <= 55 for c in head[148:156])
    )


# Module names under mlwarden.artifacts._formats, each defining READERS: tuple[Reader, ...],
# in sniffing order, each with a cheap test that admits (at least) everything its readers
# recognise. A module is imported only when its test admits the content: scanning a
# pickle does not pay for the zip, tar, 7z and HDF5 readers' imports (start-up time is
# most of the time per file).
_READER_MODULES: tuple[tuple[str, Callable[[bytes, int], bool] | None], ...] = (
    ("sevenzip", lambda head, size: head[:6] == b"7z\xbc\xaf\x27\x1c"),
    ("compressed", _maybe_compressed),
    ("zipfiles", lambda head, size: head[:2] == b"PK"),
    ("tarfiles", _maybe_tar),
    ("numpy_files", lambda head, size: head[:6] == b"\x93NUMPY"),
    ("hdf5", lambda head, size: b"\x89HDF\r\n\x1a\n" in head),
    ("safetensors", lambda head, size: head[8:9] == b"{"),
    ("gguf", lambda head, size: head[:4] == b"GGUF"),
    ("protobuf", None),
    ("pickles", None),
)


@cache
def _module_readers(name: str) -> tuple[Reader, ...]:
    module = importlib.import_module(f"mlwarden.artifacts._formats.{name}")
    found: tuple[Reader, ...] = module.READERS
    return found


def readers() -> tuple[Reader, ...]:
    """Every reader, in sniffing order (imports every reader module)."""
    return tuple(r for name, _ in _READER_MODULES for r in _module_readers(name))


def reader_named(name: str) -> Reader:
    for reader in readers():
        if reader.name == name:
            return reader
    raise KeyError(name)


def sniff(stream: BinaryIO) -> Reader | None:
    """The first reader that recognises the stream's content, or None."""
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    for name, admits in _READER_MODULES:
        if admits is not None and not admits(head, size):
            continue
        for reader in _module_readers(name):
            if reader.sniff(head, size):
                return reader
    return None


def run_reader(
    reader: Reader, stream: BinaryIO, location: str, ctx: ScanContext, depth: int
) -> None:
    """Run one reader with its failures turned into findings."""
    stream.seek(0)
    try:
        ctx.check_time()
        reader.scan(stream, location, ctx, depth)
    except LimitExceededError as exc:
        ctx.add(exc.rule_id, exc.message, location)
    except MalformedInputError as exc:
        ctx.add(reader.malformed_rule, exc.message, location)
    except MlwardenError as exc:
        ctx.add(reader.malformed_rule, f"{exc.code}: {exc.message}", location)
    except (RecursionError, MemoryError) as exc:
        ctx.add("PKL006" if reader.name == "pickle" else "ARCH003", repr(exc), location)
    except Exception as exc:
        ctx.add(
            reader.malformed_rule,
            f"{reader.name} reader could not parse the content: {type(exc).__name__}: {exc}",
            location,
        )


def scan_stream(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> str | None:
    """Scan a stream of unknown format; returns the format name, or None if unrecognised."""
    if depth > ctx.limits.max_depth:
        ctx.add(
            "ARCH003",
            f"nesting deeper than {ctx.limits.max_depth} containers; not scanned further",
            location,
        )
        return "nested"
    reader = sniff(stream)
    if reader is None:
        return None
    ctx.formats.append(reader.name)
    run_reader(reader, stream, location, ctx, depth)
    return reader.name


# Extensions that claim a model format; content that matches none is a finding. Names
# shared with raw or foreign data (.bin for OpenVINO and ONNX weights, .model for
# SentencePiece, .pb for frozen graphs, .zip, .tar) are left out: they would cry wolf.
MODEL_EXTENSIONS = frozenset(
    {
        ".pkl",
        ".pickle",
        ".pt",
        ".pth",
        ".ckpt",
        ".joblib",
        ".npy",
        ".npz",
        ".h5",
        ".hdf5",
        ".keras",
        ".onnx",
        ".safetensors",
        ".gguf",
        ".dill",
        ".sav",
        ".mar",
        ".pt2",
        ".ptl",
    }
)
# Formats whose content cannot execute code: a code-capable file that wears one of
# these extensions is disguised (a pickle named model.safetensors).
SAFE_FORMAT_EXTENSIONS = frozenset({".safetensors", ".onnx", ".gguf", ".npy"})
CODE_CAPABLE_FORMATS = frozenset({"pickle", "zip", "tar", "joblib", "keras", "hdf5"})


def extension_of(location: str) -> str:
    name = location.rsplit("!", 1)[-1].rsplit("/", 1)[-1].lower()
    return name[name.rfind(".") :] if "." in name else ""


def check_claimed_format(location: str, fmt: str | None, ctx: ScanContext) -> None:
    """Flag content that does not match what its extension claims."""
    ext = extension_of(location)
    if fmt is None and ext in MODEL_EXTENSIONS:
        ctx.add(
            "SCAN003",
            f"named {ext} but its content matches no model format mlwarden knows",
            location,
            extension=ext,
        )
    elif fmt in CODE_CAPABLE_FORMATS and ext in SAFE_FORMAT_EXTENSIONS:
        ctx.add(
            "SCAN003",
            f"named {ext} but its content is {fmt}, a format that can execute code",
            location,
            extension=ext,
            content=fmt,
        )


def scan_member(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> str | None:
    """Scan a member of a container (one level deeper) and check its claimed format."""
    fmt = scan_stream(stream, location, ctx, depth + 1)
    check_claimed_format(location, fmt, ctx)
    return fmt
