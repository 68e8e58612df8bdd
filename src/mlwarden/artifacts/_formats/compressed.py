"""Single-stream compression (gzip, bz2, xz, lzma, zlib, zstd): inflate, then scan the result.

This is how compressed joblib files and tar.gz / tar.bz2 / tar.xz archives are
scanned. Decompression is incremental and bounded: every chunk is charged to
the file's decompressed budget, to the per-member limit and to the ratio guard,
so a bomb stops early. Output goes to a spooled temporary file (memory first,
disk past 64 MiB). A truncated or corrupt stream is a finding, and whatever was
inflated before the break is still scanned: loaders act on that prefix too.

The helpers here (`Budget`, `inflate`, `new_spool`, `MemberWindow`) are shared
with the zip, tar and 7z readers.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import BinaryIO, Protocol, cast

from mlwarden.artifacts._context import MiB, ScanContext, member_location
from mlwarden.artifacts._dispatch import Reader, scan_member
from mlwarden.errors import LimitExceededError

MALFORMED = "ARCH004"
UNSUPPORTED = "ARCH007"
SPOOL_BYTES = 64 * MiB
CHUNK = 1 * MiB

GZIP_MAGIC = b"\x1f\x8b"
BZ2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# joblib < 0.9.3 wrote "ZF", the uncompressed length as 0x-hex padded to 19 characters,
# then a zlib stream (joblib/numpy_pickle_compat.py: write_zfile).
JOBLIB_ZFILE_MAGIC = b"ZF0x"
JOBLIB_ZFILE_HEADER = 2 + 19
_ZLIB_FLAGS = frozenset({0x01, 0x5E, 0x9C, 0xDA})

_STRIPPED_SUFFIXES = {
    ".tgz": ".tar",
    ".tbz2": ".tar",
    ".tbz": ".tar",
    ".txz": ".tar",
    ".gz": "",
    ".gzip": "",
    ".bz2": "",
    ".xz": "",
    ".lzma": "",
    ".z": "",
    ".zlib": "",
    ".zst": "",
}


def new_spool() -> BinaryIO:
    """A temporary file that stays in memory up to SPOOL_BYTES."""
    return cast(BinaryIO, SpooledTemporaryFile(max_size=SPOOL_BYTES))


@dataclass(slots=True, kw_only=True)
class Budget:
    """Accounts the output of one member against the file's limits.

    `compressed` is updated by the caller as input is consumed, so the ratio
    guard compares like with like even for streams of unknown length.
    """

    ctx: ScanContext
    what: str
    compressed: int = 0
    produced: int = field(default=0)

    def charge(self, nbytes: int) -> None:
        limits = self.ctx.limits
        self.produced += nbytes
        if self.produced > limits.max_member_bytes:
            raise LimitExceededError(
                f"{self.what} inflates past the per-member limit of {limits.max_member_bytes} bytes"
            )
        if (
            self.produced > limits.ratio_floor_bytes
            and self.produced > limits.max_compression_ratio * max(self.compressed, 1)
        ):
            raise LimitExceededError(
                f"{self.what} inflates more than {limits.max_compression_ratio:g} times "
                f"({self.compressed} bytes gave over {self.produced}): a decompression bomb"
            )
        self.ctx.charge_decompressed(nbytes)
        self.ctx.check_time()


class Decompressor(Protocol):
    """What zlib, bz2 and lzma decompressor objects share (zlib through an adapter)."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


class ZlibDecompressor:
    """zlib's decompressobj behind the bz2/lzma interface (needs_input, max_length)."""

    def __init__(self, wbits: int) -> None:
        self._inner = zlib.decompressobj(wbits)

    @property
    def eof(self) -> bool:
        return self._inner.eof

    @property
    def needs_input(self) -> bool:
        return not self._inner.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self._inner.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        return self._inner.decompress(self._inner.unconsumed_tail + data, max(max_length, 0))


DECOMPRESS_ERRORS = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inflated:
    """The outcome of inflating one stream: where the output is and what went wrong."""

    error: str | None
    """Why the stream ended early (truncated, corrupt), or None."""
    trailing: bytes
    """The first bytes after the final compressed stream, if any (up to 16)."""


