"""SARIF output validates against the official 2.1.0 schema and carries what
GitHub code scanning needs (rule help, security-severity, fingerprints)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from mlwarden.report import Finding, ObjectResult, Report, Status
from mlwarden.report._sarif import to_sarif
from mlwarden.report.render import OutputFormat, render
from mlwarden.rules import RULES

SCHEMA_PATH = Path(__file__).resolve().parents[2] / ".cache" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def sarif_schema() -> dict[str, object]:
    if not SCHEMA_PATH.exists():
        pytest.fail(f"{SCHEMA_PATH} is missing: `make test` fetches the official schema")
    return json.loads(SCHEMA_PATH.read_text())


def _report() -> Report:
    findings = (
        Finding(
            rule_id="PKL001",
            message="calls posix.system",
            location="m/model.zip!archive/data.pkl",
            detail={"callable": "posix.system", "offset": "12"},
        ),
        Finding(rule_id="PKL002", message="imports x.y", location="m/model.zip"),
    )
    return Report(
        kind="scan",
        tool_version="0.1.0",
        results=(
            ObjectResult(
                path="m/model.zip", status=Status.CHECKED, format="zip", findings=findings
            ),
            ObjectResult(path="m/clean.safetensors", status=Status.CHECKED, format="safetensors"),
            ObjectResult(path="m/README.md", status=Status.SKIPPED, reason="not a model format"),
            ObjectResult(path="m/gone.pt", status=Status.FAILED, code="E103", reason="cannot open"),
        ),
    )


def test_sarif_validates_against_official_schema(sarif_schema: dict[str, object]) -> None:
    log = json.loads(render(_report(), OutputFormat.SARIF))
    jsonschema.Draft4Validator(sarif_schema).validate(log)


def test_sarif_of_empty_report_validates(sarif_schema: dict[str, object]) -> None:
    log = to_sarif(Report(kind="scan", tool_version="0.1.0", results=()))
    jsonschema.Draft4Validator(sarif_schema).validate(log)
    assert log["runs"][0]["results"] == []


def test_sarif_rules_carry_github_properties() -> None:
    log = to_sarif(_report())
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in RULES]
    for rule in rules:
        assert rule["help"]["text"]
        score = float(rule["properties"]["security-severity"])
        assert 0.0 <= score <= 10.0
        assert "security" in rule["properties"]["tags"]


def test_sarif_results_have_fingerprints_and_member_locations() -> None:
    log = to_sarif(_report())
    run = log["runs"][0]
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["PKL001", "PKL002"]
    first = results[0]
    assert run["tool"]["driver"]["rules"][first["ruleIndex"]]["id"] == "PKL001"
    assert first["level"] == "error"
    assert first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "m/model.zip"
    assert first["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].endswith("data.pkl")
    fingerprints = {r["partialFingerprints"]["mlwardenFinding/v1"] for r in results}
    assert len(fingerprints) == 2
    # Stable across runs: the same finding gives the same fingerprint.
    again = to_sarif(_report())["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in again] == [r["partialFingerprints"] for r in results]
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 1 and "E103" in notes[0]["message"]["text"]


def test_file_and_line_locations_become_physical_regions(sarif_schema: dict[str, object]) -> None:
    finding = Finding(rule_id="PKL002", message="m", location="reqs/requirements.txt:7")
    report = Report(
        kind="deps",
        tool_version="0.1.0",
        results=(ObjectResult(path="torch>=2", status=Status.CHECKED, findings=(finding,)),),
    )
    log = to_sarif(report)
    jsonschema.Draft4Validator(sarif_schema).validate(log)
    physical = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "reqs/requirements.txt"
    assert physical["region"]["startLine"] == 7
