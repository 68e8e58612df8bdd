"""Which limits apply to whom: defaults, then the model, then a role, then the identity."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mlwarden.budgets._model import Limits, Period

DEFAULT_LIMITS = Limits(rate=10.0, burst=20, quota=10_000, period=Period.DAY)
"""What applies when nothing is configured: generous for a person, tight for a scraper."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsOverride:
    """A partial set of limits laid over the layer below; None means "keep the layer below".

    `unlimited` names the fields ("rate", "quota") this layer lifts altogether.
    """

    rate: float | None = None
    burst: int | None = None
    quota: int | None = None
    period: Period | None = None
    fail_open: bool | None = None
    unlimited: frozenset[str] = frozenset()

    def apply(self, base: Limits) -> Limits:
        rate = base.rate if self.rate is None else self.rate
        quota = base.quota if self.quota is None else self.quota
        return Limits(
            rate=None if "rate" in self.unlimited else rate,
            burst=base.burst if self.burst is None else self.burst,
            quota=None if "quota" in self.unlimited else quota,
            period=base.period if self.period is None else self.period,
            fail_open=base.fail_open if self.fail_open is None else self.fail_open,
        )


def _frozen(mapping: Mapping[str, LimitsOverride]) -> Mapping[str, LimitsOverride]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetPolicy:
    """Limits per (identity, model), resolved in layers, each over the one before:

    1. `defaults`;
    2. `models[model]`: the model's own limits and its `fail_open` choice;
    3. the first entry of `roles` (in the order given) that the caller holds: list
       roles from the most to the least privileged;
    4. `identities[identity]`: an exception for one caller.

    Counters are kept per (identity, model) whatever layer the limits came from.
    `fail_open` is honoured only from `defaults` and `models` (a model owner's choice).
    """

    defaults: Limits = DEFAULT_LIMITS
    models: Mapping[str, LimitsOverride] = field(default_factory=dict)
    roles: tuple[tuple[str, LimitsOverride], ...] = ()
    identities: Mapping[str, LimitsOverride] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", _frozen(self.models))
        object.__setattr__(self, "identities", _frozen(self.identities))

    @classmethod
    def uniform(cls, limits: Limits) -> BudgetPolicy:
        """The same limits for every identity and model (tests, simple set-ups)."""
        return cls(defaults=limits)

    def limits_for(self, identity: str, model: str, roles: Collection[str] = ()) -> Limits:
        limits = self.defaults
        fail_open = limits.fail_open
        layer = self.models.get(model)
        if layer is not None:
            limits = layer.apply(limits)
            fail_open = limits.fail_open
        if roles:
            for name, override in self.roles:
                if name in roles:
                    limits = override.apply(limits)
                    break
        layer = self.identities.get(identity)
        if layer is not None:
            limits = layer.apply(limits)
        if limits.fail_open != fail_open:
            limits = Limits(
                rate=limits.rate,
                burst=limits.burst,
                quota=limits.quota,
                period=limits.period,
                fail_open=fail_open,
            )
        return limits
