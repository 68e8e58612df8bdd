"""SARIF 2.1.0, as GitHub code scanning accepts it.

Each rule carries help text and a `security-severity` score (GitHub's own
property, a CVSS-like 0-10 number that sets the alert's severity). Results
carry `partialFingerprints` so an alert keeps its identity across runs; the
location inside a container (``model.zip!archive/data.pkl``) becomes a
logical location beside the physical file.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote

from mlwarden.report._model import Finding, Report, Status
from mlwarden.rules import RULES
from mlwarden.severity import Severity
from mlwarden.taxonomy import Rule

SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/mlwarden/mlwarden"

_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def _rule_descriptor(rule: Rule) -> dict[str, Any]:
    tags = ["security", rule.threat.info.key, *rule.atlas, *rule.owasp]
    help_text = (
        f"{rule.help}\n\nThreat: {rule.threat.info.title}. MITRE ATLAS: {', '.join(rule.atlas)}. "
        f"OWASP ML Top 10: {', '.join(rule.owasp) or 'none'}. Mitigation: {rule.mitigation}."
    )
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.title.split()),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.help},
        "help": {"text": help_text, "markdown": help_text},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "security-severity": _SECURITY_SEVERITY[rule.severity],
            "precision": "high",
            "problem.severity": "error" if rule.severity >= Severity.HIGH else "warning",
            "tags": tags,
            "verdict": rule.verdict.value,
        },
    }


def _uri(path: str) -> str:
    return quote(path.replace("\\", "/").removeprefix("./"), safe="/:@")


def _fingerprint(finding: Finding) -> str:
    key = "\x1f".join(
        [finding.rule_id, finding.location, *sorted(f"{k}={v}" for k, v in finding.detail.items())]
    )
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


_FILE_LINE = re.compile(r"^(?P<file>.+):(?P<line>[1-9]\d*)$")


def _physical(finding: Finding, object_path: str) -> tuple[str, int]:
    """The file and line to show: a `file:line` location (a requirement in
    requirements.txt) names its own; otherwise the object's file, line 1."""
    match = _FILE_LINE.match(finding.location)
    if match and not finding.location.startswith(object_path + "!"):
        return match["file"], int(match["line"])
    return object_path, 1


def _result(finding: Finding, object_path: str, rule_index: int) -> dict[str, Any]:
    severity = finding.effective_severity
    file_path, line = _physical(finding, object_path)
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": _uri(file_path)},
            "region": {"startLine": line},
        }
    }
    if finding.location not in (file_path, f"{file_path}:{line}"):
        location["logicalLocations"] = [{"fullyQualifiedName": finding.location, "kind": "member"}]
    return {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": _LEVEL[severity],
        "message": {"text": f"{finding.location}: {finding.message}"},
        "locations": [location],
        "partialFingerprints": {"mlwardenFinding/v1": _fingerprint(finding)},
        "properties": {
            "severity": severity.label,
            "security-severity": _SECURITY_SEVERITY[severity],
            "verdict": finding.verdict.value,
            "detail": dict(finding.detail),
        },
    }


def to_sarif(report: Report) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log with one run."""
    index = {rule.id: i for i, rule in enumerate(RULES)}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for item in report.results:
        for finding in item.findings:
            results.append(_result(finding, item.path, index[finding.rule_id]))
        if item.status is Status.FAILED:
            notifications.append(
                {
                    "level": "error",
                    "message": {"text": f"{item.path}: {item.code}: {item.reason}"},
                    "descriptor": {"id": item.code or "E900"},
                }
            )
    checked = any(r.status is Status.CHECKED for r in report.results)
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlwarden",
                        "version": report.tool_version,
                        "semanticVersion": report.tool_version,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule_descriptor(rule) for rule in RULES],
                    }
                },
                "automationDetails": {"id": f"mlwarden/{report.kind}/"},
                "invocations": [
                    {
                        "executionSuccessful": checked or not report.results,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
            }
        ],
    }
