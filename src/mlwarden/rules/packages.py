"""Rules of the dependency audit (`mlwarden deps`).

Every dependency either was checked against advisories or carries DEP002:
"not checked" is a finding of its own, never silence, so a gate fails closed.
"""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

_SCAN = "AML.M0016 Vulnerability Scanning"
_BOM = "AML.M0023 AI Bill of Materials"


def _dep_rule(
    rule_id: str, title: str, help_text: str, severity: Severity, mitigation: str
) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        help=help_text,
        severity=severity,
        verdict=Verdict.SUSPICIOUS,
        threat=Threat.VULNERABLE_PACKAGES,
        mitigation=mitigation,
    )


PACKAGE_RULES: tuple[Rule, ...] = (
    _dep_rule(
        "DEP001",
        "Package version has a known vulnerability",
        "An advisory lists this exact version as affected. Upgrade to a fixed version "
        "(named in the finding) or remove the package.",
        Severity.HIGH,
        _SCAN,
    ),
    _dep_rule(
        "DEP002",
        "Package not checked for known vulnerabilities",
        "The advisory service could not be asked (unreachable, no data for this version) or "
        "the requirement names no exact version. Unknown is not clean: pin the version, make "
        "the advisory service reachable, or pass an OSV export with --advisories.",
        Severity.CRITICAL,
        _SCAN,
    ),
    _dep_rule(
        "DEP003",
        "Requirement is not pinned to one version",
        "Without an exact `==` version each install may resolve to a different release, "
        "including a compromised one. Pin it (and hash it) in the application's lock file.",
        Severity.MEDIUM,
        _BOM,
    ),
    _dep_rule(
        "DEP004",
        "Requirement carries no hash",
        "Hashes are required (--require-hashes) or other requirements in the same file carry "
        "them, but this one does not: pip cannot check what it downloads. Add --hash=sha256:...",
        Severity.MEDIUM,
        _BOM,
    ),
    _dep_rule(
        "DEP005",
        "Requirement installs from a direct URL",
        "The package comes from a URL instead of the index: no advisory covers it and, without "
        "a hash, its content may change. Publish it to a trusted index or pin its hash.",
        Severity.HIGH,
        _BOM,
    ),
    _dep_rule(
        "DEP006",
        "Requirement installs from a version-control repository",
        "The package is built from a VCS checkout: a branch or tag can move and the build runs "
        "code. Pin a full commit id at least, or use a released, hashed package.",
        Severity.HIGH,
        _BOM,
    ),
    _dep_rule(
        "DEP007",
        "Package name looks like a typosquat of a popular ML package",
        "The name is a near miss of a popular ML or data package (a typo, a swapped or "
        "look-alike character, a changed separator, an added prefix or suffix). Check that this "
        "is the package you meant; typosquats run code when installed.",
        Severity.HIGH,
        _SCAN,
    ),
    _dep_rule(
        "DEP008",
        "Requirement installs from a local path",
        "The package is built from a local directory or file: what is installed depends on the "
        "machine, and no advisory covers it. Use a released, pinned and hashed package.",
        Severity.MEDIUM,
        _BOM,
    ),
)
