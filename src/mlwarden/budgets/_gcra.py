"""The decision itself: GCRA for the rate, a fixed-window counter for the period budget.

Pure functions over a three-number state `(tat, window, used)` so that the in-process and
SQLite stores decide identically; the Lua script in `_redis.py` is the same algorithm.

GCRA (the generic cell rate algorithm) keeps one number, the theoretical arrival time
`tat`: the time at which the bucket would be full again. A call of cost `n` pushes it by
`n * interval`; the call passes when the pushed `tat` lies no more than `burst * interval`
ahead of now. It is a token bucket without a refill timer, so nothing ticks in the background.

Both limits are checked before either is charged: a call refused by one costs nothing.
"""

from __future__ import annotations

import math

from mlwarden.budgets._model import EPSILON, BudgetDecision, Limits, Reason

State = tuple[float, int, int]
"""(tat, window number, used in that window); (0.0, 0, 0) is a fresh pair."""

FRESH: State = (0.0, 0, 0)


def decide(limits: Limits, state: State, now: float, cost: int) -> tuple[BudgetDecision, State]:
    """Decide one call of `cost` units at `now`; return the decision and the state to keep."""
    tat, window, used = state
    reset_at: float | None = None
    remaining_budget: int | None = None
    quota = limits.quota
    if quota is not None:
        current, reset_at = limits.period.window(now)
        if window != current:
            window, used = current, 0
        if cost > quota:
            return _too_large(reset_at), (tat, window, used)
        if used + cost > quota:
            decision = BudgetDecision(
                allowed=False,
                reason=Reason.BUDGET_EXCEEDED,
                remaining_tokens=_tokens(limits, tat, now),
                remaining_budget=quota - used,
                retry_after=reset_at - now,
                reset_at=reset_at,
            )
            return decision, (tat, window, used)
        remaining_budget = quota - used - cost

    remaining_tokens: int | None = None
    if limits.rate is not None:
        interval = limits.interval
        if cost > limits.burst:
            return _too_large(reset_at), (tat, window, used)
        base = tat if tat > now else now
        new_tat = base + cost * interval
        allow_at = new_tat - limits.burst * interval
        if allow_at - now > EPSILON:
            decision = BudgetDecision(
                allowed=False,
                reason=Reason.RATE_LIMITED,
                remaining_tokens=_tokens(limits, tat, now),
                remaining_budget=None if quota is None else quota - used,
                retry_after=allow_at - now,
                reset_at=reset_at,
            )
            return decision, (tat, window, used)
        tat = new_tat
        remaining_tokens = math.floor((now - allow_at + EPSILON) / interval)

    decision = BudgetDecision(
        allowed=True,
        reason=Reason.ALLOWED,
        remaining_tokens=remaining_tokens,
        remaining_budget=remaining_budget,
        reset_at=reset_at,
    )
    return decision, (tat, window, used + cost)


def peek(
    limits: Limits, state: State, now: float
) -> tuple[int, int | None, int | None, float | None]:
    """(used, remaining tokens, remaining budget, reset_at) at `now`, charging nothing."""
    tat, window, used = state
    reset_at: float | None = None
    remaining_budget: int | None = None
    if limits.quota is not None:
        current, reset_at = limits.period.window(now)
        if window != current:
            used = 0
        remaining_budget = max(0, limits.quota - used)
    else:
        used = 0
    return used, _tokens(limits, tat, now), remaining_budget, reset_at


def expires_at(limits: Limits, state: State) -> float:
    """When a state becomes equivalent to a fresh one, so that forgetting it changes nothing.

    The bucket is full again at `tat`; the counter no longer matters once its window ends.
    A store may drop the pair after this time without loosening any limit.
    """
    tat, window, _ = state
    end = tat
    if limits.quota is not None:
        period = limits.period
        window_end = float(period.offset + (window + 1) * period.seconds)
        end = max(end, window_end)
    return end


def _tokens(limits: Limits, tat: float, now: float) -> int | None:
    """Cost units the rate allows at `now` given `tat` (None: no rate limit)."""
    if limits.rate is None:
        return None
    ahead = tat - now if tat > now else 0.0
    interval = limits.interval
    return max(0, math.floor((limits.burst * interval - ahead + EPSILON) / interval))


def _too_large(reset_at: float | None) -> BudgetDecision:
    return BudgetDecision(allowed=False, reason=Reason.COST_TOO_LARGE, reset_at=reset_at)
