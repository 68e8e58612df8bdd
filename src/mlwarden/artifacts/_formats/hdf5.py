"""HDF5 (Keras legacy .h5): read attributes only, check the Keras model config.

The HDF5 superblock may sit after a "user block" of 512 * 2**k bytes, and
that block can hold anything, including a pickle that another loader would
run: a non-empty user block is scanned as a member of its own. Datasets (the
weights) are never read; attributes are read only after their stored size is
checked against the header limit.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, BinaryIO

from mlwarden.artifacts._context import ScanContext, member_location
from mlwarden.artifacts._dispatch import HEAD_BYTES, Reader, readers, run_reader, scan_member
from mlwarden.artifacts._formats.keras_config import check_keras_config
from mlwarden.errors import LimitExceededError, MalformedInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

RULE = "KERAS003"
SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Root attributes that hold a Keras config as JSON.
_CONFIG_ATTRS = ("model_config", "training_config")
_MAX_OBJECTS = 100_000
_MAX_USER_BLOCK = 64 * 1024 * 1024
_MAX_CHUNKS = 1_000_000
_MAX_ATTRIBUTE_BYTES = 64 * 1024 * 1024


def superblock_offsets(size: int) -> Iterator[int]:
    """Where the spec lets the superblock start: 0, 512, 1024, 2048, ..."""
    yield 0
    offset = 512
    while offset + len(SIGNATURE) <= size:
        yield offset
        offset *= 2


def sniff(head: bytes, size: int) -> bool:
    return any(
        head[offset : offset + len(SIGNATURE)] == SIGNATURE
        for offset in superblock_offsets(min(size, HEAD_BYTES))
    )


def _find_superblock(stream: BinaryIO, size: int) -> int:
    for offset in superblock_offsets(size):
        stream.seek(offset)
        if stream.read(len(SIGNATURE)) == SIGNATURE:
            return offset
    raise MalformedInputError("no HDF5 superblock signature")


def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    stream.seek(0, 2)
    size = stream.tell()
    offset = _find_superblock(stream, size)
    import h5py

    stream.seek(0)
    try:
        handle = h5py.File(stream, "r")
    except (OSError, ValueError) as exc:
        if offset and _scan_as_other_format(stream, size, offset, location, ctx, depth):
            return
        raise MalformedInputError(f"HDF5 structure does not parse: {exc}") from None
    if offset:
        _scan_user_block(stream, offset, location, ctx, depth)
    with handle:
        try:
            data_ranges, objects = _check_links(handle, location, ctx)
            # Attribute strings live in global heaps, whose corruption hangs libhdf5:
            # check them before any attribute is read.
            check_global_heaps(stream, size, data_ranges, ctx)
            _check_root(handle, location, ctx)
            _scan_attribute_payloads(objects, location, ctx, depth)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            # libhdf5 reports corrupt structures as these while walking.
            raise MalformedInputError(f"HDF5 structure does not parse: {exc}") from None


def _scan_as_other_format(
    stream: BinaryIO, size: int, offset: int, location: str, ctx: ScanContext, depth: int
) -> bool:
    """A signature past offset 0 that opens no HDF5 file is a decoy inside some other
    content (a pickle's bytes): scan the file as the format it otherwise is."""
    stream.seek(0)
    head = stream.read(HEAD_BYTES)
    for reader in readers():
        if reader.name != "hdf5" and reader.sniff(head, size):
            ctx.add(
                "ARCH005",
                f"an HDF5 signature at offset {offset} opens no HDF5 file; the content is "
                f"{reader.name}",
                location,
                content=reader.name,
            )
            ctx.formats.append(reader.name)
            run_reader(reader, stream, location, ctx, depth)
            return True
    return False


def _scan_user_block(
    stream: BinaryIO, offset: int, location: str, ctx: ScanContext, depth: int
) -> None:
    if offset > _MAX_USER_BLOCK:
        raise LimitExceededError(f"HDF5 user block of {offset} bytes not scanned", rule_id=RULE)
    stream.seek(0)
    block = stream.read(offset)
    if not block.strip(b"\0 "):
        return
    inner = member_location(location, "[hdf5 user block]")
    fmt = scan_member(io.BytesIO(block), inner, ctx, depth)
    if fmt is not None:
        ctx.add(
            "ARCH005",
            f"the HDF5 user block holds {fmt} content: other loaders read that instead",
            location,
            content=fmt,
        )


def _attribute_bytes(attrs: object, name: str, ctx: ScanContext) -> bytes | None:
    """An attribute's value as bytes, after checking its stored size."""
    from h5py import AttributeManager

    assert isinstance(attrs, AttributeManager)
    if name not in attrs:
        return None
    stored = attrs.get_id(name).get_storage_size()
    if stored > ctx.limits.max_header_bytes:
        raise LimitExceededError(f"HDF5 attribute {name!r} of {stored} bytes", rule_id=RULE)
    value = attrs[name]
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    raise MalformedInputError(f"HDF5 attribute {name!r} is a {type(value).__name__}, not text")


def _check_root(handle: object, location: str, ctx: ScanContext) -> None:
    attrs = getattr(handle, "attrs")  # noqa: B009 - h5py has no type stubs
    for name in _CONFIG_ATTRS:
        config = _attribute_bytes(attrs, name, ctx)
        if config is not None:
            check_keras_config(config, f"{location}#{name}", ctx)


def _check_links(
    handle: object, location: str, ctx: ScanContext
) -> tuple[list[tuple[int, int]], list[tuple[object, str]]]:
    """External links, external storage and virtual datasets make a loader read
    other files that the model names: flagged, never followed. Returns the file
    ranges that hold dataset data (never read) and the objects found."""
    import h5py

    assert isinstance(handle, h5py.Group)
    stack: list[tuple[h5py.Group, str]] = [(handle, "")]
    visited: set[object] = {handle.id}
    data_ranges: list[tuple[int, int]] = []
    objects: list[tuple[object, str]] = [(handle, "/")]
    count = 0
    while stack:
        group, path = stack.pop()
        for key in group:
            count += 1
            if count > _MAX_OBJECTS:
                raise LimitExceededError(
                    f"more than {_MAX_OBJECTS} HDF5 objects; the rest not checked", rule_id=RULE
                )
            if count % 1000 == 0:
                ctx.check_time()
            child = f"{path}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                _flag_outside(f"is an external link to {link.filename!r}", child, location, ctx)
                continue
            if not isinstance(link, h5py.HardLink):
                continue  # soft links name objects of this file, reached on their own
            item = group.get(key)
            if item is None or item.id in visited:
                continue
            visited.add(item.id)
            objects.append((item, child))
            if isinstance(item, h5py.Group):
                stack.append((item, child))
            elif isinstance(item, h5py.Dataset):
                data_ranges.extend(_data_ranges(item, ctx))
                if item.external:
                    files = sorted({str(entry[0]) for entry in item.external})
                    _flag_outside(
                        f"stores its data in external files {files}", child, location, ctx
                    )
                if item.is_virtual:
                    files = sorted({source.file_name for source in item.virtual_sources()})
                    _flag_outside(f"is a virtual dataset over files {files}", child, location, ctx)
    return data_ranges, objects


def _scan_attribute_payloads(
    objects: list[tuple[object, str]], location: str, ctx: ScanContext, depth: int
) -> None:
    """Fixed-size byte attributes that hold a pickle (a payload some loader code
    unpickles) are scanned as members. Only small, fixed-size attributes are read."""
    budget = _MAX_ATTRIBUTE_BYTES
    for obj, path in objects:
        attrs = getattr(obj, "attrs")  # noqa: B009 - h5py has no type stubs
        for name in attrs:
            attr = attrs.get_id(name)
            if attr.dtype.kind not in "VSui" or (
                attr.dtype.kind in "ui" and attr.dtype.itemsize != 1
            ):
                continue
            stored = int(attr.get_storage_size())
            if stored > budget:
                raise LimitExceededError(
                    f"HDF5 byte attributes larger than {_MAX_ATTRIBUTE_BYTES} bytes", rule_id=RULE
                )
            budget -= stored
            value = attrs[name]
            raw = value.tobytes() if hasattr(value, "tobytes") else bytes(value)
            if len(raw) > 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5:
                inner = member_location(location, f"{path.rstrip('/')}/@{name}")
                scan_member(io.BytesIO(raw), inner, ctx, depth)


def _data_ranges(dataset: object, ctx: ScanContext) -> list[tuple[int, int]]:
    """Where a dataset's data sits in the file: its one extent, or its chunks."""
    dsid = getattr(dataset, "id")  # noqa: B009 - h5py has no type stubs
    offset = dsid.get_offset()
    if offset is not None:
        return [(int(offset), int(offset) + int(dsid.get_storage_size()))]
    try:
        chunks = int(dsid.get_num_chunks())
    except (ValueError, RuntimeError, TypeError):
        return []  # compact, external or virtual: nothing of it in the file body
    if chunks > _MAX_CHUNKS:
        raise LimitExceededError(f"dataset of more than {_MAX_CHUNKS} chunks", rule_id=RULE)
    ranges: list[tuple[int, int]] = []
    for index in range(chunks):
        if index % 10_000 == 0:
            ctx.check_time()
        info = dsid.get_chunk_info(index)
        if info.byte_offset is not None:
            ranges.append((int(info.byte_offset), int(info.byte_offset) + int(info.size)))
    return ranges


def metadata_ranges(size: int, data_ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of the file that hold no dataset data."""
    ranges: list[tuple[int, int]] = []
    cursor = 0
    for begin, end in sorted(data_ranges):
        if begin > cursor:
            ranges.append((cursor, min(begin, size)))
        cursor = max(cursor, end)
    if cursor < size:
        ranges.append((cursor, size))
    return [(b, e) for b, e in ranges if e > b]


def check_global_heaps(
    stream: BinaryIO, size: int, data_ranges: list[tuple[int, int]], ctx: ScanContext
) -> None:
    """Validate every global heap collection ("GCOL") in the file's metadata.

    libhdf5 loops forever on a collection whose objects do not advance (an
    object of size 0) and trusts sizes that run past the collection; both are
    refused here, before libhdf5 reads a variable-length attribute.
    """
    total = 0
    for begin, end in metadata_ranges(size, data_ranges):
        total += end - begin
        if total > ctx.limits.max_header_bytes:
            raise LimitExceededError(
                f"HDF5 metadata larger than {ctx.limits.max_header_bytes} bytes", rule_id=RULE
            )
        stream.seek(begin)
        region = stream.read(end - begin)
        at = region.find(b"GCOL")
        while at >= 0:
            _check_collection(stream, begin + at, size)
            at = region.find(b"GCOL", at + 4)


def _check_collection(stream: BinaryIO, start: int, size: int) -> None:
    stream.seek(start)
    header = stream.read(16)
    if len(header) < 16 or header[4] != 1:
        return  # the four letters inside some other structure, not a collection
    length = int.from_bytes(header[8:16], "little")
    if length < 4096 or start + length > size:
        return
    stream.seek(start)
    body = stream.read(length)
    pos = 16
    object_header = 16  # index u16, references u16, reserved u32, size u64
    while pos < length:
        if pos + object_header > length:
            break  # a tail too short for an object: free space
        index = int.from_bytes(body[pos : pos + 2], "little")
        object_size = int.from_bytes(body[pos + 8 : pos + 16], "little")
        need = object_header + (-(-object_size // 8) * 8) if index else object_size
        if need <= 0 or pos + need > length:
            raise MalformedInputError(
                f"HDF5 global heap collection at {start} has an object of size {object_size} "
                f"at {start + pos} that does not fit the collection"
            )
        pos += need


def _flag_outside(what: str, child: str, location: str, ctx: ScanContext) -> None:
    ctx.add(
        "KERAS002",
        f"HDF5 object {child} {what}: loading it reads other files of the host",
        location,
        path=child,
    )


READERS: tuple[Reader, ...] = (Reader(name="hdf5", malformed_rule=RULE, sniff=sniff, scan=scan),)
