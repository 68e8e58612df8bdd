"""Rules of federated-update screening (`mlwarden.fl.screen`).

A finding's location names the round and the client
(`federated round!round 3/client c17`). FL001 is the quarantine itself; FL002-FL004 say
which feature of the update put it there.
"""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

# Robust aggregation and screening verify each update's behaviour before it joins the
# model: the nearest ATLAS mitigation is verifying what goes into the model.
_VERIFY = "AML.M0014 Verify AI Artifacts"
_REMEDY = (
    "The update was left out of this round's aggregate. Check the client (its data, its "
    "software, its credentials) before admitting its updates again, and aggregate with a "
    "robust rule (median, trimmed mean, Krum) so that clients the screen misses are bounded."
)


def _fl(rule_id: str, title: str, help_text: str, severity: Severity) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        help=f"{help_text} {_REMEDY}",
        severity=severity,
        verdict=Verdict.SUSPICIOUS,
        threat=Threat.POISONED_UPDATES,
        mitigation=_VERIFY,
    )


FL_RULES: tuple[Rule, ...] = (
    _fl("FL001", "Federated client update quarantined",
        "The client's update scored past the screening threshold against the rest of the "
        "cohort (its largest robust z-score over norm, direction and sign agreement).",
        Severity.HIGH),
    _fl("FL002", "Federated update norm far above the cohort",
        "The update is much larger than the others: boosted scaling or model replacement, "
        "which lets one client outweigh the rest in a plain average.",
        Severity.HIGH),
    _fl("FL003", "Federated update points away from the cohort",
        "The update's direction is far (cosine distance) from the cohort's median and from "
        "the other clients: sign flipping, or training towards another objective such as a "
        "backdoor.",
        Severity.HIGH),
    _fl("FL004", "Federated update disagrees in sign with the cohort",
        "An unusual share of the update's coordinates has the opposite sign to the cohort's "
        "median: a sign-flipping or gradient-ascent client.",
        Severity.MEDIUM),
)  # fmt: skip
