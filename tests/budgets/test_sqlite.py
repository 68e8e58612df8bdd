"""The SQLite store: budgets survive restarts, processes share them exactly, failures refuse."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlwarden.budgets import BudgetPolicy, Limits, LimitsOverride, Period, Reason, SQLiteStore
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
