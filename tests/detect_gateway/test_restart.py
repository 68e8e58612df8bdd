"""A quarantine survives a restart of the gateway: SQLite (the budgets' file) and a real
redis-server started by the test; stream evidence is written behind and kept too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.budgets.conftest import RedisServer, _free_port
from tests.detect_gateway.conftest import Fitted, body, detect_env
from tests.detect_gateway.test_responses import INFER, attack
from tests.gateway.support import Env, call

from mlwarden.detect._store import SanctionRecord
from mlwarden.detect._store_redis import RedisDetectorStore
from mlwarden.detect._store_sqlite import SQLiteDetectorStore


def _quarantine_then_restart(env: Env) -> None:
    async def first_life() -> None:
        app = env.gateway()
        try:
            statuses = await attack(app, env, "batch", 12)
            assert statuses[-1] == 403
        finally:
            await app.aclose()

    async def second_life() -> None:
        app = env.gateway()
        try:
            answer = await call(app, "POST", INFER, headers=env.key("batch"),
                                json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert answer.status_code == 403
            assert answer.json()["code"] == "E320"
            other = await call(app, "POST", INFER, headers=env.key("scientist"),
                               json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert other.status_code == 200
        finally:
            await app.aclose()

    asyncio.run(first_life())
    asyncio.run(second_life())


def test_quarantine_survives_restart_sqlite(tmp_path: Path, fitted: Fitted) -> None:
    env = detect_env(tmp_path / "gw", fitted, responses={"extraction": "quarantine"})
    _quarantine_then_restart(env)
    # Same file as the budgets: one store to run.
    store = SQLiteDetectorStore(env.folder / "budgets.sqlite3")
    try:
        assert [r.identity for r in store.sanctions()] == ["api_key:batch"]
    finally:
        store.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Any:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(port=_free_port(), workdir=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_quarantine_survives_restart_redis(
    tmp_path: Path, fitted: Fitted, redis_server: RedisServer
) -> None:
    budgets = {
        "store": {"kind": "redis", "url": redis_server.url},
        "defaults": {"rate": 10000, "burst": 10000, "quota": 1000000},
    }
    env = detect_env(
        tmp_path / "gw", fitted, responses={"extraction": "quarantine"}, budgets=budgets
    )
    _quarantine_then_restart(env)
    store = RedisDetectorStore(redis_server.url, prefix="mlwarden:budget:detect")
    try:
        assert [r.sanction for r in store.sanctions()] == ["quarantine"]
    finally:
        store.close()


async def _life(env: Env, batches: int, offset: int) -> list[int]:
    """One run of a gateway: `batches` calls of a slow attacker; the statuses."""
    app = env.gateway()
    try:
        assert app.detectors is not None
        statuses = []
        for i in range(batches):
            # A slow attacker: one noisy natural sample per call (~7 calls to flag).
            j = offset + i
            noise = np.random.default_rng(j).normal(0.0, 3.0, size=(1, 64))
            rows = np.clip(env.models.x_test[j % 40 : j % 40 + 1] + noise, 0.0, 16.0)
            answer = await call(app, "POST", INFER, headers=env.key("batch"), json_body=body(rows))
            statuses.append(answer.status_code)
            await app.detectors.settle()
        return statuses
    finally:
        await app.aclose()


def test_stream_evidence_is_kept_across_restart(tmp_path: Path, fitted: Fitted) -> None:
    """Half an attack, a restart, the other half: the evidence adds up."""
    one = detect_env(tmp_path / "one", fitted, responses={"extraction": "quarantine"})
    whole = asyncio.run(_life(one, 60, 0))
    assert 403 in whole
    needed = whole.index(403)  # batches answered before the quarantine took effect
    assert needed >= 3
    # The same stream split across two lives of another gateway.
    two = detect_env(tmp_path / "two", fitted, responses={"extraction": "quarantine"})
    half = needed // 2
    first = asyncio.run(_life(two, half, 0))
    assert 403 not in first
    second = asyncio.run(_life(two, needed - half + 1, half))
    assert second[-1] == 403, (needed, first, second)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_stricter_sanction_is_never_replaced(tmp_path: Path, kind: str) -> None:
    from mlwarden.detect._store import MemoryDetectorStore

    store = MemoryDetectorStore() if kind == "memory" else SQLiteDetectorStore(tmp_path / "s.db")
    try:
        for sanction in ("quarantine", "degrade", "throttle"):
            store.impose(SanctionRecord(identity="a", model="m", sanction=sanction,  # type: ignore[arg-type]
                                        reason="extraction", since=1.0))  # fmt: skip
        assert [r.sanction for r in store.sanctions()] == ["quarantine"]
        assert store.release("a", "m") == 1
        assert store.sanctions() == []
    finally:
        store.close()
