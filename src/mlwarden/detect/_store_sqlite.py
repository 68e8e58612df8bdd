"""Detector state and sanctions in the budgets' SQLite file (tables of their own, WAL).

Sanctions are committed before `impose` returns, so a quarantine announced to a caller
is never lost by a crash. Stream states are written behind in batches (one transaction
per flush): a crash loses at most the last flush interval of observations, never a
sanction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from mlwarden.detect._store import (
    MAX_STATE_BYTES,
    SANCTIONS,
    DetectorStore,
    Sanction,
    SanctionRecord,
    severity,
)
from mlwarden.errors import DetectorStoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS detector_state (
    identity TEXT NOT NULL,
    model    TEXT NOT NULL,
    state    BLOB NOT NULL,
    PRIMARY KEY (identity, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS detector_sanction (
    identity TEXT NOT NULL,
    model    TEXT NOT NULL,
    sanction TEXT NOT NULL,
    reason   TEXT NOT NULL,
    since    REAL NOT NULL,
    PRIMARY KEY (identity, model)
) WITHOUT ROWID;
"""
_UPSERT_STATE = (
    "INSERT INTO detector_state (identity, model, state) VALUES (?, ?, ?)"
    " ON CONFLICT (identity, model) DO UPDATE SET state = excluded.state"
)
_UPSERT_SANCTION = (
    "INSERT INTO detector_sanction (identity, model, sanction, reason, since)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (identity, model) DO UPDATE SET"
    " sanction = excluded.sanction, reason = excluded.reason, since = excluded.since"
)


class SQLiteDetectorStore(DetectorStore):
    """Tables `detector_state` and `detector_sanction` in one SQLite file."""

    def __init__(self, path: Path, *, busy_timeout: float = 1.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            conn = sqlite3.connect(
                str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise DetectorStoreError(f"cannot open detector database {path}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # Sanctions must survive a power loss as well as a crash: sync each commit.
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise DetectorStoreError(f"cannot use detector database {path}: {exc}") from None
        self._conn = conn

    def _run(self, work: str, *args: object) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._conn.execute(work, args).fetchall()
            except sqlite3.Error as exc:
                raise DetectorStoreError(f"detector database {self.path}: {exc}") from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed, or rolled back and reported."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise DetectorStoreError(f"detector database {self.path}: {exc}") from None

    def load_state(self, identity: str, model: str) -> bytes | None:
        rows = self._run(
            "SELECT state FROM detector_state WHERE identity = ? AND model = ?", identity, model
        )
        if not rows:
            return None
        blob = rows[0][0]
        if not isinstance(blob, bytes) or len(blob) > MAX_STATE_BYTES:
            raise DetectorStoreError(f"detector database {self.path}: a stored state is invalid")
        return blob

    def save_states(self, states: Iterable[tuple[str, str, bytes]]) -> None:
        rows = list(states)
        if not rows:
            return
        with self._transaction() as conn:
            conn.executemany(_UPSERT_STATE, rows)

    def impose(self, record: SanctionRecord) -> None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT sanction FROM detector_sanction WHERE identity = ? AND model = ?",
                (record.identity, record.model),
            ).fetchone()
            if row is None or severity(record.sanction) >= severity(_sanction(row[0], self.path)):
                conn.execute(
                    _UPSERT_SANCTION,
                    (
                        record.identity,
                        record.model,
                        record.sanction,
                        record.reason,
                        record.since,
                    ),
                )

    def release(self, identity: str, model: str) -> int:
        with self._transaction() as conn:
            lifted = conn.execute(
                "DELETE FROM detector_sanction WHERE identity = ? AND model = ?",
                (identity, model),
            ).rowcount
            conn.execute(
                "DELETE FROM detector_state WHERE identity = ? AND model = ?",
                (identity, model),
            )
        return int(lifted)

    def sanctions(self) -> list[SanctionRecord]:
        rows = self._run(
            "SELECT identity, model, sanction, reason, since FROM detector_sanction"
            " ORDER BY identity, model"
        )
        return [
            SanctionRecord(
                identity=str(identity),
                model=str(model),
                sanction=_sanction(sanction, self.path),
                reason=str(reason),
                since=float(cast("float", since)),
            )
            for identity, model, sanction, reason, since in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _sanction(value: object, path: Path) -> Sanction:
    for sanction in SANCTIONS:
        if value == sanction:
            return sanction
    raise DetectorStoreError(f"detector database {path}: unknown sanction {value!r}")
