"""The batched writer: flush and close semantics, fail-closed when the store fails, and
backpressure when it is slow. Failures are real: a renamed table, a held write lock."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from mlwarden.audit import BatchedAuditWriter, WriterLimits
from mlwarden.errors import AuditBackpressureError, AuditStoreError, UsageError

from .conftest import Store, event


def _wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_flush_commits_everything_submitted_before_it(store: Store) -> None:
    log = store.open()
    with BatchedAuditWriter(log, limits=WriterLimits(max_batch=100)) as writer:
        for i in range(1, 1001):
            writer.submit(event(i))
        writer.flush(timeout=30)
        assert log.head().seq == 1000
        assert writer.written == 1000 and writer.healthy
        writer.submit_many([event(1001), event(1002)])
    assert log.head().seq == 1002  # close() flushed
    assert not writer.healthy
    with pytest.raises(AuditStoreError, match="closed"):
        writer.submit(event(1003))
    writer.close()  # twice is fine
    writer.flush()  # nothing queued: returns at once
    assert log.verify().intact
    assert [r.event.request_id for r in log.tail(2)] == ["req-1001", "req-1002"]


def test_a_failing_store_refuses_submits_then_recovers(store: Store) -> None:
    log = store.open()
    limits = WriterLimits(max_batch=10, retry_initial_s=0.01, retry_max_s=0.05)
    writer = BatchedAuditWriter(log, limits=limits)
    writer.submit(event(1))
    writer.flush(timeout=10)
    store.tamper("ALTER TABLE {t} RENAME TO {t}_away")
    writer.submit(event(2))
    _wait(lambda: not writer.healthy)
    assert writer.last_error is not None and writer.last_error.code == "E351"
    with pytest.raises(AuditStoreError, match="cannot be written"):
        writer.submit(event(3))
    with pytest.raises(AuditStoreError, match="not written within"):
        writer.flush(timeout=0.2)
    store.tamper("ALTER TABLE {t}_away RENAME TO {t}")
    writer.flush(timeout=10)
    assert writer.healthy
    writer.submit(event(4))
    writer.close()
    assert [r.event.request_id for r in log.tail(10)] == ["req-1", "req-2", "req-4"]
    assert log.verify().intact


def test_close_reports_events_it_could_not_write(sqlite_store: Store) -> None:
    log = sqlite_store.open()
    writer = BatchedAuditWriter(log, limits=WriterLimits(retry_initial_s=0.01, retry_max_s=0.01))
    sqlite_store.tamper("ALTER TABLE {t} RENAME TO {t}_away")
    writer.submit(event(1))
    _wait(lambda: not writer.healthy)
    with pytest.raises(AuditStoreError, match="1 audit events could not be written"):
        writer.close(timeout=10)


def test_backpressure_when_the_store_is_slow(sqlite_store: Store) -> None:
    log = sqlite_store.open()
    writer = BatchedAuditWriter(log, limits=WriterLimits(max_batch=1, max_pending=5))
    blocker = sqlite3.connect(sqlite_store.url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock: the writer waits, it does not fail
    try:
        writer.submit(event(0))
        _wait(lambda: writer.pending == 0)  # taken by the thread, which now waits on the lock
        for i in range(1, 6):
            writer.submit(event(i))
        with pytest.raises(AuditBackpressureError, match="5 audit events are waiting"):
            writer.submit(event(6))
        assert writer.healthy
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    writer.close(timeout=30)
    assert log.head().seq == 6 and log.verify().intact


def test_limits_are_checked() -> None:
    with pytest.raises(UsageError):
        WriterLimits(max_batch=0)
    with pytest.raises(UsageError):
        WriterLimits(max_batch=10, max_pending=5)


def _terminate_backends(store: Store) -> None:
    """Kill the server side of every other connection to the test database (a restart)."""
    store.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = '{t}' AND pid <> pg_backend_pid()"
    )


def test_postgres_connections_dropped_by_the_server_are_replaced(pg_store: Store) -> None:
    store = pg_store
    log = store.open()
    log.append(event(1))
    _terminate_backends(store)
    with pytest.raises(AuditStoreError, match="cannot append"):
        log.append(event(2))  # the dead connection is found out here...
    assert log.append(event(3)).seq == 2  # ...and replaced on the next call
    writer = BatchedAuditWriter(log, limits=WriterLimits(retry_initial_s=0.01))
    writer.submit(event(4))
    writer.flush(timeout=10)
    _terminate_backends(store)
    writer.submit(event(5))
    writer.flush(timeout=10)  # the failed batch is retried on a new connection
    writer.close()
    assert [r.event.request_id for r in log.tail(10)] == ["req-1", "req-3", "req-4", "req-5"]
    assert log.verify().intact


def test_linger_gathers_events_that_arrive_one_at_a_time(tmp_path: Path) -> None:
    from mlwarden.audit import AuditEvent, BatchedAuditWriter, Decision, open_audit_log
    from mlwarden.audit._writer import WriterLimits

    log = open_audit_log(f"sqlite:///{tmp_path / 'a.db'}")
    commits: list[int] = []
    append_many = log.append_many

    def counting(events: Any) -> Any:
        commits.append(len(events))
        return append_many(events)

    log.append_many = counting  # type: ignore[method-assign]
    writer = BatchedAuditWriter(log, limits=WriterLimits(linger_s=0.2))
    for index in range(5):
        writer.submit(
            AuditEvent(kind="infer", decision=Decision.ALLOW, reason="ok", request_id=f"r{index}")
        )
        time.sleep(0.01)  # one at a time, as calls arrive
    writer.flush(timeout=5)
    writer.close()
    assert sum(commits) == 5
    assert commits[0] > 1  # the first commit waited for the events behind it
    assert log.verify().intact
    log.close()


def test_a_flush_or_close_cuts_the_linger_short(tmp_path: Path) -> None:
    from mlwarden.audit import AuditEvent, BatchedAuditWriter, Decision, open_audit_log
    from mlwarden.audit._writer import WriterLimits

    log = open_audit_log(f"sqlite:///{tmp_path / 'a.db'}")
    writer = BatchedAuditWriter(log, limits=WriterLimits(linger_s=1.0))
    for index in range(2):
        writer.submit(
            AuditEvent(kind="infer", decision=Decision.ALLOW, reason="ok", request_id=f"f{index}")
        )
        time.sleep(0.05)  # the writer has taken the first event and lingers
        started = time.monotonic()
        writer.flush(timeout=5)
        assert time.monotonic() - started < 0.5  # not the whole second of linger
    writer.submit(AuditEvent(kind="infer", decision=Decision.ALLOW, reason="ok", request_id="c"))
    time.sleep(0.05)
    started = time.monotonic()
    writer.close()
    assert time.monotonic() - started < 0.5
    assert [r.event.request_id for r in log.tail(10)] == ["f0", "f1", "c"]
    log.close()
