"""The SQLite store: the embedded default, durable across restarts.

Every decision is made inside a write transaction (`BEGIN IMMEDIATE`: read the pair,
decide, write it back, commit) in WAL mode, and is answered only after that commit. What
that buys, exactly:

* a call is allowed only after its charge is committed, so a restart (clean or a crash
  of the process) never forgets a charge that let a call through: budgets survive
  restarts, and nothing is written behind the caller's back that a crash could lose;
* with `synchronous="normal"` (the default) a commit reaches the operating system, not the
  disk: it survives the process dying, but a power loss or kernel crash may lose the last
  commits. `synchronous="full"` syncs each commit to the disk, at the price of one fsync
  per commit;
* several processes (workers of one gateway on one host) may share the file: the write
  lock makes their counts exact, as for one process;
* a file that cannot be opened, written or locked within `busy_timeout` seconds makes the
  call a refusal with reason `store_unavailable` (fail closed) unless the model fails open.

On an event loop (`aconsume`, the gateway's path) the loop never waits for the file:

* when nothing else holds the write lock, the call's transaction runs inline on a
  connection whose busy timeout is zero (about 15 us, the common case: no thread hop, no
  wake-up to schedule on a busy machine);
* when the lock is held (by another process sharing the file, or by this process's writer
  thread), or `synchronous="full"` makes each commit an fsync, the call goes to one writer
  thread instead, which takes every call queued meanwhile and decides them all in one
  transaction, in arrival order (group commit), waiting up to `busy_timeout` for the lock.
  A slow disk or a lock held elsewhere delays only the calls that wait for their decision,
  never the loop.

WAL checkpoints (the step that syncs to the disk even with `synchronous="normal"`) run in a
thread of their own, on a connection of their own, so commits never wait for them.

Why not an in-process front that writes behind? A write-behind cache must either lose the
charges of its last interval on a crash (fail open) or reserve budget in advance and lose
the unused reservations (fail closed, but it under-serves and is no longer exact across
processes). Group commit keeps every answer behind its commit and costs the loop only a
queue put and a wake-up.

Pairs whose state has become equivalent to a fresh one are deleted a few at a time, so the
file does not grow with every identity ever seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from mlwarden.budgets._gcra import FRESH, State, decide, expires_at, peek
from mlwarden.budgets._model import BudgetDecision, BudgetState, Limits
from mlwarden.budgets._policy import BudgetPolicy
from mlwarden.budgets.interface import _ALLOWED_UNLIMITED, BudgetStore, _unavailable
from mlwarden.errors import BudgetStoreUnavailableError, UsageError

SCHEMA_VERSION = 1
# Every _PURGE_EVERY calls, one bounded step looks at the next _PURGE_BATCH rows (in key
# order, wrapping around) and deletes the stale ones: the file stays small and no call
# pays for a scan of the whole table. (An index on `expires` would make every call write
# one more page, since `expires` moves with each call.)
_PURGE_EVERY = 1024
_PURGE_BATCH = 512
# Calls decided in one group commit at most: bounds how long one transaction holds the
# write lock that other processes sharing the file wait for.
_MAX_BATCH = 256
# The checkpoint thread is woken after this many commits (WAL frames are about one page
# per commit): SQLite's own automatic checkpoint would run on the committing thread.
_CHECKPOINT_EVERY = 1000

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


_Call = tuple[str, str, Limits, int, float]
"""(identity, model, limits, cost, now): one call to decide."""
_Queued = tuple[_Call, "asyncio.Future[BudgetDecision]", asyncio.AbstractEventLoop]


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
        # `_lock` guards both connections (one transaction at a time in this process);
        # `_life` guards starting and closing and is never held across I/O. The loop only
        # ever tries `_lock` without blocking.
        self._lock = threading.Lock()
        self._life = threading.Lock()
        self._closed = False
        self._since_purge = 0
        self._since_checkpoint = 0
        self._purge_cursor: tuple[str, str] | None = None
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._checkpointer = _Checkpointer(path, busy_timeout)
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
        self._inline: sqlite3.Connection | None = None
        try:
            # Small pages: a call rewrites one leaf page, so smaller pages mean fewer bytes
            # written per call. Takes effect only when the file is new.
            conn.execute("PRAGMA page_size=1024")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # Checkpoints run on the checkpoint thread (see _Checkpointer), not on commit.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise BudgetStoreUnavailableError(
                    f"budget database {path} has schema version {version}, expected "
                    f"{SCHEMA_VERSION}",
                    hint="point budgets.store.path at a new file",
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if synchronous == "normal":
                # The event loop's connection: it never waits for a lock (timeout 0).
                self._inline = sqlite3.connect(
                    str(path), timeout=0, isolation_level=None, check_same_thread=False
                )
                self._inline.execute("PRAGMA synchronous=NORMAL")
                self._inline.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            if self._inline is not None:
                self._inline.close()
            conn.close()
            raise BudgetStoreUnavailableError(f"cannot use budget database {path}: {exc}") from None
        except BudgetStoreUnavailableError:
            conn.close()
            raise

    # --- deciding -------------------------------------------------------------------------

    def _consume(
        self, identity: str, model: str, limits: Limits, cost: int, now: float | None
    ) -> BudgetDecision:
        if now is None:
            now = self._now()
        with self._lock:
            return self._decide_all(self._conn, [(identity, model, limits, cost, now)])[0]

    async def aconsume(
        self,
        identity: str,
        model: str,
        *,
        cost: int = 1,
        now: float | None = None,
        roles: tuple[str, ...] | frozenset[str] = (),
    ) -> BudgetDecision:
        """As `consume`, never waiting on the loop: inline when the write lock is free at
        once, else by the writer thread in a group commit (see the module's notes)."""
        if type(cost) is not int or cost < 1:
            raise UsageError(f"cost must be a positive integer, not {cost!r}")
        limits = self.limits_for(identity, model, roles)
        if limits.unlimited:
            return _ALLOWED_UNLIMITED
        if now is None:
            now = self._now()
        call = (identity, model, limits, cost, now)
        inline = self._inline
        if inline is not None and self._lock.acquire(blocking=False):
            try:
                if not self._closed:
                    return self._decide_all(inline, [call])[0]
            except BudgetStoreUnavailableError:
                pass  # busy, or failing: the writer waits for the lock, or reports the failure
            finally:
                self._lock.release()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BudgetDecision] = loop.create_future()
        with self._life:
            # Under `_life`, so that no call is queued behind the stop mark `close` queues:
            # the writer decides everything queued before it, and nothing waits forever.
            if self._closed:
                return _unavailable(limits, f"budget database {self.path}: the store is closed")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="mlwarden-budgets-sqlite", daemon=True
                )
                self._writer.start()
            self._queue.put((call, future, loop))
        try:
            return await future
        except BudgetStoreUnavailableError as exc:
            return _unavailable(limits, exc.message)

    def _write_loop(self) -> None:
        """The writer thread: take what is queued, decide it in one commit, answer."""
        pending = self._queue
        while True:
            first = pending.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            outcomes: list[BudgetDecision] | BudgetStoreUnavailableError
            try:
                with self._lock:
                    outcomes = self._decide_all(self._conn, [call for call, _, _ in batch])
            except BudgetStoreUnavailableError as exc:
                outcomes = exc
            except Exception as exc:  # whatever went wrong: refuse, never leave a caller hanging
                outcomes = BudgetStoreUnavailableError(f"budget writer failed: {exc!r}")
            _answer(batch, outcomes)
            if stop:
                return

    def _decide_all(self, conn: sqlite3.Connection, calls: list[_Call]) -> list[BudgetDecision]:
        """Decide `calls` in order in one transaction; the decisions hold once it commits.

        Called under `_lock`. Later calls on a pair see the charges of earlier ones, so a
        batch decides exactly as the same calls one transaction each would.
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                states: dict[tuple[str, str], State] = {}
                changed: dict[tuple[str, str], tuple[State, float]] = {}
                decisions: list[BudgetDecision] = []
                for identity, model, limits, cost, now in calls:
                    key = (identity, model)
                    state = states.get(key)
                    if state is None:
                        row = conn.execute(_SELECT, key).fetchone()
                        state = FRESH if row is None else (row[0], row[1], row[2])
                    decision, new = decide(limits, state, now, cost)
                    if decision.allowed:
                        state = new
                        changed[key] = (new, expires_at(limits, new))
                    states[key] = state
                    decisions.append(decision)
                if changed:
                    conn.executemany(
                        _UPSERT,
                        [(i, m, *state, expires) for (i, m), (state, expires) in changed.items()],
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise BudgetStoreUnavailableError(f"budget database {self.path}: {exc}") from None
        # Housekeeping after the commit: its failure must not turn committed decisions into
        # refusals (or, on the loop's path, into a second attempt that charges again).
        self._since_checkpoint += 1
        if self._since_checkpoint >= _CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            self._checkpointer.wake()
        self._since_purge += len(calls)
        if self._since_purge >= _PURGE_EVERY:
            self._since_purge = 0
            with contextlib.suppress(sqlite3.Error):  # stale rows wait for the next step
                self._purge_step(conn, calls[-1][4])
        return decisions

    def _purge_step(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete the stale pairs among the next rows (under the lock, outside a transaction).

        The delete re-checks `expires`, so a pair another process charged meanwhile stays.
        """
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

    # --- reading and administration --------------------------------------------------------

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
        """Decide what is queued, stop the threads, close the file (idempotent)."""
        with self._life:
            already = self._closed
            self._closed = True
            writer = self._writer
            if writer is not None and not already:
                self._queue.put(None)
        if writer is not None:
            writer.join()
        self._checkpointer.stop()
        with self._lock:
            if self._inline is not None:
                self._inline.close()
            self._conn.close()

    async def aclose(self) -> None:
        """`close` off the event loop: it waits for the last group commit."""
        await asyncio.to_thread(self.close)


