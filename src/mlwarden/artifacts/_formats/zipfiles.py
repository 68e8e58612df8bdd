"""Zip archives, and the model formats built on them (PyTorch, TorchScript, .keras, .npz).

The central directory is read with the standard library (it copes with zip64
and with data prepended to the archive), but member data is located and
decompressed here: `zipfile` trusts declared sizes, refuses names that differ
between the two headers and ignores overlapping entries, which are exactly the
tricks hostile archives use. Each member's local header name is compared with
its central name (different tools read different ones), names that escape the
extraction folder are flagged, encrypted members are reported, and every
inflation is bounded by the file's limits.

PyTorch checkpoints are recognised by their members: their pickles are analysed
in place and their tensor storages (`<archive>/data/<key>`) are never read, so
a checkpoint of any size scans in the time to read its pickle.
"""

from __future__ import annotations

import bz2
import lzma
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from mlwarden.artifacts._context import ScanContext, member_location
from mlwarden.artifacts._dispatch import Reader, scan_member
from mlwarden.artifacts._formats.compressed import (
    UNSUPPORTED,
    Budget,
    Decompressor,
    ZlibDecompressor,
    inflate,
    new_spool,
)
from mlwarden.artifacts._streams import MemberWindow
from mlwarden.errors import LimitExceededError, MalformedInputError

MALFORMED = "ARCH004"
LOCAL_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
EOCD_MAGIC = b"PK\x05\x06"
EOCD_SIZE = 22
MAX_COMMENT = 0xFFFF
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
_METHOD_NAMES = {9: "deflate64", 93: "zstd", 95: "xz", 97: "wavpack", 98: "ppmd", 99: "aes"}

# PyTorch: `<archive>/data.pkl`; TorchScript adds `constants.pkl` and `code/`.
_TORCH_PICKLE = re.compile(r"(?:[^/]*/)?(?:data|constants)\.pkl")
# Records PyTorch reads as short text or ignores; never unpickled.
_TORCH_RECORDS = re.compile(
    r"(?:[^/]*/)?(?:version|byteorder|\.format_version|\.storage_alignment|\.data/[^/]+)"
)
_TORCH_CODE = re.compile(r"(?:[^/]*/)?code/.+\.py")
_PICKLE_SUFFIXES = (".pkl", ".debug_pkl")
_DRIVE = re.compile(r"[A-Za-z]:")

# Calls in TorchScript source that act outside the model: files, processes, Python itself.
# String literals are removed first ("builtins.ValueError" is how scripts name exceptions).
_TORCHSCRIPT_HAZARDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:ops\.aten|torch)\.(?:save|load|from_file)\b"), "file read or write"),
    (re.compile(r"\bops\.aten\.(?:_save\w*|to_file)\b"), "file write"),
    (re.compile(r"\bopen\s*\("), "file open"),
    (re.compile(r"__import__|\bimportlib\b"), "module import"),
    (re.compile(r"\bbuiltins\b|__builtins__"), "Python builtins"),
    (re.compile(r"\b(?:eval|exec|compile)\s*\("), "dynamic code"),
    (re.compile(r"\b(?:os|sys|subprocess|socket|shutil|pty|ctypes)\s*\."), "system module"),
    (re.compile(r"\bsubprocess\b|\bpickle\.loads?\b|\bmarshal\b"), "system module"),
)
_CLASS_DEF = re.compile(r"^class (\w+)\b", re.MULTILINE)
_STRING_LITERAL = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'")
_COMMENT = re.compile(r"#[^\n]*")


def sniff(head: bytes, size: int) -> bool:
    # Only archives that start as zips: a pickle with a zip appended is the pickle
    # reader's, which calls scan_zip itself (and reports the polyglot).
    return head[:4] in (LOCAL_MAGIC, EOCD_MAGIC, b"PK\x07\x08")


def has_zip_eocd(stream: BinaryIO) -> bool:
    """Whether an end-of-central-directory record sits where zip readers look for one."""
    stream.seek(0, 2)
    size = stream.tell()
    tail_size = min(size, EOCD_SIZE + MAX_COMMENT)
    stream.seek(size - tail_size)
    tail = stream.read(tail_size)
    at = tail.rfind(EOCD_MAGIC)
    while at >= 0:
        if at + EOCD_SIZE <= len(tail):
            comment_length = int.from_bytes(tail[at + 20 : at + 22], "little")
            if at + EOCD_SIZE + comment_length <= len(tail):
                return True
        at = tail.rfind(EOCD_MAGIC, 0, at)
    return False


