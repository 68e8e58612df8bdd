"""Exact and near duplicates inside one dataset.

Exact: rows with byte-identical feature values (a hash of each row's float64 bytes).
Near: rows within `radius` of each other in robustly scaled feature space (Euclidean,
divided by the square root of the feature count so the radius does not grow with width).
Each group keeps its first row; the later ones are the duplicates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlwarden.data.screens._arrays import FloatArray, as_features
from mlwarden.data.screens.outliers import robust_scale
from mlwarden.errors import UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateGroup:
    first: int
    duplicates: tuple[int, ...]
    exact: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateResult:
    groups: tuple[DuplicateGroup, ...]

    @property
    def rows(self) -> tuple[int, ...]:
        """The rows to drop: every duplicate but each group's first row."""
        return tuple(sorted(r for g in self.groups for r in g.duplicates))


def row_digests(features: FloatArray) -> list[bytes]:
    """A digest of each row's exact values (-0.0 and 0.0 count as the same)."""
    clean = np.ascontiguousarray(features + 0.0)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in clean]


def find_duplicates(x: Any, *, radius: float = 0.0) -> DuplicateResult:
    """Exact duplicates, and with `radius` > 0 near duplicates too."""
    features = as_features(x)
    if radius < 0:
        raise UsageError(f"radius must not be negative, not {radius}")
    first_seen: dict[bytes, int] = {}
    owner = np.arange(features.shape[0])
    for row, digest in enumerate(row_digests(features)):
        owner[row] = first_seen.setdefault(digest, row)
    exact_rows = {int(r) for r in np.flatnonzero(owner != np.arange(len(owner)))}
    if radius > 0:
        owner = _near_owner(robust_scale(features), owner, radius)
    groups: dict[int, list[int]] = {}
    for row, first in enumerate(owner.tolist()):
        if row != first:
            groups.setdefault(first, []).append(row)
    return DuplicateResult(
        groups=tuple(
            DuplicateGroup(
                first=first, duplicates=tuple(rows), exact=all(r in exact_rows for r in rows)
            )
            for first, rows in sorted(groups.items())
        )
    )


def _near_owner(scaled: FloatArray, owner: Any, radius: float) -> Any:
    """Attach each row to the earliest row within `radius` (transitively, earliest wins)."""
    from sklearn.neighbors import NearestNeighbors

    width = np.sqrt(scaled.shape[1])
    index = NearestNeighbors(radius=radius * width).fit(scaled)
    _, near = index.radius_neighbors(scaled)
    parent = owner.copy()
    for row, hits in enumerate(near):
        earliest = int(hits.min()) if len(hits) else row  # hits include the row itself
        if earliest < row:
            parent[row] = parent[earliest]  # already final: rows are visited in order
    return parent
