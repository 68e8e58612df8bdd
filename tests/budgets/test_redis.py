"""The Redis store against a real redis-server the tests start: exact across processes,
the same decisions as the in-process algorithm, fail closed when Redis is gone."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwarden.budgets import BudgetPolicy, Limits, LimitsOverride, MemoryStore, Period, Reason
from mlwarden.budgets import RedisStore as _RedisStore
from mlwarden.errors import BudgetStoreUnavailableError

from .conftest import T0, RedisServer, hammer

POLICY = BudgetPolicy(
    defaults=Limits(rate=5, burst=5, quota=100, period=Period.DAY),
    models={"public": LimitsOverride(fail_open=True)},
)


def store_for(server: RedisServer, policy: BudgetPolicy = POLICY, **kw: object) -> _RedisStore:
    return _RedisStore(server.url, policy, **kw)  # type: ignore[arg-type]


def test_four_processes_on_one_budget_of_1000_get_exactly_1000(redis_server: RedisServer) -> None:
    results = hammer("redis", redis_server.url, processes=4, attempts=500)
    assert sum(allowed for allowed, _ in results) == 1000
    assert all(allowed > 0 for allowed, _ in results)  # they really contended
    assert sum(unavailable for _, unavailable in results) == 0


def test_two_replicas_share_one_bucket(redis_server: RedisServer) -> None:
    one, two = store_for(redis_server), store_for(redis_server)
    answers = [(one if n % 2 else two).consume("alice", "iris", now=T0).allowed for n in range(8)]
    assert answers == [True] * 5 + [False] * 3
    assert two.state("alice", "iris", now=T0).remaining_budget == 95
    one.close()
    two.close()


def test_without_now_the_servers_clock_decides(redis_server: RedisServer) -> None:
    # Replicas whose own clocks are an hour apart still share the bucket and the window.
    policy = BudgetPolicy.uniform(Limits(rate=1, burst=5, quota=100))
    early = store_for(redis_server, policy, clock=lambda: time.time() - 3600)
    late = store_for(redis_server, policy, clock=lambda: time.time() + 3600)
    answers = [(early if n % 2 else late).consume("alice", "iris") for n in range(6)]
    assert [a.allowed for a in answers] == [True] * 5 + [False]
    assert answers[5].retry_after is not None and 0 < answers[5].retry_after <= 1 + 1e-6
    reset_at = answers[0].reset_at
    assert reset_at is not None and 0 < reset_at - time.time() <= 86_400
    early.close()
    late.close()


def test_idle_keys_expire_in_redis(redis_server: RedisServer) -> None:
    store = store_for(redis_server, BudgetPolicy.uniform(Limits(rate=10, burst=10)))
    store.consume("alice", "iris")
    ttl = store._client.pttl(store.key("alice", "iris"))
    assert 0 < ttl <= 1100  # the bucket is full again in 0.1 s; a second of slack
    store.close()


def test_keys_of_different_pairs_never_collide(redis_server: RedisServer) -> None:
    store = store_for(redis_server)
    assert store.key("a:b", "c") != store.key("a", "b:c")
    store.close()


def test_redis_down_fails_closed_and_recovers(redis_server: RedisServer) -> None:
    store = store_for(redis_server, timeout=0.2)
    assert store.consume("alice", "iris", now=T0).allowed
    redis_server.stop()

    started = time.perf_counter()
    closed = store.consume("alice", "iris", now=T0)
    assert time.perf_counter() - started < 2.0  # refused quickly, not hung
    assert not closed.allowed and closed.reason is Reason.STORE_UNAVAILABLE
    assert closed.code == "E403" and closed.detail.startswith("Redis:")
    opened = store.consume("alice", "public", now=T0)
    assert opened.allowed and opened.fail_open
    with pytest.raises(BudgetStoreUnavailableError):
        store.state("alice", "iris", now=T0)
    with pytest.raises(BudgetStoreUnavailableError):
        store.reset("alice", "iris")

    redis_server.start()  # same port; its memory is empty (no persistence in the test)
    assert store.consume("alice", "iris", now=T0).allowed
    store.close()


def test_a_redis_that_never_listened_fails_closed() -> None:
    store = _RedisStore("redis://127.0.0.1:1/0", POLICY, timeout=0.2)
    assert store.consume("alice", "iris", now=T0).reason is Reason.STORE_UNAVAILABLE
    store.close()


def test_async_consume(redis_server: RedisServer) -> None:
    store = store_for(redis_server, timeout=0.2)

    async def scenario() -> list[bool]:
        answers = await asyncio.gather(*(store.aconsume("alice", "iris", now=T0) for _ in range(8)))
        return [a.allowed for a in answers]

    async def down() -> tuple[bool, bool]:
        closed = await store.aconsume("alice", "iris", now=T0 + 10)
        opened = await store.aconsume("alice", "public", now=T0 + 10)
        await store.aclose()
        return closed.allowed, opened.allowed and opened.fail_open

    async def both() -> tuple[list[bool], tuple[bool, bool]]:
        first = await scenario()
        redis_server.stop()
        return first, await down()

    first, after = asyncio.run(both())
    assert sorted(first) == [False] * 3 + [True] * 5
    assert after == (False, True)


def test_concurrent_async_calls_are_pipelined_and_exact(redis_server: RedisServer) -> None:
    store = store_for(redis_server, BudgetPolicy.uniform(Limits(quota=100, period=Period.DAY)))
    pipelines: list[int] = []

    async def scenario() -> list[bool]:
        batcher = store._new_batcher()
        store._batcher = batcher
        send = batcher._pipeline

        async def counting(batch):  # type: ignore[no-untyped-def]
            pipelines.append(len(batch))
            return await send(batch)

        batcher._pipeline = counting  # type: ignore[method-assign]
        answers = await asyncio.gather(
            *(store.aconsume("alice", "iris", now=T0) for _ in range(300))
        )
        await store.aclose()
        return [a.allowed for a in answers]

    answers = asyncio.run(scenario())
    assert sum(answers) == 100
    assert len(pipelines) < 300 and sum(pipelines) == 300  # calls shared round trips
    assert max(pipelines) <= 256


def test_async_calls_survive_a_flushed_script_cache(redis_server: RedisServer) -> None:
    store = store_for(redis_server, BudgetPolicy.uniform(Limits(quota=10, period=Period.DAY)))

    async def scenario() -> list[int | None]:
        first = await store.aconsume("alice", "iris", now=T0)
        store._client.script_flush()  # as after a Redis restart
        rest = await asyncio.gather(*(store.aconsume("alice", "iris", now=T0) for _ in range(4)))
        await store.aclose()
        return [d.remaining_budget for d in (first, *rest)]

    remaining = asyncio.run(scenario())
    assert remaining[0] == 9 and sorted(remaining[1:]) == [5, 6, 7, 8]  # each charged once


def test_async_calls_recover_after_redis_comes_back(redis_server: RedisServer) -> None:
    store = store_for(redis_server, timeout=0.2)

    async def scenario() -> tuple[bool, bool, bool]:
        before = (await store.aconsume("alice", "iris", now=T0)).allowed
        redis_server.stop()
        during = (await store.aconsume("alice", "iris", now=T0)).allowed
        redis_server.start()
        after = (await store.aconsume("alice", "iris", now=T0)).allowed
        await store.aclose()
        return before, during, after

    assert asyncio.run(scenario()) == (True, False, True)


_calls = st.lists(
    st.tuples(st.floats(min_value=0, max_value=3, allow_nan=False), st.integers(1, 4)),
    min_size=1,
    max_size=40,
)
_limits = st.builds(
    Limits,
    rate=st.sampled_from([None, 0.5, 1.0, 3.0, 7.0, 50.0]),
    burst=st.integers(1, 6),
    quota=st.sampled_from([None, 0, 3, 10, 40]),
    period=st.sampled_from([Period.MINUTE, Period.HOUR]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(limits=_limits, calls=_calls)
def test_lua_decides_exactly_as_the_python_algorithm(
    redis_server: RedisServer, limits: Limits, calls: list[tuple[float, int]]
) -> None:
    policy = BudgetPolicy.uniform(limits)
    redis = store_for(redis_server, policy)
    memory = MemoryStore(policy)
    redis.reset("alice", "iris")
    now = T0 + 50  # ten seconds before a minute boundary: windows roll over in some runs
    for gap, cost in calls:
        now += gap
        want = memory.consume("alice", "iris", cost=cost, now=now)
        got = redis.consume("alice", "iris", cost=cost, now=now)
        assert (got.allowed, got.reason) == (want.allowed, want.reason)
        assert got.remaining_tokens == want.remaining_tokens
        assert got.remaining_budget == want.remaining_budget
        assert got.reset_at == want.reset_at
        if want.retry_after is None:
            assert got.retry_after is None
        else:
            assert got.retry_after == pytest.approx(want.retry_after, abs=1e-5)
    redis.close()