def path_escapes(name: str) -> bool:
    """Whether extracting a member of this name could write outside the target folder.

    Backslashes count as separators (Windows tools treat them so), drive letters
    and UNC or root prefixes as absolute.
    """
    if not name:
        return False
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or _DRIVE.match(normalised):
        return True
    return ".." in normalised.split("/")


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One member as both headers describe it, with its data's position in the file."""

    name: str
    local_name: str
    method: int
    encrypted: bool
    header_offset: int
    data_offset: int
    compressed_size: int
    size: int

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,) if self.local_name == self.name else (self.name, self.local_name)

    @property
    def end(self) -> int:
        return self.data_offset + self.compressed_size


def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    scan_zip(stream, location, ctx, depth)


def scan_zip(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    """Scan a zip archive wherever its central directory says it is in `stream`.

    Members are scanned one level deeper than `depth`. Raises MalformedInputError
    when no central directory parses.
    """
    stream.seek(0, 2)
    file_size = stream.tell()
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
        infos = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,  # "zip file version ..." from a forged version field
        OSError,
        EOFError,
        ValueError,
    ) as exc:
        raise MalformedInputError(f"zip central directory does not parse: {exc}") from None
    if len(infos) > ctx.limits.max_members:
        ctx.add(
            "ARCH003",
            f"{len(infos)} members, more than the limit of {ctx.limits.max_members}; "
            "the rest were not scanned",
            location,
        )
        infos = infos[: ctx.limits.max_members]
    entries: list[Entry] = []
    for info in infos:
        ctx.check_time()
        entry = _read_entry(stream, info, file_size, location, ctx)
        if entry is not None:
            entries.append(entry)
    hidden = _hidden_entries(stream, entries, getattr(archive, "start_dir", file_size), ctx)
    for entry in hidden:
        ctx.add(
            "ARCH002",
            "a local file header that the central directory does not list: streaming unzip "
            "tools see this member, zip readers do not",
            member_location(location, entry.name),
            offset=entry.header_offset,
        )
    entries.extend(hidden)
    _check_names(entries, location, ctx)
    overlapping = _overlapping(entries)
    if overlapping:
        ctx.add(
            "ARCH003",
            f"{len(overlapping)} members overlap other members' data (a zip bomb technique); "
            "they were not decompressed",
            location,
            members=", ".join(sorted(e.name for e in overlapping)[:5]),
        )
    layout = _Layout.of(entries)
    script = _ScriptUnit()
    for entry in entries:
        ctx.check_time()
        if entry in overlapping:
            continue
        _scan_entry(stream, entry, layout, script, location, ctx, depth)
    script.forgive_own_classes(ctx)


def _read_entry(
    stream: BinaryIO, info: zipfile.ZipInfo, file_size: int, location: str, ctx: ScanContext
) -> Entry | None:
    name = info.orig_filename
    where = member_location(location, name)
    if not 0 <= info.header_offset < file_size:
        ctx.add(MALFORMED, "the central directory points outside the file", where)
        return None
    stream.seek(info.header_offset)
    raw = stream.read(_LOCAL_HEADER.size)
    if len(raw) < _LOCAL_HEADER.size or raw[:4] != LOCAL_MAGIC:
        ctx.add(MALFORMED, "the central directory points to no local file header", where)
        return None
    fields = _LOCAL_HEADER.unpack(raw)
    flags, method, name_length, extra_length = fields[2], fields[3], fields[9], fields[10]
    raw_name = stream.read(name_length)
    local_name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
    data_offset = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if method != info.compress_type:
        ctx.add(
            "ARCH002",
            f"local header says compression method {method}, the central directory "
            f"{info.compress_type}",
            where,
        )
    if data_offset + info.compress_size > file_size:
        ctx.add(MALFORMED, "member data runs past the end of the file", where)
        return None
    return Entry(
        name=name,
        local_name=local_name,
        method=info.compress_type,
        encrypted=bool(info.flag_bits & 0x41),
        header_offset=info.header_offset,
        data_offset=data_offset,
        compressed_size=info.compress_size,
        size=info.file_size,
    )


# Gaps between members are searched for hidden local headers up to this many bytes.
MAX_GAP_BYTES = 16 * 1024 * 1024


