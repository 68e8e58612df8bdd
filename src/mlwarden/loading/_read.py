"""The one step between disk and deserializer: read once, hash, compare, scan.

Everything a loader deserializes comes out of `read_verified` as an immutable
`bytes` object. The file is opened and read exactly once; the digest is taken
over that object, the scanner reads that object, and the loader parses that
object. Nothing re-opens the path afterwards, so a file swapped on disk after
the read cannot reach the deserializer (the check-then-load race fickling
describes).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mlwarden.errors import (
    FileChangedError,
    LimitExceededError,
    ManifestMismatchError,
    MlwardenError,
    PathNotFoundError,
    ScanRefusedError,
    UnreadableInputError,
)

GiB = 1024 * 1024 * 1024
DEFAULT_MAX_BYTES = 4 * GiB
"""The largest file `mlwarden.load` reads into memory unless told otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedBytes:
    """The content of one file, matched to its signed digest and scanned clean."""

    name: str
    """The resource name in the signed manifest."""
    location: str
    """The path it was read from, for messages."""
    data: bytes
    sha256: str
    format: str | None
    """The format the scanner recognised (``safetensors``, ``zip``, ``pickle`` ...)."""


def read_once(path: Path, max_bytes: int) -> bytes:
    """Read the whole file into one immutable buffer, refusing anything over max_bytes.

    The size is taken from the open descriptor, so the limit is checked before
    any allocation; a file that grows or shrinks during the read is refused.
    """
    try:
        # O_NONBLOCK: a FIFO planted where the model was must not hang the open; it
        # is refused below as not a regular file (regular files ignore the flag).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise PathNotFoundError(f"{path}: no such file") from None
    except OSError as exc:
        raise UnreadableInputError(f"{path}: cannot open: {exc.strerror or exc}") from None
    # Buffered: its read(n) loops over short reads (one read(2) stops near 2 GiB).
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableInputError(f"{path}: not a regular file")
        if info.st_size > max_bytes:
            raise LimitExceededError(
                f"{path}: {info.st_size} bytes is more than the load limit of {max_bytes}",
                rule_id="ARCH003",
                hint="pass a larger max_bytes= to mlwarden.load if this size is expected",
            )
        try:
            data = stream.read(info.st_size + 1)
        except OSError as exc:
            raise UnreadableInputError(f"{path}: read error: {exc.strerror or exc}") from None
    if len(data) != info.st_size:
        raise FileChangedError(
            f"{path}: changed while it was read ({info.st_size} bytes expected, {len(data)} read)"
        )
    return data


def check_digest(data: bytes, expected: str, *, name: str, location: str) -> str:
    """The sha256 of `data` if it equals the signed digest; ManifestMismatchError otherwise."""
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, expected.lower()):
        raise ManifestMismatchError(
            f"{location}: content differs from the signed digest of {name!r} "
            f"(signed sha256:{expected.lower()[:16]}..., found sha256:{actual[:16]}...)",
            hint="the file was changed after signing; obtain the signed version",
        )
    return actual


def scan_clean(data: bytes, location: str, root: Path) -> str | None:
    """Scan the bytes; return the recognised format, or refuse on any finding.

    Fails closed: content the scanner does not recognise was not checked, and a
    scan that cannot run to the end has not shown the content to be clean.
    """
    from mlwarden.artifacts._context import Limits, ScanContext
    from mlwarden.artifacts._dispatch import check_claimed_format, scan_stream

    ctx = ScanContext(limits=Limits(), root=root)
    try:
        fmt = scan_stream(io.BytesIO(data), location, ctx, 0)
        check_claimed_format(location, fmt, ctx)
    except MlwardenError as exc:
        raise ScanRefusedError(
            f"{location}: the scan could not complete ({exc.code}: {exc.message})"
        ) from None
    except Exception as exc:  # the scanner must not crash, but a crash is not "clean"
        raise ScanRefusedError(
            f"{location}: the scan could not complete ({type(exc).__name__}: {exc})"
        ) from None
    if ctx.findings:
        rules = sorted({f.rule_id for f in ctx.findings})
        first = ctx.findings[0]
        raise ScanRefusedError(
            f"{location}: the scan flagged it ({', '.join(rules)}): {first.message}",
            hint=f"run `mlwarden scan {location}` for every finding",
        )
    if fmt is None:
        raise ScanRefusedError(
            f"{location}: the scanner does not recognise this content, so it was not checked"
        )
    return fmt


def read_verified(
    path: Path, *, name: str, expected_sha256: str, root: Path, max_bytes: int
) -> VerifiedBytes:
    """Read once, compare with the signed digest, then scan the same bytes."""
    location = str(path)
    data = read_once(path, max_bytes)
    digest = check_digest(data, expected_sha256, name=name, location=location)
    fmt = scan_clean(data, location, root)
    return VerifiedBytes(name=name, location=location, data=data, sha256=digest, format=fmt)
