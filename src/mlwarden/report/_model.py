"""Findings and reports: the one kind of data every check produces."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, get_rule

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One thing a check found about one object.

    `location` names the object: a path, and for content inside a container the
    member path after a `!` (``model.zip!model/data.pkl``). `detail` holds short
    machine-readable facts (the callable, an opcode offset).
    """

    rule_id: str
    message: str
    location: str
    severity: Severity | None = None
    detail: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The rule's severity unless the check chose another: always explicit after this.
        if self.severity is None:
            object.__setattr__(self, "severity", get_rule(self.rule_id).severity)

    @property
    def rule(self) -> Rule:
        return get_rule(self.rule_id)

    @property
    def effective_severity(self) -> Severity:
        return self.severity if self.severity is not None else self.rule.severity

    @property
    def verdict(self) -> Verdict:
        return self.rule.verdict

    def to_dict(self) -> dict[str, Any]:
        rule = self.rule
        return {
            "rule_id": self.rule_id,
            "title": rule.title,
            "message": self.message,
            "location": self.location,
            "severity": self.effective_severity.label,
            "verdict": self.verdict.value,
            "threat": rule.threat.info.key,
            "atlas": list(rule.atlas),
            "owasp": list(rule.owasp),
            "mitigation": rule.mitigation,
            "detail": dict(self.detail),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            rule_id=str(data["rule_id"]),
            message=str(data["message"]),
            location=str(data["location"]),
            severity=Severity.parse(str(data["severity"])),
            detail={str(k): str(v) for k, v in dict(data.get("detail", {})).items()},
        )


class Status(enum.Enum):
    """What happened to one input: every input gets exactly one."""

    CHECKED = "checked"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectResult:
    """The outcome for one input object (a file, or a named artifact)."""

    path: str
    status: Status
    format: str | None = None
    findings: tuple[Finding, ...] = ()
    reason: str | None = None
    code: str | None = None
    size: int | None = None
    duration_s: float = 0.0

    @property
    def verdict(self) -> Verdict:
        if self.status is Status.FAILED:
            return Verdict.ERROR
        if self.status is Status.SKIPPED:
            return Verdict.CLEAN
        return Verdict.worst([f.verdict for f in self.findings])

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status.value,
            "verdict": self.verdict.value,
            "format": self.format,
            "reason": self.reason,
            "code": self.code,
            "size": self.size,
            "duration_s": round(self.duration_s, 6),
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectResult:
        return cls(
            path=str(data["path"]),
            status=Status(data["status"]),
            format=data.get("format"),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", [])),
            reason=data.get("reason"),
            code=data.get("code"),
            size=data.get("size"),
            duration_s=float(data.get("duration_s", 0.0)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Everything one run found. Renderers start from here."""

    kind: str
    tool_version: str
    results: tuple[ObjectResult, ...]
    duration_s: float = 0.0

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for r in self.results for f in r.findings)

    @property
    def checked(self) -> tuple[ObjectResult, ...]:
        return tuple(r for r in self.results if r.status is Status.CHECKED)

    @property
    def verdict(self) -> Verdict:
        return Verdict.worst([r.verdict for r in self.results])

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status} | {v.value: 0 for v in Verdict}
        for result in self.results:
            counts[result.status.value] += 1
            if result.status is not Status.SKIPPED:
                counts[result.verdict.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "mlwarden", "version": self.tool_version},
            "kind": self.kind,
            "verdict": self.verdict.value,
            "duration_s": round(self.duration_s, 6),
            "summary": self.counts(),
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported report schema_version {data.get('schema_version')!r}")
        return cls(
            kind=str(data["kind"]),
            tool_version=str(data["tool"]["version"]),
            results=tuple(ObjectResult.from_dict(r) for r in data["results"]),
            duration_s=float(data.get("duration_s", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Gate:
    """The --fail-on threshold: a verdict (suspicious, malicious) or a severity."""

    verdict: Verdict | None = None
    severity: Severity | None = None

    @classmethod
    def parse(cls, text: str) -> Gate:
        name = text.strip().lower()
        if name in ("suspicious", "malicious"):
            return cls(verdict=Verdict(name))
        return cls(severity=Severity.parse(name))

    def fails(self, report: Report) -> bool:
        """True when the report holds anything at or above the threshold."""
        if self.verdict is not None:
            threshold = self.verdict.rank
            return any(
                r.verdict.rank >= threshold
                for r in report.results
                if r.status is not Status.SKIPPED
            )
        assert self.severity is not None
        if any(r.status is Status.FAILED for r in report.results):
            return True
        return any(f.effective_severity >= self.severity for f in report.findings)