def _hidden_entries(
    stream: BinaryIO, entries: list[Entry], central_start: int, ctx: ScanContext
) -> list[Entry]:
    """Local headers in the bytes between listed members that no central record points to."""
    if not entries:
        return []
    spans = sorted((entry.header_offset, entry.end) for entry in entries)
    gaps: list[tuple[int, int]] = []
    covered = spans[0][0]
    for begin, end in [*spans, (central_start, central_start)]:
        if begin > covered:
            gaps.append((covered, begin))
        covered = max(covered, end)
    hidden: list[Entry] = []
    budget = MAX_GAP_BYTES
    for begin, end in gaps:
        stream.seek(begin)
        data = stream.read(min(end - begin, budget))
        budget -= len(data)
        at = data.find(LOCAL_MAGIC)
        while at >= 0:
            entry = _local_entry(stream, begin + at, end)
            if entry is not None:
                hidden.append(entry)
            at = data.find(LOCAL_MAGIC, at + 4)
        if budget <= 0:
            break
    return hidden[: ctx.limits.max_members]


def _local_entry(stream: BinaryIO, offset: int, limit: int) -> Entry | None:
    """An entry described by a local header alone (sizes must be in it)."""
    stream.seek(offset)
    raw = stream.read(_LOCAL_HEADER.size)
    if len(raw) < _LOCAL_HEADER.size:
        return None
    fields = _LOCAL_HEADER.unpack(raw)
    flags, method, compressed, size = fields[2], fields[3], fields[7], fields[8]
    name_length, extra_length = fields[9], fields[10]
    name = stream.read(name_length).decode("utf-8" if flags & 0x800 else "cp437", "replace")
    data_offset = offset + _LOCAL_HEADER.size + name_length + extra_length
    if data_offset + compressed > limit:
        compressed = max(limit - data_offset, 0)
    return Entry(
        name=name,
        local_name=name,
        method=method,
        encrypted=bool(flags & 0x41),
        header_offset=offset,
        data_offset=data_offset,
        compressed_size=compressed,
        size=size,
    )


def _check_names(entries: list[Entry], location: str, ctx: ScanContext) -> None:
    seen: set[str] = set()
    for entry in entries:
        where = member_location(location, entry.name)
        if entry.local_name != entry.name:
            ctx.add(
                "ARCH002",
                f"local header names this member {entry.local_name!r}; tools that read local "
                "headers see a different file",
                where,
                central=entry.name,
                local=entry.local_name,
            )
        for name in entry.names:
            if path_escapes(name):
                ctx.add("ARCH001", f"member name {name!r} escapes the extraction folder", where)
            if "\x00" in name:
                ctx.add(
                    "ARCH002",
                    f"member name {name!r} contains a NUL byte: some tools cut it there",
                    where,
                )
        if entry.name in seen:
            ctx.add(
                "ARCH002",
                "two members share this name; tools disagree on which one they read",
                where,
            )
        seen.add(entry.name)


def _overlapping(entries: list[Entry]) -> set[Entry]:
    """Members whose header or data lies inside another member's bytes."""
    found: set[Entry] = set()
    ordered = sorted(entries, key=lambda e: (e.header_offset, e.end))
    furthest: Entry | None = None
    for entry in ordered:
        if furthest is not None and entry.header_offset < furthest.end:
            found.add(entry)
        if furthest is None or entry.end > furthest.end:
            furthest = entry
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class _Layout:
    """What the member names say the archive is."""

    torch: bool
    keras: bool
    storage_folders: frozenset[str]
    """`<archive>/data/`, `<archive>/constants/`...: PyTorch writes the tensors of
    each `X.pkl` into the folder `X/`, one raw member per storage."""

    @classmethod
    def of(cls, entries: list[Entry]) -> _Layout:
        names = {entry.name for entry in entries}
        torch = any(_TORCH_PICKLE.fullmatch(name) for name in names)
        folders = frozenset(name[: -len(".pkl")] + "/" for name in names if name.endswith(".pkl"))
        return cls(
            torch=torch,
            keras="config.json" in names and "metadata.json" in names,
            storage_folders=folders if torch else frozenset(),
        )

    def is_torch_storage(self, name: str) -> bool:
        folder, _, leaf = name.rpartition("/")
        return bool(leaf) and f"{folder}/" in self.storage_folders


