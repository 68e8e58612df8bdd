"""Turn dependencies and advisory answers into a Report: one result per dependency."""

from __future__ import annotations

import time
from collections.abc import Sequence

from mlwarden import __version__
from mlwarden.packages._advisory import VulnerabilityOutcome
from mlwarden.packages._model import Dependency, DependencySet, Origin
from mlwarden.packages._typosquat import find_typosquat
from mlwarden.report import Finding, ObjectResult, Report, Status

REPORT_KIND = "deps"


def dependency_findings(
    dependency: Dependency,
    outcome: VulnerabilityOutcome,
    *,
    hashes_required: bool,
    from_file: bool,
) -> tuple[Finding, ...]:
    """Every finding about one dependency, in rule order."""
    where = dependency.location
    name = dependency.name or dependency.url or "?"
    base = {"package": dependency.name, "version": dependency.version or ""}
    findings: list[Finding] = []
    for advisory in outcome.advisories:
        fixed = ", ".join(advisory.fixed_in) or "none yet"
        findings.append(
            Finding(
                rule_id="DEP001",
                message=f"{dependency.label}: {advisory.id}: {advisory.summary} "
                f"(fixed in: {fixed})",
                location=where,
                severity=advisory.severity,
                detail=base
                | {
                    "advisory": advisory.id,
                    "aliases": ", ".join(advisory.aliases),
                    "fixed_in": ", ".join(advisory.fixed_in),
                },
            )
        )
    if outcome.not_checked is not None:
        findings.append(
            Finding(
                rule_id="DEP002",
                message=f"{name}: not checked for known vulnerabilities: {outcome.not_checked}",
                location=where,
                detail=base | {"reason": outcome.not_checked},
            )
        )
    if from_file and dependency.origin is Origin.INDEX and dependency.version is None:
        findings.append(
            Finding(
                rule_id="DEP003",
                message=f"{name} is not pinned to one version "
                f"({dependency.specifier or 'any version'})",
                location=where,
                detail=base | {"specifier": dependency.specifier},
            )
        )
    if from_file and hashes_required and not dependency.hashes:
        findings.append(
            Finding(
                rule_id="DEP004",
                message=f"{name} carries no --hash while hashes are required",
                location=where,
                detail=base,
            )
        )
    origin_rule = {Origin.URL: "DEP005", Origin.VCS: "DEP006", Origin.PATH: "DEP008"}
    if dependency.origin in origin_rule:
        how = {"DEP005": "a direct URL", "DEP006": "a VCS repository", "DEP008": "a local path"}
        rule_id = origin_rule[dependency.origin]
        editable = " (editable)" if dependency.editable else ""
        findings.append(
            Finding(
                rule_id=rule_id,
                message=f"{name} installs from {how[rule_id]}{editable}: {dependency.url or '?'}",
                location=where,
                detail=base | {"url": dependency.url or ""},
            )
        )
    squat = find_typosquat(dependency.name) if dependency.name else None
    if squat is not None:
        findings.append(
            Finding(
                rule_id="DEP007",
                message=f"{dependency.name!r} looks like a typosquat of {squat.target!r}: "
                f"{squat.how}",
                location=where,
                detail=base | {"imitates": squat.target},
            )
        )
    return tuple(findings)


def build_report(
    dependency_set: DependencySet,
    outcomes: Sequence[VulnerabilityOutcome],
    *,
    require_hashes: bool,
    started: float,
) -> Report:
    from_file = dependency_set.source != "environment"
    hashes_required = (
        require_hashes
        or dependency_set.require_hashes
        or any(d.hashes for d in dependency_set.dependencies)
    )
    results: list[ObjectResult] = []
    for dependency, outcome in zip(dependency_set.dependencies, outcomes, strict=True):
        results.append(
            ObjectResult(
                path=dependency.label,
                status=Status.CHECKED,
                format="requirement" if from_file else "installed",
                findings=dependency_findings(
                    dependency, outcome, hashes_required=hashes_required, from_file=from_file
                ),
            )
        )
    for where, reason in dependency_set.problems:
        results.append(ObjectResult(path=where, status=Status.FAILED, reason=reason, code="E105"))
    return Report(
        kind=REPORT_KIND,
        tool_version=__version__,
        results=tuple(results),
        duration_s=time.perf_counter() - started,
    )
