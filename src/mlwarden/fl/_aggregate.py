"""Robust aggregation rules over an (n clients x d parameters) matrix.

These are written here rather than taken from a federated framework because they are
the product's edge: each is a few vectorised NumPy lines whose assumptions must be
stated and checked (Krum's bound on f, the trimmed share), and the frameworks that
ship them (Flower, FedML) would pull a whole training runtime into a security library.

Assumptions, with n clients of which at most f are Byzantine (send anything):
- mean (FedAvg): none; one attacker moves the result arbitrarily far.
- median (coordinate-wise): a coordinate stays within the honest range while f < n/2.
- trimmed mean: drops the k = floor(trim * n) largest and smallest values of every
  coordinate; bounded while f <= k (and 2k < n).
- Krum (Blanchard et al., 2017): picks the update whose n - f - 2 nearest neighbours are
  closest; needs n >= 2f + 3. Multi-Krum averages the m best-scored updates.
- norm clipping: scales each update down to an L2 norm of at most `clip` (a number, or
  "median" for the cohort's median norm), which bounds what one client can move the
  result; it combines with every rule (applied first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mlwarden.errors import AggregationParameterError
from mlwarden.fl._cohort import Cohort, Matrix, stack

Rule = Literal["mean", "median", "trimmed_mean", "krum", "multi_krum"]
RULES: tuple[Rule, ...] = ("mean", "median", "trimmed_mean", "krum", "multi_krum")


def is_number(value: object) -> bool:
    """A real number, not a bool (True is an int, but never a meant parameter)."""
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


def is_integer(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def clip_rows(matrix: Matrix, clip: float | str) -> Matrix:
    """Each row scaled down to an L2 norm of at most `clip` ("median": the median norm)."""
    norms = np.linalg.norm(matrix, axis=1)
    if not isinstance(clip, str) and not is_number(clip):
        raise AggregationParameterError(f"clip={clip!r} is neither a positive number nor 'median'")
    if isinstance(clip, str):
        if clip != "median":
            raise AggregationParameterError(
                f"clip={clip!r} is neither a positive number nor 'median'"
            )
        bound = float(np.median(norms))
    else:
        bound = float(clip)
        if not np.isfinite(bound) or bound <= 0:
            raise AggregationParameterError(f"clip={clip!r} is not a positive finite number")
    if bound == 0.0:
        return np.zeros_like(matrix)
    scale = np.minimum(1.0, bound / np.maximum(norms, np.finfo(np.float64).tiny))
    return np.asarray(matrix * scale[:, None], dtype=np.float64)


def mean(matrix: Matrix, weights: NDArray[np.float64] | None) -> Matrix:
    if weights is None:
        return np.asarray(matrix.mean(axis=0), dtype=np.float64)
    return np.asarray(weights @ matrix / weights.sum(), dtype=np.float64)


def median(matrix: Matrix) -> Matrix:
    return np.asarray(np.median(matrix, axis=0), dtype=np.float64)


def trimmed_mean(matrix: Matrix, trim: float) -> Matrix:
    n = matrix.shape[0]
    if not is_number(trim) or not 0.0 <= trim < 0.5:
        raise AggregationParameterError(f"trim={trim!r} is not in [0, 0.5)")
    k = int(np.floor(trim * n))
    if k == 0 and trim > 0:
        # The caller asked for robustness and would silently get the plain mean.
        raise AggregationParameterError(
            f"trim={trim:g} of {n} updates drops none: that is the plain mean",
            hint=f"use trim >= {1 / n:.3g}, or median for small cohorts",
        )
    ordered = np.sort(matrix, axis=0)
    return np.asarray(ordered[k : n - k].mean(axis=0), dtype=np.float64)


def krum_scores(matrix: Matrix, f: int) -> NDArray[np.float64]:
    """Krum's score per row: the sum of squared distances to its n - f - 2 nearest rows."""
    n = matrix.shape[0]
    # Distances do not change under a shift; centring first keeps |a|^2 + |b|^2 - 2ab from
    # cancelling away the differences of updates far from the origin (raw weights).
    matrix = matrix - matrix.mean(axis=0)
    squared = np.einsum("ij,ij->i", matrix, matrix)
    distances = squared[:, None] + squared[None, :] - 2.0 * (matrix @ matrix.T)
    np.maximum(distances, 0.0, out=distances)
    np.fill_diagonal(distances, np.inf)
    closest = n - f - 2
    nearest = np.partition(distances, closest - 1, axis=1)[:, :closest]
    return np.asarray(nearest.sum(axis=1), dtype=np.float64)


