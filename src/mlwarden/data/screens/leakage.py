"""Train/test leakage: training rows that are (nearly) rows of the test split.

A test row seen in training makes the test score a memory test. Exact leakage compares
row digests; with `radius` > 0 a training row within `radius` of a test row (robustly
scaled on the training data, per square root of the feature count) also leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlwarden.data.screens._arrays import as_features
from mlwarden.data.screens.duplicates import row_digests
from mlwarden.errors import UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class Leak:
    row: int  # the training row
    test_row: int  # the test row it matches
    distance: float  # 0.0 for an exact copy


@dataclass(frozen=True, slots=True, kw_only=True)
class LeakageResult:
    leaks: tuple[Leak, ...]

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(sorted(leak.row for leak in self.leaks))


def find_leakage(train: Any, test: Any, *, radius: float = 0.0) -> LeakageResult:
    """Training rows equal to (or with `radius` > 0, near) a test row."""
    left = as_features(train, name="train")
    right = as_features(test, name="test")
    if left.shape[1] != right.shape[1]:
        raise UsageError(
            f"train has {left.shape[1]} features and test has {right.shape[1]}: not splits "
            "of one table"
        )
    if radius < 0:
        raise UsageError(f"radius must not be negative, not {radius}")
    seen = {digest: row for row, digest in enumerate(row_digests(right))}
    leaks = {
        row: Leak(row=row, test_row=seen[d], distance=0.0)
        for row, d in enumerate(row_digests(left))
        if d in seen
    }
    if radius > 0:
        from sklearn.neighbors import NearestNeighbors

        median = np.median(left, axis=0)
        mad = 1.4826 * np.median(np.abs(left - median), axis=0)
        std = left.std(axis=0)
        scale = np.where(mad > 0, mad, np.where(std > 0, std, 1.0))
        width = np.sqrt(left.shape[1])
        index = NearestNeighbors(n_neighbors=1).fit((right - median) / scale)
        distance, nearest = index.kneighbors((left - median) / scale)
        for row in np.flatnonzero(distance[:, 0] <= radius * width):
            leaks.setdefault(
                int(row),
                Leak(
                    row=int(row),
                    test_row=int(nearest[row, 0]),
                    distance=float(distance[row, 0] / width),
                ),
            )
    return LeakageResult(leaks=tuple(leaks[r] for r in sorted(leaks)))
