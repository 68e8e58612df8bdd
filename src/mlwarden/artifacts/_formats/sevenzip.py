"""7z archives, read with py7zr into size-capped in-memory writers.

Declared sizes are checked before anything is decompressed (members over the
per-member limit are not extracted), and every byte the decompressor actually
produces is charged again as it is written, since declared sizes are the
attacker's to choose. Each member is scanned as soon as py7zr finishes it and
then dropped, so memory holds one member at a time (spilling to disk past
64 MiB). Encrypted archives cannot be scanned and are reported.
"""

from __future__ import annotations

import lzma
import posixpath
import zlib
from typing import TYPE_CHECKING, Any, BinaryIO

from mlwarden.artifacts._context import ScanContext, member_location
from mlwarden.artifacts._dispatch import Reader, scan_member
from mlwarden.artifacts._formats.compressed import Budget, new_spool
from mlwarden.artifacts._formats.zipfiles import path_escapes
from mlwarden.errors import LimitExceededError, MalformedInputError

if TYPE_CHECKING:
    from collections.abc import Callable

MALFORMED = "ARCH004"
MAGIC = b"7z\xbc\xaf\x27\x1c"


def sniff(head: bytes, size: int) -> bool:
    return head.startswith(MAGIC)


def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    import py7zr
    from py7zr import exceptions

    stream.seek(0, 2)
    archive_size = stream.tell()
    stream.seek(0)
    errors = (
        exceptions.ArchiveError,
        exceptions.Bad7zFile,
        exceptions.DecompressionError,
        exceptions.CrcError,
        exceptions.UnsupportedCompressionMethodError,
        exceptions.InternalError,
        lzma.LZMAError,
        zlib.error,
        EOFError,
        OSError,  # bz2 and the file system report corrupt data as OSError
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    )
    try:
        # py7zr inflates members it was not asked for when they share a solid block with
        # ones it was: its own cap bounds that work by the file's remaining budget.
        remaining = max(ctx.limits.max_decompressed_bytes - ctx.decompressed, 0)
        archive = py7zr.SevenZipFile(stream, mode="r", max_extract_size=remaining)
    except exceptions.PasswordRequired:
        ctx.add(
            "ARCH006", "7z archive has an encrypted header; its members cannot be scanned", location
        )
        return
    except errors as exc:
        raise MalformedInputError(f"7z headers do not parse: {type(exc).__name__}: {exc}") from None
    with archive:
        if archive.needs_password():
            ctx.add("ARCH006", "7z archive is encrypted; its members cannot be scanned", location)
            return
        infos = archive.list()
        targets = _targets(infos, location, ctx)
        if not targets:
            return
        factory = _ScanningFactory(
            location=location, ctx=ctx, depth=depth, archive_size=archive_size
        )
        factory.symlinks.update(str(i.filename) for i in infos if getattr(i, "is_symlink", False))
        try:
            archive.extract(targets=targets, factory=factory.as_py7zr())
        except LimitExceededError as exc:
            ctx.add(exc.rule_id, exc.message, location)
        except exceptions.DecompressionBombError as exc:
            ctx.add("ARCH003", f"7z archive inflates past the file's budget: {exc}", location)
        except exceptions.UnsupportedCompressionMethodError as exc:
            ctx.add("ARCH007", f"7z member uses a method py7zr cannot decode: {exc}", location)
        except errors as exc:
            ctx.add(
                MALFORMED, f"7z data does not decompress: {type(exc).__name__}: {exc}", location
            )
        factory.finish()


def _targets(infos: list[Any], location: str, ctx: ScanContext) -> list[str]:
    """Names to extract: regular members within the limits, after name checks."""
    limits = ctx.limits
    if len(infos) > limits.max_members:
        ctx.add(
            "ARCH003",
            f"{len(infos)} members, more than the limit of {limits.max_members}; "
            "the rest were not scanned",
            location,
        )
        infos = infos[: limits.max_members]
    targets: list[str] = []
    for info in infos:
        name = str(info.filename)
        where = member_location(location, name)
        if path_escapes(name):
            ctx.add("ARCH001", f"member name {name!r} escapes the extraction folder", where)
        if info.is_directory:
            continue
        declared = int(info.uncompressed or 0)
        if declared > limits.max_member_bytes:
            ctx.add(
                "ARCH003",
                f"member declares {declared} bytes, more than the per-member "
                f"limit of {limits.max_member_bytes}; not extracted",
                where,
            )
            continue
        targets.append(name)
    return targets


class _ScanningFactory:
    """Creates a capped writer per member and scans each member once it is complete."""

    def __init__(self, *, location: str, ctx: ScanContext, depth: int, archive_size: int) -> None:
        self.location = location
        self.ctx = ctx
        self.depth = depth
        self.archive_size = archive_size
        self.pending: list[_CappedWriter] = []
        self.symlinks: set[str] = set()

    def as_py7zr(self) -> Any:
        from py7zr.io import WriterFactory

        outer = self

        class Factory(WriterFactory):
            def create(self, filename: str) -> Any:
                return outer.new_writer(filename)

        return Factory()

    def new_writer(self, filename: str) -> Any:
        budget = Budget(ctx=self.ctx, what=f"7z member {filename!r}", compressed=self.archive_size)
        writer = _CappedWriter.make(budget, on_close=self.scan_writer)
        writer.name = filename
        self.pending.append(writer)
        return writer

    def scan_writer(self, writer: _CappedWriter) -> None:
        if writer not in self.pending:
            return
        self.pending.remove(writer)
        data = writer.data
        try:
            if writer.name in self.symlinks:
                data.seek(0)
                self.check_link(writer.name, data.read(4096).decode("utf-8", "replace"))
            elif writer.budget.produced:
                data.seek(0)
                scan_member(data, member_location(self.location, writer.name), self.ctx, self.depth)
        finally:
            data.close()

    def check_link(self, name: str, target: str) -> None:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if target.startswith(("/", "\\")) or path_escapes(resolved):
            self.ctx.add(
                "ARCH001",
                f"symbolic link to {target!r} points outside the archive",
                member_location(self.location, name),
            )

    def finish(self) -> None:
        """Scan what py7zr did not close (an extraction cut short keeps its prefix)."""
        for writer in list(self.pending):
            self.scan_writer(writer)


class _CappedWriter:
    """The Py7zIO interface over a spooled file, charging every byte to the budget."""

    name: str

    def __init__(self, budget: Budget, on_close: Callable[[_CappedWriter], None]) -> None:
        self.budget = budget
        self.data = new_spool()
        self._on_close = on_close

    @classmethod
    def make(cls, budget: Budget, on_close: Callable[[_CappedWriter], None]) -> _CappedWriter:
        from py7zr.io import Py7zIO

        # Registered as a virtual subclass so py7zr's isinstance checks accept it.
        Py7zIO.register(cls)
        return cls(budget, on_close)

    def write(self, s: bytes | bytearray) -> int:
        self.budget.charge(len(s))
        return self.data.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self.data.read(-1 if size is None else size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.data.seek(offset, whence)

    def flush(self) -> None:
        self.data.flush()

    def size(self) -> int:
        return self.budget.produced

    def close(self) -> None:
        self._on_close(self)


READERS: tuple[Reader, ...] = (Reader(name="7z", malformed_rule=MALFORMED, sniff=sniff, scan=scan),)
