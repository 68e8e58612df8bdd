"""Figures against thresholds: which findings, which verdict; the JSON round trip."""

from __future__ import annotations

import json

from mlwarden.assess._compare import Removed
from mlwarden.assess._config import (
    AssessConfig,
    CountThreshold,
    ExtractionThreshold,
    MaxThreshold,
    RobustAccuracyThreshold,
    Thresholds,
)
from mlwarden.assess.report import (
    Assessment,
    AttackOutcome,
    Curve,
    EvasionSummary,
    ExtractionSummary,
    InversionSummary,
    MembershipSummary,
    assessment_report,
    render_html,
    render_json,
)
from mlwarden.report import Report, Status


def _assessment(*, robust: float = 0.7, auc: float = 0.55, fidelity: float = 0.5) -> Assessment:
    outcomes = (
        AttackOutcome(
            attack="evasion",
            status="done",
            summary=EvasionSummary(
                epsilons=(0.0, 0.1),
                robust_accuracy=(0.95, robust),
                clean_accuracy=0.95,
                method="pgd",
                norm="linf",
                white_box=True,
                samples=50,
            ),
        ),
        AttackOutcome(
            attack="membership",
            status="done",
            summary=MembershipSummary(
                auc=auc,
                tpr_at_1pct_fpr=0.02,
                tpr_at_01pct_fpr=0.0,
                roc_fpr=(0.0, 0.01, 1.0),
                roc_tpr=(0.0, 0.02, 1.0),
                method="loss",
                members=100,
                nonmembers=100,
            ),
        ),
        AttackOutcome(
            attack="extraction",
            status="done",
            summary=ExtractionSummary(
                curves=(
                    Curve(
                        strategy="random",
                        queries=(100, 500),
                        fidelity=(fidelity / 2, fidelity),
                        accuracy=(0.4, 0.5),
                    ),
                )
            ),
        ),
        AttackOutcome(attack="inversion", status="failed", code="E172", reason="needs scores"),
    )
    return Assessment(
        target="http://127.0.0.1:1/v2/models/m",
        output="scores",
        n_classes=10,
        value_range=(0.0, 16.0),
        outcomes=outcomes,
        queries=1000,
        seconds=1.0,
    )


def test_each_crossed_threshold_is_one_finding_of_its_rule() -> None:
    thresholds = Thresholds(
        robust_accuracy=RobustAccuracyThreshold(epsilon=0.1, min=0.8),
        membership_auc=MaxThreshold(max=0.5),
        membership_tpr_at_1pct_fpr=MaxThreshold(max=0.05),
        extraction_fidelity=ExtractionThreshold(queries=500, max=0.4),
        inversion_recognised=CountThreshold(max=3),
    )
    report = assessment_report([_assessment()], thresholds)
    rules = sorted(f.rule_id for f in report.findings)
    assert rules == ["ATK001", "ATK002", "ATK003"]
    failed = [r for r in report.results if r.status is Status.FAILED]
    assert [(r.path.rsplit("#")[1], r.code) for r in failed] == [("inversion", "E172")]
    evasion = next(f for f in report.findings if f.rule_id == "ATK001")
    assert evasion.detail == {
        "figure": "robust_accuracy@0.1",
        "measured": "0.7",
        "threshold": "0.8",
    }


def test_figures_within_thresholds_give_no_finding() -> None:
    report = assessment_report([_assessment(robust=0.9, auc=0.52, fidelity=0.3)], Thresholds())
    assert report.findings == ()


def test_a_threshold_without_its_figure_fails_closed() -> None:
    thresholds = Thresholds(
        robust_accuracy=RobustAccuracyThreshold(epsilon=0.3, min=0.1),
        extraction_fidelity=ExtractionThreshold(queries=50, max=0.9),
    )
    report = assessment_report([_assessment()], thresholds)
    failed = {r.path.rsplit("#")[1]: r.reason for r in report.results if r.code == "E170"}
    assert set(failed) == {"evasion", "extraction"}
    assert "epsilon 0.3" in str(failed["evasion"])


def test_json_round_trips_and_carries_the_figures() -> None:
    report = assessment_report([_assessment()], Thresholds())
    document = json.loads(render_json([_assessment()], report))
    assert Report.from_dict(document).to_dict()["results"] == document["results"]
    attacks = document["assessment"][0]["attacks"]
    assert attacks["membership"]["auc"] == 0.55
    assert attacks["extraction"]["curves"]["random"]["queries"] == [100, 500]


def test_removed_share_of_the_advantage() -> None:
    auc = Removed(figure="auc", bare=0.9, defended=0.5, chance=0.5, higher_is_riskier=True)
    assert auc.removed == 1.0
    half = Removed(figure="acc", bare=0.2, defended=0.6, chance=1.0, higher_is_riskier=False)
    assert half.removed is not None and abs(half.removed - 0.5) < 1e-9
    assert (
        Removed(figure="x", bare=None, defended=0.5, chance=0.5, higher_is_riskier=True).removed
        is None
    )


def test_html_escapes_what_the_target_says() -> None:
    hostile = Assessment(
        target="<script>alert(1)</script>",
        output="labels",
        n_classes=10,
        value_range=(0.0, 1.0),
        outcomes=(AttackOutcome(attack="membership", status="failed", code="E503", reason="<b>"),),
        queries=0,
        seconds=0.0,
    )
    config = AssessConfig()
    report = assessment_report([hostile], config.thresholds)
    page = render_html([hostile], report, config.thresholds, verdict="error")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg ") == 3


def test_recognised_reconstructions_above_the_maximum() -> None:
    base = _assessment()
    done = AttackOutcome(
        attack="inversion",
        status="done",
        summary=InversionSummary(recognised=9, classes=10, similarity=0.8),
    )
    recognised = Assessment(
        target=base.target,
        output=base.output,
        n_classes=10,
        value_range=base.value_range,
        outcomes=(*base.outcomes[:3], done),
        queries=0,
        seconds=0.0,
    )
    report = assessment_report([recognised], Thresholds())
    atk004 = [f for f in report.findings if f.rule_id == "ATK004"]
    assert len(atk004) == 1 and "9 of 10" in atk004[0].message
