"""Rules of `mlwarden data screen`: DATA for rows not to train on, PII for personal data.

Every finding of these rules names rows by their id: the 0-based index of the row
in the dataset as read (data rows of a CSV or Parquet file, the first axis of a
NumPy array, the sorted files of an image folder).
"""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

_SANITIZE = "AML.M0007 Sanitize Training Data"
_PRIVACY = "AML.M0007 Sanitize Training Data; remove or pseudonymise personal data"
_L, _M, _H = Severity.LOW, Severity.MEDIUM, Severity.HIGH
_SUS = Verdict.SUSPICIOUS

_QUARANTINE = (
    "Review the rows; train without them (`--clean OUT` writes the dataset without them "
    "and signs it)."
)


def _data(rule_id: str, title: str, help_text: str, severity: Severity) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        help=help_text + " " + _QUARANTINE,
        severity=severity,
        verdict=_SUS,
        threat=Threat.DATA_POISONING,
        mitigation=_SANITIZE,
    )


def _pii(rule_id: str, title: str, help_text: str) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        help=help_text
        + " Personal data in training data can be memorised and extracted from the model; "
        "remove, mask or pseudonymise the column or the rows before training.",
        severity=_H,
        verdict=_SUS,
        threat=Threat.PRIVACY_LEAKAGE,
        mitigation=_PRIVACY,
    )


DATA_RULES: tuple[Rule, ...] = (
    _data(
        "DATA001",
        "Label issue",
        "The row's given label disagrees with what the rest of the data predicts for it "
        "(confident learning over cross-validated probabilities): a flipped or wrong label.",
        _M,
    ),
    _data(
        "DATA002",
        "Suspected backdoor row",
        "The row looks planted: a trigger pattern shared by a small cluster of rows labelled "
        "with one target class.",
        _H,
    ),
    _data(
        "DATA003",
        "Outlier or injected point",
        "The row lies far from the rest of the data (or of its class).",
        _L,
    ),
    _data(
        "DATA004",
        "Exact duplicate",
        "The row is byte-for-byte the same as an earlier row: it weighs twice in training, "
        "and duplicated rows are a cheap way to poison.",
        _L,
    ),
    _data("DATA005", "Near duplicate", "The row is almost the same as another row.", _L),
    _data(
        "DATA006",
        "Train/test leakage",
        "The row also appears (exactly or nearly) in the test split, so the test score "
        "overstates the model.",
        _M,
    ),
    _data(
        "DATA007",
        "Feature drift against the trusted baseline",
        "A feature's distribution differs from the verified baseline dataset "
        "(KS, PSI or chi-square).",
        _M,
    ),
    _data(
        "DATA008",
        "Class balance drift against the trusted baseline",
        "The share of a class differs from the verified baseline dataset.",
        _M,
    ),
    _data(
        "DATA009",
        "New or vanished category",
        "A categorical column holds values the verified baseline never had, or lacks ones it had.",
        _L,
    ),
)

PII_RULES: tuple[Rule, ...] = (
    _pii("PII001", "Email address", "A column holds e-mail addresses."),
    _pii(
        "PII002",
        "Phone number",
        "A column holds phone numbers (valid for their region by libphonenumber).",
    ),
    _pii(
        "PII003",
        "Payment card number",
        "A column holds payment card numbers (known issuer prefix and a valid Luhn checksum).",
    ),
    _pii(
        "PII004",
        "National identifier",
        "A column holds national identification numbers whose check digits are valid "
        "(US SSN, Spanish DNI/NIE, Italian codice fiscale, French NIR).",
    ),
    _pii("PII005", "IBAN", "A column holds bank account numbers (IBAN, mod-97 valid)."),
    _pii("PII006", "IP address", "A column holds IPv4 or IPv6 addresses."),
)
