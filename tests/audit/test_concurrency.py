"""Concurrent appenders (threads with their own connections, and separate processes)
never fork the chain: every event lands exactly once and every link holds."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from mlwarden.audit import BatchedAuditWriter, WriterLimits

from .conftest import Store, event

_APPENDER = """
import sys
from mlwarden.audit import open_audit_log, AuditEvent, Decision
url, table, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open_audit_log(url, table=table) as log:
    i = 0
    while i < n:
        size = 1 + i % 7
        log.append_many([
            AuditEvent(kind="infer", decision=Decision.ALLOW, reason="ok",
                       request_id=f"{tag}-{j}")
            for j in range(i, min(n, i + size))
        ])
        i += size
"""


def _request_ids(store: Store) -> list[str]:
    return [r.event.request_id for r in store.open().tail(1_000_000)]


def test_threads_with_their_own_connections(store: Store) -> None:
    store.open()  # create the table before the race
    threads, per_thread, errors = 6, 60, []

    def work(tag: int) -> None:
        try:
            log = store.open()
            i = 0
            while i < per_thread:
                size = 1 + (i + tag) % 5
                log.append_many(
                    [event(tag * 1000 + j) for j in range(i, min(per_thread, i + size))]
                )
                i += size
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    result = store.open().verify()
    assert result.intact and result.records == threads * per_thread
    ids = _request_ids(store)
    assert len(set(ids)) == len(ids) == threads * per_thread


def test_two_processes_append_to_one_log(store: Store, tmp_path: Path) -> None:
    store.open()
    src = Path(__file__).resolve().parents[2] / "src"
    n = 300
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, store.url, store.table, tag, str(n)],
            env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
            stderr=subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    result = store.open().verify()
    assert result.intact and result.records == 2 * n
    ids = _request_ids(store)
    assert sorted(ids) == sorted([f"a-{i}" for i in range(n)] + [f"b-{i}" for i in range(n)])


def test_batched_writers_in_threads_share_one_log(store: Store) -> None:
    log = store.open()
    writer = BatchedAuditWriter(log, limits=WriterLimits(max_batch=64))
    per_thread = 500

    def work(tag: int) -> None:
        for i in range(per_thread):
            writer.submit(event(tag * 10_000 + i))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    writer.close()
    assert writer.written == 4 * per_thread
    result = log.verify()
    assert result.intact and result.records == 4 * per_thread


def test_verify_during_appends_reports_no_false_break(store: Store) -> None:
    log = store.open()
    log.append_many([event(i) for i in range(500)])
    stop = threading.Event()
    appended: list[int] = []

    def append() -> None:
        appender = store.open()
        i = 0
        while not stop.is_set():
            appender.append_many([event(1000 + i + j) for j in range(10)])
            i += 10
        appended.append(i)

    thread = threading.Thread(target=append)
    thread.start()
    try:
        results = [log.verify() for _ in range(5)]
    finally:
        stop.set()
        thread.join()
    assert all(r.intact for r in results)
    assert results[-1].records >= 500
    assert log.verify().records == 500 + appended[0]
