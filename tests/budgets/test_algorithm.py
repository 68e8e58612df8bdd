"""The decision algorithm against a plain reference: a token bucket in exact arithmetic."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.budgets import Limits, Period, Reason
from mlwarden.budgets._gcra import FRESH, decide

from .conftest import ROOT, T0


class ReferenceBucket:
    """The textbook token bucket (refilled continuously, capped at burst), in fractions."""

    def __init__(self, rate: Fraction, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = Fraction(burst)
        self.last: Fraction | None = None

    def take(self, now: Fraction, cost: int) -> bool:
        if self.last is not None:
            self.tokens = min(Fraction(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@settings(max_examples=300, deadline=None)
@given(
    rate=st.sampled_from(
        [
            Fraction(1, 2),
            Fraction(1),
            Fraction(2),
            Fraction(5),
            Fraction(8),
            Fraction(10),
            Fraction(40),
        ]
    ),
    burst=st.integers(1, 8),
    calls=st.lists(st.tuples(st.integers(0, 700), st.integers(1, 3)), min_size=1, max_size=60),
)
def test_gcra_decides_as_a_token_bucket(
    rate: Fraction, burst: int, calls: list[tuple[int, int]]
) -> None:
    limits = Limits(rate=float(rate), burst=burst)
    reference = ReferenceBucket(rate, burst)
    state = FRESH
    clock_ms = 0
    for gap_ms, cost in calls:
        clock_ms += gap_ms
        now = Fraction(int(T0)) + Fraction(clock_ms, 1000)
        decision, state = decide(limits, state, float(now), cost)
        if cost > burst:
            assert decision.reason is Reason.COST_TOO_LARGE
            continue
        assert decision.allowed == reference.take(now, cost), (clock_ms, cost)
        if decision.allowed:
            assert decision.remaining_tokens == int(reference.tokens)


@settings(max_examples=200, deadline=None)
@given(
    quota=st.integers(0, 20),
    calls=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 4)), min_size=1, max_size=60),
)
def test_the_period_counter_is_a_per_window_sum(quota: int, calls: list[tuple[int, int]]) -> None:
    limits = Limits(quota=quota, period=Period.MINUTE)
    spent: dict[int, int] = {}
    state = FRESH
    now = T0
    for gap, cost in calls:
        now += gap
        window = int(now // 60)
        decision, state = decide(limits, state, now, cost)
        fits = spent.get(window, 0) + cost <= quota
        assert decision.allowed == (fits and cost <= quota)
        if decision.allowed:
            spent[window] = spent.get(window, 0) + cost
            assert decision.remaining_budget == quota - spent[window]


def test_importing_budgets_leaves_redis_unloaded() -> None:
    code = "import sys, mlwarden.budgets; sys.exit('redis' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")}, check=False
    )
    assert proc.returncode == 0