def _answer(
    batch: list[_Queued], outcomes: list[BudgetDecision] | BudgetStoreUnavailableError
) -> None:
    """Hand each queued call its decision (or the failure) on the loop that waits for it."""
    by_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[BudgetDecision], object]]
    ] = {}
    for n, (_, future, loop) in enumerate(batch):
        outcome = outcomes if isinstance(outcomes, BudgetStoreUnavailableError) else outcomes[n]
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, settled in by_loop.items():
        # A loop that is closed has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[BudgetDecision], object]]) -> None:
    for future, outcome in settled:
        if future.done():  # the caller went away (cancelled); its charge stays, as committed
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)  # type: ignore[arg-type]


class _Checkpointer:
    """Runs WAL checkpoints on a connection and a thread of its own, when woken.

    A checkpoint copies the WAL back into the database and syncs it to the disk: on the
    committing thread, every thousandth call would wait for that sync. PASSIVE never waits
    for other connections; one that cannot finish leaves the rest for the next wake-up.
    A failed checkpoint loosens nothing (the WAL only grows), so it is kept, not raised.
    """

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def wake(self) -> None:
        """Ask for a checkpoint (called under the store's connection lock)."""
        if self._stopping:
            return
        if self._thread is None:
            thread = threading.Thread(
                target=self._run, name="mlwarden-budgets-checkpoint", daemon=True
            )
            try:
                thread.start()
            except RuntimeError as exc:  # no thread to be had: the WAL grows meanwhile
                self.last_error = str(exc)
                return
            self._thread = thread
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(
                str(self._path),
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            self.last_error = str(exc)
            return
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    self.last_error = str(exc)
        finally:
            conn.close()