@dataclass(slots=True)
class _ScriptUnit:
    """The TorchScript classes an archive's code defines, and where its pickles are.

    TorchScript pickles name their module classes `__torch__.<module>.<Class>`;
    `torch.jit.load` resolves them from the archive's own code (checked by
    TORCH001), never by a Python import, so they are not unknown imports.
    """

    classes: set[str] = field(default_factory=set)
    pickles: set[str] = field(default_factory=set)

    def add_source(self, member: str, source: str) -> None:
        module = member.split("code/", 1)[-1].removesuffix(".py").replace("/", ".")
        self.classes.update(f"{module}.{name}" for name in _CLASS_DEF.findall(source))

    def forgive_own_classes(self, ctx: ScanContext) -> None:
        if not self.classes:
            return
        ctx.findings[:] = [
            finding
            for finding in ctx.findings
            if not (
                finding.rule_id == "PKL002"
                and finding.location in self.pickles
                and finding.detail.get("callable") in self.classes
            )
        ]


def _scan_entry(
    stream: BinaryIO,
    entry: Entry,
    layout: _Layout,
    script: _ScriptUnit,
    location: str,
    ctx: ScanContext,
    depth: int,
) -> None:
    where = member_location(location, entry.name)
    names = entry.names
    if entry.name.endswith("/") and entry.size == 0 and entry.compressed_size <= 2:
        return  # a folder entry
    if entry.encrypted:
        ctx.add("ARCH006", "member is encrypted and could not be scanned", where)
        return
    if (
        layout.torch
        and all(layout.is_torch_storage(name) or _TORCH_RECORDS.fullmatch(name) for name in names)
        and not _starts_as_npy(stream, entry, where, ctx)
    ):
        return  # raw tensor bytes and version records: PyTorch never interprets them as code
    actions: list[Callable[[BinaryIO], None]] = []
    if layout.torch and any(name.endswith(_PICKLE_SUFFIXES) for name in names):
        script.pickles.add(where)
        actions.append(lambda data: _analyze_pickle(data, where, ctx, depth + 1))
    if layout.torch and any(_TORCH_CODE.fullmatch(name) for name in names):
        actions.append(lambda data: _check_torchscript(data, where, ctx, script))
    if layout.keras and "config.json" in names:
        actions.append(lambda data: _check_keras(data, where, ctx))
    if not actions or len(names) > 1:
        # A member whose names disagree is scanned as content, whatever it claims to be.
        actions.append(lambda data: _scan_as_member(data, where, ctx, depth))
    with _MemberData(stream, entry, where, ctx) as data:
        if data is None:
            return
        for action in actions:
            data.seek(0)
            action(data)


def _starts_as_npy(stream: BinaryIO, entry: Entry, where: str, ctx: ScanContext) -> bool:
    """Whether a member PyTorch reads as raw bytes starts as a .npy file.

    numpy.load reads every member of an archive that starts with the .npy magic as an
    array, whatever its name, and unpickles object arrays: a "storage" can hide one.
    """
    with _MemberData(stream, entry, where, ctx) as data:
        if data is None:
            return False
        data.seek(0)
        return data.read(len(NPY_MAGIC)) == NPY_MAGIC


class _MemberData:
    """Context manager yielding a member's bytes as a seekable stream, or None.

    Stored members are viewed in place; compressed ones are inflated, within the
    limits, into a spooled temporary file. A member that breaks off or inflates to
    a size other than declared is reported; what was inflated is still scanned.
    """

    def __init__(self, stream: BinaryIO, entry: Entry, where: str, ctx: ScanContext) -> None:
        self._stream = stream
        self._entry = entry
        self._where = where
        self._ctx = ctx
        self._data: BinaryIO | None = None

    def __enter__(self) -> BinaryIO | None:
        entry, ctx, where = self._entry, self._ctx, self._where
        if entry.method == STORED:
            if entry.compressed_size != entry.size:
                ctx.add(
                    MALFORMED,
                    f"stored member holds {entry.compressed_size} bytes but declares {entry.size}",
                    where,
                )
            self._data = MemberWindow.open(self._stream, entry.data_offset, entry.compressed_size)
            return self._data
        factory = _decompressor_for(self._stream, entry)
        if factory is None:
            method = _METHOD_NAMES.get(entry.method, str(entry.method))
            ctx.add(UNSUPPORTED, f"compression method {method} cannot be decoded", where)
            return None
        self._data = new_spool()
        budget = Budget(ctx=ctx, what=f"member {entry.name!r}")
        self._stream.seek(entry.data_offset + _method_header_size(self._stream, entry))
        try:
            result = inflate(self._stream, factory, self._data, budget, limit=entry.compressed_size)
        except LimitExceededError as exc:
            ctx.add(exc.rule_id, exc.message, where)
        else:
            if result.error is not None:
                ctx.add(MALFORMED, f"member data: {result.error}", where)
            elif budget.produced != entry.size:
                ctx.add(
                    MALFORMED,
                    f"member inflates to {budget.produced} bytes but declares {entry.size}",
                    where,
                )
        if budget.produced == 0:
            return None
        return self._data

    def __exit__(self, *exc_info: object) -> None:
        if self._data is not None:
            self._data.close()


