"""Reports round-trip through JSON; verdicts and gates order as documented."""

from __future__ import annotations

import json

import pytest

from mlwarden.report import (
    SCHEMA_VERSION,
    Finding,
    Gate,
    ObjectResult,
    Report,
    Severity,
    Status,
    Verdict,
)
from mlwarden.report.render import OutputFormat, render


def _result(*rule_ids: str, status: Status = Status.CHECKED) -> ObjectResult:
    findings = tuple(Finding(rule_id=r, message="m", location="f") for r in rule_ids)
    return ObjectResult(path="f", status=status, findings=findings, format="pickle")


def test_report_round_trips_through_json() -> None:
    report = Report(
        kind="scan",
        tool_version="0.1.0",
        results=(
            _result("PKL001", "PKL002"),
            ObjectResult(path="g", status=Status.SKIPPED, reason="not a model format"),
            ObjectResult(path="h", status=Status.FAILED, code="E103", reason="cannot open"),
        ),
        duration_s=0.5,
    )
    data = json.loads(render(report, OutputFormat.JSON))
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["summary"]["checked"] == 1 and data["summary"]["failed"] == 1
    again = Report.from_dict(data)
    assert again == report


def test_unknown_schema_version_is_refused() -> None:
    with pytest.raises(ValueError, match="schema_version"):
        Report.from_dict({"schema_version": "0.0", "kind": "scan", "tool": {}, "results": []})


def test_verdicts_of_objects() -> None:
    assert _result().verdict is Verdict.CLEAN
    assert _result("PKL002").verdict is Verdict.SUSPICIOUS
    assert _result("PKL002", "PKL001").verdict is Verdict.MALICIOUS
    assert _result(status=Status.FAILED).verdict is Verdict.ERROR
    assert _result(status=Status.SKIPPED).verdict is Verdict.CLEAN


@pytest.mark.parametrize(
    ("gate", "rules", "fails"),
    [
        ("suspicious", [], False),
        ("suspicious", ["PKL002"], True),
        ("malicious", ["PKL002"], False),
        ("malicious", ["PKL001"], True),
        ("critical", ["PKL003"], False),
        ("high", ["PKL003"], True),
        ("medium", ["PKL002"], True),
    ],
)
def test_gate(gate: str, rules: list[str], fails: bool) -> None:
    report = Report(kind="scan", tool_version="0", results=(_result(*rules),))
    assert Gate.parse(gate).fails(report) is fails


def test_failed_input_fails_every_gate() -> None:
    report = Report(kind="scan", tool_version="0", results=(_result(status=Status.FAILED),))
    assert Gate.parse("suspicious").fails(report)
    assert Gate.parse("critical").fails(report)


def test_severity_parse() -> None:
    assert Severity.parse("High") is Severity.HIGH
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("urgent")