def check_krum(n: int, f: int | None) -> int:
    """f itself, or the largest f Krum tolerates for n; E193 when n < 2f + 3."""
    largest = (n - 3) // 2
    if f is None:
        if largest < 0:
            raise AggregationParameterError(
                f"Krum needs at least 3 clients, got {n}",
                hint="use median or trimmed_mean for small cohorts",
            )
        return largest
    if not is_integer(f) or f < 0:
        raise AggregationParameterError(f"f={f!r} is not a non-negative integer")
    if n < 2 * f + 3:
        raise AggregationParameterError(
            f"Krum with f={f} needs at least {2 * f + 3} clients (n >= 2f + 3), got {n}",
            hint=f"lower f to at most {max(largest, 0)} or add clients",
        )
    return int(f)


def krum_select(matrix: Matrix, f: int, m: int) -> NDArray[np.intp]:
    """Indices of the m best-scored rows (ties broken by order)."""
    scores = krum_scores(matrix, f)
    return np.argsort(scores, kind="stable")[:m]


def aggregate(
    updates: Cohort,
    rule: Rule = "mean",
    *,
    weights: Sequence[float] | None = None,
    trim: float | None = None,
    f: int | None = None,
    m: int | None = None,
    clip: float | str | None = None,
) -> dict[str, Any]:
    """Combine one round's client updates into one, of the same kind, names and dtypes.

    `rule`: "mean" (FedAvg; `weights` = each client's sample count), "median",
    "trimmed_mean" (`trim`: the share dropped at each end, default 0.1), "krum" or "multi_krum"
    (`f`: the most attackers assumed, default the largest Krum tolerates; `m`: how many
    updates multi-Krum averages, default n - f). `clip`: scale every update to this L2
    norm at most first ("median" for the cohort's median norm). Pass deltas (client
    weights minus the global weights) when clipping: a norm bound on weights means little.
    """
    stacked = stack(updates)
    matrix = stacked.matrix
    n = matrix.shape[0]
    if rule not in RULES:
        raise AggregationParameterError(
            f"unknown aggregation rule {rule!r}", hint=f"use one of {', '.join(RULES)}"
        )
    if weights is not None and rule != "mean":
        raise AggregationParameterError(f"weights apply to rule 'mean', not {rule!r}")
    # A parameter the rule ignores is refused: the caller believes it protects them.
    if m is not None and rule != "multi_krum":
        raise AggregationParameterError(f"m applies to rule 'multi_krum', not {rule!r}")
    if f is not None and rule not in ("krum", "multi_krum"):
        raise AggregationParameterError(f"f applies to rules 'krum' and 'multi_krum', not {rule!r}")
    if trim is not None and rule != "trimmed_mean":
        raise AggregationParameterError(f"trim applies to rule 'trimmed_mean', not {rule!r}")
    if clip is not None:
        matrix = clip_rows(matrix, clip)
    if rule == "mean":
        result = mean(matrix, None if weights is None else _weights(weights, n))
    elif rule == "median":
        result = median(matrix)
    elif rule == "trimmed_mean":
        result = trimmed_mean(matrix, 0.1 if trim is None else trim)
    else:
        f_used = check_krum(n, f)
        count = 1 if rule == "krum" else (n - f_used if m is None else m)
        if not is_integer(count) or not 1 <= count <= n:
            raise AggregationParameterError(f"m={m!r} is not between 1 and {n}")
        result = matrix[krum_select(matrix, f_used, int(count))].mean(axis=0)
    return stacked.layout.rebuild(result)


def _weights(weights: Sequence[float], n: int) -> NDArray[np.float64]:
    values = list(weights) if isinstance(weights, Sequence | np.ndarray) else None
    # np.asarray alone would take "3" and True for numbers.
    if values is None or not all(is_number(w) for w in values):
        raise AggregationParameterError(
            "weights are not a sequence of numbers",
            hint="pass each client's number of training samples",
        )
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise AggregationParameterError(f"{array.size} weights for {n} client updates")
    if not np.isfinite(array).all() or (array < 0).any() or array.max() <= 0:
        raise AggregationParameterError(
            "weights must be finite, non-negative and not all zero",
            hint="pass each client's number of training samples",
        )
    # Scaled by the largest first: a sum of huge finite weights would overflow to inf.
    return np.asarray(array / array.max(), dtype=np.float64)