def _method_header_size(stream: BinaryIO, entry: Entry) -> int:
    """Zip's LZMA members start with a 4-byte version/length prefix and the properties."""
    if entry.method != LZMA:
        return 0
    stream.seek(entry.data_offset)
    prefix = stream.read(4)
    return 4 + int.from_bytes(prefix[2:4], "little") if len(prefix) == 4 else 0


def _decompressor_for(stream: BinaryIO, entry: Entry) -> Callable[[], Decompressor] | None:
    if entry.method == DEFLATED:
        return lambda: ZlibDecompressor(-15)
    if entry.method == BZIP2:
        return bz2.BZ2Decompressor
    if entry.method == LZMA:
        stream.seek(entry.data_offset)
        prefix = stream.read(4)
        if len(prefix) < 4:
            return None
        properties = stream.read(int.from_bytes(prefix[2:4], "little"))
        decode = cast(
            Callable[[int, bytes], dict[str, object]],
            getattr(lzma, "_decode_filter_properties"),  # noqa: B009 - what zipfile uses
        )
        try:
            lzma_filter = decode(lzma.FILTER_LZMA1, properties)
        except lzma.LZMAError:
            return None
        return lambda: lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma_filter])
    return None


def _scan_as_member(data: BinaryIO, where: str, ctx: ScanContext, depth: int) -> None:
    scan_member(data, where, ctx, depth)


def _analyze_pickle(data: BinaryIO, where: str, ctx: ScanContext, depth: int) -> None:
    from mlwarden.artifacts._pickle.analyzer import analyze_pickle

    ctx.formats.append("pickle")
    analyze_pickle(data, where, ctx, depth, start=0)


def _read_bounded(data: BinaryIO, where: str, ctx: ScanContext, what: str) -> bytes | None:
    limit = ctx.limits.max_header_bytes
    content = data.read(limit + 1)
    if len(content) > limit:
        ctx.add("ARCH003", f"{what} is larger than {limit} bytes; not checked", where)
        return None
    return content


def _check_keras(data: BinaryIO, where: str, ctx: ScanContext) -> None:
    from mlwarden.artifacts._formats.keras_config import check_keras_config

    config = _read_bounded(data, where, ctx, "Keras config")
    if config is not None:
        ctx.formats.append("keras")
        try:
            check_keras_config(config, where, ctx)
        except MalformedInputError as exc:
            # The archive's other members are still scanned.
            ctx.add("KERAS003", exc.message, where)


def _check_torchscript(data: BinaryIO, where: str, ctx: ScanContext, script: _ScriptUnit) -> None:
    content = _read_bounded(data, where, ctx, "TorchScript source")
    if content is None:
        return
    source = content.decode("utf-8", "replace")
    script.add_source(where.rsplit("!", 1)[-1], source)
    for description, line, snippet in torchscript_hazards(source):
        ctx.add(
            "TORCH001",
            f"TorchScript code uses {description}: {snippet}",
            where,
            line=line,
        )


def torchscript_hazards(source: str) -> list[tuple[str, int, str]]:
    """(what, line number, code) for each call in TorchScript source that leaves the model."""
    found: list[tuple[str, int, str]] = []
    for number, line in enumerate(source.splitlines(), start=1):
        code = _COMMENT.sub("", _STRING_LITERAL.sub('""', line))
        for pattern, description in _TORCHSCRIPT_HAZARDS:
            if pattern.search(code):
                found.append((description, number, line.strip()[:200]))
                break
    return found


READERS: tuple[Reader, ...] = (
    Reader(name="zip", malformed_rule=MALFORMED, sniff=sniff, scan=scan),
)
