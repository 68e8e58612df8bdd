"""Trigger search for in-range triggers: a fixed pattern of ordinary values.

A trigger need not be extreme: setting a few features to fixed values well inside their
columns' range (a pixel mid-grey, a measurement at its median) plants a backdoor that no
per-cell outlier test sees. What gives it away is that it is the *same* values in every
poisoned row: natural rows of a continuous column almost never share a value, and rows of
a discrete column share values at the rates the whole column does. So, per class c:

1. Among the rows of c whose content (their neighbours) says another class (and, for
   values rare outside c, among all rows of c: a strong trigger makes the poisoned rows
   each other's neighbours), each feature's most common value (to `tolerance` of the
   column's spread) is tested against how common that value is in the whole column
   (hypergeometric tail, Bonferroni over the features and the values tested).
   Significant features carried by the same rows are one candidate pattern; it needs at
   least two features (one shared ordinary value is what a discrete column does by
   itself).
2. The carriers (rows of c holding all of the pattern's values) are judged again
   with the pattern's columns left out of the distance; carriers whose content
   says another class are the suspects. A pattern is reported when the suspects are at
   least half of its carriers and mostly come from one source class (a planted trigger
   relabels one source; random label noise scatters over every class).

Written here rather than taken from a library: the published poisoning defences
(spectral signatures, activation clustering) look for a separate cluster and do not
test for shared exact values, which is what an in-range trigger leaves behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlwarden.data.screens._arrays import FloatArray, IntArray

Content = Callable[[list[int]], IntArray]
BoolArray = npt.NDArray[np.bool_]
Overlapping = Callable[[BoolArray, list[int]], list[list[int]]]

DEFAULT_TOLERANCE = 0.01
# One ordinary value shared by a few rows is what a discrete column does by itself; a
# pattern is at least two features whose shared values are carried by the same rows.
MIN_FEATURES = 2
# A value held by more than this share of the rows outside a class is not searched for
# across the whole class (only among its rows whose content says another class).
RARE_ELSEWHERE = 0.01


@dataclass(frozen=True, slots=True)
class Pattern:
    """A candidate in-range trigger: its features, target, source and suspect rows."""

    features: tuple[int, ...]
    target: int
    source: int
    suspects: IntArray
    carriers: int


def value_bins(features: FloatArray, tolerance: float) -> IntArray:
    """Each cell's bin: values within `tolerance` column standard deviations share one."""
    spread = features.std(axis=0)
    step = np.where(spread > 0, 2.0 * tolerance * spread, 1.0)
    bins: IntArray = np.floor(features / step).astype(np.int64)
    return bins


def find_patterns(
    features: FloatArray,
    codes: IntArray,
    mismatched: BoolArray,
    content: Content,
    overlapping: Overlapping,
    *,
    least: int,
    alpha: float,
    min_share: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[Pattern]:
    """Shared-value patterns carried by rows of one class whose content says another.

    `content(columns)` returns every row's class by its neighbours with `columns` left
    out; `overlapping(marks, features)` groups features marked in the same rows.
    """
    bins = value_bins(features, tolerance)
    found: list[Pattern] = []
    for target in range(int(codes.max()) + 1):
        members = codes == target
        # The rows of c whose content says another class; and all of c, for a trigger
        # strong enough that the poisoned rows are each other's nearest neighbours.
        # There the values must also be rare outside the class: a class's own typical
        # values (a digit's blank pixels) are shared by many of its rows by nature.
        for group, rare in (
            (np.flatnonzero(mismatched & members), 1.0),
            (np.flatnonzero(members), RARE_ELSEWHERE),
        ):
            if len(group) >= least:
                found += _group_patterns(
                    bins, group, target, codes, content, overlapping, least, alpha, min_share, rare
                )
    return found


def _group_patterns(
    bins: IntArray,
    group: IntArray,
    target: int,
    codes: IntArray,
    content: Content,
    overlapping: Overlapping,
    least: int,
    alpha: float,
    min_share: float,
    rare: float,
) -> list[Pattern]:
    """The checked patterns whose shared values crowd into `group` (rows of `target`),
    held by at most `rare` of the rows outside the group."""
    from scipy.stats import hypergeom

    rows, width = bins.shape
    found: list[Pattern] = []
    marks = np.zeros_like(bins, dtype=bool)
    chosen: list[int] = []
    for f in range(width):
        values, counts = np.unique(bins[group, f], return_counts=True)
        top = int(counts.argmax())
        inside = int(counts[top])
        if inside < least:
            continue
        column = bins[:, f] == values[top]
        total = int(column.sum())
        if total - inside > rare * (rows - len(group)):
            continue
        # Bonferroni over the features and over the values the mode was chosen from.
        level = alpha / (width * len(values))
        if hypergeom.sf(inside - 1, rows, total, len(group)) < level:
            marks[:, f] = column
            chosen.append(f)
    for trigger in overlapping(marks[group], chosen):
        if len(trigger) < MIN_FEATURES:
            continue
        pattern = _checked(trigger, target, marks, codes, content, least=least, min_share=min_share)
        if pattern is not None:
            found.append(pattern)
    return found


def _checked(
    trigger: list[int],
    target: int,
    marks: BoolArray,
    codes: IntArray,
    content: Content,
    *,
    least: int,
    min_share: float,
) -> Pattern | None:
    """The pattern if its carriers are mostly relabeled rows of one source class."""
    # A planted pattern is carried whole (its values are exact); natural rows of a
    # discrete column often share a part of it.
    carriers = np.flatnonzero((codes == target) & marks[:, trigger].all(axis=1))
    if len(carriers) < least:
        return None
    again = content(trigger)
    suspects = carriers[again[carriers] != target]
    if len(suspects) < least or len(suspects) * 2 < len(carriers):
        return None
    sources = np.bincount(again[suspects])
    source = int(sources.argmax())
    if sources[source] * 2 < len(suspects):
        return None  # scattered over many classes: label noise, not a planted trigger
    # Values the source class itself often has are its look, not a trigger.
    own = marks[codes == source][:, trigger].mean(axis=0) < min_share
    shown = tuple(int(f) for f, keep in zip(trigger, own, strict=True) if keep)
    if not shown:
        return None
    full = (codes == target) & marks[:, list(shown)].all(axis=1)
    rows = np.union1d(suspects, np.flatnonzero(full)).astype(np.int64)
    return Pattern(
        features=shown, target=target, source=source, suspects=rows, carriers=len(carriers)
    )
