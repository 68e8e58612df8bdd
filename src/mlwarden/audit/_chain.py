"""The hash chain: how a record's hash is made, and how a broken chain is diagnosed.

    hash(seq) = sha256("mlwarden.audit.v1\\0" || prev_hash || canonical(event) || seq)

`prev_hash` is the previous record's hash (32 zero bytes before the first record)
and `seq` an 8-byte big-endian counter from 1. Both ends are fixed-size, so the
framing is unambiguous. A record's hash covers its number, so moving a record
breaks it; it covers the previous hash, so removing or inserting one breaks the
next link.

The chain proves that history was not edited after the fact; it cannot tell a
forged record appended at the end from a real one (anyone who can write can
append). A signed checkpoint pins the head: records up to it can then be neither
rewritten as a whole nor truncated without `verify` saying so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mlwarden.audit._event import AuditEvent

GENESIS = "0" * 64
"""The `prev_hash` of record 1."""

_DOMAIN = b"mlwarden.audit.v1\x00"
_RENUMBER_SEARCH = 256
"""How far `verify` looks for a record's original number after a deletion and renumbering."""

Row = tuple[int, str, str, bytes]
"""A stored record as the backends return it: (seq, prev_hash, hash, canonical event)."""


def stored_row(values: tuple[object, ...]) -> Row:
    """A database row as typed values. What a tamperer left is coerced (and then fails
    its link check), never trusted: a wrong type is not an exception."""
    seq, prev, digest, event = values
    if isinstance(event, str):
        data = event.encode("utf-8", "surrogatepass")
    elif isinstance(event, bytes | bytearray | memoryview):
        data = bytes(event)
    else:
        data = b""
    return (
        seq if isinstance(seq, int) else -1,
        prev if isinstance(prev, str) else "",
        digest if isinstance(digest, str) else "",
        data,
    )


def link_hash(prev_hash: str, event: bytes, seq: int) -> str:
    """The hash of record `seq` holding `event` after a record whose hash is `prev_hash`."""
    digest = hashlib.sha256(_DOMAIN)
    digest.update(bytes.fromhex(prev_hash))
    digest.update(event)
    digest.update(seq.to_bytes(8, "big"))
    return digest.hexdigest()


