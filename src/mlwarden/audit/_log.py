"""The `AuditLog` interface, with everything the backends share.

A backend provides five primitives (append rows in one serialised transaction,
read the head, read the tail, stream every row from one snapshot, find rows by
hash); chaining, verification and checkpoints are written once, here.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING

from mlwarden.audit._chain import (
    GENESIS,
    AuditRecord,
    BreakKind,
    ChainBreak,
    ChainHead,
    ChainVerification,
    Row,
    walk,
)
from mlwarden.audit._checkpoint import Checkpoint, sign_head, verify_checkpoint
from mlwarden.audit._event import AuditEvent
from mlwarden.errors import AuditStoreError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,47}")

Snapshot = tuple[Iterator[Row], Callable[[str], Sequence[int]]]


def check_table_name(table: str) -> str:
    """Table names are spliced into SQL, so only plain lower-case identifiers pass."""
    if not _TABLE.fullmatch(table):
        raise UsageError(
            f"audit table name {table!r} is not allowed",
            hint="use lower-case letters, digits and underscores (at most 48)",
        )
    return table


def table_suffix(table: str) -> str:
    """How `AuditLog.url` names a table other than the default (no credentials, no spaces)."""
    return "" if table == "audit_log" else f"?table={table}"


class AuditLog(ABC):
    """An append-only, hash-chained log of decisions.

    Appends are serialised by the store (a write lock in SQLite, a table lock in
    PostgreSQL), so any number of threads, processes and hosts may append to the
    same log without ever forking the chain. Every method raises E351 when the
    store cannot be reached: callers deciding on requests must then refuse them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    @property
    @abstractmethod
    def log_id(self) -> str:
        """A random id chosen when the log was created; checkpoints name it."""

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the log lives (without credentials), for messages."""

    def append(self, event: AuditEvent) -> AuditRecord:
        """Write one event now, in its own transaction, and return its record."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Write events in order, in one transaction: all or none of them."""
        if not events:
            return []
        with self._lock:
            self._check_open()
            rows = self._append_rows(events)
        return [
            AuditRecord(seq=seq, prev_hash=prev, hash=digest, event=event)
            for (seq, prev, digest, _), event in zip(rows, events, strict=True)
        ]

    def head(self) -> ChainHead:
        """The last record's number and hash (seq 0 and GENESIS for an empty log)."""
        with self._lock:
            self._check_open()
            return self._head()

    def tail(self, n: int = 10) -> list[AuditRecord]:
        """The last `n` records, oldest first."""
        if n < 0:
            raise UsageError(f"cannot show {n} records: give a number of at least 0")
        with self._lock:
            self._check_open()
            rows = self._tail_rows(n) if n else []
        return [
            AuditRecord(seq=seq, prev_hash=prev, hash=digest, event=AuditEvent.from_canonical(data))
            for seq, prev, digest, data in rows
        ]

    def verify(
        self,
        *,
        checkpoint: Checkpoint | None = None,
        public_key: ec.EllipticCurvePublicKey | None = None,
    ) -> ChainVerification:
        """Check every link from one consistent snapshot; name the first broken one.

        With a checkpoint (and the public key it must verify with) the log must
        also reach the checkpoint's head with the same hash: this detects
        truncation and a chain rebuilt from scratch. A checkpoint whose signature
        does not verify raises E354; one from another log is a break at record 1.
        """
        if checkpoint is not None:
            if public_key is None:
                raise UsageError("a checkpoint is only trusted with the public key that signed it")
            verify_checkpoint(checkpoint, public_key)
        self._check_open()
        with self._snapshot() as (rows, find_hash):
            if checkpoint is not None and checkpoint.log_id != self.log_id:
                return ChainVerification(
                    log_id=self.log_id,
                    records=0,
                    head=ChainHead(seq=0, hash=GENESIS),
                    first_break=ChainBreak(
                        seq=1,
                        kind=BreakKind.CHANGED,
                        message=f"the log's id is {self.log_id}, the checkpoint's "
                        f"{checkpoint.log_id}: the log was replaced, or this is another log",
                    ),
                    checkpoint=checkpoint.head,
                )
            return walk(
                rows,
                find_hash,
                log_id=self.log_id,
                checkpoint=None if checkpoint is None else checkpoint.head,
            )

    def export_checkpoint(self, private_key: ec.EllipticCurvePrivateKey) -> Checkpoint:
        """Sign the current head; keep the checkpoint where the log's writers cannot."""
        return sign_head(self.log_id, self.head(), private_key)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AuditStoreError(f"audit log {self.url} is closed")

    # --- what a backend provides (called with self._lock held, except _snapshot) ---------

    @abstractmethod
    def _append_rows(self, events: Sequence[AuditEvent]) -> list[Row]:
        """Chain `events` after the stored head and insert them, in one serialised transaction."""

    @abstractmethod
    def _head(self) -> ChainHead: ...

    @abstractmethod
    def _tail_rows(self, n: int) -> list[Row]: ...

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[Snapshot]:
        """Every row in seq order, and a hash lookup, from one consistent read snapshot."""

    @abstractmethod
    def _close(self) -> None: ...
