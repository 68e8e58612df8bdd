"""The "pickle" reader: a file that starts with a pickle, and what follows it.

A file may hold several pickles in a row (`pickle.dump` called repeatedly, the
legacy `torch.save` layout), joblib arrays inline (handled by the analyzer), or
other content after the last STOP. Legacy `torch.save` writes five pickles
(magic number, protocol version, system info, the object, the storage keys) and
then raw storage bytes, which are not pickle and are never parsed. A zip after
a pickle makes a polyglot: loaders that read from the end see the zip.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO

from mlwarden.artifacts._context import ScanContext
from mlwarden.artifacts._dispatch import Reader, reader_named
from mlwarden.artifacts._pickle.analyzer import KNOWN_OPCODES, analyze_pickle, report_raw_imports
from mlwarden.artifacts._streams import MemberWindow

# The first pickle of a legacy torch.save: LONG1 0x1950a86a20f9469cfc6c, STOP.
LEGACY_TORCH_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
LEGACY_TORCH_PICKLES = 5
MAX_PICKLES = 10_000
SHORT_TAIL = 64
"""Trailing bytes after the last STOP that are too few to matter (padding, a newline)."""
_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 65_535 + 22
# Opcodes a protocol 0/1 pickle can start with.
_TEXT_STARTS = frozenset(b"(cILFSV]})NKMJXUTBCG\x8cqpgld0.")
_GLOBAL_LINE = re.compile(rb"[A-Za-z_][\w.]*\n")
_DIGITS_LINE = re.compile(rb"-?\d+L?\n")
_FLOAT_LINE = re.compile(rb"[-+0-9.eEinfatyINFAN]+\n")
_SNIFF_OPCODES = 16


def sniff(head: bytes, size: int) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return True
    if not head or head[0] not in _TEXT_STARTS:
        return False
    return _parses(head, size)


def _parses(head: bytes, size: int) -> bool:
    """The first opcodes of a protocol 0/1 pickle parse (text and JSON do not).

    Each opcode must be known, its argument well formed and within the file, and
    the stack must hold what the opcode consumes. A file shorter than the head must
    reach its STOP; a longer one must parse for the first opcodes or until its head
    ends inside an argument.
    """
    pos = 0
    levels = [0]  # stack sizes, one per open MARK
    for count in range(_SNIFF_OPCODES):
        if pos >= len(head):
            return size > len(head) and count >= 1
        op = head[pos]
        pos += 1
        if op not in KNOWN_OPCODES or op == 0x80:
            return False
        if not _stack_effect(op, levels):
            return False
        if op == 0x2E:  # STOP
            return count >= 1
        step = _argument_length(op, head, pos)
        if step is None or pos + step > size:
            return False  # malformed, or an argument longer than the file
        pos += step
    return True


# Opcode -> (items it needs on the stack, net change); MARK-based ones are handled apart.
_NEEDS = {
    0x61: (2, -1), 0x73: (3, -2), 0x52: (2, -1), 0x62: (2, -1), 0x81: (2, -1),
    0x92: (3, -2), 0x93: (2, -1), 0x85: (1, 0), 0x86: (2, -1), 0x87: (3, -2),
    0x30: (1, -1), 0x32: (1, 1), 0x70: (1, 0), 0x71: (1, 0), 0x72: (1, 0),
    0x94: (1, 0), 0x51: (1, 0), 0x98: (1, 0), 0x95: (0, 0), 0x2E: (1, -1),
}  # fmt: skip
_TO_MARK_PUSH = frozenset(b"tld\x91oi")
_TO_MARK_EXTEND = frozenset(b"eu\x90")


def _stack_effect(op: int, levels: list[int]) -> bool:
    if op == 0x28:  # MARK
        levels.append(0)
    elif op in _TO_MARK_PUSH or op == 0x31:  # ... and POP_MARK, which pushes nothing
        if len(levels) < 2:
            return False
        levels.pop()
        levels[-1] += 0 if op == 0x31 else 1
    elif op in _TO_MARK_EXTEND:
        if len(levels) < 2 or levels[-2] < 1:
            return False
        levels.pop()
    elif op in _NEEDS:
        need, change = _NEEDS[op]
        if levels[-1] < need or (op == 0x2E and (len(levels) > 1 or levels[-1] != 1)):
            return False
        levels[-1] += change
    else:
        levels[-1] += 1  # constants, imports, memo gets: one new item
    return True


def _argument_length(op: int, head: bytes, pos: int) -> int | None:
    fixed = {0x4B: 1, 0x68: 1, 0x71: 1, 0x4D: 2, 0x4A: 4, 0x6A: 4, 0x72: 4, 0x47: 8}
    if op in fixed:
        return fixed[op] if pos + fixed[op] <= len(head) else None
    if op in {0x55, 0x43, 0x8C}:  # one-byte length
        return 1 + head[pos] if pos < len(head) else None
    if op in {0x54, 0x42, 0x58}:  # four-byte length
        if pos + 4 > len(head):
            return None
        return 4 + int.from_bytes(head[pos : pos + 4], "little")
    if op in {0x63, 0x69}:  # GLOBAL, INST: two identifier lines
        first = _GLOBAL_LINE.match(head, pos)
        second = _GLOBAL_LINE.match(head, first.end()) if first else None
        return second.end() - pos if first and second else None
    if op in {0x49, 0x4C, 0x67, 0x70}:  # INT, LONG, GET, PUT
        match = _DIGITS_LINE.match(head, pos)
        return match.end() - pos if match else None
    if op == 0x46:  # FLOAT
        match = _FLOAT_LINE.match(head, pos)
        return match.end() - pos if match else None
    if op in {0x53, 0x56, 0x50}:  # STRING, UNICODE, PERSID: one line
        end = head.find(b"\n", pos)
        if end < 0:
            return None
        if op == 0x53 and (end - pos < 2 or head[pos] not in b"'\""):
            return None
        return end + 1 - pos
    return 0


def scan(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    head = stream.read(len(LEGACY_TORCH_MAGIC) + 2)
    legacy_torch = LEGACY_TORCH_MAGIC in head[:16]
    position = 0
    for index in range(MAX_PICKLES):
        if legacy_torch and index == LEGACY_TORCH_PICKLES:
            return  # raw storage bytes follow; they are data, not pickle
        result = analyze_pickle(stream, location, ctx, depth, start=position)
        if not result.complete:
            return
        position = result.end
        if position >= size:
            return
        if not _next_is_pickle(stream, position, size):
            _scan_tail(stream, location, ctx, depth, position, size)
            return
    ctx.add("PKL006", f"more than {MAX_PICKLES} pickles in one file", location)


def _next_is_pickle(stream: BinaryIO, position: int, size: int) -> bool:
    stream.seek(position)
    head = stream.read(4096)
    return sniff(head, size - position)


def _scan_tail(
    stream: BinaryIO, location: str, ctx: ScanContext, depth: int, start: int, size: int
) -> None:
    """Bytes after the last pickle: an appended zip is a polyglot and is scanned."""
    tail_length = size - start
    search_from = max(start, size - _EOCD_SEARCH)
    stream.seek(search_from)
    if _EOCD in stream.read(size - search_from):
        ctx.add(
            "ARCH005",
            f"a zip archive follows the pickle at offset {start}",
            location,
            offset=start,
        )
        try:
            zip_reader = reader_named("zip")
        except KeyError:
            return
        window = io.BufferedReader(MemberWindow(stream, start, size - start))
        zip_reader.scan(window, location, ctx, depth)
        return
    if tail_length > SHORT_TAIL:
        # Not parsed (no loader reads it as pickle from here), but a payload hidden
        # behind junk for a loader that seeks to it is still reported.
        report_raw_imports(stream, start, size, location, ctx)


READERS = (Reader(name="pickle", malformed_rule="PKL003", sniff=sniff, scan=scan),)
