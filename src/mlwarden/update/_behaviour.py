"""How the two versions behave on the owner's canary set, against the policy.

The canary set is held by the owner, never by the trainer, so a poisoned training run
cannot have tuned the update to it. Every measure compares the new version with the old
one on the same rows: accuracy overall and per class, predictions that flip (and into
which class), agreement, and the probability given to the true class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.report import Finding
from mlwarden.update._config import UpdateConfig

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """The canary measurements of both versions."""

    rows: int
    accuracy_old: float
    accuracy_new: float
    class_accuracy_old: Mapping[str, float]
    class_accuracy_new: Mapping[str, float]
    flip_rate: float
    """Share of rows whose predicted class differs between the versions."""
    flips_into: Mapping[str, float]
    """Per class: share of all rows right under the old version and predicted as it now."""
    confidence_old: float
    confidence_new: float
    """Mean probability given to the true class."""

    @property
    def agreement(self) -> float:
        return 1.0 - self.flip_rate

    @property
    def accuracy_drop(self) -> float:
        return self.accuracy_old - self.accuracy_new

    def class_drops(self) -> dict[str, float]:
        return {
            c: self.class_accuracy_old[c] - self.class_accuracy_new[c]
            for c in self.class_accuracy_old
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accuracy_old": self.accuracy_old,
            "accuracy_new": self.accuracy_new,
            "class_accuracy_old": dict(self.class_accuracy_old),
            "class_accuracy_new": dict(self.class_accuracy_new),
            "flip_rate": self.flip_rate,
            "agreement": self.agreement,
            "flips_into": dict(self.flips_into),
            "confidence_old": self.confidence_old,
            "confidence_new": self.confidence_new,
        }


def measure(
    classes: tuple[str, ...], y: IntArray, proba_old: FloatArray, proba_new: FloatArray
) -> Behaviour:
    """Measure both versions' probabilities on the canary rows (`y` indexes `classes`)."""
    old, new = proba_old.argmax(axis=1), proba_new.argmax(axis=1)
    right_old, right_new = old == y, new == y
    per_old, per_new = {}, {}
    for code, name in enumerate(classes):
        members = y == code
        if members.any():
            per_old[name] = float(right_old[members].mean())
            per_new[name] = float(right_new[members].mean())
    broken = right_old & ~right_new
    into = {
        name: float((broken & (new == code)).mean())
        for code, name in enumerate(classes)
        if (broken & (new == code)).any()
    }
    rows = np.arange(len(y))
    return Behaviour(
        rows=len(y),
        accuracy_old=float(right_old.mean()),
        accuracy_new=float(right_new.mean()),
        class_accuracy_old=per_old,
        class_accuracy_new=per_new,
        flip_rate=float((old != new).mean()),
        flips_into=into,
        confidence_old=float(proba_old[rows, y].mean()),
        confidence_new=float(proba_new[rows, y].mean()),
    )


def behaviour_findings(b: Behaviour, config: UpdateConfig, location: str) -> list[Finding]:
    """UPD005-UPD008 and UPD011 against the thresholds of the policy."""
    findings: list[Finding] = []
    if b.accuracy_drop > config.max_accuracy_drop:
        findings.append(
            Finding(
                rule_id="UPD005",
                message=f"canary accuracy fell from {b.accuracy_old:.3f} to {b.accuracy_new:.3f} "
                f"(a drop of {b.accuracy_drop:.3f} > {config.max_accuracy_drop:g})",
                location=location,
                detail={"old": f"{b.accuracy_old:.4f}", "new": f"{b.accuracy_new:.4f}"},
            )
        )
    for name, drop in sorted(b.class_drops().items(), key=lambda item: -item[1]):
        if drop > config.max_class_accuracy_drop:
            findings.append(
                Finding(
                    rule_id="UPD006",
                    message=f"class {name}: canary accuracy fell from "
                    f"{b.class_accuracy_old[name]:.3f} to {b.class_accuracy_new[name]:.3f} "
                    f"(> {config.max_class_accuracy_drop:g})",
                    location=f"{location}#class={name}",
                    detail={"class": name, "drop": f"{drop:.4f}"},
                )
            )
    for name, share in sorted(b.flips_into.items(), key=lambda item: -item[1]):
        if share > config.max_flips_into_one_class:
            findings.append(
                Finding(
                    rule_id="UPD007",
                    message=f"{share:.1%} of canary rows flip from right to class {name} "
                    f"(> {config.max_flips_into_one_class:.1%})",
                    location=f"{location}#class={name}",
                    detail={"class": name, "share": f"{share:.4f}"},
                )
            )
    if b.flip_rate > config.max_flip_rate or b.agreement < config.min_agreement:
        findings.append(
            Finding(
                rule_id="UPD008",
                message=f"the versions agree on {b.agreement:.1%} of canary rows "
                f"(min {config.min_agreement:.0%}); {b.flip_rate:.1%} flip "
                f"(max {config.max_flip_rate:.0%})",
                location=location,
                detail={"agreement": f"{b.agreement:.4f}", "flip_rate": f"{b.flip_rate:.4f}"},
            )
        )
    drop = b.confidence_old - b.confidence_new
    if drop > config.max_confidence_drop:
        findings.append(
            Finding(
                rule_id="UPD011",
                message=f"mean probability of the true class fell from {b.confidence_old:.3f} "
                f"to {b.confidence_new:.3f} (> {config.max_confidence_drop:g})",
                location=location,
                detail={"old": f"{b.confidence_old:.4f}", "new": f"{b.confidence_new:.4f}"},
            )
        )
    return findings
