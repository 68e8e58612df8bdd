"""Rules of `mlwarden update check`: an update that must not replace the model in use.

Every finding of these rules is about the NEW version, compared with the OLD one on
the owner's signed canary set; thresholds come from the `update` section of
`mlwarden.yaml`.
"""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

_VERIFY = "AML.M0014 Verify AI Artifacts"
_L, _M, _H, _C = Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL
_SUS, _MAL = Verdict.SUSPICIOUS, Verdict.MALICIOUS

_KEEP_OLD = "Keep the old version in service; "


def _upd(rule_id: str, title: str, help_text: str, severity: Severity, verdict: Verdict) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        help=_KEEP_OLD + help_text,
        severity=severity,
        verdict=verdict,
        threat=Threat.POISONED_UPDATES,
        mitigation=_VERIFY,
    )


UPDATE_RULES: tuple[Rule, ...] = (
    _upd(
        "UPD001",
        "Update not verifiable",
        "a version is unsigned, signed by an untrusted key, changed after signing or flagged "
        "by the scan, so it was not loaded or compared. Obtain a version signed by a trusted "
        "signer and scanned clean.",
        _C,
        _SUS,
    ),
    _upd(
        "UPD002",
        "Architecture changed",
        "parameters were added or removed, or tensor shapes, dtypes or the estimator type "
        "changed, where the policy (`update.expect`) allows only a fine-tune or retrain. "
        "Review the change; if it is intended, gate it with `expect: any`.",
        _H,
        _SUS,
    ),
    _upd(
        "UPD003",
        "Hyperparameters changed",
        "the scikit-learn estimator's hyperparameters (get_params) differ where the policy "
        "expects a fine-tune. Review the change, or gate it with `expect: retrain`.",
        _M,
        _SUS,
    ),
    _upd(
        "UPD004",
        "Tensor tampering",
        "a layer's weights were sign-flipped, scaled or replaced beyond what a fine-tune "
        "does (cosine, norm ratio or relative change past the policy). Rebuild the update "
        "from its training job and find who changed the weights.",
        _C,
        _MAL,
    ),
    _upd(
        "UPD005",
        "Accuracy drop",
        "the new version is less accurate on the canary set than the policy allows. "
        "Find the cause (poisoned or wrong training data) before shipping.",
        _H,
        _SUS,
    ),
    _upd(
        "UPD006",
        "Class accuracy drop",
        "one class lost more accuracy on the canary set than the policy allows, the mark "
        "of a targeted (label-flip) poisoning. Screen the training data of that class "
        "(`mlwarden data screen`).",
        _H,
        _SUS,
    ),
    _upd(
        "UPD007",
        "Flips concentrated into one class",
        "predictions that were right under the old version flip into one class, the mark of "
        "a targeted poisoning. Screen the training data labelled with that class.",
        _H,
        _SUS,
    ),
    _upd(
        "UPD008",
        "Low agreement with the old version",
        "the two versions disagree on more canary rows than the policy allows (share of "
        "flipped predictions or agreement). Review why the behaviour moved that much.",
        _M,
        _SUS,
    ),
    _upd(
        "UPD009",
        "Backdoor trigger found",
        "a small input pattern sends most canary inputs to one class, far smaller than for "
        "the other classes and than in the old version (Neural-Cleanse anomaly index). "
        "Screen the training data for the trigger (`mlwarden data screen --checks "
        "backdoors`) and retrain without the poisoned rows.",
        _C,
        _MAL,
    ),
    _upd(
        "UPD010",
        "Backdoor cluster in representation space",
        "the data screen's backdoor search finds canary rows that the new version's "
        "representation groups with another class through a few shared extreme features. "
        "Look at the named rows and the training data of the target class.",
        _H,
        _SUS,
    ),
    _upd(
        "UPD011",
        "Confidence dropped",
        "the mean probability the new version gives the true class fell more than the "
        "policy allows. Review the training run.",
        _L,
        _SUS,
    ),
)
