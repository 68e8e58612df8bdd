"""The `BudgetStore` interface every backend implements, and what it shares.

A store answers one question on the gateway's hot path: may this identity make a call
of this cost to this model now? The interface does the common part once (cost check,
limit resolution with a cache, the clock, turning an unreachable store into a refusal
or a flagged pass); a backend only keeps and updates the per-pair state atomically.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Collection
from types import TracebackType

from mlwarden.budgets._model import BudgetDecision, BudgetState, Limits, Reason
from mlwarden.budgets._policy import BudgetPolicy
from mlwarden.errors import BudgetStoreUnavailableError, UsageError

_ALLOWED_UNLIMITED = BudgetDecision(allowed=True, reason=Reason.ALLOWED)

# Resolved limits are cached per (identity, model, roles); the cache is dropped whole
# when it grows past this size (cheaper than LRU bookkeeping on every call).
_LIMITS_CACHE_SIZE = 65_536


class BudgetStore(abc.ABC):
    """Rate limits and period budgets per (identity, model), shared as the backend allows.

    Thread-safe. `consume` never raises for an unreachable store: it returns a refusal
    with reason `store_unavailable` (code E403), or, when the model's limits say
    `fail_open`, an allowed decision with `fail_open=True` for the audit log.
    """

    def __init__(self, policy: BudgetPolicy, *, clock: Callable[[], float] = time.time) -> None:
        self._policy = policy
        self._clock = clock
        self._last_now = float("-inf")
        self._limits_cache: dict[tuple[str, str, Collection[str]], Limits] = {}

    # --- policy ---------------------------------------------------------------------------

    @property
    def policy(self) -> BudgetPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: BudgetPolicy) -> None:
        """Swap the policy (a reload); counters carry over, new limits apply at once."""
        self._policy = policy
        self._limits_cache = {}

    def limits_for(self, identity: str, model: str, roles: Collection[str] = ()) -> Limits:
        """The limits the policy sets for this caller on this model (cached)."""
        key = (identity, model, roles)
        cache = self._limits_cache
        limits = cache.get(key)
        if limits is None:
            limits = self._policy.limits_for(identity, model, roles)
            if len(cache) >= _LIMITS_CACHE_SIZE:
                cache = self._limits_cache = {}
            cache[key] = limits
        return limits

    # --- the hot path ---------------------------------------------------------------------

    def consume(
        self,
        identity: str,
        model: str,
        *,
        cost: int = 1,
        now: float | None = None,
        roles: tuple[str, ...] | frozenset[str] = (),
    ) -> BudgetDecision:
        """Charge `cost` units to (identity, model) if both the rate and the budget allow.

        `now` (Unix seconds) is for tests and replays; by default the store's clock (for
        Redis, the server's clock, so replicas agree). `roles` choose role limits.
        """
        if type(cost) is not int or cost < 1:
            raise UsageError(f"cost must be a positive integer, not {cost!r}")
        limits = self.limits_for(identity, model, roles)
        if limits.unlimited:
            return _ALLOWED_UNLIMITED
        try:
            return self._consume(identity, model, limits, cost, now)
        except BudgetStoreUnavailableError as exc:
            return _unavailable(limits, exc.message)

    async def aconsume(
        self,
        identity: str,
        model: str,
        *,
        cost: int = 1,
        now: float | None = None,
        roles: tuple[str, ...] | frozenset[str] = (),
    ) -> BudgetDecision:
        """`consume` for an event loop; backends with network I/O do not block the loop."""
        return self.consume(identity, model, cost=cost, now=now, roles=roles)

    def state(
        self,
        identity: str,
        model: str,
        *,
        now: float | None = None,
        roles: tuple[str, ...] | frozenset[str] = (),
    ) -> BudgetState:
        """The pair's counters without charging anything; raises E403 if the store is down."""
        return self._state(identity, model, self.limits_for(identity, model, roles), now)

    @abc.abstractmethod
    def reset(self, identity: str, model: str) -> None:
        """Forget the pair's counters (an administrator's action): its next call starts fresh."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files; the store is not used afterwards."""

    async def aclose(self) -> None:
        """`close` for an event loop (closes asyncio connections where a backend has them)."""
        self.close()

    def __enter__(self) -> BudgetStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _now(self) -> float:
        """The clock, never going backwards: a wall clock stepped back (NTP) must not move
        a pair into an earlier window and hand it that window's budget again."""
        now = self._clock()
        if now < self._last_now:
            return self._last_now
        self._last_now = now
        return now

    # --- what a backend implements --------------------------------------------------------

    @abc.abstractmethod
    def _consume(
        self, identity: str, model: str, limits: Limits, cost: int, now: float | None
    ) -> BudgetDecision:
        """Decide and charge atomically; raise BudgetStoreUnavailableError if it cannot."""

    @abc.abstractmethod
    def _state(self, identity: str, model: str, limits: Limits, now: float | None) -> BudgetState:
        """Read the pair's counters; raise BudgetStoreUnavailableError if it cannot."""


def _unavailable(limits: Limits, detail: str) -> BudgetDecision:
    """Fail closed, unless the model's owner chose to fail open (then flag it)."""
    return BudgetDecision(
        allowed=limits.fail_open,
        reason=Reason.STORE_UNAVAILABLE,
        fail_open=limits.fail_open,
        detail=detail,
    )
