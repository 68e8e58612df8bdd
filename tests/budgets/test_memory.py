"""The in-process store: bounded memory, fail closed when full, exact under threads."""

from __future__ import annotations

import threading

from mlwarden.budgets import BudgetPolicy, Limits, LimitsOverride, MemoryStore, Period, Reason

from .conftest import T0


def test_idle_pairs_are_evicted_so_memory_stays_bounded() -> None:
    store = MemoryStore(
        BudgetPolicy.uniform(Limits(rate=1, burst=1, quota=5, period=Period.MINUTE)),
        max_entries=100,
    )
    # 10,000 identities, one call each, 100 per simulated minute: once a minute is over,
    # its pairs equal fresh ones and make room for the next minute's callers.
    for n in range(10_000):
        now = T0 + (n // 100) * 60 + (n % 100) * 0.1
        assert store.consume(f"user-{n}", "iris", now=now).allowed, n
        assert len(store) <= 100
    assert len(store) == 100


def test_a_full_table_of_live_pairs_refuses_new_pairs_instead_of_forgetting() -> None:
    store = MemoryStore(
        BudgetPolicy.uniform(Limits(quota=1, period=Period.DAY)), max_entries=10, sweep_interval=5
    )
    for n in range(10):
        assert store.consume(f"user-{n}", "iris", now=T0).allowed
    refused = store.consume("newcomer", "iris", now=T0)
    assert not refused.allowed and refused.reason is Reason.STORE_UNAVAILABLE
    assert refused.code == "E403" and "table is full" in refused.detail
    # The pairs already counted are still counted (nothing was forgotten to make room).
    assert store.consume("user-3", "iris", now=T0).reason is Reason.BUDGET_EXCEEDED
    # The next day every pair is stale: a sweep (at most one per sweep_interval) frees room.
    tomorrow = T0 + 86_400
    assert store.consume("newcomer", "iris", now=tomorrow).allowed
    assert len(store) == 1


def test_full_table_fails_open_only_for_a_model_that_says_so() -> None:
    policy = BudgetPolicy(
        defaults=Limits(quota=1),
        models={"public": LimitsOverride(fail_open=True)},
    )
    store = MemoryStore(policy, max_entries=2)
    store.consume("a", "x", now=T0)
    store.consume("b", "x", now=T0)
    closed = store.consume("c", "x", now=T0)
    opened = store.consume("c", "public", now=T0)
    assert not closed.allowed and not closed.fail_open
    assert opened.allowed and opened.fail_open and opened.reason is Reason.STORE_UNAVAILABLE
    assert opened.code is None


def test_threads_never_overspend() -> None:
    store = MemoryStore(BudgetPolicy.uniform(Limits(quota=1000, period=Period.DAY)))
    allowed = [0] * 8
    start = threading.Barrier(8)

    def hammer(slot: int) -> None:
        start.wait()
        for _ in range(250):
            allowed[slot] += store.consume("alice", "iris", now=T0).allowed

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 1000
    assert store.state("alice", "iris", now=T0).remaining_budget == 0


def test_no_background_threads_are_started() -> None:
    before = threading.active_count()
    store = MemoryStore(BudgetPolicy.uniform(Limits(rate=1000, burst=10)))
    for n in range(5000):
        store.consume("alice", "iris", now=T0 + n * 0.0001)
    assert threading.active_count() == before


def test_default_clock_is_used_when_now_is_not_given() -> None:
    ticks = iter([T0, T0, T0 + 1.0])
    store = MemoryStore(BudgetPolicy.uniform(Limits(rate=1, burst=1)), clock=lambda: next(ticks))
    assert store.consume("alice", "iris").allowed
    assert store.consume("alice", "iris").reason is Reason.RATE_LIMITED
    assert store.consume("alice", "iris").allowed


def test_a_clock_stepped_back_does_not_reopen_an_old_window() -> None:
    ticks = iter([T0 + 60, T0 + 59, T0 + 61])
    store = MemoryStore(
        BudgetPolicy.uniform(Limits(quota=1, period=Period.MINUTE)), clock=lambda: next(ticks)
    )
    assert store.consume("alice", "iris").allowed  # 10:01:00
    # The wall clock jumps back into 10:00: the store still counts in 10:01.
    assert store.consume("alice", "iris").reason is Reason.BUDGET_EXCEEDED
    assert store.consume("alice", "iris").reason is Reason.BUDGET_EXCEEDED
