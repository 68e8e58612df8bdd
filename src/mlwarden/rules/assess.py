"""Rules of `mlwarden assess`: one per attack kind, raised when the measured risk
crosses the threshold configured for it (the thresholds live in `mlwarden.yaml`).

A finding of these rules names the target and carries the measured figure (robust
accuracy, membership AUC, extraction fidelity, recognised reconstructions, attribute
inference advantage) beside the threshold it crossed.
"""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

_H, _M = Severity.HIGH, Severity.MEDIUM
_SUS = Verdict.SUSPICIOUS

ATTACK_RULES: tuple[Rule, ...] = (
    Rule(
        id="ATK001",
        title="Model evaded by adversarial inputs",
        help="Robust accuracy under a bounded perturbation (FGSM/PGD white-box, or a "
        "label- or score-only black-box attack) is below the threshold: small crafted "
        "changes to inputs flip the model's decisions. Train adversarially (PGD training) "
        "or with randomized smoothing, and put adversarial-input detection and input "
        "validation in front of the endpoint.",
        severity=_H,
        verdict=_SUS,
        threat=Threat.ADVERSARIAL_EXAMPLES,
        mitigation="AML.M0015 Adversarial Input Detection",
    ),
    Rule(
        id="ATK002",
        title="Training-set membership can be inferred",
        help="A membership inference attack (LiRA, loss or confidence thresholds) tells "
        "training records from others above the threshold (ROC AUC, or true positives at a "
        "low false-positive rate): the model memorises its training data. Regularise or "
        "train with differential privacy, and return labels only (or rounded top-k scores) "
        "at the endpoint.",
        severity=_H,
        verdict=_SUS,
        threat=Threat.PRIVACY_LEAKAGE,
        mitigation="AML.M0002 Passive AI Output Obfuscation",
    ),
    Rule(
        id="ATK003",
        title="Model can be extracted through queries",
        help="A copy trained only on the target's answers agrees with it above the "
        "threshold within the query budget tried: the model's function can be stolen "
        "through its API. Enforce per-identity query budgets and rate limits, return "
        "labels only, and watch for extraction patterns in the audit log.",
        severity=_H,
        verdict=_SUS,
        threat=Threat.MODEL_STEALING,
        mitigation="AML.M0004 Restrict Number of AI Model Queries",
    ),
    Rule(
        id="ATK004",
        title="Class representatives can be reconstructed",
        help="Model inversion rebuilt inputs that an independent classifier recognises as "
        "their class: the model reveals what its classes look like in its training data. "
        "Withhold gradients and scores (labels only), limit queries per identity, and train "
        "with differential privacy when the classes are sensitive.",
        severity=_M,
        verdict=_SUS,
        threat=Threat.MODEL_INVERSION,
        mitigation="AML.M0002 Passive AI Output Obfuscation",
    ),
    Rule(
        id="ATK005",
        title="Sensitive attribute can be inferred",
        help="Querying the model with each possible value of a sensitive column recovers "
        "that column for training records better than a guess from its distribution "
        "(attribute inference advantage above the threshold). Drop or coarsen the column, "
        "train with differential privacy, and return labels only.",
        severity=_M,
        verdict=_SUS,
        threat=Threat.MODEL_INVERSION,
        mitigation="AML.M0002 Passive AI Output Obfuscation",
    ),
)
"""ATK001 evasion, ATK002 membership, ATK003 extraction, ATK004 inversion (image),
ATK005 attribute inference (tabular inversion)."""

RULE_OF_ATTACK: dict[str, str] = {
    "evasion": "ATK001",
    "membership": "ATK002",
    "extraction": "ATK003",
    "inversion": "ATK004",
    "attribute": "ATK005",
}
