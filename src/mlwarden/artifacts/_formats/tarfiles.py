"""Tar archives, including legacy PyTorch tar checkpoints.

Headers are read with the standard library (uncompressed mode only: gzip, bz2
and xz wrappers are the compressed readers' work, so every layer is bounded the
same way). Member data is never extracted to disk: regular members are scanned
in place through a window on the archive. Names and link targets that escape
the extraction folder are findings, as are device files, data hidden after the
end-of-archive marker, and members that run past the end of the file.

Old `torch.save` wrote tars with members `sys_info`, `pickle`, `storages` and
`tensors`; `torch.load` unpickles several pickles interleaved with raw tensor
bytes in `storages` and `tensors`, so those are walked pickle by pickle.
"""

from __future__ import annotations

import posixpath
import re
import struct
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, cast

from mlwarden.artifacts._context import ScanContext, member_location
from mlwarden.artifacts._dispatch import Reader, scan_member
from mlwarden.artifacts._formats.compressed import Budget, new_spool
from mlwarden.artifacts._formats.zipfiles import path_escapes
from mlwarden.artifacts._streams import MemberWindow
from mlwarden.errors import LimitExceededError, MalformedInputError
from mlwarden.severity import Severity

MALFORMED = "ARCH004"
BLOCK = 512
_LEGACY_TORCH_MEMBERS = frozenset({"pickle", "storages"})
# Element sizes of the storage classes legacy checkpoints name (torch.FloatStorage ...).
_STORAGE_ELEMENT_SIZES = {
    "Double": 8, "Float": 4, "Half": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
    "Byte": 1, "Bool": 1, "BFloat16": 2, "ComplexDouble": 16, "ComplexFloat": 8,
    "QUInt8": 1, "QInt8": 1, "QInt32": 4, "QUInt4x2": 1, "QUInt2x4": 1,
}  # fmt: skip
_STORAGE_GLOBAL = re.compile(r"torch(?:\.cuda)?\.(\w+)Storage")
MAX_LEGACY_RECORDS = 1_000_000


def sniff(head: bytes, size: int) -> bool:
    if len(head) < BLOCK or size < BLOCK:
        return False
    if head[257:262] == b"ustar":
        return True
    return _v7_checksum_ok(head[:BLOCK])


def _v7_checksum_ok(block: bytes) -> bool:
    """A pre-POSIX header: a name, and a checksum field that matches the block."""
    if block[0] == 0:
        return False
    field = block[148:156].replace(b"\x00", b" ").strip()
    if not field or not all(48 <= c <= 55 for c in field):
        return False
    stored = int(field, 8)
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return stored == unsigned


def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    stream.seek(0, 2)
    file_size = stream.tell()
    stream.seek(0)
    members, end, complete = _read_members(stream, location, ctx)
    names = {member.name for member in members}
    legacy_torch = names >= _LEGACY_TORCH_MEMBERS
    for member in members:
        ctx.check_time()
        where = member_location(location, member.name)
        _check_paths(member, where, ctx)
        if member.ischr() or member.isblk() or member.isfifo():
            ctx.add(
                MALFORMED,
                "device or pipe member: a model archive has no use for it; ignored",
                where,
                severity=Severity.LOW,
            )
            continue
        if not member.isreg():
            continue
        if member.offset_data + member.size > file_size and not member.issparse():
            ctx.add(MALFORMED, "member data runs past the end of the archive", where)
            continue
        with _member_data(stream, member, where, ctx) as data:
            if data is None:
                continue
            if legacy_torch and member.name in ("sys_info", "pickle"):
                _analyze_pickles(data, where, ctx, depth + 1, walk=None)
            elif legacy_torch and member.name in ("storages", "tensors"):
                _analyze_pickles(data, where, ctx, depth + 1, walk=member.name)
            else:
                scan_member(data, where, ctx, depth)
    if complete:
        _check_tail(stream, end, file_size, location, ctx)


def _read_members(
    stream: BinaryIO, location: str, ctx: ScanContext
) -> tuple[list[tarfile.TarInfo], int, bool]:
    """Every member header (up to the limit), the offset after the last member, and
    whether the end of the archive was reached."""
    members: list[tarfile.TarInfo] = []
    complete = True
    try:
        archive = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - closed below
        try:
            while True:
                ctx.check_time()
                member = archive.next()
                if member is None:
                    break
                if len(members) >= ctx.limits.max_members:
                    ctx.add(
                        "ARCH003",
                        f"more than {ctx.limits.max_members} members; the rest were not scanned",
                        location,
                    )
                    complete = False
                    break
                members.append(member)
            end = archive.offset
        finally:
            archive.close()
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeError) as exc:
        raise MalformedInputError(f"tar headers do not parse: {exc}") from None
    return members, end, complete


def _check_paths(member: tarfile.TarInfo, where: str, ctx: ScanContext) -> None:
    if path_escapes(member.name):
        ctx.add("ARCH001", f"member name {member.name!r} escapes the extraction folder", where)
    if member.issym():
        target = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), target))
        if target.startswith(("/", "\\")) or path_escapes(resolved):
            ctx.add("ARCH001", f"symbolic link to {target!r} points outside the archive", where)
    elif member.islnk() and path_escapes(posixpath.normpath(member.linkname)):
        ctx.add("ARCH001", f"hard link to {member.linkname!r} points outside the archive", where)


