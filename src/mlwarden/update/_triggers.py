"""A differential trigger search in the spirit of Neural Cleanse (Wang et al., S&P 2019).

Neural Cleanse asks, per target class t, for the smallest input pattern that sends most
inputs to t, and flags a class whose pattern is an outlier (MAD anomaly index > 2). On
small inputs (8x8 digits, tabular rows) that premise fails: a clean model already has
one- or two-feature patterns into several classes, because a feature pushed to an
extreme value the data never holds moves any model. We measured the gradient version on
digits and found no separation between honest and backdoored updates.

An update gate has what Neural Cleanse lacks: the old version. So the search here is
differential. Per target class t, it grows a pattern greedily, one (feature, value) at a
time among the data's extreme values, choosing each time the stamp that most raises
share(new sends to t) - share(old sends to t) on canary rows of the other classes, up to
`trigger_features` features. A backdoored update reacts to its trigger and the old
version does not: the share climbs near 1 within a few features. An honest update reacts
like the old version to every stamp: the share stays low. Each class's best share gets a
MAD anomaly index (above the median this time); a class is flagged when its index
exceeds the policy's `anomaly_index` (default 3; Neural Cleanse uses 2, which refused
honest fine-tunes in bench/update_check.py) and its share reaches `min_trigger_success`.

It needs only predictions, so it runs on every model kind the gate supports; written
here because it is the product's edge (no library compares two versions this way).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.report import Finding

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Predict = Callable[[FloatArray], FloatArray]

_MAD_FLOOR = 0.02  # shares are in [0, 1]; a flat profile must not make noise look anomalous


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassTrigger:
    """The strongest small pattern found for one target class."""

    target: str
    success: float
    """share(new version sends stamped rows to the target) - the same share for the old."""
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


def _stamp_success(
    predict_new: Predict,
    predict_old: Predict,
    x: FloatArray,
    targets: IntArray,
    stamps: list[tuple[int, list[tuple[int, float]]]],
) -> FloatArray:
    """For each (class, stamp): differential share of rows of other classes sent to it."""
    batches, owners = [], []
    for t, stamp in stamps:
        rows = x[targets != t].copy()
        for feature, value in stamp:
            rows[:, feature] = value
        batches.append(rows)
        owners.append(np.full(len(rows), t))
    stacked = np.concatenate(batches)
    owner = np.concatenate(owners)
    hit_new = predict_new(stacked).argmax(axis=1) == owner
    hit_old = predict_old(stacked).argmax(axis=1) == owner
    diff = hit_new.astype(np.float64) - hit_old.astype(np.float64)
    bounds = np.cumsum([0] + [len(b) for b in batches])
    return np.array([diff[a:b].mean() if b > a else 0.0 for a, b in itertools.pairwise(bounds)])


def search(
    predict_new: Predict,
    predict_old: Predict,
    x: FloatArray,
    y: IntArray,
    *,
    classes: int,
    values: Sequence[float],
    max_features: int,
) -> list[tuple[float, list[tuple[int, float]]]]:
    """Per class: (best differential share, the greedy pattern that reached it)."""
    width = x.shape[1]
    paths: list[list[tuple[int, float]]] = [[] for _ in range(classes)]
    best: list[tuple[float, list[tuple[int, float]]]] = [(0.0, []) for _ in range(classes)]
    for _ in range(max_features):
        stamps: list[tuple[int, list[tuple[int, float]]]] = []
        for t in range(classes):
            used = {f for f, _ in paths[t]}
            stamps.extend(
                (t, [*paths[t], (f, v)]) for f in range(width) if f not in used for v in values
            )
        shares = _stamp_success(predict_new, predict_old, x, y, stamps)
        for t in range(classes):
            mine = [i for i, (owner, _) in enumerate(stamps) if owner == t]
            pick = mine[int(np.argmax(shares[mine]))]
            paths[t] = stamps[pick][1]
            if shares[pick] > best[t][0]:
                best[t] = (float(shares[pick]), list(paths[t]))
    return best


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
                f"({stamp}) sends {trigger.success:.0%} more canary rows of other classes to it "
                f"than the old version does (anomaly index {trigger.anomaly_index:.1f} > "
                f"{threshold:g})",
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
