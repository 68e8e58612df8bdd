"""The attacks of `mlwarden assess`; each returns a frozen result and never prints."""

from mlwarden.assess.attacks._evasion import EvasionResult, adversarial_examples, evasion
from mlwarden.assess.attacks._extraction import (
    STRATEGIES,
    ExtractionCurve,
    ExtractionResult,
    extraction,
)
from mlwarden.assess.attacks._inversion import (
    InversionResult,
    inversion,
    recognised_by_independent,
)
from mlwarden.assess.attacks._membership import MembershipResult, membership

__all__ = [
    "STRATEGIES",
    "EvasionResult",
    "ExtractionCurve",
    "ExtractionResult",
    "InversionResult",
    "MembershipResult",
    "adversarial_examples",
    "evasion",
    "extraction",
    "inversion",
    "membership",
    "recognised_by_independent",
]
