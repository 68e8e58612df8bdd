"""Several gateway replicas: budgets exact across them in a real redis-server the test starts,
one audit chain in a real PostgreSQL server the tests start, which concurrent replicas never
break."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.audit.pg_server import PostgresServer, postgres_server
from tests.gateway.support import Models, free_port, make_env, running

from mlwarden.audit import open_audit_log


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    yield from postgres_server()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: CI must provide it (apt redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                import redis

                if redis.Redis(host="127.0.0.1", port=port).ping():
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    return pg_server.url()


@pytest.fixture
def pg_table(pg_url: str) -> Iterator[str]:
    import psycopg

    table = f"gw_audit_{uuid.uuid4().hex[:10]}"
    yield table
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}, {table}_meta")
        conn.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")


def test_two_replicas_share_budgets_and_one_audit_chain(
    tmp_path: Path, models: Models, redis_url: str, pg_url: str, pg_table: str
) -> None:
    env = make_env(
        tmp_path / "gw",
        models,
        budgets={
            "store": {"kind": "redis", "url": redis_url},
            "defaults": {"rate": 10000, "burst": 10000, "quota": 1000000},
            "models": {"quota": {"quota": 10, "period": "day"}},
        },
        audit_url=pg_url,
        audit_table=pg_table,
    )
    replicas = [env.gateway(), env.gateway()]
    statuses: list[int] = []
    lock = threading.Lock()

    def client(url: str, index: int) -> None:
        with httpx.Client(base_url=url, trust_env=False) as http:
            for n in range(5):
                model = "quota" if (index + n) % 2 == 0 else "digits"
                response = http.post(
                    f"/v2/models/{model}/infer", headers=env.key("batch"), json=env.body(1, n)
                )
                with lock:
                    statuses.append(
                        response.status_code if model == "quota" else -response.status_code
                    )

    with running(replicas[0]) as first, running(replicas[1]) as second:
        threads = [
            threading.Thread(target=client, args=(url, i))
            for i, url in enumerate([first, second] * 4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(statuses) == 40
    assert statuses.count(200) == 10  # the quota of 10, exact across both replicas
    assert statuses.count(429) == 10
    assert statuses.count(-200) == 20
    log = open_audit_log(pg_url, table=pg_table, create=False)
    try:
        verification = log.verify()
        assert verification.intact and verification.records == 40
        reasons = [r.event.reason for r in log.tail(100)]
        assert reasons.count("E401") == 10
    finally:
        log.close()
