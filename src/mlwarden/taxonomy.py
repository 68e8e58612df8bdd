"""The threats mlwarden exists for, and what a rule is.

The rules themselves live in `mlwarden.rules`, one module per area. Every rule
carries its threat, its MITRE ATLAS and OWASP ML Top 10 ids and the ATLAS
mitigation that answers it, so every renderer can show them. Rule ids are
stable and never reused; a retired rule stays in the catalogue, marked retired.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache

from mlwarden.severity import Severity, Verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreatInfo:
    key: str
    title: str
    atlas: tuple[str, ...]
    owasp: tuple[str, ...]


class Threat(enum.Enum):
    """The threats of THREATS.md; the value carries the mappings."""

    DATA_POISONING = ThreatInfo(
        key="data-poisoning",
        title="Data poisoning",
        atlas=("AML.T0020", "AML.T0019", "AML.T0010.002"),
        owasp=("ML02", "ML08"),
    )
    MODEL_INVERSION = ThreatInfo(
        key="model-inversion",
        title="Model inversion",
        atlas=("AML.T0024.001",),
        owasp=("ML03",),
    )
    MODEL_STEALING = ThreatInfo(
        key="model-stealing",
        title="Model stealing",
        atlas=("AML.T0024.002", "AML.T0005", "AML.T0040"),
        owasp=("ML05",),
    )
    ADVERSARIAL_EXAMPLES = ThreatInfo(
        key="adversarial-examples",
        title="Adversarial examples",
        atlas=("AML.T0015", "AML.T0043"),
        owasp=("ML01",),
    )
    POISONED_UPDATES = ThreatInfo(
        key="poisoned-updates",
        title="Poisoned model updates",
        atlas=("AML.T0010.003", "AML.T0011.000", "AML.T0018.002", "AML.T0058"),
        owasp=("ML06", "ML10", "ML07"),
    )
    PRIVACY_LEAKAGE = ThreatInfo(
        key="privacy-leakage",
        title="Privacy leakage",
        atlas=("AML.T0024.000", "AML.T0057"),
        owasp=("ML04", "ML03"),
    )
    VULNERABLE_PACKAGES = ThreatInfo(
        key="vulnerable-packages",
        title="Vulnerable packages",
        atlas=("AML.T0010.001",),
        owasp=("ML06",),
    )
    SERVICE_ABUSE = ThreatInfo(
        key="service-abuse",
        title="Abuse of the service",
        atlas=("AML.T0029", "AML.T0034"),
        owasp=(),
    )

    @property
    def info(self) -> ThreatInfo:
        value: ThreatInfo = self.value
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One check. `verdict` is what a finding of this rule makes its object."""

    id: str
    title: str
    help: str
    severity: Severity
    verdict: Verdict
    threat: Threat
    mitigation: str

    @property
    def atlas(self) -> tuple[str, ...]:
        return self.threat.info.atlas

    @property
    def owasp(self) -> tuple[str, ...]:
        return self.threat.info.owasp


def all_rules() -> tuple[Rule, ...]:
    """Every rule of every area, in catalogue order."""
    from mlwarden.rules import RULES

    return RULES


@cache
def _by_id() -> dict[str, Rule]:
    return {rule.id: rule for rule in all_rules()}


def get_rule(rule_id: str) -> Rule:
    """The rule with this id; a KeyError here is a bug in mlwarden."""
    return _by_id()[rule_id]