@contextmanager
def _member_data(
    stream: BinaryIO, member: tarfile.TarInfo, where: str, ctx: ScanContext
) -> Iterator[BinaryIO | None]:
    """A regular member's bytes: a window on the archive, or for a sparse member a
    bounded copy (its holes inflate like compressed data)."""
    if not member.issparse():
        yield MemberWindow.open(stream, member.offset_data, member.size)
        return
    spool = new_spool()
    try:
        sparse_map = cast(list[tuple[int, int]], member.sparse or [])
        stored = sum(length for _, length in sparse_map)
        budget = Budget(ctx=ctx, what=f"sparse member {member.name!r}", compressed=stored)
        archive = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - closed below
        try:
            reader = archive.extractfile(member)
            while reader is not None:
                chunk = reader.read(1024 * 1024)
                if not chunk:
                    break
                budget.charge(len(chunk))
                spool.write(chunk)
        except LimitExceededError as exc:
            ctx.add(exc.rule_id, exc.message, where)
        except (tarfile.TarError, OSError, EOFError) as exc:
            ctx.add(MALFORMED, f"sparse member does not read: {exc}", where)
        finally:
            archive.close()
        spool.seek(0)
        yield spool if budget.produced else None
    finally:
        spool.close()


def _check_tail(
    stream: BinaryIO, end: int, file_size: int, location: str, ctx: ScanContext
) -> None:
    """Tar readers stop at the first empty block; bytes after it are hidden from them."""
    stream.seek(end)
    tail = stream.read(min(file_size - end, 16 * 1024 * 1024))
    if tail.strip(b"\x00"):
        ctx.add(
            MALFORMED,
            f"{file_size - end} bytes follow the end of the archive, hidden from tar readers",
            location,
        )


def _analyze_pickles(
    data: BinaryIO, where: str, ctx: ScanContext, depth: int, *, walk: str | None
) -> None:
    """Analyse a legacy checkpoint member: one pickle, or the pickle/raw-bytes records of
    `storages` and `tensors` as `torch.serialization.legacy_load` reads them."""
    from mlwarden.artifacts._pickle.analyzer import analyze_pickle

    ctx.formats.append("pickle")
    data.seek(0, 2)
    size = data.tell()
    first = analyze_pickle(data, where, ctx, depth, start=0)
    if walk is None or not first.complete:
        return
    data.seek(0)
    count = small_int_pickle(data.read(min(first.end, 64)))
    if count is None or count < 0:
        ctx.add("TORCH002", f"legacy {walk} record count is not a small integer", where)
        return
    if count > MAX_LEGACY_RECORDS:
        ctx.add("ARCH003", f"legacy {walk} declares {count} records; not walked", where)
        return
    position = first.end
    for _ in range(count):
        ctx.check_time()
        record = analyze_pickle(data, where, ctx, depth, start=position)
        if not record.complete:
            return
        data.seek(record.end)
        if walk == "storages":
            element = _element_size(record.globals)
            raw = data.read(8)
            if element is None or len(raw) < 8:
                ctx.add("TORCH002", "legacy storage record names no known storage type", where)
                return
            position = record.end + 8 + struct.unpack("<q", raw)[0] * element
        else:
            raw = data.read(8)
            ndim = struct.unpack("<i", raw[:4])[0] if len(raw) == 8 else -1
            if not 0 <= ndim <= 64:
                ctx.add("TORCH002", "legacy tensor record has an invalid rank", where)
                return
            position = record.end + 8 + 16 * ndim + 8
        if not record.end < position <= size:
            ctx.add("TORCH002", f"legacy {walk} record runs past the end of the member", where)
            return
    if walk == "storages" and position < size:
        analyze_pickle(data, where, ctx, depth, start=position)  # the storage views


def _element_size(names: tuple[str, ...]) -> int | None:
    for name in names:
        match = _STORAGE_GLOBAL.fullmatch(name)
        if match and match.group(1) in _STORAGE_ELEMENT_SIZES:
            return _STORAGE_ELEMENT_SIZES[match.group(1)]
    return None


def small_int_pickle(raw: bytes) -> int | None:
    """The value of a pickle that is a single integer (PROTO, FRAME, an int opcode, STOP)."""
    pos = 0
    if raw[pos : pos + 1] == b"\x80":
        pos += 2
    if raw[pos : pos + 1] == b"\x95":
        pos += 9
    op = raw[pos : pos + 1]
    value: int | None = None
    if op == b"K" and len(raw) >= pos + 2:
        value, pos = raw[pos + 1], pos + 2
    elif op == b"M" and len(raw) >= pos + 3:
        value, pos = int.from_bytes(raw[pos + 1 : pos + 3], "little"), pos + 3
    elif op == b"J" and len(raw) >= pos + 5:
        value = int.from_bytes(raw[pos + 1 : pos + 5], "little", signed=True)
        pos += 5
    elif op in (b"I", b"L"):
        newline = raw.find(b"\n", pos)
        text = raw[pos + 1 : newline].rstrip(b"L")
        if newline < 0 or not text.lstrip(b"-").isdigit():
            return None
        value, pos = int(text), newline + 1
    if value is None or raw[pos : pos + 1] != b".":
        return None
    return value


READERS: tuple[Reader, ...] = (
    Reader(name="tar", malformed_rule=MALFORMED, sniff=sniff, scan=scan),
)
