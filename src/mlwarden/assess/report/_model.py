"""What one assessment measured, as plain figures every renderer starts from.

The attacks' own results carry arrays and internals; an `Assessment` keeps the figures
a reader or a gate needs (curves thinned to what a plot shows), round-trips through
JSON, and is what `--compare` sets side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ATTACKS: tuple[str, ...] = ("evasion", "membership", "extraction", "inversion")
AttackStatus = Literal["done", "failed", "not run"]
_ROC_POINTS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class EvasionSummary:
    epsilons: tuple[float, ...]
    """As fractions of the target's value range (the thresholds' unit)."""
    robust_accuracy: tuple[float, ...]
    clean_accuracy: float
    method: str
    norm: str
    white_box: bool
    samples: int

    def at(self, epsilon: float) -> float | None:
        for eps, acc in zip(self.epsilons, self.robust_accuracy, strict=True):
            if abs(eps - epsilon) <= 1e-9:
                return acc
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipSummary:
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]
    method: str
    members: int
    nonmembers: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Curve:
    strategy: str
    queries: tuple[int, ...]
    fidelity: tuple[float, ...]
    accuracy: tuple[float, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionSummary:
    curves: tuple[Curve, ...]

    def best_fidelity_within(self, queries: int) -> float | None:
        """The best copy's fidelity using at most `queries` queries (None: none that few)."""
        values = [
            f
            for c in self.curves
            for q, f in zip(c.queries, c.fidelity, strict=True)
            if q <= queries
        ]
        return max(values) if values else None


@dataclass(frozen=True, slots=True, kw_only=True)
class InversionSummary:
    recognised: int
    classes: int
    similarity: float
    """Mean similarity of the reconstructions to their class means (1 is identical)."""


Summary = EvasionSummary | MembershipSummary | ExtractionSummary | InversionSummary


@dataclass(frozen=True, slots=True, kw_only=True)
class AttackOutcome:
    attack: str
    status: AttackStatus
    summary: Summary | None = None
    code: str | None = None
    reason: str | None = None
    queries: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """One target, the attacks run against it and what they measured."""

    target: str
    output: str
    """What the target revealed: "scores" or "labels"."""
    n_classes: int
    value_range: tuple[float, float]
    outcomes: tuple[AttackOutcome, ...]
    queries: int
    seconds: float
    label: str = ""
    """A short name for comparisons ("bare", "defended")."""
    settings: Mapping[str, Any] = field(default_factory=dict)

    def outcome(self, attack: str) -> AttackOutcome | None:
        return next((o for o in self.outcomes if o.attack == attack), None)

    def summary(self, attack: str) -> Summary | None:
        found = self.outcome(attack)
        return None if found is None else found.summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "label": self.label,
            "output": self.output,
            "n_classes": self.n_classes,
            "value_range": list(self.value_range),
            "queries": self.queries,
            "seconds": round(self.seconds, 3),
            "settings": dict(self.settings),
            "attacks": {o.attack: _outcome_dict(o) for o in self.outcomes},
        }


def _outcome_dict(outcome: AttackOutcome) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": outcome.status,
        "queries": outcome.queries,
        "seconds": round(outcome.seconds, 3),
    }
    if outcome.code is not None:
        data["code"] = outcome.code
        data["reason"] = outcome.reason
    summary = outcome.summary
    if isinstance(summary, EvasionSummary):
        data |= {
            "epsilons": list(summary.epsilons),
            "robust_accuracy": list(summary.robust_accuracy),
            "clean_accuracy": summary.clean_accuracy,
            "method": summary.method,
            "norm": summary.norm,
            "white_box": summary.white_box,
            "samples": summary.samples,
        }
    elif isinstance(summary, MembershipSummary):
        data |= {
            "auc": summary.auc,
            "tpr_at_1pct_fpr": summary.tpr_at_1pct_fpr,
            "tpr_at_0.1pct_fpr": summary.tpr_at_01pct_fpr,
            "method": summary.method,
            "members": summary.members,
            "nonmembers": summary.nonmembers,
            "roc": {"fpr": list(summary.roc_fpr), "tpr": list(summary.roc_tpr)},
        }
    elif isinstance(summary, ExtractionSummary):
        data["curves"] = {
            c.strategy: {
                "queries": list(c.queries),
                "fidelity": list(c.fidelity),
                "accuracy": list(c.accuracy),
            }
            for c in summary.curves
        }
    elif isinstance(summary, InversionSummary):
        data |= {
            "recognised": summary.recognised,
            "classes": summary.classes,
            "similarity": summary.similarity,
        }
    return data


# --- from the attacks' results ---------------------------------------------------------


def summarise_evasion(result: Any, span: float) -> EvasionSummary:
    """`span` is the value range's width: epsilons are reported as fractions of it."""
    return EvasionSummary(
        epsilons=tuple(round(float(e) / span, 6) for e in result.epsilons),
        robust_accuracy=tuple(float(a) for a in result.robust_accuracy),
        clean_accuracy=float(result.clean_accuracy),
        method=str(result.method),
        norm=str(result.norm),
        white_box=bool(result.white_box),
        samples=int(result.n_samples),
    )


def summarise_membership(result: Any) -> MembershipSummary:
    fpr = np.asarray(result.roc_fpr, dtype=np.float64)
    tpr = np.asarray(result.roc_tpr, dtype=np.float64)
    if len(fpr) > _ROC_POINTS:
        # Keep the low-FPR end (what a log axis shows) and thin the rest evenly on a log grid.
        grid = np.unique(np.concatenate([[0.0], np.geomspace(1e-4, 1.0, _ROC_POINTS)]))
        tpr = np.interp(grid, fpr, tpr)
        fpr = grid
    rates = {float(k): float(v) for k, v in dict(result.tpr_at_fpr).items()}
    return MembershipSummary(
        auc=float(result.auc),
        tpr_at_1pct_fpr=rates.get(0.01, float(np.interp(0.01, fpr, tpr))),
        tpr_at_01pct_fpr=rates.get(0.001, float(np.interp(0.001, fpr, tpr))),
        roc_fpr=tuple(round(float(v), 6) for v in fpr),
        roc_tpr=tuple(round(float(v), 6) for v in tpr),
        method=str(result.method),
        members=int(result.n_members),
        nonmembers=int(result.n_nonmembers),
    )


def summarise_extraction(result: Any) -> ExtractionSummary:
    budgets = tuple(int(b) for b in getattr(result, "budgets", ()))
    curves: list[Curve] = []
    for strategy, curve in _strategy_curves(result):
        curves.append(
            Curve(
                strategy=str(strategy),
                queries=tuple(int(q) for q in getattr(curve, "queries", budgets)),
                fidelity=tuple(float(f) for f in curve.fidelity),
                accuracy=tuple(float(a) for a in curve.accuracy),
            )
        )
    return ExtractionSummary(curves=tuple(curves))


def _strategy_curves(result: Any) -> Sequence[tuple[str, Any]]:
    curves = result.curves
    if isinstance(curves, Mapping):
        return list(curves.items())
    return [(c.strategy, c) for c in curves]


def summarise_inversion(result: Any) -> InversionSummary:
    recognised = result.recognised
    count = int(np.sum(recognised)) if not isinstance(recognised, int) else recognised
    classes = getattr(result, "classes", None)
    n_classes = len(classes) if isinstance(classes, Sequence) else int(np.size(recognised))
    similarity = np.asarray(result.similarity, dtype=np.float64)
    return InversionSummary(
        recognised=count,
        classes=n_classes,
        similarity=float(similarity.mean()) if similarity.size else 0.0,
    )