def inflate(
    source: BinaryIO,
    new_decompressor: Callable[[], Decompressor],
    sink: BinaryIO,
    budget: Budget,
    *,
    limit: int | None = None,
    multistream: bytes | None = None,
) -> Inflated:
    """Decompress `source` from its current position into `sink`, in bounded chunks.

    Reads at most `limit` compressed bytes. When a stream ends and the next
    bytes start with `multistream` (a magic number), the next stream is
    decompressed too, as gzip/bz2/xz tools do with concatenated members.
    Raises LimitExceededError through `budget`; returns decode errors as data so
    the output produced so far can still be scanned.
    """
    remaining = limit
    pending = b""

    def read_input() -> bytes:
        nonlocal remaining
        want = CHUNK if remaining is None else min(CHUNK, remaining)
        if want <= 0:
            return b""
        data = source.read(want)
        if remaining is not None:
            remaining -= len(data)
        budget.compressed += len(data)
        return data

    decompressor = new_decompressor()
    try:
        while True:
            if decompressor.needs_input:
                data = pending or read_input()
                pending = b""
                if not data:
                    return Inflated(error="compressed stream is truncated", trailing=b"")
            else:
                data = b""
            out = decompressor.decompress(data, CHUNK)
            if out:
                budget.charge(len(out))
                sink.write(out)
            if decompressor.eof:
                rest = decompressor.unused_data
                while len(rest) < 16 and (more := read_input()):
                    rest += more  # enough to recognise the next stream's magic number
                if not rest:
                    return Inflated(error=None, trailing=b"")
                if multistream is not None and rest.startswith(multistream):
                    pending = rest
                    decompressor = new_decompressor()
                    continue
                if multistream is not None and not rest.strip(b"\x00"):
                    # Zero padding after the last member (tape blocks) is ignored by tools.
                    more = read_input()
                    if not more.strip(b"\x00"):
                        return Inflated(error=None, trailing=b"")
                    rest += more
                return Inflated(error=None, trailing=rest[:16])
    except DECOMPRESS_ERRORS as exc:
        return Inflated(error=f"corrupt compressed data: {exc}", trailing=b"")


def inner_name(location: str) -> str:
    """The name of the decompressed content: `model.tar.gz` -> `model.tar`."""
    base = location.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
    lower = base.lower()
    for suffix, replacement in _STRIPPED_SUFFIXES.items():
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + replacement
    return base


def _scan_compressed(
    stream: BinaryIO,
    location: str,
    ctx: ScanContext,
    depth: int,
    *,
    kind: str,
    new_decompressor: Callable[[], Decompressor],
    multistream: bytes | None,
    start: int = 0,
) -> None:
    stream.seek(start)
    name = inner_name(location)
    budget = Budget(ctx=ctx, what=f"{kind} stream")
    with new_spool() as spool:
        try:
            result = inflate(stream, new_decompressor, spool, budget, multistream=multistream)
        except LimitExceededError as exc:
            # Scan what fitted in the budget: a payload before the bomb must still be seen.
            ctx.add(exc.rule_id, exc.message, location)
            result = None
        if result is not None and result.error is not None:
            ctx.add(
                MALFORMED,
                f"{kind}: {result.error} after {budget.produced} bytes of output; "
                "the output before the break was scanned",
                location,
            )
        if result is not None and result.trailing:
            ctx.add(
                MALFORMED,
                f"{kind}: unexpected bytes after the compressed data",
                location,
                trailing=result.trailing.hex(),
            )
        if budget.produced == 0:
            return
        spool.seek(0)
        scan_member(spool, member_location(location, name), ctx, depth)


# --- sniffers ------------------------------------------------------------------


def sniff_gzip(head: bytes, size: int) -> bool:
    # Compression method 8 (deflate) is the only one gzip defines; reserved flag bits are 0.
    return head[:2] == GZIP_MAGIC and len(head) >= 10 and head[2] == 8 and head[3] & 0xE0 == 0


def sniff_bz2(head: bytes, size: int) -> bool:
    return (
        head[:3] == BZ2_MAGIC
        and len(head) >= 10
        and 0x31 <= head[3] <= 0x39
        and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90")  # a block, or the end of an empty stream
    )


