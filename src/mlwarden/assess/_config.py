"""The `assess` section of `mlwarden.yaml` (boundary model, pydantic, extra=forbid).

```yaml
assess:
  thresholds:
    robust_accuracy: {epsilon: 0.1, min: 0.5}     # at epsilon (a fraction of the value range)
    membership_auc: {max: 0.6}
    membership_tpr_at_1pct_fpr: {max: 0.05}
    extraction_fidelity: {queries: 500, max: 0.8}
    inversion_recognised: {max: 3}
  budget: {queries: 5000, rate: 200, timeout: 10}  # per endpoint; rate in queries a second
  attacks: {evasion_samples: 100, membership_samples: 200, shadows: 8}   # effort
```

Every threshold has a default, so a section that names none still gates: an
assessment never passes for want of a threshold. A threshold set to `null` is off.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RobustAccuracyThreshold(_Strict):
    """Robust accuracy at `epsilon` (a fraction of the target's value range) must be >= min."""

    epsilon: float = Field(default=0.1, ge=0.0, le=1.0)
    min: float = Field(ge=0.0, le=1.0)


class MaxThreshold(_Strict):
    """The measured figure must be <= max."""

    max: float = Field(ge=0.0, le=1.0)


class ExtractionThreshold(_Strict):
    """The best copy's fidelity after `queries` queries must be <= max."""

    queries: int = Field(default=500, gt=0)
    max: float = Field(ge=0.0, le=1.0)


class CountThreshold(_Strict):
    """At most `max` class reconstructions may be recognised."""

    max: int = Field(ge=0)


class Thresholds(_Strict):
    robust_accuracy: RobustAccuracyThreshold | None = RobustAccuracyThreshold(epsilon=0.1, min=0.5)
    membership_auc: MaxThreshold | None = MaxThreshold(max=0.6)
    membership_tpr_at_1pct_fpr: MaxThreshold | None = MaxThreshold(max=0.05)
    extraction_fidelity: ExtractionThreshold | None = ExtractionThreshold(queries=500, max=0.8)
    inversion_recognised: CountThreshold | None = CountThreshold(max=3)


class AssessBudget(_Strict):
    """What the assessment may spend on one target: queries (samples) and a rate."""

    queries: int = Field(default=5000, gt=0)
    rate: float = Field(default=200.0, gt=0.0)
    """Queries (samples) a second, sent through a token bucket: the client sleeps."""
    burst: int | None = Field(default=None, gt=0)
    """The bucket's size; one request's batch at most. None: one second's worth."""
    timeout: float = Field(default=10.0, gt=0.0, le=600.0)
    """Seconds to wait for each answer of the endpoint before giving up (E502)."""


class AttackSettings(_Strict):
    """How much each attack does: the figures trade precision for queries and time."""

    evasion_samples: int = Field(default=100, gt=0)
    evasion_epsilons: tuple[Annotated[float, Field(ge=0.0, le=1.0)], ...] = Field(
        default=(0.0, 0.025, 0.05, 0.1, 0.2), min_length=1
    )
    """Fractions of the value range; the threshold's epsilon is always added."""
    black_box_samples: int = Field(default=20, gt=0)
    black_box_steps: int = Field(default=40, gt=0)
    membership_samples: int = Field(default=200, gt=0)
    shadows: int = Field(default=8, ge=2)
    extraction_budgets: tuple[Annotated[int, Field(gt=0)], ...] = Field(
        default=(100, 250, 500, 1000), min_length=1
    )
    """Query counts; the threshold's is always added."""
    extraction_strategies: tuple[Literal["random", "uniform", "jacobian", "active"], ...] = Field(
        default=("random", "active"), min_length=1
    )
    inversion_classes: int = Field(default=10, gt=0)


class AssessConfig(BaseModel):
    """The `assess` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: Thresholds = Thresholds()
    budget: AssessBudget = AssessBudget()
    attacks: AttackSettings = AttackSettings()
