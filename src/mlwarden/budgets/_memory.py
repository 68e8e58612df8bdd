"""The in-process store: one replica, no I/O, no background thread.

State lives in a dict under one lock (held for a few microseconds, never across I/O).
Memory is bounded: when the table is full, a sweep drops the pairs whose state has become
equivalent to a fresh one (bucket full again and period window over), which loosens no
limit. If the table is still full, calls from new pairs are refused as `store_unavailable`
(fail closed, or flagged through when the model fails open) rather than forgetting a pair
that is still being counted: forgetting would hand it a fresh budget. Sweeps run at most
once per `sweep_interval` seconds of the clock, so a flood of new identities costs one
sweep per interval, not one per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mlwarden.budgets._gcra import FRESH, State, decide, expires_at, peek
from mlwarden.budgets._model import BudgetDecision, BudgetState, Limits
from mlwarden.budgets._policy import BudgetPolicy
from mlwarden.budgets.interface import BudgetStore
from mlwarden.errors import BudgetStoreUnavailableError

DEFAULT_MAX_ENTRIES = 100_000


class MemoryStore(BudgetStore):
    """Budgets for a single process; lost on restart (use SQLiteStore to keep them)."""

    def __init__(
        self,
        policy: BudgetPolicy | None = None,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        sweep_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(policy or BudgetPolicy(), clock=clock)
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._sweep_interval = sweep_interval
        self._next_sweep = float("-inf")
        # (identity, model) -> (state, the time after which it equals a fresh state)
        self._entries: dict[tuple[str, str], tuple[State, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many (identity, model) pairs are held."""
        return len(self._entries)

    def _consume(
        self, identity: str, model: str, limits: Limits, cost: int, now: float | None
    ) -> BudgetDecision:
        if now is None:
            now = self._now()
        key = (identity, model)
        entries = self._entries
        with self._lock:
            entry = entries.get(key)
            if entry is None:
                if len(entries) >= self._max_entries and not self._sweep(now):
                    raise BudgetStoreUnavailableError(
                        f"the in-process budget table is full ({self._max_entries} pairs)"
                    )
                state = FRESH
            else:
                state = entry[0]
            decision, new_state = decide(limits, state, now, cost)
            if decision.allowed or entry is not None:
                entries[key] = (new_state, expires_at(limits, new_state))
        return decision

    def _sweep(self, now: float) -> bool:
        """Drop expired pairs; True when there is room afterwards. Called under the lock."""
        if now < self._next_sweep:
            return False
        self._next_sweep = now + self._sweep_interval
        entries = self._entries
        for key in [k for k, (_, expiry) in entries.items() if expiry <= now]:
            del entries[key]
        return len(entries) < self._max_entries

    def _state(self, identity: str, model: str, limits: Limits, now: float | None) -> BudgetState:
        if now is None:
            now = self._now()
        entry = self._entries.get((identity, model))
        used, tokens, budget, reset_at = peek(limits, FRESH if entry is None else entry[0], now)
        return BudgetState(
            limits=limits,
            used=used,
            remaining_tokens=tokens,
            remaining_budget=budget,
            reset_at=reset_at,
        )

    def close(self) -> None:
        """Nothing to release: the counters simply go with the process."""

    def reset(self, identity: str, model: str) -> None:
        with self._lock:
            self._entries.pop((identity, model), None)