def _stored_hash_ok(prev_hash: str, event: bytes, seq: int, stored: str) -> bool:
    """Whether a stored row's hash is its own, tolerating garbage a tamperer may leave."""
    try:
        return len(prev_hash) == 64 and link_hash(prev_hash, event, seq) == stored
    except (ValueError, OverflowError, TypeError):
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainHead:
    """The last record of a chain: its number and hash (seq 0 and GENESIS when empty)."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """A record of the log: the event, its place in the chain and the hashes that bind it."""

    seq: int
    prev_hash: str
    hash: str
    event: AuditEvent


class BreakKind(StrEnum):
    """How a chain was broken, as far as the stored records show."""

    CHANGED = "changed"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainBreak:
    """The first broken link: the lowest record number at which the chain is not intact."""

    seq: int
    kind: BreakKind
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainVerification:
    """The result of `AuditLog.verify`: intact, or the first broken link and why.

    `records` counts the records checked before the break (all of them when intact).
    `checkpoint` is the head the log was also checked against, when one was given.
    """

    log_id: str
    records: int
    head: ChainHead
    first_break: ChainBreak | None
    checkpoint: ChainHead | None = None

    @property
    def intact(self) -> bool:
        return self.first_break is None

    def to_dict(self) -> dict[str, object]:
        broken = self.first_break
        return {
            "intact": self.intact,
            "log_id": self.log_id,
            "records": self.records,
            "head": {"seq": self.head.seq, "hash": self.head.hash},
            "first_break": None
            if broken is None
            else {"seq": broken.seq, "kind": broken.kind.value, "message": broken.message},
            "checkpoint": None
            if self.checkpoint is None
            else {"seq": self.checkpoint.seq, "hash": self.checkpoint.hash},
        }


def chain_rows(head: ChainHead, events: Sequence[AuditEvent]) -> list[Row]:
    """The rows that append `events` after `head`, in order."""
    rows: list[Row] = []
    seq, prev = head.seq, head.hash
    for event in events:
        seq += 1
        data = event.canonical
        digest = link_hash(prev, data, seq)
        rows.append((seq, prev, digest, data))
        prev = digest
    return rows


def walk(
    rows: Iterator[Row],
    find_hash: Callable[[str], Sequence[int]],
    *,
    log_id: str,
    checkpoint: ChainHead | None = None,
) -> ChainVerification:
    """Check every link in order; at the first failure, diagnose it and stop.

    `find_hash(h)` returns the numbers of the records whose stored hash is `h`: it
    runs only after a failure, to tell a reordering from an insertion.
    """
    count = 0
    prev: Row | None = None
    pinned: str | None = None
    current = next(rows, None)
    while current is not None:
        following = next(rows, None)
        seq, prev_hash, stored, data = current
        expected_seq = 1 if prev is None else prev[0] + 1
        expected_prev = GENESIS if prev is None else prev[2]
        if (
            seq != expected_seq
            or prev_hash != expected_prev
            or not _stored_hash_ok(prev_hash, data, seq, stored)
        ):
            broken = _diagnose(current, prev, following, find_hash)
            head = ChainHead(seq=prev[0], hash=prev[2]) if prev else ChainHead(seq=0, hash=GENESIS)
            return ChainVerification(
                log_id=log_id, records=count, head=head, first_break=broken, checkpoint=checkpoint
            )
        if checkpoint is not None and seq == checkpoint.seq:
            pinned = stored
        count += 1
        prev, current = current, following
    head = ChainHead(seq=prev[0], hash=prev[2]) if prev else ChainHead(seq=0, hash=GENESIS)
    found = None if checkpoint is None else _against_checkpoint(head, pinned, checkpoint)
    return ChainVerification(
        log_id=log_id, records=count, head=head, first_break=found, checkpoint=checkpoint
    )


def _against_checkpoint(
    head: ChainHead, pinned: str | None, checkpoint: ChainHead
) -> ChainBreak | None:
    if head.seq < checkpoint.seq:
        first = head.seq + 1
        span = (
            f"record {first}" if first == checkpoint.seq else f"records {first}..{checkpoint.seq}"
        )
        return ChainBreak(
            seq=first,
            kind=BreakKind.DELETED,
            message=f"the log ends at record {head.seq} but the checkpoint covers "
            f"{checkpoint.seq}: {span} deleted (truncated)",
        )
    if checkpoint.seq > 0 and pinned != checkpoint.hash:
        return ChainBreak(
            seq=checkpoint.seq,
            kind=BreakKind.CHANGED,
            message=f"record {checkpoint.seq} does not have the hash the checkpoint signed: "
            "the history up to it was rewritten",
        )
    return None


def _diagnose(
    current: Row,
    prev: Row | None,
    following: Row | None,
    find_hash: Callable[[str], Sequence[int]],
) -> ChainBreak:
    """Name the first broken link and the most likely way it was broken.

    The order of the tests matters: a record that links to a later one was moved
    (reordered) even though its neighbours also look inserted or deleted.
    """
    seq, prev_hash, stored, data = current
    e = 1 if prev is None else prev[0] + 1
    expected_prev = GENESIS if prev is None else prev[2]
    if seq > e:
        span = f"record {e} is" if seq == e + 1 else f"records {e}..{seq - 1} are"
        return ChainBreak(seq=e, kind=BreakKind.DELETED, message=f"{span} missing")
    if seq < e:
        return ChainBreak(
            seq=seq, kind=BreakKind.INSERTED, message=f"a second record numbered {seq}"
        )
    self_ok = _stored_hash_ok(prev_hash, data, seq, stored)
    if prev_hash != expected_prev:
        # GENESIS is the hash of a record 0: a record linking to it restarts the chain.
        holders = (
            [0] if prev_hash == GENESIS else (find_hash(prev_hash) if len(prev_hash) == 64 else [])
        )
        later = [s for s in holders if s > seq]
        if later:
            return ChainBreak(
                seq=e,
                kind=BreakKind.REORDERED,
                message=f"record {e} links to record {later[0]}, which comes after it: "
                "records were moved",
            )
        earlier = [s for s in holders if s < e - 1]
        if earlier:
            first = earlier[-1] + 1
            span = f"record {first} does" if first == e - 1 else f"records {first}..{e - 1} do"
            return ChainBreak(
                seq=first,
                kind=BreakKind.INSERTED,
                message=f"{span} not belong: record {e} links to "
                + (f"record {earlier[-1]}" if earlier[-1] else "the start of the chain"),
            )
    if following is not None and following[1] == expected_prev:
        return ChainBreak(
            seq=e,
            kind=BreakKind.INSERTED,
            message=f"record {e} does not belong: the next record links to "
            + (f"record {e - 1}" if e > 1 else "the start of the chain"),
        )
    if prev_hash == expected_prev:
        return ChainBreak(
            seq=e,
            kind=BreakKind.CHANGED,
            message=f"record {e} does not match its hash: its content or hash was changed",
        )
    if self_ok and prev is not None:
        return ChainBreak(
            seq=e - 1,
            kind=BreakKind.CHANGED,
            message=f"record {e - 1} was rewritten: record {e} links to a different record {e - 1}",
        )
    for original in range(e + 1, e + 1 + _RENUMBER_SEARCH):
        if _stored_hash_ok(prev_hash, data, original, stored):
            count = original - e
            what = "record was" if count == 1 else f"{count} records were"
            return ChainBreak(
                seq=e,
                kind=BreakKind.DELETED,
                message=f"{what} deleted before record {e} (record {original} was renumbered {e})",
            )
    return ChainBreak(
        seq=e,
        kind=BreakKind.CHANGED,
        message=f"record {e} does not link to record {e - 1}"
        if prev is not None
        else "record 1 does not start the chain",
    )
