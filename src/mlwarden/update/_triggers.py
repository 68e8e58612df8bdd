"""A differential trigger search in the spirit of Neural Cleanse (Wang et al., S&P 2019).

Neural Cleanse asks, per target class t, for the smallest input pattern that sends most
inputs to t, and flags a class whose pattern is an outlier (MAD anomaly index > 2). On
small inputs (8x8 digits, tabular rows) that premise fails: a clean model already has
one- or two-feature patterns into several classes, because a feature pushed to an
extreme value the data never holds moves any model. We measured the gradient version on
digits and found no separation between honest and backdoored updates.

An update gate has what Neural Cleanse lacks: the old version. So the search here is
differential. Per target class t, it grows a pattern greedily, one (feature, value) at a
time, values being the data's low, mid-range and high values (triggers need not be
extreme), choosing each time the stamp that most raises the hijack share: canary rows
the old version does not send to t that, stamped, the new version sends to t while the
old version neither does nor leans towards t. The first step tries every single stamp;
later steps grow from each class's best `beam` single stamps (run time flat in the
width), up to `trigger_features` features. A backdoored update reacts to its trigger and
the old version does not: the share climbs within a few features.

Two nulls keep honest updates quiet. The old version's answer to the same stamp: a row
the stamp already sends to t under the old version is no hijack. And the old version's
lean: a row counts only if, under the stamp, the old version's log-odds for t (against
its median class) rise by at most `max_old_lean` nats. An honest fine-tune strengthens
associations the old version already has, and on near-constant features (a pixel that
is almost always 0, amplified by a StandardScaler) that strengthening moves the argmax
for most stamped rows; without the lean null, honest scikit-learn updates scored like
backdoors (bench/update_check.py). A backdoor is an association the old version lacks.

A fixed tolerance, though, fails on the same near-constant features when the trigger
sits there: a stamp 100 standard deviations out makes the old version's per-class
answers swing by tens of nats, so its lean to t can exceed 1 nat by chance, and the
trigger is discounted (three such triggers on the benchmark's scikit-learn MLP hijacked
0-11% of the rows under the fixed null and 100% without it). The tolerance therefore
grows to `lean_swing` times the old version's swing under that stamp (the median
absolute deviation of its per-class rises) where that is more: a lean that stands out
from the swing is an association, one lost in it is not. Measured on the benchmark's
development splits: four more working backdoors caught (63/74 against 59/74), no honest
update more refused (122/126 silent both ways); 0.3 to 0.5 give the same counts. The
price that remains: a trigger the old version already leans to (a stroke of the target
class) is not seen.

The search is greedy on purpose: a search guided by where the update changed the
response, or seeded with pairs, assembles patterns whose single features do nothing
alone, but finds honest patterns just as well (measured: bench/update_check.py,
BENCHMARKS.md).

Each class's best share gets a MAD anomaly index (above the median this time, MAD
floored at 0.02); a class is flagged when its index exceeds the policy's
`anomaly_index` and its share reaches `min_trigger_success`.

It needs only predictions, so it runs on every model kind the gate supports; written
here because it is the product's edge (no library compares two versions this way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden._dense import DenseForm
from mlwarden.report import Finding

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Score = Callable[[FloatArray], FloatArray]
"""Rows to per-class log-probabilities (or logits: only differences within a row count)."""

_MAD_FLOOR = 0.02  # shares are in [0, 1]; a flat profile must not make noise look anomalous
_MAX_BATCH_CELLS = 1_000_000  # stamped values per model call: 8 MB of float64
_NATURAL_MIN_ROWS = 3  # fewer real rows showing a pattern are no evidence it is natural
_NATURAL_MIN_SHARE = 0.5  # ...and most of them must carry the target's label


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassTrigger:
    """The strongest small pattern found for one target class."""

    target: str
    success: float
    """Hijack share: of the rows the old version does not send to the target, the share
    that, stamped, the new version sends to it and the old version neither sends to it
    nor leans towards it."""
    features: tuple[int, ...]
    values: tuple[float, ...]
    anomaly_index: float
    flagged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "success": self.success,
            "features": list(self.features),
            "values": list(self.values),
            "anomaly_index": self.anomaly_index,
            "flagged": self.flagged,
        }


def _row_median(values: FloatArray) -> FloatArray:
    """Median of each row. Sorting the few class columns is about 3x faster than
    `np.median(axis=1)` on the trigger search's batches (measured: 100,000 x 10)."""
    width = values.shape[1]
    ordered = np.sort(values, axis=1)
    middle = width // 2
    if width % 2:
        odd: FloatArray = ordered[:, middle]
        return odd
    even: FloatArray = 0.5 * (ordered[:, middle - 1] + ordered[:, middle])
    return even


