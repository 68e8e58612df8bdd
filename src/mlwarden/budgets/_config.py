"""The `budgets:` section of mlwarden.yaml (pydantic, extra=forbid) and what it builds.

budgets:
  store: {kind: sqlite, path: budgets.sqlite3}     # or {kind: redis, url: ...} | {kind: memory}
  defaults: {rate: 10, burst: 20, quota: 10000, period: day}
  models:
    iris: {rate: 5, quota: 1000, fail_open: false}
  roles:                                          # first role the caller holds wins
    admin: {rate: unlimited, quota: unlimited}
    analyst: {quota: 50000}
  identities:
    batch-job: {rate: 100, burst: 200}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlwarden.budgets._model import Limits, Period
from mlwarden.budgets._policy import BudgetPolicy, LimitsOverride
from mlwarden.budgets.interface import BudgetStore
from mlwarden.errors import PolicyFileError

_Rate = (
    Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False, strict=True)]
    | Literal["unlimited"]
)
_Quota = Annotated[int, Field(ge=0, strict=True)] | Literal["unlimited"]
_Name = Annotated[str, Field(min_length=1)]
_Bool = Annotated[bool, Field(strict=True)]
_Seconds = Annotated[float, Field(gt=0, le=60, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryStoreConfig(_Strict):
    """In-process counters: one replica, lost on restart."""

    kind: Literal["memory"]
    max_entries: int = Field(default=100_000, ge=1, strict=True)


class SQLiteStoreConfig(_Strict):
    """The embedded default: one file, kept across restarts; relative paths start at the
    folder of mlwarden.yaml."""

    kind: Literal["sqlite"] = "sqlite"
    path: str = Field(default="mlwarden-budgets.sqlite3", min_length=1)
    synchronous: Literal["normal", "full"] = "normal"
    busy_timeout: _Seconds = 1.0


class RedisStoreConfig(_Strict):
    """Shared counters for several replicas: `redis://` or `rediss://` (TLS) URL."""

    kind: Literal["redis"]
    url: str = Field(pattern=r"^(redis|rediss|unix)://")
    prefix: str = Field(default="mlwarden:budget", min_length=1)
    timeout: _Seconds = 0.25


class LimitsConfig(_Strict):
    """A layer of limits; what it leaves out comes from the layer below."""

    rate: _Rate | None = None
    burst: Annotated[int, Field(ge=1, strict=True)] | None = None
    quota: _Quota | None = None
    period: Period | None = None

    def to_override(self, *, fail_open: bool | None = None) -> LimitsOverride:
        unlimited = frozenset(
            name for name in ("rate", "quota") if getattr(self, name) == "unlimited"
        )
        return LimitsOverride(
            rate=self.rate if isinstance(self.rate, float | int) else None,
            burst=self.burst,
            quota=self.quota if isinstance(self.quota, int) else None,
            period=self.period,
            fail_open=fail_open,
            unlimited=unlimited,
        )


class ModelLimitsConfig(LimitsConfig):
    """A model's limits; `fail_open: true` lets calls through when the store is down."""

    fail_open: _Bool | None = None


class DefaultLimitsConfig(_Strict):
    rate: _Rate = 10.0
    burst: Annotated[int, Field(ge=1, strict=True)] | None = None
    quota: _Quota = 10_000
    period: Period = Period.DAY
    fail_open: _Bool = False

    def to_limits(self) -> Limits:
        rate = None if self.rate == "unlimited" else float(self.rate)
        burst = self.burst
        if burst is None:
            # Default burst: two seconds' worth at the sustained rate, at least one call.
            burst = 1 if rate is None else max(1, math.ceil(2 * rate))
        return Limits(
            rate=rate,
            burst=burst,
            quota=None if self.quota == "unlimited" else int(self.quota),
            period=self.period,
            fail_open=self.fail_open,
        )


class BudgetsConfig(_Strict):
    """The whole `budgets:` section."""

    store: MemoryStoreConfig | SQLiteStoreConfig | RedisStoreConfig = Field(
        default_factory=SQLiteStoreConfig, discriminator="kind"
    )
    defaults: DefaultLimitsConfig = Field(default_factory=DefaultLimitsConfig)
    models: dict[_Name, ModelLimitsConfig] = Field(default_factory=dict)
    roles: dict[_Name, LimitsConfig] = Field(default_factory=dict)
    identities: dict[_Name, LimitsConfig] = Field(default_factory=dict)

    @field_validator("roles", "identities", "models")
    @classmethod
    def _bounded(cls, value: dict[str, LimitsConfig]) -> dict[str, LimitsConfig]:
        if len(value) > 100_000:
            raise ValueError("more than 100000 entries")
        return value

    def policy(self) -> BudgetPolicy:
        """The core policy this section describes."""
        return BudgetPolicy(
            defaults=self.defaults.to_limits(),
            models={
                name: item.to_override(fail_open=item.fail_open)
                for name, item in self.models.items()
            },
            roles=tuple((name, item.to_override()) for name, item in self.roles.items()),
            identities={name: item.to_override() for name, item in self.identities.items()},
        )


def parse_budgets(data: object, *, where: str = "budgets") -> BudgetsConfig:
    """Validate a parsed `budgets:` mapping; errors become E110 naming the field."""
    try:
        return BudgetsConfig.model_validate({} if data is None else data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PolicyFileError(
            f"{where}.{field}: {first['msg']}" if field else f"{where}: {first['msg']}"
        ) from None


def open_store(config: BudgetsConfig, *, base: Path | None = None) -> BudgetStore:
    """Build the configured store with the configured policy (`base`: the folder of
    mlwarden.yaml, where a relative SQLite path starts)."""
    policy = config.policy()
    store = config.store
    if isinstance(store, MemoryStoreConfig):
        from mlwarden.budgets._memory import MemoryStore

        return MemoryStore(policy, max_entries=store.max_entries)
    if isinstance(store, SQLiteStoreConfig):
        from mlwarden.budgets._sqlite import SQLiteStore

        path = Path(store.path)
        if base is not None and not path.is_absolute():
            path = base / path
        return SQLiteStore(
            path, policy, synchronous=store.synchronous, busy_timeout=store.busy_timeout
        )
    from mlwarden.budgets._redis import RedisStore

    return RedisStore(store.url, policy, prefix=store.prefix, timeout=store.timeout)
