"""The SQLite store: the embedded default, durable across restarts.

Every `consume` is one short write transaction (`BEGIN IMMEDIATE`, read the pair, decide,
write it back, commit) in WAL mode. What that buys, exactly:

* a call is allowed only after its charge is committed, so a restart (clean or a crash
  of the process) never forgets a charge that let a call through: budgets survive
  restarts, and nothing is written behind the caller's back that a crash could lose;
* with `synchronous="normal"` (the default) a commit reaches the operating system, not the
  disk: it survives the process dying, but a power loss or kernel crash may lose the last
  commits. `synchronous="full"` syncs each commit to the disk, at the price of one fsync
  per call;
* several processes (workers of one gateway on one host) may share the file: the write
  lock makes their counts exact, as for one process;
* a file that cannot be opened, written or locked within `busy_timeout` seconds makes the
  call a refusal with reason `store_unavailable` (fail closed) unless the model fails open.

Why not an in-process front that writes behind? A write-behind cache must either lose the
charges of its last interval on a crash (fail open) or reserve budget in advance and lose
the unused reservations (fail closed, but it under-serves and is no longer exact across
processes). One transaction costs about 13 us at the median here (see bench/), well inside
the gateway's latency budget, so the exact, simple form wins.

Pairs whose state has become equivalent to a fresh one are deleted a few at a time, so the
file does not grow with every identity ever seen.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from mlwarden.budgets._gcra import FRESH, State, decide, expires_at, peek
from mlwarden.budgets._model import BudgetDecision, BudgetState, Limits
from mlwarden.budgets._policy import BudgetPolicy
from mlwarden.budgets.interface import BudgetStore
from mlwarden.errors import BudgetStoreUnavailableError

SCHEMA_VERSION = 1
# Every _PURGE_EVERY calls, one bounded step looks at the next _PURGE_BATCH rows (in key
# order, wrapping around) and deletes the stale ones: the file stays small and no call
# pays for a scan of the whole table. (An index on `expires` would make every call write
# one more page, since `expires` moves with each call.)
_PURGE_EVERY = 1024
_PURGE_BATCH = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_state (
    identity TEXT NOT NULL,
    model    TEXT NOT NULL,
    tat      REAL NOT NULL,     -- GCRA theoretical arrival time (Unix seconds)
    win      INTEGER NOT NULL,  -- number of the period window that `used` counts
    used     INTEGER NOT NULL,  -- cost units charged in that window
    expires  REAL NOT NULL,     -- after this the row equals a fresh state and may go
    PRIMARY KEY (identity, model)
) WITHOUT ROWID;
"""
_FIRST_ROWS = "SELECT identity, model, expires FROM budget_state ORDER BY identity, model LIMIT ?"
_NEXT_ROWS = (
    "SELECT identity, model, expires FROM budget_state WHERE (identity, model) > (?, ?)"
    " ORDER BY identity, model LIMIT ?"
)
_DELETE_STALE = "DELETE FROM budget_state WHERE identity = ? AND model = ? AND expires <= ?"

_SELECT = "SELECT tat, win, used FROM budget_state WHERE identity = ? AND model = ?"
_UPSERT = (
    "INSERT INTO budget_state (identity, model, tat, win, used, expires)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (identity, model) DO UPDATE SET"
    " tat = excluded.tat, win = excluded.win, used = excluded.used, expires = excluded.expires"
)


class SQLiteStore(BudgetStore):
    """Budgets in one SQLite file, exact across the processes that share it."""

    def __init__(
        self,
        path: Path,
        policy: BudgetPolicy | None = None,
        *,
        synchronous: Literal["normal", "full"] = "normal",
        busy_timeout: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(policy or BudgetPolicy(), clock=clock)
        self.path = path
        self._lock = threading.Lock()
        self._calls = 0
        self._purge_cursor: tuple[str, str] | None = None
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so the read and the
            # write of a decision happen under one write lock.
            conn = sqlite3.connect(
                str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise BudgetStoreUnavailableError(
                f"cannot open budget database {path}: {exc}"
            ) from None
        self._conn = conn
        try:
            # Small pages: a call rewrites one leaf page, so smaller pages mean fewer bytes
            # written per call. Takes effect only when the file is new.
            conn.execute("PRAGMA page_size=1024")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise BudgetStoreUnavailableError(
                    f"budget database {path} has schema version {version}, expected "
                    f"{SCHEMA_VERSION}",
                    hint="point budgets.store.path at a new file",
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            conn.close()
            raise BudgetStoreUnavailableError(f"cannot use budget database {path}: {exc}") from None
        except BudgetStoreUnavailableError:
            conn.close()
            raise

    def _consume(
        self, identity: str, model: str, limits: Limits, cost: int, now: float | None
    ) -> BudgetDecision:
        if now is None:
            now = self._now()
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row = conn.execute(_SELECT, (identity, model)).fetchone()
                    state: State = FRESH if row is None else (row[0], row[1], row[2])
                    decision, new = decide(limits, state, now, cost)
                    if decision.allowed:
                        expires = expires_at(limits, new)
                        conn.execute(_UPSERT, (identity, model, *new, expires))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                self._calls += 1
                if self._calls % _PURGE_EVERY == 0:
                    self._purge_step(now)
            except sqlite3.Error as exc:
                raise BudgetStoreUnavailableError(f"budget database {self.path}: {exc}") from None
        return decision

    def _purge_step(self, now: float) -> None:
        """Delete the stale pairs among the next rows (under the lock, outside a transaction).

        The delete re-checks `expires`, so a pair another process charged meanwhile stays.
        """
        conn = self._conn
        cursor = self._purge_cursor
        if cursor is None:
            rows = conn.execute(_FIRST_ROWS, (_PURGE_BATCH,)).fetchall()
        else:
            rows = conn.execute(_NEXT_ROWS, (*cursor, _PURGE_BATCH)).fetchall()
        self._purge_cursor = (rows[-1][0], rows[-1][1]) if len(rows) == _PURGE_BATCH else None
        stale = [(identity, model, now) for identity, model, expires in rows if expires <= now]
        if stale:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_DELETE_STALE, stale)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _state(self, identity: str, model: str, limits: Limits, now: float | None) -> BudgetState:
        if now is None:
            now = self._now()
        with self._lock:
            try:
                row = self._conn.execute(_SELECT, (identity, model)).fetchone()
            except sqlite3.Error as exc:
                raise BudgetStoreUnavailableError(f"budget database {self.path}: {exc}") from None
        state: State = FRESH if row is None else (row[0], row[1], row[2])
        used, tokens, budget, reset_at = peek(limits, state, now)
        return BudgetState(
            limits=limits,
            used=used,
            remaining_tokens=tokens,
            remaining_budget=budget,
            reset_at=reset_at,
        )

    def reset(self, identity: str, model: str) -> None:
        with self._lock:
            try:
                self._conn.execute(
                    "DELETE FROM budget_state WHERE identity = ? AND model = ?", (identity, model)
                )
            except sqlite3.Error as exc:
                raise BudgetStoreUnavailableError(f"budget database {self.path}: {exc}") from None

    def __len__(self) -> int:
        """How many (identity, model) rows the file holds."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM budget_state").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