def lean_and_swing(
    old_stamped: FloatArray, old_clean: FloatArray, target: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Per row: the old version's lean, how far a stamp raises its log-odds for the row's
    target class against the median class, and its typical swing under the stamp, the
    median absolute deviation of its per-class rises (both in nats; logits and
    log-probabilities give the same). The swing is near 0 where the stamp stays in the
    data's range and tens of nats where it sends the model far outside it."""
    rise = old_stamped - old_clean
    centred = rise - _row_median(rise)[:, None]
    lean: FloatArray = centred[np.arange(len(rise)), target]
    return lean, _row_median(np.abs(centred))


def within_lean(
    old_stamped: FloatArray,
    old_clean: FloatArray,
    target: IntArray,
    max_old_lean: float,
    lean_swing: float = 0.0,
) -> npt.NDArray[np.bool_]:
    """Per row: does the old version's lean towards the target stay within the null's
    tolerance, `max_old_lean` nats or `lean_swing` times its swing where that is more?"""
    lean, swing = lean_and_swing(old_stamped, old_clean, target)
    within: npt.NDArray[np.bool_] = lean <= np.maximum(max_old_lean, lean_swing * swing)
    return within


Stamp = list[tuple[int, float]]
Model = Score | DenseForm
"""A version as the search runs it: per-class log-probabilities of raw rows, or the
array form of a dense model (stamped rows then cost a rank-k update, see `_Stamper`)."""


class _Stamper:
    """One version's log-probabilities for stamped copies of the search rows.

    A model given only as a function gets full copies of the rows with the stamped
    features overwritten. A dense model moves the rows' first-layer output by the
    stamped features' weight rows alone: stamping k features costs k x width multiply-
    adds per row instead of a pass of every input feature through the first layer. It is
    written here, not taken from a library, because the search is the product's edge and
    the first layer is most of its time: on 784 input features the search runs 10-24x
    faster (bench/update_wide.py). The two paths agree to rounding (about 1e-13);
    the benchmark's verdicts and shares are the same with either.
    """

    def __init__(self, model: Model, x: FloatArray) -> None:
        self._model = model
        self._x = x
        if isinstance(model, DenseForm):
            self._first: FloatArray | None = model.first_layer(x)
            self._scaled_weights = model.weights[0] * model.mul[:, None]
            # a stamped row is only ever as wide as the widest layer output
            self.cells_per_row = max(w.shape[1] for w in model.weights)
        else:
            self._first = None
            self.cells_per_row = x.shape[1]

    def clean(self) -> FloatArray:
        if isinstance(self._model, DenseForm):
            assert self._first is not None
            return self._model.log_proba_after_first(self._first)
        return self._model(self._x)

    def stamped(self, groups: Sequence[tuple[IntArray, Stamp]]) -> FloatArray:
        """Stacked log-probabilities of the rows `rows` with `stamp` set, group by group."""
        parts = []
        for rows, stamp in groups:
            if self._first is None:
                part = self._x[rows].copy()
                for feature, value in stamp:
                    part[:, feature] = value
            else:
                part = self._first[rows].copy()
                current: dict[int, FloatArray | float] = {}
                for feature, value in stamp:
                    # (value - before) * mul is how far the scaled feature moves; a feature
                    # stamped twice moves from its first stamped value, as an overwrite does
                    before = current.get(feature, self._x[rows, feature])
                    part += np.reshape(value - before, (-1, 1)) * self._scaled_weights[feature]
                    current[feature] = value
            parts.append(part)
        stacked = np.concatenate(parts)
        if isinstance(self._model, DenseForm):
            return self._model.log_proba_after_first(stacked)
        return self._model(stacked)


def _stamp_success(
    new: _Stamper,
    old: _Stamper,
    old_scores: FloatArray,
    stamps: list[tuple[int, Stamp]],
    max_old_lean: float | None,
    *,
    lean_swing: float = 0.0,
    max_cells: int | None = None,
) -> FloatArray:
    """For each (class, stamp): the share of eligible rows the stamp hijacks into the class.

    Eligible rows are those the old version does not already send to the class. A row is
    hijacked when the new version sends the stamped row to the class and the old version
    does not (its answer to the same stamp is the null) and, with `max_old_lean`, the old
    version's lean towards the class under the stamp stays within it (or within
    `lean_swing` times the old version's swing under that stamp, where that is more).
    Stamped rows go to the models in batches of at most `max_cells` values, so memory
    stays flat in the input width (the first step stamps every feature at every value
    for every class).
    """
    old_clean = old_scores.argmax(axis=1)
    eligible = [np.flatnonzero(old_clean != t) for t in range(old_scores.shape[1])]
    cells = _MAX_BATCH_CELLS if max_cells is None else max_cells
    row_cells = max(new.cells_per_row, old.cells_per_row)
    per_batch = max(1, cells // max(1, row_cells * len(old_scores)))
    shares: list[float] = []
    for start in range(0, len(stamps), per_batch):
        chunk = stamps[start : start + per_batch]
        groups = [(eligible[t], stamp) for t, stamp in chunk]
        owner = np.concatenate([np.full(len(eligible[t]), t) for t, _ in chunk])
        stamped_old = old.stamped(groups)
        hijacked = (new.stamped(groups).argmax(axis=1) == owner) & (
            stamped_old.argmax(axis=1) != owner
        )
        if max_old_lean is not None:
            origin = np.concatenate([eligible[t] for t, _ in chunk])
            hijacked &= within_lean(
                stamped_old, old_scores[origin], owner, max_old_lean, lean_swing
            )
        # hijacked is 0/1, so the per-stamp sums are exact and equal np.mean's
        counts = np.array([len(eligible[t]) for t, _ in chunk])
        group = np.repeat(np.arange(len(chunk)), counts)
        sums = np.bincount(group, weights=hijacked.astype(np.float64), minlength=len(chunk))
        shares += list(np.where(counts > 0, sums / np.maximum(counts, 1), 0.0))
    return np.array(shares, dtype=np.float64)


def search(
    score_new: Model,
    score_old: Model,
    x: FloatArray,
    *,
    classes: int,
    values: Sequence[float],
    max_features: int,
    beam: int = 12,
    support: tuple[FloatArray, IntArray] | None = None,
    max_old_lean: float | None = None,
    lean_swing: float = 0.0,
) -> list[tuple[float, list[tuple[int, float]]]]:
    """Per class: (best hijack share, the greedy pattern that reached it).

    `score_new` and `score_old` give per-class log-probabilities (or logits), or are the
    versions' array forms (the same numbers, stamped faster); the argmax
    is the prediction and their differences the old version's lean (`max_old_lean`,
    nats; None turns the lean null off; `lean_swing` widens it where the old version's
    answer to a stamp swings wildly, 0 keeps it fixed).

    The first step tries every (feature, value); later steps grow the pattern only from
    the `beam` best single stamps of that class, which keeps the run time flat in the
    number of features while still finding triggers whose single pixels each help.
    `support` (labelled canary rows) enables the natural-pattern null: a stamp that real
    rows of the class already show (`natural`) is the class's own feature, not a trigger,
    and scores 0 for that class.
    """
    width = x.shape[1]
    new, old = _Stamper(score_new, x), _Stamper(score_old, x)
    old_scores = old.clean()
    span = float(max(values) - min(values)) if len(values) > 1 else 0.0
    singles = [(f, float(v)) for f in range(width) for v in values]
    paths: list[list[tuple[int, float]]] = [[] for _ in range(classes)]
    pool: list[list[tuple[int, float]]] = [singles for _ in range(classes)]
    best: list[tuple[float, list[tuple[int, float]]]] = [(0.0, []) for _ in range(classes)]
    for step in range(max_features):
        stamps: list[tuple[int, list[tuple[int, float]]]] = []
        for t in range(classes):
            used = {f for f, _ in paths[t]}
            stamps.extend((t, [*paths[t], fv]) for fv in pool[t] if fv[0] not in used)
        if not stamps:
            break
        shares = _stamp_success(new, old, old_scores, stamps, max_old_lean, lean_swing=lean_swing)
        if support is not None:
            for i, (t, stamp) in enumerate(stamps):
                if shares[i] > 0 and natural(stamp, t, *support, span=span):
                    shares[i] = 0.0
        for t in range(classes):
            mine = [i for i, (owner, _) in enumerate(stamps) if owner == t]
            if not mine:
                continue
            if step == 0:
                ranked = sorted(mine, key=lambda i: -shares[i])[:beam]
                pool[t] = [stamps[i][1][-1] for i in ranked]
            pick = mine[int(np.argmax(shares[mine]))]
            paths[t] = stamps[pick][1]
            if shares[pick] > best[t][0]:
                best[t] = (float(shares[pick]), list(paths[t]))
    return best


def natural(
    stamp: Sequence[tuple[int, float]],
    target: int,
    x: FloatArray,
    y: IntArray,
    *,
    span: float,
    min_rows: int = _NATURAL_MIN_ROWS,
    min_share: float = _NATURAL_MIN_SHARE,
) -> bool:
    """Do real canary rows already show this pattern, mostly with the target's label?

    A row shows the pattern when every stamped feature lies within a quarter of the
    value span of the stamped value. An update that learns a genuine feature of a class
    from new data reacts to it like a backdoor reacts to its trigger; the difference is
    that the data holds the pattern under that label. A trigger is by design a pattern
    the real data does not hold under the target. (Counting rows that merely depart from
    the median in the stamp's direction was measured too: it excused real triggers and
    flagged more honest updates.)
    """
    if span <= 0:
        return False
    shows = np.ones(len(x), dtype=bool)
    for feature, value in stamp:
        shows &= np.abs(x[:, feature] - value) <= span / 4
    count = int(shows.sum())
    return count >= min_rows and float((y[shows] == target).mean()) >= min_share


def anomaly_indices(scores: Sequence[float]) -> FloatArray:
    """(score_t - median) / (1.4826 * MAD) per class, MAD floored at 0.02."""
    values = np.asarray(scores, dtype=np.float64)
    median = float(np.median(values))
    mad = max(_MAD_FLOOR, 1.4826 * float(np.median(np.abs(values - median))))
    result: FloatArray = (values - median) / mad
    return result


def class_triggers(
    names: tuple[str, ...],
    found: list[tuple[float, list[tuple[int, float]]]],
    *,
    threshold: float,
    min_success: float,
) -> tuple[ClassTrigger, ...]:
    index = anomaly_indices([share for share, _ in found])
    return tuple(
        ClassTrigger(
            target=name,
            success=share,
            features=tuple(f for f, _ in path),
            values=tuple(float(v) for _, v in path),
            anomaly_index=float(index[i]),
            flagged=bool(index[i] > threshold and share >= min_success),
        )
        for i, (name, (share, path)) in enumerate(zip(names, found, strict=True))
    )


def trigger_findings(
    found: tuple[ClassTrigger, ...], threshold: float, location: str
) -> list[Finding]:
    """UPD009 for every flagged class."""
    findings = []
    for trigger in sorted(found, key=lambda t: -t.anomaly_index):
        if not trigger.flagged:
            continue
        stamp = ", ".join(
            f"x{f}={v:g}" for f, v in zip(trigger.features, trigger.values, strict=True)
        )
        findings.append(
            Finding(
                rule_id="UPD009",
                message=f"class {trigger.target}: stamping {len(trigger.features)} feature(s) "
                f"({stamp}) hijacks {trigger.success:.0%} of the canary rows the old version "
                f"does not send to it: stamped, the new version sends them there and the old "
                f"one neither does nor leans to it (anomaly index "
                f"{trigger.anomaly_index:.1f} > {threshold:g})",
                location=f"{location}#class={trigger.target}",
                detail={
                    "class": trigger.target,
                    "anomaly_index": f"{trigger.anomaly_index:.3f}",
                    "success": f"{trigger.success:.3f}",
                    "features": ",".join(map(str, trigger.features)),
                },
            )
        )
    return findings
