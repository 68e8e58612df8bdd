"""Rules of audit-log verification (`mlwarden audit verify`): one per kind of broken link.

A finding names the first broken record of the hash chain. `BREAK_RULES` maps each
`mlwarden.audit.BreakKind` value to its rule.
"""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

_LOGGING = "AML.M0024 AI Telemetry Logging"
_INVESTIGATE = (
    "Treat the records from the named one onwards as untrusted: compare them with a copy "
    "or the last signed checkpoint, find who had write access to the audit database, and "
    "export checkpoints regularly to a place the gateway cannot write."
)


def _rule(rule_id: str, title: str, help_text: str) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        help=f"{help_text} {_INVESTIGATE}",
        severity=Severity.CRITICAL,
        verdict=Verdict.MALICIOUS,
        # The log is the record of who queried which model: rewriting it hides
        # extraction and probing through the inference API.
        threat=Threat.MODEL_STEALING,
        mitigation=_LOGGING,
    )


AUDIT_RULES: tuple[Rule, ...] = (
    _rule("GW050", "Audit record changed",
          "A record of the audit log no longer matches its hash, or a record was rewritten "
          "with a new hash that the next record does not link to; or the log no longer "
          "holds the head a signed checkpoint pinned."),
    _rule("GW051", "Audit records deleted",
          "Records are missing from the audit log: a gap in the numbering, records removed "
          "and the rest renumbered, or a log shorter than a signed checkpoint (truncated)."),
    _rule("GW052", "Audit record inserted",
          "A record that does not belong was put into the audit log: the records around it "
          "link past it."),
    _rule("GW053", "Audit records reordered",
          "Records of the audit log were moved: a record links to one that comes after it."),
)  # fmt: skip

BREAK_RULES: dict[str, str] = {
    "changed": "GW050",
    "deleted": "GW051",
    "inserted": "GW052",
    "reordered": "GW053",
}
