"""Backdoors: a trigger planted in some rows of one class, relabeled to a target class.

The published baselines (spectral signatures, activation clustering) look for a
poisoned sub-population inside each class's representations; on small tabular or
pixel data their precision is poor (see bench/data_screen.py). This screen searches
for the trigger itself instead, without being told the target class:

1. Robust per-feature statistics (median, MAD) mark each cell that is far from the
   bulk of its column. A patch trigger makes the same few cells extreme in every
   poisoned row.
2. Each row's class by its leave-one-out k-NN neighbours, with every extreme cell muted
   (set to the column median): a relabeled row is judged by its content, and its
   neighbours are the clean rows of its real class, which outnumber the poisoned ones.
   Rows whose neighbours disagree with their label are "mismatched".
3. Per class c, a feature is a trigger candidate when its extreme cells crowd into the
   mismatched rows of c (a hypergeometric tail test, Bonferroni over the features, and
   at least `min_share` of those rows). Candidates carried by the same rows are one
   trigger (a 2x2 patch is four features carried by the same rows).
4. The carriers are the rows of c extreme in all but one of the trigger's features.
   With the whole patch muted, their classes are judged again; carriers whose content
   says another class are the suspects, plus any row of c with the suspects' exact
   trigger values (one poisoned row left behind can be enough to teach the trigger).
   c is the target, the suspects' majority content is the source. Features the source
   class is itself often extreme on are its look, not a trigger; a weaker trigger that
   mostly re-finds a stronger one's rows is dropped.

Random label noise makes mismatched rows too, but no feature crowds into them, so it is
not reported here (the label screen reports it). Steps 1-4 see triggers that push some
features beyond the bulk of their columns; `in_range=True` (the default) also runs the
search for triggers made of fixed ordinary values (`_in_range`), which no per-cell
outlier test sees. A blended trigger (a pattern added to each row's own values) is not
found by either.

`spectral_signatures` is the published baseline (Tran et al. 2018), for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlwarden.data.screens._arrays import (
    FloatArray,
    IntArray,
    as_features,
    as_labels,
    label_value,
)
from mlwarden.errors import UsageError

Represent = Callable[[FloatArray], Any]

DEFAULT_Z = 3.5
DEFAULT_ALPHA = 1e-3


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """A suspected backdoor: its trigger features, target and source classes, carriers."""

    features: tuple[int, ...]
    target: object
    source: object
    rows: tuple[int, ...]
    carriers: int
    mismatch: float  # share of carriers whose content says another class


@dataclass(frozen=True, slots=True, kw_only=True)
class BackdoorResult:
    """Every suspected backdoor, strongest first; `rows` are all suspect row ids."""

    triggers: tuple[Trigger, ...]
    method: str

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(sorted({row for trigger in self.triggers for row in trigger.rows}))

    @property
    def target(self) -> object:
        """The suspected target class of the strongest backdoor (None when none found)."""
        return self.triggers[0].target if self.triggers else None


def find_backdoors(
    x: Any,
    y: Any,
    *,
    z: float = DEFAULT_Z,
    alpha: float = DEFAULT_ALPHA,
    min_rows: int | None = None,
    min_share: float = 0.25,
    neighbours: int = 7,
    in_range: bool = True,
) -> BackdoorResult:
    """Search the features for a planted trigger (see the module docstring).

    `x` may be raw features or a model's representations of them (one row per row).
    `in_range=False` skips the search for triggers made of ordinary values.
    """
    features = as_features(x)
    codes, classes = as_labels(y, features.shape[0])
    if z <= 0 or not 0 < alpha < 1 or not 0 < min_share <= 1 or neighbours < 1:
        raise UsageError("need z > 0, 0 < alpha < 1, 0 < min_share <= 1 and neighbours >= 1")
    rows = features.shape[0]
    least = min_rows if min_rows is not None else max(3, math.ceil(0.002 * rows))
    if rows <= neighbours:
        return BackdoorResult(triggers=(), method="trigger-search")
    extreme, median = extreme_cells(features, z)
    content = _content_labels(features, codes, extreme, median, neighbours)
    mismatched = content != codes
    found: list[Trigger] = []
    for target in range(len(classes)):
        group = np.flatnonzero(mismatched & (codes == target))
        if len(group) < least:
            continue
        for trigger in _trigger_features(extreme, group, least, alpha, min_share):
            hits = extreme[group][:, trigger].sum(axis=1)
            first = group[hits >= _needed(len(trigger))]
            if len(first) < least:
                continue
            # Second look with the whole trigger muted: cells of the patch that are not
            # extreme on their own (a pixel often that bright anyway) are still shared by
            # the poisoned rows and would make them each other's neighbours.
            patch = _patch(features, first, trigger)
            carriers = np.flatnonzero(
                (codes == target) & (extreme[:, trigger].sum(axis=1) >= _needed(len(trigger)))
            )
            muted = extreme.copy()
            muted[:, patch] = True
            again = _content_labels(features, codes, muted, median, neighbours)
            suspects = carriers[again[carriers] != target]
            if len(suspects) < least:
                continue
            suspects = _same_pattern(features, codes, target, trigger, suspects)
            source = int(np.bincount(again[suspects]).argmax())
            # A feature the source class is often extreme on anyway is its content, not
            # the trigger: the relabeled rows carry it too. Report the rest; with nothing
            # left, the "trigger" is just what relabeled rows of the source look like.
            own = extreme[codes == source][:, trigger].mean(axis=0) < min_share
            shown = [f for f, keep in zip(trigger, own, strict=True) if keep]
            if not shown:
                continue  # all of it is the source class's own look: relabeling, no trigger
            found.append(
                Trigger(
                    features=tuple(int(f) for f in shown),
                    target=label_value(classes, target),
                    source=label_value(classes, source),
                    rows=tuple(int(r) for r in np.sort(suspects)),
                    carriers=len(carriers),
                    mismatch=len(suspects) / len(carriers),
                )
            )
    if in_range:
        found += _in_range_triggers(
            features,
            codes,
            classes,
            extreme,
            median,
            mismatched,
            least=least,
            alpha=alpha,
            min_share=min_share,
            neighbours=neighbours,
        )
    found.sort(key=lambda t: (-len(t.rows), t.features))
    return BackdoorResult(triggers=_distinct(found), method="trigger-search")


def _in_range_triggers(
    features: FloatArray,
    codes: IntArray,
    classes: Any,
    extreme: Any,
    median: FloatArray,
    mismatched: Any,
    *,
    least: int,
    alpha: float,
    min_share: float,
    neighbours: int,
) -> list[Trigger]:
    """Triggers made of ordinary values shared by the poisoned rows (see `_in_range`)."""
    from mlwarden.data.screens._in_range import find_patterns

    def content(columns: list[int]) -> IntArray:
        muted = extreme.copy()
        muted[:, columns] = True
        return _content_labels(features, codes, muted, median, neighbours)

    return [
        Trigger(
            features=pattern.features,
            target=label_value(classes, pattern.target),
            source=label_value(classes, pattern.source),
            rows=tuple(int(r) for r in pattern.suspects),
            carriers=pattern.carriers,
            mismatch=len(pattern.suspects) / max(pattern.carriers, 1),
        )
        for pattern in find_patterns(
            features,
            codes,
            mismatched,
            content,
            _overlapping,
            least=least,
            alpha=alpha,
            min_share=min_share,
        )
    ]


def _distinct(found: list[Trigger]) -> tuple[Trigger, ...]:
    """Drop a weaker trigger whose rows are mostly a stronger one's of the same target.

    The relabeled rows share more than the trigger: a feature typical of their source
    class can look like a second, smaller trigger that mostly re-finds the same rows and
    adds natural rows of the target that happen to carry it.
    """
    kept: list[Trigger] = []
    for trigger in found:
        taken = {r for k in kept if k.target == trigger.target for r in k.rows}
        if len(taken.intersection(trigger.rows)) * 2 >= len(trigger.rows):
            continue
        kept.append(trigger)
    return tuple(kept)


def _content_labels(
    features: FloatArray, codes: IntArray, extreme: Any, median: FloatArray, k: int
) -> IntArray:
    """Each row's class by its leave-one-out neighbours, with every extreme cell muted.

    Muting extreme cells (setting them to the column median) strips a patch trigger, so
    a relabeled row is judged by its content and its neighbours are the clean rows of
    its real class, which outnumber the poisoned ones.
    """
    from sklearn.neighbors import NearestNeighbors

    muted = np.where(extreme, median, features)
    low = muted.min(axis=0)
    span = muted.max(axis=0) - low
    muted = (muted - low) / np.where(span > 0, span, 1.0)
    index = NearestNeighbors(n_neighbors=k).fit(muted)
    _, near = index.kneighbors()  # without X: each row's neighbours exclude itself
    votes = codes[near]
    classes = int(codes.max()) + 1
    counts = np.zeros((len(codes), classes), dtype=np.int64)
    for column in range(votes.shape[1]):
        np.add.at(counts, (np.arange(len(codes)), votes[:, column]), 1)
    labels: IntArray = counts.argmax(axis=1).astype(np.int64)
    return labels


def _needed(width: int) -> int:
    """How many of a trigger's features a row must carry: all but one (a planted patch is
    carried whole; a natural row rarely has every cell of it), and at least half."""
    return max(math.ceil(width / 2), width - 1)


def _same_pattern(
    features: FloatArray, codes: IntArray, target: int, trigger: list[int], suspects: IntArray
) -> IntArray:
    """The suspects plus every row of the target class that carries their exact trigger.

    A single poisoned row left in the data can be enough for a flexible model to learn the
    trigger, so a carrier whose content happened to look like the target is not spared.
    """
    pattern = np.median(features[suspects][:, trigger], axis=0)
    tolerance = 0.05 * np.maximum(features[:, trigger].std(axis=0), 1e-12)
    close = (np.abs(features[:, trigger] - pattern) <= tolerance).all(axis=1)
    extra = np.flatnonzero(close & (codes == target))
    return np.union1d(suspects, extra).astype(np.int64)


def _patch(features: FloatArray, suspects: IntArray, trigger: list[int]) -> list[int]:
    """The trigger features plus those the suspects share an almost constant, unusual value
    on (the rest of a patch whose value is common in the column)."""
    spread = features.std(axis=0)
    inner = features[suspects].std(axis=0)
    level = features[suspects].mean(axis=0)
    typical = np.median(features, axis=0)
    same = (inner <= 0.1 * spread) & (np.abs(level - typical) > spread)
    return sorted(set(trigger) | set(np.flatnonzero(same).tolist()))


def _trigger_features(
    extreme: Any, group: IntArray, least: int, alpha: float, min_share: float
) -> list[list[int]]:
    """Features whose extreme cells crowd into the mismatched rows of one class, grouped
    by the rows that carry them (a 2x2 patch is four features carried by the same rows)."""
    from scipy.stats import hypergeom

    rows, width = extreme.shape
    inside = extreme[group].sum(axis=0)
    total = extreme.sum(axis=0)
    level = alpha / width  # Bonferroni over the features tested for this class
    chosen = [
        f
        for f in np.flatnonzero((inside >= least) & (inside >= min_share * len(group))).tolist()
        if hypergeom.sf(int(inside[f]) - 1, rows, len(group), int(total[f])) < level
    ]
    return _overlapping(extreme[group], chosen)


def extreme_cells(features: FloatArray, z: float) -> tuple[Any, FloatArray]:
    """Cells more than `z` robust scales from their column's median, and the medians.

    The scale is the MAD; for a column that is mostly one value (MAD 0, like a pixel that
    is nearly always dark) it falls back to the mean absolute deviation, so any clear
    departure from that value counts. A constant column has no extreme cells.
    """
    median = np.median(features, axis=0)
    deviation = np.abs(features - median)
    scale = 1.4826 * np.median(deviation, axis=0)
    fallback = 1.2533 * deviation.mean(axis=0)
    scale = np.where(scale > 0, scale, fallback)
    with np.errstate(divide="ignore", invalid="ignore"):
        extreme = (deviation > z * scale) & (scale > 0)
    return extreme, median


def _overlapping(marks: Any, feats: list[int], jaccard: float = 0.5) -> list[list[int]]:
    """Features whose marked rows overlap (Jaccard >= 0.5), joined transitively."""
    parent = list(range(len(feats)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    columns = marks[:, feats]
    for i in range(len(feats)):
        for j in range(i + 1, len(feats)):
            both = int((columns[:, i] & columns[:, j]).sum())
            either = int((columns[:, i] | columns[:, j]).sum())
            if either and both / either >= jaccard:
                parent[root(i)] = root(j)
    joined: dict[int, list[int]] = {}
    for i, feature in enumerate(feats):
        joined.setdefault(root(i), []).append(feature)
    return list(joined.values())


def spectral_signatures(
    representations: Any, y: Any, *, expected_fraction: float = 0.1, factor: float = 1.5
) -> tuple[int, ...]:
    """The spectral-signature baseline: per class, the rows with the largest squared
    projection on the top singular vector of the centred representations; it removes
    `factor * expected_fraction` of every class (it cannot tell which class is poisoned).
    """
    reps = as_features(representations, name="representations")
    codes, _ = as_labels(y, reps.shape[0])
    flagged: list[int] = []
    for cls in np.unique(codes):
        members = np.flatnonzero(codes == cls)
        centred = reps[members] - reps[members].mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        score = (centred @ vt[0]) ** 2
        cut = min(len(members), math.ceil(factor * expected_fraction * len(members)))
        flagged.extend(members[np.argsort(score)[::-1][:cut]].tolist())
    return tuple(sorted(int(r) for r in flagged))
