"""Screening: honest cohorts pass, attackers are quarantined, quarantines are audited."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlwarden.audit import AuditEvent, BatchedAuditWriter, Decision, open_audit_log
from mlwarden.errors import AuditStoreError
from mlwarden.fl import FEATURES, screen
from mlwarden.report import Finding
from mlwarden.severity import Severity
from mlwarden.taxonomy import Threat, get_rule

from .conftest import Cohort, honest_cohort


def _attack(cohort: Cohort) -> Cohort:
    """c00 sign-flipped, c01 boosted by 20, c02 sent in a direction of its own."""
    rng = np.random.default_rng(9)
    cohort["c00"] = {k: -v for k, v in cohort["c00"].items()}
    cohort["c01"] = {k: 20.0 * v for k, v in cohort["c01"].items()}
    cohort["c02"] = {
        k: rng.normal(0, 1.5, v.shape).astype(v.dtype) for k, v in cohort["c02"].items()
    }
    return cohort


def test_honest_cohort_is_not_quarantined() -> None:
    result = screen(honest_cohort(20, seed=0))
    assert result.quarantined == ()
    assert len(result.accepted) == 20
    assert all(s.score <= result.threshold and not s.reasons for s in result.scores)


@pytest.mark.parametrize("clients", [12, 20, 50])
def test_false_alarm_rate_of_the_default_threshold(clients: int) -> None:
    # 100 honest cohorts: under 1% of honest clients quarantined (the docstring's claim).
    flagged = sum(len(screen(honest_cohort(clients, seed=s)).quarantined) for s in range(100))
    assert flagged / (100 * clients) < 0.01


def test_attackers_are_quarantined_with_their_reasons(cohort: Cohort) -> None:
    result = screen(_attack(cohort), round=4)
    assert result.quarantined == ("c00", "c01", "c02")
    assert result.accepted == tuple(f"c{i:02d}" for i in range(3, 12))
    by_client = {s.client: s for s in result.scores}
    assert "FL004" in by_client["c00"].reasons and "FL003" in by_client["c00"].reasons
    assert by_client["c00"].features["cosine_to_aggregate"] > 1.5  # pointing backwards
    assert "FL002" in by_client["c01"].reasons and "FL003" not in by_client["c01"].reasons
    assert "FL003" in by_client["c02"].reasons
    for score in result.scores:
        assert len(set(score.reasons)) == len(score.reasons)
        assert set(score.features) == set(FEATURES) == set(score.z)
        assert score.score == pytest.approx(max(score.z.values()))


def test_a_smaller_than_usual_update_is_not_an_attack(cohort: Cohort) -> None:
    # One-sided scores: a client that barely trained is not quarantined for it.
    cohort["c04"] = {k: 0.1 * v for k, v in cohort["c04"].items()}
    assert screen(cohort).quarantined == ()


def test_threshold_decides(cohort: Cohort) -> None:
    result = screen(_attack(cohort))
    middle = sorted(s.score for s in result.scores)[-2]  # between c-scores
    fewer = screen(_attack(honest_cohort(12)), threshold=middle)
    assert len(fewer.quarantined) < len(result.quarantined)


def test_findings_carry_the_rules(cohort: Cohort) -> None:
    findings = screen(_attack(cohort), round=2).findings()
    quarantines = [f for f in findings if f.rule_id == "FL001"]
    assert [f.detail["client"] for f in quarantines] == ["c00", "c01", "c02"]
    first = quarantines[0]
    assert isinstance(first, Finding)
    assert first.location == "federated round!round 2/client c00"
    assert first.effective_severity is Severity.HIGH
    assert first.rule.threat is Threat.POISONED_UPDATES
    assert {f.rule_id for f in findings} == {"FL001", "FL002", "FL003", "FL004"}
    assert all(get_rule(f.rule_id).id.startswith("FL") for f in findings)
    assert first.to_dict()["rule_id"] == "FL001"


def _records(url: str) -> list[AuditEvent]:
    log = open_audit_log(url)
    try:
        assert log.verify().intact
        return [r.event for r in log.tail(100)]
    finally:
        log.close()


def test_each_quarantine_is_an_audit_event_and_the_chain_verifies(
    cohort: Cohort, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = open_audit_log(url)
    try:
        screen(_attack(cohort), round=7, audit=log, model="digits-fl")
        screen(honest_cohort(12, seed=1), round=8, audit=log)  # no quarantine, no event
    finally:
        log.close()
    events = _records(url)
    assert [e.identity for e in events] == ["c00", "c01", "c02"]
    for event in events:
        assert event.kind == "fl.quarantine" and event.decision is Decision.DENY
        assert event.reason == "FL001" and event.model == "digits-fl"
        assert event.request_id == f"fl-round-7-{event.identity}"
        detail = dict(event.detail or {})
        assert detail["round"] == 7 and detail["client"] == event.identity
        assert set(detail["z"]) == set(FEATURES)  # type: ignore[arg-type]
        assert float(str(detail["score"])) > 5.0  # decimals as strings: no floats
    assert list(events[1].detail["rules"]) == ["FL002"]  # type: ignore[index, call-overload]


def test_batched_writer_records_quarantines(cohort: Cohort, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = open_audit_log(url)
    writer = BatchedAuditWriter(log)
    try:
        result = screen(_attack(cohort), round=1, audit=writer)
        writer.flush(timeout=10)
    finally:
        writer.close(timeout=10)
        log.close()
    assert [e.identity for e in _records(url)] == list(result.quarantined)


def test_an_audit_store_that_fails_is_not_ignored(cohort: Cohort, tmp_path: Path) -> None:
    # Fail closed: a closed log refuses the events and the error reaches the caller.
    log = open_audit_log(f"sqlite:///{tmp_path / 'audit.db'}")
    log.close()
    with pytest.raises(AuditStoreError, match="is closed") as info:
        screen(_attack(cohort), audit=log)
    assert info.value.code == "E351"
