"""Drift against a trusted baseline: has the data moved since it was last trusted?

Per numeric feature, the two-sample Kolmogorov-Smirnov test and the population
stability index (PSI, on the baseline's deciles); per categorical feature, the
chi-square test of the category counts and the categories that appeared or vanished;
and the class balance (chi-square on the label counts). A feature drifts when its
p-value is below `alpha` (Bonferroni over the features) and, for numeric ones, its PSI
is at least `psi_level`: with large samples a tiny, harmless shift is "significant", so
both the test and the size of the shift must agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlwarden.data.screens._arrays import FloatArray, as_features
from mlwarden.errors import UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDrift:
    feature: int
    test: str  # "ks" or "chi2"
    statistic: float
    p_value: float
    psi: float | None
    new_categories: tuple[object, ...] = ()
    vanished_categories: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]  # only the features that drifted
    class_balance: FeatureDrift | None  # None when the labels did not drift (or none given)

    @property
    def drifted(self) -> bool:
        return bool(self.features) or self.class_balance is not None


def psi(baseline: FloatArray, current: FloatArray, bins: int = 10) -> float:
    """Population stability index on the baseline's quantile bins (0.1 moderate, 0.25 big)."""
    edges = np.unique(np.quantile(baseline, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([baseline.min() - 0.5, baseline.min() + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(baseline, edges)[0] / len(baseline)
    actual = np.histogram(current, edges)[0] / len(current)
    expected = np.clip(expected, 1e-4, None)
    actual = np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _chi2(base: Any, cur: Any, feature: int) -> FeatureDrift:
    from scipy.stats import chi2_contingency

    base_values, base_counts = np.unique(base, return_counts=True)
    cur_values, cur_counts = np.unique(cur, return_counts=True)
    values = np.union1d(base_values, cur_values)
    table = np.zeros((2, len(values)))
    table[0, np.searchsorted(values, base_values)] = base_counts
    table[1, np.searchsorted(values, cur_values)] = cur_counts
    if len(values) < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = chi2_contingency(table)
        statistic, p_value = float(result[0]), float(result[1])
    plain = [v.item() if hasattr(v, "item") else v for v in values]
    return FeatureDrift(
        feature=feature,
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        psi=None,
        new_categories=tuple(v for v, n in zip(plain, table[0], strict=True) if n == 0),
        vanished_categories=tuple(v for v, n in zip(plain, table[1], strict=True) if n == 0),
    )


def find_drift(
    baseline: Any,
    current: Any,
    *,
    baseline_labels: Any = None,
    labels: Any = None,
    categorical: tuple[int, ...] = (),
    alpha: float = 0.01,
    psi_level: float = 0.1,
) -> DriftResult:
    """Features (and the class balance) of `current` that moved away from `baseline`."""
    from scipy.stats import ks_2samp

    base = as_features(baseline, name="baseline")
    cur = as_features(current, name="current")
    if base.shape[1] != cur.shape[1]:
        raise UsageError(f"baseline has {base.shape[1]} features and the data has {cur.shape[1]}")
    if any(not 0 <= c < base.shape[1] for c in categorical):
        raise UsageError("a categorical feature index is out of range")
    level = alpha / base.shape[1]
    drifted: list[FeatureDrift] = []
    for feature in range(base.shape[1]):
        if feature in categorical:
            found = _chi2(base[:, feature], cur[:, feature], feature)
            if found.p_value < level or found.new_categories or found.vanished_categories:
                drifted.append(found)
            continue
        test = ks_2samp(base[:, feature], cur[:, feature])
        shift = psi(base[:, feature], cur[:, feature])
        if float(test.pvalue) < level and shift >= psi_level:
            drifted.append(
                FeatureDrift(
                    feature=feature,
                    test="ks",
                    statistic=float(test.statistic),
                    p_value=float(test.pvalue),
                    psi=shift,
                )
            )
    balance = None
    if baseline_labels is not None and labels is not None:
        found = _chi2(np.asarray(baseline_labels), np.asarray(labels), -1)
        if found.p_value < alpha or found.new_categories or found.vanished_categories:
            balance = found
    return DriftResult(features=tuple(drifted), class_balance=balance)
