"""The same limits, the same answers, on every backend (an explicit clock throughout)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from mlwarden.budgets import BudgetPolicy, BudgetStore, Limits, Period, Reason
from mlwarden.errors import (
    BudgetExceededError,
    CostTooLargeError,
    RateLimitedError,
    UsageError,
)

from .conftest import T0

Build = Callable[[Limits | BudgetPolicy], BudgetStore]


def test_burst_then_sustained_rate(backend: Build) -> None:
    store = backend(Limits(rate=10, burst=5))
    decisions = [store.consume("alice", "iris", now=T0) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining_tokens for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[5]
    assert refused.reason is Reason.RATE_LIMITED and refused.code == "E402"
    assert refused.retry_after == pytest.approx(0.1, abs=1e-6)
    assert refused.remaining_budget is None  # no period budget configured
    # Just before the retry time: still refused. At it: exactly one more call.
    assert not store.consume("alice", "iris", now=T0 + 0.099).allowed
    assert store.consume("alice", "iris", now=T0 + 0.1).allowed
    assert not store.consume("alice", "iris", now=T0 + 0.1).allowed
    # A second later the bucket is full again: a whole burst passes.
    later = [store.consume("alice", "iris", now=T0 + 1.5).allowed for _ in range(6)]
    assert later == [True] * 5 + [False]


def test_sustained_rate_over_time(backend: Build) -> None:
    store = backend(Limits(rate=4, burst=1))
    allowed = 0
    for step in range(400):  # 10 seconds in steps of 25 ms, one call per step
        allowed += store.consume("alice", "iris", now=T0 + step * 0.025).allowed
    assert allowed == 40


def test_period_budget_resets_with_the_calendar_window(backend: Build) -> None:
    store = backend(Limits(quota=3, period=Period.HOUR))
    now = T0 + 1800  # 10:30 UTC
    decisions = [store.consume("alice", "iris", now=now) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining_budget for d in decisions] == [2, 1, 0, 0]
    refused = decisions[3]
    assert refused.reason is Reason.BUDGET_EXCEEDED and refused.code == "E401"
    assert refused.reset_at == T0 + 3600  # 11:00 UTC
    assert refused.retry_after == pytest.approx(1800)
    assert refused.remaining_tokens is None  # no rate limit configured
    assert not store.consume("alice", "iris", now=T0 + 3599.9).allowed
    assert store.consume("alice", "iris", now=T0 + 3600).remaining_budget == 2


def test_week_windows_start_on_monday_utc(backend: Build) -> None:
    store = backend(Limits(quota=1, period=Period.WEEK))
    decision = store.consume("alice", "iris", now=T0)
    assert decision.reset_at is not None
    reset = datetime.fromtimestamp(decision.reset_at, UTC)
    assert (reset.weekday(), reset.hour, reset.minute) == (0, 0, 0)
    assert 0 < decision.reset_at - T0 <= 7 * 86_400
    assert not store.consume("alice", "iris", now=decision.reset_at - 1).allowed
    assert store.consume("alice", "iris", now=decision.reset_at).allowed


def test_a_refused_call_costs_nothing(backend: Build) -> None:
    store = backend(Limits(rate=1, burst=2, quota=3, period=Period.DAY))
    assert store.consume("alice", "iris", now=T0).allowed
    assert store.consume("alice", "iris", now=T0).allowed
    for _ in range(20):  # rate-limited calls do not eat the day's budget
        assert store.consume("alice", "iris", now=T0).reason is Reason.RATE_LIMITED
    last = store.consume("alice", "iris", now=T0 + 1)
    assert last.allowed and last.remaining_budget == 0
    for _ in range(20):  # budget refusals do not drain the bucket either
        assert store.consume("alice", "iris", now=T0 + 10).reason is Reason.BUDGET_EXCEEDED
    assert store.state("alice", "iris", now=T0 + 10).remaining_tokens == 2


def test_cost_is_charged_and_checked(backend: Build) -> None:
    store = backend(Limits(rate=100, burst=10, quota=25, period=Period.DAY))
    decision = store.consume("alice", "iris", cost=8, now=T0)
    assert decision.allowed and decision.remaining_tokens == 2 and decision.remaining_budget == 17
    assert store.consume("alice", "iris", cost=3, now=T0).reason is Reason.RATE_LIMITED
    too_big = store.consume("alice", "iris", cost=11, now=T0 + 60)
    assert too_big.reason is Reason.COST_TOO_LARGE and too_big.code == "E404"
    assert too_big.retry_after is None  # waiting cannot help
    assert store.consume("alice", "iris", cost=10, now=T0 + 60).allowed
    over_quota = backend(Limits(quota=5)).consume("alice", "iris", cost=6, now=T0)
    assert over_quota.reason is Reason.COST_TOO_LARGE


@pytest.mark.parametrize("cost", [0, -1, 1.0, True, "1"])
def test_bad_cost_is_a_usage_error(backend: Build, cost: object) -> None:
    store = backend(Limits(rate=1))
    with pytest.raises(UsageError, match="cost must be a positive integer"):
        store.consume("alice", "iris", cost=cost, now=T0)  # type: ignore[arg-type]


def test_pairs_are_counted_apart(backend: Build) -> None:
    store = backend(Limits(quota=1))
    pairs = [("alice", "iris"), ("bob", "iris"), ("alice", "wine"), ("ali", "ceiris")]
    assert all(store.consume(i, m, now=T0).allowed for i, m in pairs)
    assert not any(store.consume(i, m, now=T0).allowed for i, m in pairs)


def test_state_does_not_charge_and_reset_forgets(backend: Build) -> None:
    store = backend(Limits(rate=1, burst=3, quota=10, period=Period.DAY))
    fresh = store.state("alice", "iris", now=T0)
    assert (fresh.used, fresh.remaining_tokens, fresh.remaining_budget) == (0, 3, 10)
    store.consume("alice", "iris", cost=2, now=T0)
    for _ in range(3):
        state = store.state("alice", "iris", now=T0)
        assert (state.used, state.remaining_tokens, state.remaining_budget) == (2, 1, 8)
    assert store.state("alice", "iris", now=T0 + 1).remaining_tokens == 2
    store.reset("alice", "iris")
    assert store.state("alice", "iris", now=T0).used == 0
    assert store.consume("alice", "iris", cost=3, now=T0).allowed


def test_unlimited_limits_allow_everything(backend: Build) -> None:
    store = backend(Limits())
    decisions = [store.consume("alice", "iris", now=T0) for _ in range(100)]
    assert all(d.allowed and d.remaining_tokens is None for d in decisions)


def test_refusals_become_errors_with_retry_after(backend: Build) -> None:
    store = backend(Limits(rate=2, burst=1, quota=2, period=Period.DAY))
    store.consume("alice", "iris", now=T0).raise_for_denial("alice", "iris")
    with pytest.raises(RateLimitedError, match="'alice' calls 'iris' faster") as rate:
        store.consume("alice", "iris", now=T0).raise_for_denial("alice", "iris")
    assert rate.value.http_status == 429 and rate.value.retry_after == pytest.approx(0.5)
    store.consume("alice", "iris", now=T0 + 1)
    with pytest.raises(BudgetExceededError, match="spent its query budget") as budget:
        store.consume("alice", "iris", now=T0 + 2).raise_for_denial("alice", "iris")
    assert budget.value.code == "E401" and budget.value.retry_after is not None
    with pytest.raises(CostTooLargeError) as big:
        store.consume("alice", "iris", cost=5, now=T0 + 2).raise_for_denial("alice", "iris")
    assert big.value.http_status == 400


def test_policy_reload_applies_new_limits_and_keeps_counts(backend: Build) -> None:
    store = backend(Limits(quota=5))
    for _ in range(4):
        store.consume("alice", "iris", now=T0)
    store.policy = BudgetPolicy.uniform(Limits(quota=6))
    assert store.consume("alice", "iris", now=T0).remaining_budget == 1
    store.policy = BudgetPolicy.uniform(Limits(quota=3))
    assert store.consume("alice", "iris", now=T0).reason is Reason.BUDGET_EXCEEDED


def test_odd_rates_keep_exact_bursts(backend: Build) -> None:
    # 1/3 and 1/7 are not exact in binary: a whole burst must still pass, not one less.
    for rate, burst in [(3.0, 3), (7.0, 7), (0.1, 10), (1000.0, 1000)]:
        store = backend(Limits(rate=rate, burst=burst))
        allowed = sum(store.consume("alice", f"m{rate}", now=T0).allowed for _ in range(burst + 1))
        assert allowed == burst, (rate, burst)
        nxt = store.consume("alice", f"m{rate}", now=T0 + 1 / rate)
        assert nxt.allowed and math.isclose(nxt.remaining_tokens or 0, 0)
