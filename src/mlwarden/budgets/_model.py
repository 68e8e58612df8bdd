"""Core data of budgets: limits, periods, decisions. Frozen, slotted, cheap to build."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from mlwarden.errors import (
    BudgetError,
    BudgetExceededError,
    BudgetStoreUnavailableError,
    CostTooLargeError,
    RateLimitedError,
)

# Float tolerance for GCRA comparisons (seconds). Without it, ten requests of 0.1 s each
# add up to 0.9999999999 s and the last one of a full burst would be refused by rounding.
# It is above the spacing of doubles near today's Unix time (0.24 us) and far below any
# sensible interval: rates up to 100,000 calls per second per pair stay exact.
# The Redis Lua script uses the same value.
EPSILON = 1e-6

_DAY = 86_400


class Period(StrEnum):
    """Fixed calendar windows in UTC. A budget resets at the start of each window."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"  # ISO weeks: they start on Monday 00:00 UTC

    @property
    def seconds(self) -> int:
        return _LENGTH[self]

    @property
    def offset(self) -> int:
        """Seconds from the Unix epoch to the start of window 0 (1970-01-05 was a Monday)."""
        return 4 * _DAY if self is Period.WEEK else 0

    def window(self, now: float) -> tuple[int, float]:
        """The window number that holds `now`, and the time that window ends."""
        length = _LENGTH[self]
        offset = 4 * _DAY if self is Period.WEEK else 0
        number = math.floor((now - offset) / length)
        return number, float(offset + (number + 1) * length)


_LENGTH = {Period.MINUTE: 60, Period.HOUR: 3600, Period.DAY: _DAY, Period.WEEK: 7 * _DAY}


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The limits that apply to one (identity, model) pair.

    `rate` is the sustained number of calls (cost units) per second and `burst` how many
    may arrive at once (GCRA, equivalent to a token bucket of `burst` tokens refilled at
    `rate`); `rate=None` means no rate limit. `quota` is the number of cost units per
    `period` window; `quota=None` means no period budget. `fail_open` lets calls through
    (flagged) when the store cannot be reached; the default refuses them.
    """

    rate: float | None = None
    burst: int = 1
    quota: int | None = None
    period: Period = Period.DAY
    fail_open: bool = False
    interval: float = field(init=False, default=0.0, compare=False)

    def __post_init__(self) -> None:
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number of calls per second: {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1: {self.burst}")
        if self.quota is not None and self.quota < 0:
            raise ValueError(f"quota must not be negative: {self.quota}")
        object.__setattr__(self, "interval", 0.0 if self.rate is None else 1.0 / self.rate)

    @property
    def unlimited(self) -> bool:
        return self.rate is None and self.quota is None


UNLIMITED = Limits()


class Reason(StrEnum):
    """Why a decision went the way it did; stable strings for audit records and metrics."""

    ALLOWED = "allowed"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXCEEDED = "budget_exceeded"
    COST_TOO_LARGE = "cost_too_large"
    STORE_UNAVAILABLE = "store_unavailable"

    @property
    def code(self) -> str | None:
        """The error code of a refusal for this reason (None for ALLOWED)."""
        cls = _ERRORS.get(self)
        return None if cls is None else cls.code


_ERRORS: dict[Reason, type[BudgetError]] = {
    Reason.RATE_LIMITED: RateLimitedError,
    Reason.BUDGET_EXCEEDED: BudgetExceededError,
    Reason.COST_TOO_LARGE: CostTooLargeError,
    Reason.STORE_UNAVAILABLE: BudgetStoreUnavailableError,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetDecision:
    """The answer to one `consume` call.

    `remaining_tokens` is how many more cost units the rate allows right now and
    `remaining_budget` how many the period budget still holds (None: no such limit, or
    unknown because the store failed). `retry_after` (seconds) is set on refusals that
    waiting can cure; `reset_at` (Unix time) is when the period window ends. `fail_open`
    is True when the call is allowed only because the store failed and the model's
    policy says `fail_open`: the gateway audits that. `detail` says what failed.
    """

    allowed: bool
    reason: Reason
    remaining_tokens: int | None = None
    remaining_budget: int | None = None
    retry_after: float | None = None
    reset_at: float | None = None
    fail_open: bool = False
    detail: str = ""

    @property
    def code(self) -> str | None:
        """The stable error code of a refusal (E401..E404), None when allowed."""
        return None if self.allowed else self.reason.code

    def error(self, identity: str, model: str) -> BudgetError:
        """The error a refusal becomes (for the gateway's `{code, message}` answer)."""
        cls = _ERRORS.get(self.reason, BudgetError)
        return cls(
            _MESSAGES[self.reason].format(i=identity, m=model, d=self.detail),
            retry_after=self.retry_after,
        )

    def raise_for_denial(self, identity: str, model: str) -> None:
        """Raise the matching BudgetError when the call was refused; do nothing otherwise."""
        if not self.allowed:
            raise self.error(identity, model)


_MESSAGES = {
    Reason.ALLOWED: "{i!r} on {m!r}: allowed",
    Reason.RATE_LIMITED: "{i!r} calls {m!r} faster than its request rate allows",
    Reason.BUDGET_EXCEEDED: "{i!r} has spent its query budget on {m!r} for this period",
    Reason.COST_TOO_LARGE: "one call by {i!r} on {m!r} costs more than its limits ever allow",
    Reason.STORE_UNAVAILABLE: "the budget store cannot be reached ({d}): call refused",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetState:
    """What `state` reports without consuming: for dashboards, admin and tests."""

    limits: Limits
    used: int
    remaining_tokens: int | None
    remaining_budget: int | None
    reset_at: float | None
