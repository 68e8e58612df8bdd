"""Latency of BudgetStore.consume() per backend: p50 and p99 of single calls, one thread;
and of aconsume() on an event loop with 1 and 16 concurrent tasks (SQLite, Redis).

    .venv/bin/python bench/budgets_consume.py [--calls 20000]

Starts its own redis-server on a free 127.0.0.1 port in a temp dir (needs the binary).
Calls rotate over 1,000 identities so the stores hold realistic tables, with limits
high enough that calls pass (the path the gateway takes on almost every request).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mlwarden.budgets import BudgetPolicy, Limits, MemoryStore, Period, RedisStore, SQLiteStore

POLICY = BudgetPolicy.uniform(Limits(rate=100_000, burst=100_000, quota=10**12, period=Period.DAY))
IDENTITIES = [f"user-{n}" for n in range(1000)]


def measure(consume, calls: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for n in range(min(2000, calls)):  # warm-up: connections, caches, prepared statements
        consume(IDENTITIES[n % 1000])
    timings = []
    clock = time.perf_counter_ns
    for n in range(calls):
        identity = IDENTITIES[n % 1000]
        start = clock()
        decision = consume(identity)
        timings.append(clock() - start)
        assert decision.allowed
    timings.sort()
    return {
        "p50_us": timings[len(timings) // 2] / 1000,
        "p99_us": timings[int(len(timings) * 0.99)] / 1000,
        "mean_us": statistics.fmean(timings) / 1000,
    }


def measure_async(
    store: RedisStore | SQLiteStore, calls: int, concurrency: int
) -> dict[str, float]:
    async def run() -> dict[str, float]:
        timings: list[int] = []

        async def worker(offset: int) -> None:
            for n in range(calls // concurrency):
                start = time.perf_counter_ns()
                decision = await store.aconsume(IDENTITIES[(offset + n) % 1000], "iris")
                timings.append(time.perf_counter_ns() - start)
                assert decision.allowed

        await asyncio.gather(*(worker(i * 7) for i in range(concurrency)))  # warm-up
        timings.clear()
        started = time.perf_counter()
        await asyncio.gather(*(worker(i * 7) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        await store.aclose()
        timings.sort()
        return {
            "p50_us": timings[len(timings) // 2] / 1000,
            "p99_us": timings[int(len(timings) * 0.99)] / 1000,
            "calls_per_s": len(timings) / elapsed,
        }

    return asyncio.run(run())


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed"
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    calls = parser.parse_args().calls
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        memory = MemoryStore(POLICY)
        results["memory"] = measure(lambda i: memory.consume(i, "iris"), calls)
        for sync in ("normal", "full"):
            store = SQLiteStore(Path(tmp) / f"b-{sync}.sqlite3", POLICY, synchronous=sync)
            results[f"sqlite ({sync})"] = measure(lambda i, s=store: s.consume(i, "iris"), calls)
            store.close()
            # The gateway's path: aconsume on an event loop (inline when the lock is free,
            # group commits on the writer thread otherwise; always the writer with `full`).
            for concurrency in (1, 16):
                store = SQLiteStore(Path(tmp) / f"a-{sync}.sqlite3", POLICY, synchronous=sync)
                results[f"sqlite ({sync}, async, {concurrency} tasks)"] = measure_async(
                    store, calls if sync == "normal" else calls // 10, concurrency
                )
                store.close()
        proc, url = start_redis(Path(tmp))
        try:
            redis = RedisStore(url, POLICY)
            results["redis (sync)"] = measure(lambda i: redis.consume(i, "iris"), calls)
            redis.close()
            for concurrency in (1, 16):
                results[f"redis (async, {concurrency} tasks)"] = measure_async(
                    RedisStore(url, POLICY), calls, concurrency
                )
        finally:
            proc.kill()
            proc.wait()
    width = max(len(name) for name in results)
    for name, figures in results.items():
        cells = "  ".join(f"{key}={value:,.1f}" for key, value in figures.items())
        print(f"{name:<{width}}  {cells}")


if __name__ == "__main__":
    main()
