"""Rules of the runtime detectors (`mlwarden.detect`): one per signal, one for a bad reference.

`SIGNAL_RULES` maps each `mlwarden.detect.Signal` value to its rule.
"""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

_QUERIES = "AML.M0004 Restrict Number of AI Model Queries; AML.M0002 Passive AI Output Obfuscation"
_DETECT = "AML.M0015 Adversarial Input Detection"
_VERIFY = "AML.M0014 Verify AI Artifacts"

DET_RULES: tuple[Rule, ...] = (
    Rule(
        id="DET001",
        title="Model extraction stream",
        help="The caller's queries, taken together, look like an attempt to copy the model: "
        "they stray from the training distribution (random, synthetic or foreign inputs), "
        "crowd the decision boundaries, cover the classes unlike ordinary traffic, or walk "
        "in small perturbations from a few samples. Throttle the caller or answer with "
        "labels only, review its recent queries in the audit log, and quarantine it if it "
        "persists (`mlwarden admin release` lifts a quarantine).",
        severity=Severity.HIGH,
        verdict=Verdict.SUSPICIOUS,
        threat=Threat.MODEL_STEALING,
        mitigation=_QUERIES,
    ),
    Rule(
        id="DET002",
        title="Adversarial input",
        help="A request scores as an adversarial example: it sits off the data its answer "
        "belongs to (kNN distance and local intrinsic dimensionality), its nearest "
        "reference samples disagree with the model's answer, its answer is close to a "
        "decision boundary, or feature squeezing changes the answer. Do not act on the "
        "answer unreviewed; refuse or flag it, and watch the caller for repeated attempts.",
        severity=Severity.MEDIUM,
        verdict=Verdict.SUSPICIOUS,
        threat=Threat.ADVERSARIAL_EXAMPLES,
        mitigation=_DETECT,
    ),
    Rule(
        id="DET003",
        title="Inversion or membership probing",
        help="The caller sends near-identical queries: repeats, many tiny perturbations "
        "around one point (gradient estimation) or walks along a decision boundary (label-"
        "only attacks). Answer with labels only or rounded scores, throttle the caller, "
        "and quarantine it if it persists.",
        severity=Severity.HIGH,
        verdict=Verdict.SUSPICIOUS,
        threat=Threat.MODEL_INVERSION,
        mitigation=_QUERIES,
    ),
    Rule(
        id="DET004",
        title="Detector reference refused",
        help="The detectors' reference file is missing, corrupt, of another version, or does "
        "not match the model it is declared for, so the model's detectors cannot run (and "
        "a served model fails closed). Refit it with `mlwarden detect fit` on the model's "
        "reference data and sign it with the model.",
        severity=Severity.HIGH,
        verdict=Verdict.SUSPICIOUS,
        # A swapped or broken reference blinds the extraction detector first of all.
        threat=Threat.MODEL_STEALING,
        mitigation=_VERIFY,
    ),
)

SIGNAL_RULES: dict[str, str] = {
    "extraction": "DET001",
    "adversarial": "DET002",
    "probing": "DET003",
}
BAD_REFERENCE_RULE = "DET004"
