"""Advisories as mlwarden reports them, and the severity an OSV record gives."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from mlwarden.severity import Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class Advisory:
    """One known vulnerability of one package version."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    fixed_in: tuple[str, ...]
    severity: Severity | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VulnerabilityOutcome:
    """What the advisory source said about one dependency.

    `not_checked` holds the reason when it could not say anything: then
    `advisories` is empty and means nothing, never "clean".
    """

    advisories: tuple[Advisory, ...] = ()
    not_checked: str | None = None


_WORDS = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
}


def severity_from_word(word: str) -> Severity | None:
    """GitHub's and most databases' words: LOW, MODERATE, HIGH, CRITICAL."""
    return _WORDS.get(word.strip().lower())


def severity_from_score(score: float) -> Severity:
    """The CVSS qualitative rating of a base score."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.INFO


_AV = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_AC = {"L": 0.77, "H": 0.44}
_UI = {"N": 0.85, "R": 0.62}
_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}
_PR_UNCHANGED = {"N": 0.85, "L": 0.62, "H": 0.27}
_PR_CHANGED = {"N": 0.85, "L": 0.68, "H": 0.5}


def _round_up(value: float) -> float:
    """CVSS 3.1 Roundup: the smallest one-decimal number >= value, free of float noise."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10


def cvss3_base_score(vector: str) -> float | None:
    """The base score of a CVSS 3.0/3.1 vector, or None if it is not one."""
    parts = vector.strip().split("/")
    if not parts or not parts[0].startswith("CVSS:3"):
        return None
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep:
            return None
        metrics[key] = value
    try:
        changed = metrics["S"] == "C"
        if metrics["S"] not in ("U", "C"):
            return None
        privileges = (_PR_CHANGED if changed else _PR_UNCHANGED)[metrics["PR"]]
        exploitability = 8.22 * _AV[metrics["AV"]] * _AC[metrics["AC"]] * privileges
        exploitability *= _UI[metrics["UI"]]
        impact_base = 1 - (
            (1 - _CIA[metrics["C"]]) * (1 - _CIA[metrics["I"]]) * (1 - _CIA[metrics["A"]])
        )
    except KeyError:
        return None
    if changed:
        impact = 7.52 * (impact_base - 0.029) - 3.25 * (impact_base - 0.02) ** 15
    else:
        impact = 6.42 * impact_base
    if impact <= 0:
        return 0.0
    total = impact + exploitability
    return _round_up(min(1.08 * total if changed else total, 10.0))


def osv_severity(record: Mapping[str, object], affected: Mapping[str, object]) -> Severity | None:
    """The highest severity an OSV record states: CVSS v3 vectors, or database words."""
    found: list[Severity] = []
    entries = record.get("severity")
    for source in (entries, affected.get("severity")):
        if isinstance(source, list):
            for entry in source:
                if isinstance(entry, dict) and isinstance(entry.get("score"), str):
                    score = cvss3_base_score(entry["score"])
                    if score is not None:
                        found.append(severity_from_score(score))
    for holder in (record, affected):
        for key in ("database_specific", "ecosystem_specific"):
            section = holder.get(key)
            if isinstance(section, dict) and isinstance(section.get("severity"), str):
                word = severity_from_word(section["severity"])
                if word is not None:
                    found.append(word)
    return max(found) if found else None
