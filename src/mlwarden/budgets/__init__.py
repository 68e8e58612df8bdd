"""Rate limits and query budgets per (identity, model): the gateway's "how much".

Each pair has a request rate (GCRA: `rate` calls per second with bursts of `burst`) and a
query budget per period (`quota` cost units per fixed calendar window in UTC: minute,
hour, day or ISO week). A call passes only if both allow it, and only then is it charged.

>>> from mlwarden.budgets import Limits, BudgetPolicy, MemoryStore
>>> store = MemoryStore(BudgetPolicy.uniform(Limits(rate=5, burst=10, quota=1000)))
>>> decision = store.consume("alice", "iris")       # decision.allowed, .code, .retry_after

Backends: `MemoryStore` (one process, nothing kept), `SQLiteStore` (the embedded default,
kept across restarts, exact across processes sharing the file) and `RedisStore` (several
replicas, exact). A store that cannot be reached refuses (E403) unless the model's limits
say `fail_open`, in which case the call passes flagged `fail_open=True`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlwarden.budgets._config import (
    BudgetsConfig,
    DefaultLimitsConfig,
    LimitsConfig,
    MemoryStoreConfig,
    ModelLimitsConfig,
    RedisStoreConfig,
    SQLiteStoreConfig,
    open_store,
    parse_budgets,
)
from mlwarden.budgets._memory import MemoryStore
from mlwarden.budgets._model import BudgetDecision, BudgetState, Limits, Period, Reason
from mlwarden.budgets._policy import DEFAULT_LIMITS, BudgetPolicy, LimitsOverride
from mlwarden.budgets._sqlite import SQLiteStore
from mlwarden.budgets.interface import BudgetStore

if TYPE_CHECKING:
    from mlwarden.budgets._redis import RedisStore

__all__ = [
    "DEFAULT_LIMITS",
    "BudgetDecision",
    "BudgetPolicy",
    "BudgetState",
    "BudgetStore",
    "BudgetsConfig",
    "DefaultLimitsConfig",
    "Limits",
    "LimitsConfig",
    "LimitsOverride",
    "MemoryStore",
    "MemoryStoreConfig",
    "ModelLimitsConfig",
    "Period",
    "Reason",
    "RedisStore",
    "RedisStoreConfig",
    "SQLiteStore",
    "SQLiteStoreConfig",
    "open_store",
    "parse_budgets",
]


def __getattr__(name: str) -> object:
    # RedisStore imports the optional `redis` package only when it is asked for.
    if name == "RedisStore":
        from mlwarden.budgets._redis import RedisStore

        return RedisStore
    raise AttributeError(name)
