"""Outliers and injected points: rows far from the rest of the data.

Two views, because each misses what the other sees: an isolation forest (rows that
few random splits need to isolate) and the distance to the k-th nearest neighbour on
robustly scaled features (an injected point sits alone, even inside the data's range).
Each score is turned into a robust z-score (median and MAD of the scores); a row is an
outlier when either z-score exceeds `z`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlwarden.data.screens._arrays import FloatArray, as_features
from mlwarden.errors import UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class Outlier:
    row: int
    score: float  # the larger of the two robust z-scores
    reason: str  # "isolation" or "neighbours"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutlierResult:
    outliers: tuple[Outlier, ...]  # strongest first

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(sorted(o.row for o in self.outliers))


def robust_scale(features: FloatArray) -> FloatArray:
    """Centre on the median and divide by the MAD (the IQR-free scale the bulk sets)."""
    median = np.median(features, axis=0)
    mad = 1.4826 * np.median(np.abs(features - median), axis=0)
    std = features.std(axis=0)
    scale = np.where(mad > 0, mad, np.where(std > 0, std, 1.0))
    return (features - median) / scale


def _robust_z(score: FloatArray) -> FloatArray:
    median = float(np.median(score))
    mad = 1.4826 * float(np.median(np.abs(score - median)))
    return (score - median) / (mad if mad > 0 else float(score.std()) or 1.0)


def find_outliers(
    x: Any, *, z: float = 6.0, neighbours: int = 10, seed: int = 0, workers: int = 1
) -> OutlierResult:
    """Rows whose isolation or neighbour-distance score is `z` robust scales above normal."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import NearestNeighbors

    features = as_features(x)
    if z <= 0 or neighbours < 1:
        raise UsageError("need z > 0 and neighbours >= 1")
    rows = features.shape[0]
    if rows <= neighbours:
        return OutlierResult(outliers=())
    scaled = robust_scale(features)
    forest = IsolationForest(random_state=seed, n_jobs=workers).fit(scaled)
    isolation = _robust_z(-forest.score_samples(scaled))
    distance, _ = NearestNeighbors(n_neighbors=neighbours, n_jobs=workers).fit(scaled).kneighbors()
    knn = _robust_z(np.log1p(distance[:, -1]))
    best = np.maximum(isolation, knn)
    flagged = np.flatnonzero(best > z)
    flagged = flagged[np.argsort(-best[flagged], kind="stable")]
    return OutlierResult(
        outliers=tuple(
            Outlier(
                row=int(r),
                score=float(best[r]),
                reason="isolation" if isolation[r] >= knn[r] else "neighbours",
            )
            for r in flagged
        )
    )
