"""Detector state stays bounded: one stream's state under a long stream, and the number
of streams kept in memory (the rest are written behind to the store)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.detect_gateway.conftest import Fitted, body, detect_env
from tests.gateway.support import call

from mlwarden.detect._store_sqlite import SQLiteDetectorStore

INFER = "/v2/models/digits/infer"


def test_state_bounded_under_a_long_stream(tmp_path: Path, fitted: Fitted) -> None:
    env = detect_env(tmp_path / "gw", fitted, responses={}, model_extra={"window": 64})
    x_test = env.models.x_test
    sizes = []

    async def scenario() -> None:
        app = env.gateway()
        try:
            assert app.detectors is not None
            for i in range(120):  # 120 x 32 = 3840 queries, 60 windows
                rows = x_test[(i % 8) * 4 : (i % 8) * 4 + 32]
                answer = await call(app, "POST", INFER, headers=env.key("batch"),
                                    json_body=body(rows))  # fmt: skip
                assert answer.status_code == 200
                if i % 20 == 19:
                    await app.detectors.settle()
                    await app.detectors.flush()
                    store = SQLiteDetectorStore(env.folder / "budgets.sqlite3")
                    try:
                        blob = store.load_state("api_key:batch", "digits")
                    finally:
                        store.close()
                    assert blob is not None
                    sizes.append(len(blob))
        finally:
            await app.aclose()

    asyncio.run(scenario())
    assert len(set(sizes)) == 1, sizes  # full window reached: constant from then on
    assert sizes[0] < 8 * 1024


def test_streams_in_memory_are_bounded(tmp_path: Path, fitted: Fitted) -> None:
    from mlwarden.detect._responses import DetectorRuntime
    from mlwarden.policy import load_policy

    env = detect_env(tmp_path / "gw", fitted, responses={}, extra={"max_streams": 16})
    policy = load_policy(env.config)
    runtime = DetectorRuntime.from_policy(policy, base=env.folder)
    app = env.gateway()
    served = app._entries["digits"].model  # the loaded, verified model
    x = env.models.x_test[:2]
    proba = served.predict({"pixels": x}).probabilities

    async def scenario() -> None:
        try:
            for i in range(50):
                await runtime.observe_prediction(f"user-{i}", served, {"pixels": x}, proba, "r")
            await runtime.settle()
            assert runtime.streams_in_memory <= 16
        finally:
            await runtime.aclose()
            await app.aclose()

    asyncio.run(scenario())
    store = SQLiteDetectorStore(env.folder / "budgets.sqlite3")
    try:
        kept = [store.load_state(f"user-{i}", "digits") for i in range(50)]
    finally:
        store.close()
    assert all(blob is not None for blob in kept)  # evicted streams were written behind
