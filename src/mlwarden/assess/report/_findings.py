"""Measured figures against the thresholds of `mlwarden.yaml`: findings, and the verdict.

Each attack of each target becomes one object of an `mlwarden.report.Report`
(`<target>#<attack>`): checked with one ATK finding per threshold it crosses, failed
(with the error's code) when the attack could not finish, skipped when it was not asked
for. A threshold that applies to a finished attack but whose figure was not measured
fails the object: the gate never passes for want of a figure.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlwarden import __version__
from mlwarden.assess._config import Thresholds
from mlwarden.assess.report._model import (
    Assessment,
    AttackOutcome,
    EvasionSummary,
    ExtractionSummary,
    InversionSummary,
    MembershipSummary,
)
from mlwarden.report import Finding, ObjectResult, Report, Status
from mlwarden.rules.assess import RULE_OF_ATTACK


def assessment_report(
    assessments: Sequence[Assessment], thresholds: Thresholds, *, duration_s: float = 0.0
) -> Report:
    """The findings of every assessment as one report (kind "assess")."""
    results: list[ObjectResult] = []
    for assessment in assessments:
        for outcome in assessment.outcomes:
            results.append(_object(assessment, outcome, thresholds))
    return Report(
        kind="assess", tool_version=__version__, results=tuple(results), duration_s=duration_s
    )


def _object(assessment: Assessment, outcome: AttackOutcome, thresholds: Thresholds) -> ObjectResult:
    path = f"{assessment.target}#{outcome.attack}"
    if outcome.status == "not run":
        return ObjectResult(
            path=path, status=Status.SKIPPED, format="assess", reason=outcome.reason or "not run"
        )
    if outcome.status == "failed" or outcome.summary is None:
        return ObjectResult(
            path=path,
            status=Status.FAILED,
            format="assess",
            code=outcome.code or "E900",
            reason=outcome.reason or "the attack did not finish",
            duration_s=outcome.seconds,
        )
    try:
        findings = _judge(path, outcome, thresholds)
    except _Unmeasured as missing:
        return ObjectResult(
            path=path,
            status=Status.FAILED,
            format="assess",
            code="E170",
            reason=str(missing),
            duration_s=outcome.seconds,
        )
    return ObjectResult(
        path=path,
        status=Status.CHECKED,
        format="assess",
        findings=tuple(findings),
        duration_s=outcome.seconds,
    )


class _Unmeasured(Exception):
    pass


def _judge(path: str, outcome: AttackOutcome, thresholds: Thresholds) -> list[Finding]:
    summary = outcome.summary
    rule = RULE_OF_ATTACK[outcome.attack]
    found: list[Finding] = []

    def finding(message: str, measured: float, limit: float, figure: str) -> None:
        found.append(
            Finding(
                rule_id=rule,
                message=message,
                location=path,
                detail={"figure": figure, "measured": f"{measured:.4g}", "threshold": f"{limit:g}"},
            )
        )

    if isinstance(summary, EvasionSummary) and thresholds.robust_accuracy is not None:
        limit = thresholds.robust_accuracy
        accuracy = summary.at(limit.epsilon)
        if accuracy is None:
            raise _Unmeasured(f"robust accuracy was not measured at epsilon {limit.epsilon:g}")
        if accuracy < limit.min:
            finding(
                f"robust accuracy {accuracy:.3f} at epsilon {limit.epsilon:g} of the value range "
                f"({summary.method}, {summary.norm}) is below the minimum {limit.min:g}",
                accuracy,
                limit.min,
                f"robust_accuracy@{limit.epsilon:g}",
            )
    elif isinstance(summary, MembershipSummary):
        auc = thresholds.membership_auc
        if auc is not None and summary.auc > auc.max:
            finding(
                f"membership inference AUC {summary.auc:.3f} ({summary.method}) is above the "
                f"maximum {auc.max:g}",
                summary.auc,
                auc.max,
                "membership_auc",
            )
        tpr = thresholds.membership_tpr_at_1pct_fpr
        if tpr is not None and summary.tpr_at_1pct_fpr > tpr.max:
            finding(
                f"membership inference finds {summary.tpr_at_1pct_fpr:.3f} of the members at "
                f"1% false positives, above the maximum {tpr.max:g}",
                summary.tpr_at_1pct_fpr,
                tpr.max,
                "membership_tpr_at_1pct_fpr",
            )
    elif isinstance(summary, ExtractionSummary) and thresholds.extraction_fidelity is not None:
        limit_x = thresholds.extraction_fidelity
        fidelity = summary.best_fidelity_within(limit_x.queries)
        if fidelity is None:
            raise _Unmeasured(f"no extraction was measured within {limit_x.queries} queries")
        if fidelity > limit_x.max:
            finding(
                f"a copy trained on {limit_x.queries} queries agrees with the target on "
                f"{fidelity:.3f} of test inputs, above the maximum {limit_x.max:g}",
                fidelity,
                limit_x.max,
                f"extraction_fidelity@{limit_x.queries}",
            )
    elif isinstance(summary, InversionSummary) and thresholds.inversion_recognised is not None:
        limit_i = thresholds.inversion_recognised
        if summary.recognised > limit_i.max:
            finding(
                f"{summary.recognised} of {summary.classes} class reconstructions are recognised "
                f"by an independent classifier, above the maximum {limit_i.max}",
                summary.recognised,
                limit_i.max,
                "inversion_recognised",
            )
    return found
