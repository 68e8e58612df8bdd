"""The SQLite store: budgets survive restarts, processes share them exactly, failures refuse."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from mlwarden.budgets import (
    BudgetDecision,
    BudgetPolicy,
    Limits,
    LimitsOverride,
    Period,
    Reason,
    SQLiteStore,
)
from mlwarden.errors import BudgetStoreUnavailableError

from .conftest import T0, hammer

POLICY = BudgetPolicy(
    defaults=Limits(rate=1, burst=3, quota=5, period=Period.DAY),
    models={"public": LimitsOverride(fail_open=True)},
)


def test_a_restart_keeps_budgets_and_buckets(tmp_path: Path) -> None:
    path = tmp_path / "budgets.sqlite3"
    store = SQLiteStore(path, POLICY)
    assert all(store.consume("alice", "iris", now=T0).allowed for _ in range(3))
    store.close()

    store = SQLiteStore(path, POLICY)  # a new process would see the same file
    assert store.consume("alice", "iris", now=T0).reason is Reason.RATE_LIMITED
    assert store.consume("alice", "iris", now=T0 + 2).remaining_budget == 1
    assert store.consume("alice", "iris", now=T0 + 3).remaining_budget == 0
    assert store.consume("alice", "iris", now=T0 + 4).reason is Reason.BUDGET_EXCEEDED
    store.close()


def test_a_crash_keeps_every_charge_that_let_a_call_through(tmp_path: Path) -> None:
    path = tmp_path / "budgets.sqlite3"
    store = SQLiteStore(path, POLICY)
    assert store.consume("alice", "iris", cost=2, now=T0).allowed
    # No close(): another connection (as after a crash) sees the committed charge.
    other = SQLiteStore(path, POLICY)
    assert other.state("alice", "iris", now=T0).used == 2
    other.close()
    store.close()


def test_processes_sharing_the_file_count_exactly(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    SQLiteStore(path, POLICY).close()  # create the schema once
    results = hammer("sqlite", str(path), processes=4, attempts=400)
    assert sum(allowed for allowed, _ in results) == 1000
    assert sum(unavailable for _, unavailable in results) == 0


def test_a_missing_folder_refuses_to_open(tmp_path: Path) -> None:
    with pytest.raises(BudgetStoreUnavailableError, match="cannot open budget database") as info:
        SQLiteStore(tmp_path / "no" / "such" / "dir.sqlite3", POLICY)
    assert info.value.code == "E403" and info.value.http_status == 503


def test_a_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=7")
    with pytest.raises(BudgetStoreUnavailableError, match="schema version 7"):
        SQLiteStore(path, POLICY)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BudgetStoreUnavailableError, match="cannot use budget database"):
        SQLiteStore(path, POLICY)


def test_a_locked_database_fails_closed_or_flagged_open(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    store = SQLiteStore(path, POLICY, busy_timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    try:
        closed = store.consume("alice", "iris", now=T0)
        assert not closed.allowed and closed.reason is Reason.STORE_UNAVAILABLE
        assert closed.code == "E403" and "locked" in closed.detail
        opened = store.consume("alice", "public", now=T0)
        assert opened.allowed and opened.fail_open
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.consume("alice", "iris", now=T0).allowed
    store.close()


def test_a_closed_store_refuses(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "b.sqlite3", POLICY)
    store.close()
    assert store.consume("alice", "iris", now=T0).reason is Reason.STORE_UNAVAILABLE
    with pytest.raises(BudgetStoreUnavailableError):
        store.state("alice", "iris", now=T0)
    with pytest.raises(BudgetStoreUnavailableError):
        store.reset("alice", "iris")


def test_stale_rows_are_purged_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlwarden.budgets._sqlite as module

    monkeypatch.setattr(module, "_PURGE_EVERY", 50)
    monkeypatch.setattr(module, "_PURGE_BATCH", 20)
    policy = BudgetPolicy.uniform(Limits(rate=1, burst=1, quota=3, period=Period.MINUTE))
    store = SQLiteStore(tmp_path / "b.sqlite3", policy)
    for n in range(49):
        store.consume(f"stale-{n:02}", "iris", now=T0)
    assert len(store) == 49
    later = T0 + 120  # the minute of those 49 calls is over: their rows are stale
    store.consume("z-live-0", "iris", now=later)  # 50th call: the first 20 stale rows go
    assert len(store) == 30
    for n in range(1, 51):
        store.consume(f"z-live-{n}", "iris", now=later)  # 100th call: the next 20
    assert len(store) == 9 + 51
    for n in range(51, 101):  # 150th: the last 9 stale rows (and no live one)
        store.consume(f"z-live-{n}", "iris", now=later)
    assert len(store) == 101
    assert store.state("z-live-0", "iris", now=later).used == 1
    store.close()


def test_full_synchronous_mode_works(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "b.sqlite3", POLICY, synchronous="full")
    assert store.consume("alice", "iris", now=T0).allowed
    mode = store._conn.execute("PRAGMA synchronous").fetchone()[0]
    assert mode == 2  # FULL
    store.close()


# --- the event loop's path: inline when the lock is free, else group commits -----------------


async def _queued(
    store: SQLiteStore, calls: list[Coroutine[Any, Any, BudgetDecision]]
) -> list[BudgetDecision]:
    """Run `calls` so that they all queue for the writer thread: the store's lock is held
    while they start (as when another transaction is under way), then released."""
    with store._lock:
        tasks = [asyncio.ensure_future(call) for call in calls]
        await asyncio.sleep(0)  # each task tried the lock, found it taken and queued
    assert store._writer is not None and store._writer.is_alive()
    return list(await asyncio.gather(*tasks))


@pytest.mark.parametrize("path_taken", ["inline", "group commit"])
def test_concurrent_calls_on_a_loop_are_exact_and_committed(
    tmp_path: Path, path_taken: str
) -> None:
    path = tmp_path / "b.sqlite3"
    policy = BudgetPolicy.uniform(Limits(quota=300, period=Period.DAY))
    store = SQLiteStore(path, policy)

    async def flood() -> list[bool]:
        calls = [store.aconsume(f"user-{n % 3}", "iris", now=T0) for n in range(1200)]
        if path_taken == "inline":
            answers = list(await asyncio.gather(*calls))
        else:
            answers = await _queued(store, calls)
        return [decision.allowed for decision in answers]

    allowed = asyncio.run(flood())
    assert sum(allowed) == 900  # 300 for each of the three users, not one more
    assert (store._writer is None) == (path_taken == "inline")
    # Every allowed call was answered after its commit: another connection sees them all.
    other = SQLiteStore(path, policy)
    assert [other.state(f"user-{n}", "iris", now=T0).used for n in range(3)] == [300] * 3
    other.close()
    store.close()


def test_a_batch_decides_as_one_call_at_a_time_would(tmp_path: Path) -> None:
    limits = Limits(rate=1, burst=3, quota=5, period=Period.DAY)
    costs = [1, 2, 1, 3, 1, 1, 2, 1]
    times = [T0, T0, T0, T0 + 1, T0 + 2, T0 + 2.5, T0 + 4, T0 + 9]
    one_by_one = SQLiteStore(tmp_path / "a.sqlite3", BudgetPolicy.uniform(limits))
    expected = [
        one_by_one.consume("alice", "iris", cost=c, now=t)
        for c, t in zip(costs, times, strict=True)
    ]
    one_by_one.close()
    batched = SQLiteStore(tmp_path / "b.sqlite3", BudgetPolicy.uniform(limits))

    async def together() -> list[BudgetDecision]:
        calls = [
            batched.aconsume("alice", "iris", cost=c, now=t)
            for c, t in zip(costs, times, strict=True)
        ]
        return await _queued(batched, calls)

    assert asyncio.run(together()) == expected
    batched.close()


def test_processes_grouping_their_commits_count_exactly(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    SQLiteStore(path, POLICY).close()
    results = hammer("sqlite-async", str(path), processes=4, attempts=400)
    assert sum(allowed for allowed, _ in results) == 1000
    assert sum(unavailable for _, unavailable in results) == 0


def test_a_locked_database_fails_closed_on_the_loop_too(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    store = SQLiteStore(path, POLICY, busy_timeout=0.1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def both() -> tuple[BudgetDecision, BudgetDecision, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.002)
                ticks += 1

        running = asyncio.ensure_future(ticker())
        closed = store.aconsume("alice", "iris", now=T0)
        opened = store.aconsume("alice", "public", now=T0)
        first, second = await asyncio.gather(closed, opened)
        running.cancel()
        return first, second, ticks

    try:
        closed, opened, ticks = asyncio.run(both())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert not closed.allowed and closed.reason is Reason.STORE_UNAVAILABLE
    assert "locked" in closed.detail
    assert opened.allowed and opened.fail_open
    # The loop went on while the writer thread waited for the lock (2 x busy_timeout).
    assert ticks >= 5
    assert asyncio.run(store.aconsume("alice", "iris", now=T0)).allowed  # the lock is gone
    # The refused calls charged nothing.
    assert store.state("alice", "iris", now=T0).used == 1
    store.close()


def test_closing_answers_every_queued_call_and_later_calls_refuse(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "b.sqlite3", POLICY)

    async def scenario() -> tuple[list[BudgetDecision], BudgetDecision]:
        with store._lock:
            queued = [
                asyncio.ensure_future(store.aconsume("alice", "iris", now=T0)) for _ in range(4)
            ]
            await asyncio.sleep(0)  # the four are queued for the writer
            closing = asyncio.ensure_future(store.aclose())
            await asyncio.sleep(0.05)
            assert not closing.done()  # close waits for the queued calls' commit
        await closing
        return list(await asyncio.gather(*queued)), await store.aconsume("bob", "iris", now=T0)

    answered, after = asyncio.run(scenario())
    assert [d.allowed for d in answered] == [True, True, True, False]  # burst of 3
    assert after.reason is Reason.STORE_UNAVAILABLE and "closed" in after.detail
    store.close()  # idempotent


def test_checkpoints_run_off_the_committing_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlwarden.budgets._sqlite as module

    monkeypatch.setattr(module, "_CHECKPOINT_EVERY", 10)
    path = tmp_path / "b.sqlite3"
    store = SQLiteStore(path, BudgetPolicy.uniform(Limits(quota=100, period=Period.DAY)))
    for n in range(10):
        store.consume(f"user-{n}", "iris", now=T0)
    checkpointer = store._checkpointer
    assert checkpointer._thread is not None and checkpointer._thread.name.endswith("checkpoint")
    # The checkpoint copies the WAL into the database file: a copy of that file alone
    # (no WAL beside it) holds the ten rows.
    deadline = time.monotonic() + 10
    rows = 0
    while rows < 10 and time.monotonic() < deadline:
        copy = tmp_path / f"copy-{time.monotonic_ns()}.sqlite3"
        shutil.copyfile(path, copy)
        with contextlib.closing(sqlite3.connect(copy)) as conn:
            try:
                rows = conn.execute("SELECT count(*) FROM budget_state").fetchone()[0]
            except sqlite3.OperationalError:  # not even the schema is checkpointed yet
                rows = 0
        time.sleep(0.02)
    assert rows == 10 and checkpointer.last_error is None
    store.close()
    assert not checkpointer._thread.is_alive()
