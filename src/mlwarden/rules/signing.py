"""Rules of signature verification (`mlwarden verify`): one per kind of difference.

`ERROR_CODES` maps each rule to the integrity error (errors.py) the same refusal
raises where the API answers with an exception instead of a report
(`mlwarden.signing.verified_manifest`, `mlwarden.load`).
"""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

_VERIFY = "AML.M0014 Verify AI Artifacts"
_SIGN = "AML.M0013 Code Signing"
_C, _H = Severity.CRITICAL, Severity.HIGH
_MAL, _SUS = Verdict.MALICIOUS, Verdict.SUSPICIOUS

_RESIGN = (
    "Do not use the model. Obtain it again from its publisher, or, if the change is "
    "yours and intended, sign the new version."
)
_TRUST = (
    "Do not use the model until a signer your policy trusts has signed it; check the "
    "`trust:` section of mlwarden.yaml."
)


def _rule(
    rule_id: str,
    title: str,
    help_text: str,
    severity: Severity,
    verdict: Verdict,
    mitigation: str,
) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        help=help_text,
        severity=severity,
        verdict=verdict,
        threat=Threat.POISONED_UPDATES,
        mitigation=mitigation,
    )


SIGNING_RULES: tuple[Rule, ...] = (
    _rule("SIG001", "Signed file is missing",
          "A file the signature covers is not on disk. " + _RESIGN, _H, _MAL, _VERIFY),
    _rule("SIG002", "Unsigned file present",
          "A file on disk is not covered by the signature; a loader may pick it up. " + _RESIGN,
          _H, _MAL, _VERIFY),
    _rule("SIG003", "Signed file changed",
          "The file's sha256 differs from the signed digest. " + _RESIGN, _C, _MAL, _VERIFY),
    _rule("SIG004", "Signed file renamed",
          "A file has the signed digest of another name: it was moved or renamed. " + _RESIGN,
          _H, _MAL, _VERIFY),
    _rule("SIG005", "Signed file has a different size",
          "The file's size differs from the size recorded at signing, so its content "
          "changed. " + _RESIGN, _C, _MAL, _VERIFY),
    _rule("SIG006", "Signature invalid",
          "The signature does not verify with the key or certificate it names: the "
          "bundle or the manifest was altered. " + _RESIGN, _C, _MAL, _SIGN),
    _rule("SIG007", "Signer not trusted",
          "The signature is valid but its signer is not in the trust policy (or there is "
          "no policy: an empty or missing policy trusts nothing). " + _TRUST, _H, _SUS, _SIGN),
    _rule("SIG008", "Signing key revoked",
          "The signature was made with a key (or a certificate in its chain) that the "
          "policy lists as revoked. " + _TRUST, _C, _MAL, _SIGN),
    _rule("SIG009", "Signer outside its validity window",
          "The signer is trusted only between not_before and not_after (or its "
          "certificate is not valid now). " + _TRUST, _H, _SUS, _SIGN),
    _rule("SIG010", "Too few trusted signatures",
          "The policy requires more distinct trusted signers than signed this model. "
          + _TRUST, _H, _SUS, _SIGN),
    _rule("SIG011", "Signature bundle malformed",
          "The signature file is not an OpenSSF model-signing v1.0 bundle (Sigstore bundle "
          "v0.3, DSSE, in-toto Statement v1); it may be truncated or tampered with.",
          _H, _SUS, _SIGN),
    _rule("SIG012", "Unsafe resource name",
          "The manifest names a file with '..', an absolute path, a backslash, control "
          "characters or Unicode look-alikes; mlwarden opens no such path.", _C, _MAL, _VERIFY),
    _rule("SIG013", "Duplicate resource",
          "The manifest names the same file twice (or two names one file system would "
          "merge), so it says two things about one file.", _C, _MAL, _VERIFY),
    _rule("SIG014", "Symbolic link or special file refused",
          "The model tree holds a symbolic link or a special file; signing and "
          "verification follow no links.", _H, _SUS, _VERIFY),
    _rule("SIG015", "File changed during hashing",
          "The file was replaced or written while it was being verified; its content "
          "cannot be vouched for. Verify again once nothing writes to the model.",
          _H, _SUS, _VERIFY),
    _rule("SIG016", "Signature is for a different model",
          "The signed model name (the statement subject) is not the name of the model "
          "being verified: a valid signature of another model was put beside this one.",
          _C, _MAL, _SIGN),
    _rule("SIG017", "Signatures disagree",
          "Several trusted signatures sign different manifests; none of them is used.",
          _H, _SUS, _SIGN),
)  # fmt: skip

ERROR_CODES: dict[str, str] = {
    "SIG001": "E204",
    "SIG002": "E204",
    "SIG003": "E204",
    "SIG004": "E204",
    "SIG005": "E204",
    "SIG006": "E202",
    "SIG007": "E203",
    "SIG008": "E203",
    "SIG009": "E203",
    "SIG010": "E203",
    "SIG011": "E201",
    "SIG012": "E206",
    "SIG013": "E206",
    "SIG014": "E107",
    "SIG015": "E207",
    "SIG016": "E204",
    "SIG017": "E204",
}
