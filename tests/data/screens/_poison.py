"""Known-answer datasets for the screens' tests, made from what scikit-learn ships."""

from __future__ import annotations

import numpy as np


def flip_labels(y: np.ndarray, rate: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Flip `rate` of the labels to a uniformly chosen other class; return them and the rows."""
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    rows = rng.choice(len(y), round(rate * len(y)), replace=False)
    classes = np.unique(y)
    for row in rows:
        noisy[row] = rng.choice(classes[classes != y[row]])
    return noisy, np.sort(rows)


def plant_patch(
    x: np.ndarray,
    y: np.ndarray,
    *,
    features: list[int],
    source: int,
    target: int,
    rate: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Set `features` to their column maxima in `rate` of the source class, relabeled."""
    rng = np.random.default_rng(seed)
    members = np.flatnonzero(y == source)
    rows = rng.choice(members, round(rate * len(members)), replace=False)
    xp, yp = x.astype(float).copy(), y.copy()
    xp[np.ix_(rows, features)] = x[:, features].max(axis=0)
    yp[rows] = target
    return xp, yp, np.sort(rows)


def corner(size: int) -> list[int]:
    """The bottom-right size x size patch of an 8x8 digit, as flat feature indices."""
    return [r * 8 + c for r in range(8 - size, 8) for c in range(8 - size, 8)]


def scores(found: object, truth: object) -> tuple[float, float]:
    """Precision and recall of `found` rows against the `truth` rows."""
    got = {int(r) for r in found}  # type: ignore[attr-defined]
    want = {int(r) for r in truth}  # type: ignore[attr-defined]
    hit = len(got & want)
    return (hit / len(got) if got else 0.0), (hit / len(want) if want else 1.0)


def plant_in_range(
    x: np.ndarray,
    y: np.ndarray,
    *,
    features: list[int],
    source: int,
    target: int,
    rate: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Set `features` to fixed values inside their columns' inter-quartile range in
    `rate` of the source class, relabeled: a trigger no per-cell outlier test sees."""
    rng = np.random.default_rng(seed)
    members = np.flatnonzero(y == source)
    rows = rng.choice(members, round(rate * len(members)), replace=False)
    quantiles = rng.uniform(0.3, 0.7, len(features))
    values = np.array([np.quantile(x[:, f], q) for f, q in zip(features, quantiles, strict=True)])
    if np.issubdtype(x.dtype, np.integer) or np.all(x == np.round(x)):
        values = np.round(values)
    xp, yp = x.astype(float).copy(), y.copy()
    xp[np.ix_(rows, features)] = values
    yp[rows] = target
    return xp, yp, np.sort(rows)
