"""Audit log throughput per backend: appends (single, batched, through the writer), the
cost of `submit()` on the hot path, concurrent replicas, and `verify()`.

    .venv/bin/python bench/audit_append.py [--events 20000] [--pg postgresql://...]

SQLite goes to a temp dir; PostgreSQL (default: postgres@127.0.0.1:5432/test) to a
table of its own, dropped at the end. Replicas are separate processes appending to
one log through their own writers, as gateway replicas would.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from mlwarden.audit import (
    AuditEvent,
    BatchedAuditWriter,
    Decision,
    WriterLimits,
    open_audit_log,
)


def make_event(i: int) -> AuditEvent:
    return AuditEvent(
        kind="infer",
        decision=Decision.ALLOW,
        reason="ok",
        request_id=f"req-{i}",
        identity="svc-fraud",
        model="churn",
        action="infer",
        input_sha256=f"{i:064x}",
        output={"label": "yes", "top_k": 1},
        latency_us=420,
    )


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} events/s"


def bench_hot_path(n: int) -> None:
    clock = time.perf_counter_ns
    build = []
    for i in range(n):
        start = clock()
        make_event(i)
        build.append(clock() - start)
    p50 = statistics.median(build) / 1000
    print(f"  build an event (validate + canonical JSON): p50 {p50:.1f} us")


def bench_log(url: str, table: str, n: int) -> None:
    events = [make_event(i) for i in range(n)]
    with open_audit_log(url, table=table) as log:
        single = min(n, 2000)
        start = time.perf_counter()
        for event in events[:single]:
            log.append(event)
        print(f"  append() one per transaction: {rate(single, time.perf_counter() - start)}")
        start = time.perf_counter()
        for i in range(0, n, 1024):
            log.append_many(events[i : i + 1024])
        print(f"  append_many() batches of 1024: {rate(n, time.perf_counter() - start)}")
        writer = BatchedAuditWriter(log, limits=WriterLimits(max_batch=1024))
        submit = []
        clock = time.perf_counter_ns
        cpu = time.process_time()
        start = time.perf_counter()
        for event in events:
            t0 = clock()
            writer.submit(event)
            submit.append(clock() - t0)
        writer.flush()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        writer.close()
        submit.sort()
        p50, p99 = submit[len(submit) // 2] / 1000, submit[int(len(submit) * 0.99)] / 1000
        print(
            f"  writer submit()+flush(): {rate(n, elapsed)}; "
            f"submit() p50 {p50:.2f} us, p99 {p99:.2f} us; "
            f"process CPU {cpu / n * 1e6:.1f} us per event (both threads)"
        )
        total = log.head().seq
        start = time.perf_counter()
        result = log.verify()
        assert result.intact and result.records == total
        print(
            f"  verify(): {total / (time.perf_counter() - start):,.0f} records/s ({total} records)"
        )


def _replica(url: str, table: str, tag: int, n: int, ready: mp.Queue, go: mp.Event) -> None:  # type: ignore[type-arg]
    events = [make_event(tag * 10_000_000 + i) for i in range(n)]
    with open_audit_log(url, table=table) as log:
        writer = BatchedAuditWriter(log, limits=WriterLimits(max_batch=1024))
        ready.put(tag)
        go.wait()
        for event in events:
            writer.submit(event)
        writer.close()


def bench_replicas(url: str, table: str, n: int, replicas: int) -> None:
    ctx = mp.get_context("spawn")
    open_audit_log(url, table=table).close()
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    go = ctx.Event()
    procs = [
        ctx.Process(target=_replica, args=(url, table, r, n, ready, go)) for r in range(replicas)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)  # every replica has imported, built its events and connected
    start = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    with open_audit_log(url, table=table, create=False) as log:
        result = log.verify()
    assert result.intact and result.records == n * replicas, result
    print(
        f"  {replicas} replica processes appending at once, {n} events each through their "
        f"writers: {rate(n * replicas, elapsed)} in all, chain intact"
    )


def drop_pg(url: str, table: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}, {table}_meta")
        conn.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print("hot path")
    bench_hot_path(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        print("SQLite (WAL, synchronous=FULL)")
        bench_log(f"sqlite:///{Path(tmp) / 'audit.db'}", "audit_log", args.events)
        bench_replicas(
            f"sqlite:///{Path(tmp) / 'replicas.db'}", "audit_log", args.events, args.replicas
        )
    print("PostgreSQL (LOCK TABLE per batch)")
    for replicas in (False, True):
        table = f"bench_audit_{uuid.uuid4().hex[:8]}"
        try:
            if replicas:
                bench_replicas(args.pg, table, args.events, args.replicas)
            else:
                bench_log(args.pg, table, args.events)
        finally:
            drop_pg(args.pg, table)


if __name__ == "__main__":
    main()
