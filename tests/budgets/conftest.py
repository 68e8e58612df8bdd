"""Fixtures for the budget tests: each backend, and a real redis-server of the test's own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlwarden.budgets import BudgetPolicy, BudgetStore, Limits, MemoryStore, SQLiteStore

# A fixed instant (a Tuesday, 10:00:00 UTC) so windows and buckets are exact in every test.
T0 = 1_800_000_000.0 - (1_800_000_000 % 86_400) + 10 * 3600


@dataclass
class RedisServer:
    """A redis-server on 127.0.0.1 in a temp dir, started and stopped by the test."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        # Fail, not skip: a skipped test proves nothing (.ci/run installs redis-server).
        pytest.fail(
            "redis-server is not installed: install the `redis-server` package", pytrace=False
        )
    server = RedisServer(port=_free_port(), workdir=tmp_path)
    server.start()
    yield server
    server.stop()


def make_store(
    kind: str, policy: BudgetPolicy, tmp_path: Path, redis: RedisServer | None
) -> BudgetStore:
    if kind == "memory":
        return MemoryStore(policy)
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "budgets.sqlite3", policy)
    from mlwarden.budgets import RedisStore

    assert redis is not None
    return RedisStore(redis.url, policy)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A factory: `backend(limits)` builds a store of the parametrised kind."""
    kind = request.param
    redis = request.getfixturevalue("redis_server") if kind == "redis" else None
    stores: list[BudgetStore] = []

    def build(limits: Limits | BudgetPolicy) -> BudgetStore:
        policy = limits if isinstance(limits, BudgetPolicy) else BudgetPolicy.uniform(limits)
        store = make_store(kind, policy, tmp_path, redis)
        stores.append(store)
        return store

    build.kind = kind  # type: ignore[attr-defined]
    yield build
    for store in stores:
        store.close()


ROOT = Path(__file__).resolve().parents[2]


def hammer(kind: str, target: str, *, processes: int, attempts: int) -> list[tuple[int, int]]:
    """Run `processes` hammer workers at once; return (allowed, unavailable) for each."""
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.budgets.hammer",
                kind,
                target,
                str(attempts),
                str(start_at),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        allowed, unavailable = out.split()
        results.append((int(allowed), int(unavailable)))
    return results