def sniff_xz(head: bytes, size: int) -> bool:
    return head[:6] == XZ_MAGIC


def sniff_lzma(head: bytes, size: int) -> bool:
    """Legacy .lzma ("LZMA alone"): properties 0x5D, a dictionary size, a 64-bit length."""
    if len(head) < 13 or head[:3] != b"\x5d\x00\x00":
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    length = int.from_bytes(head[5:13], "little")
    return (1 << 16) <= dict_size <= (1 << 30) and (length == (1 << 64) - 1 or length < 1 << 48)


def sniff_zlib(head: bytes, size: int) -> bool:
    if len(head) >= JOBLIB_ZFILE_HEADER + 2 and head.startswith(JOBLIB_ZFILE_MAGIC):
        return _zlib_header(head[JOBLIB_ZFILE_HEADER:]) or _zlib_header(
            head[JOBLIB_ZFILE_HEADER + 1 :]
        )
    return _zlib_header(head)


def _zlib_header(head: bytes) -> bool:
    return (
        len(head) >= 2
        and head[0] == 0x78
        and head[1] in _ZLIB_FLAGS
        and (head[0] * 256 + head[1]) % 31 == 0
    )


def sniff_zstd(head: bytes, size: int) -> bool:
    return head[:4] == ZSTD_MAGIC


# --- scanners ------------------------------------------------------------------


def _scanner(
    kind: str, new_decompressor: Callable[[], Decompressor], multistream: bytes | None
) -> Callable[[BinaryIO, str, ScanContext, int], None]:
    def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
        _scan_compressed(
            stream,
            location,
            ctx,
            depth,
            kind=kind,
            new_decompressor=new_decompressor,
            multistream=multistream,
        )

    return scan


# gzip, bz2 and xz files may hold several streams in a row; tools decompress them all.
scan_gzip = _scanner("gzip", lambda: ZlibDecompressor(31), GZIP_MAGIC)  # wbits 31: gzip wrapper
scan_bz2 = _scanner("bz2", bz2.BZ2Decompressor, BZ2_MAGIC)
scan_xz = _scanner("xz", lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), XZ_MAGIC)
scan_lzma = _scanner("lzma", lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE), None)


def scan_zlib(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    head = stream.read(JOBLIB_ZFILE_HEADER + 1)
    start = 0
    if head.startswith(JOBLIB_ZFILE_MAGIC):
        # Old joblib sometimes wrote one more space of padding before the zlib data.
        start = JOBLIB_ZFILE_HEADER + (1 if head[JOBLIB_ZFILE_HEADER:] == b" " else 0)
    _scan_compressed(
        stream,
        location,
        ctx,
        depth,
        kind="zlib",
        new_decompressor=lambda: ZlibDecompressor(15),
        multistream=None,
        start=start,
    )


def _zstd_decompressor() -> Callable[[], Decompressor] | None:
    try:  # Python 3.14+ ships zstd in the standard library.
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return cast(Callable[[], Decompressor], zstd.ZstdDecompressor)


def scan_zstd(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    factory = _zstd_decompressor()
    if factory is None:
        ctx.add(
            UNSUPPORTED,
            "zstd-compressed content: this Python has no zstd decoder, so it was not scanned",
            location,
            method="zstd",
        )
        return
    _scan_compressed(
        stream,
        location,
        ctx,
        depth,
        kind="zstd",
        new_decompressor=factory,
        multistream=ZSTD_MAGIC,
    )


READERS: tuple[Reader, ...] = (
    Reader(name="gzip", malformed_rule=MALFORMED, sniff=sniff_gzip, scan=scan_gzip),
    Reader(name="bz2", malformed_rule=MALFORMED, sniff=sniff_bz2, scan=scan_bz2),
    Reader(name="xz", malformed_rule=MALFORMED, sniff=sniff_xz, scan=scan_xz),
    Reader(name="lzma", malformed_rule=MALFORMED, sniff=sniff_lzma, scan=scan_lzma),
    Reader(name="zlib", malformed_rule=MALFORMED, sniff=sniff_zlib, scan=scan_zlib),
    Reader(name="zstd", malformed_rule=MALFORMED, sniff=sniff_zstd, scan=scan_zstd),
)
