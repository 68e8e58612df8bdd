"""Whose signature counts: check one bundle's signature and match its signer to the policy.

The order of checks is fixed: the signature must verify first (else SIG006), then
a revoked key never counts (SIG008), then the signer must be in the policy
(SIG007), then inside its validity window (SIG009). Certificate chains are
checked by mlwarden itself to the policy's pinned root, at the verification
time: without a trusted timestamp the signing time is unknown, so an expired
certificate does not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlwarden.policy import KeySigner, TrustedSigner, TrustPolicy, X509Signer
from mlwarden.signing import _keys
from mlwarden.signing._bundle import Bundle
from mlwarden.signing._dsse import pae

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    rule_id: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    signer: TrustedSigner
    identity: str  # key fingerprint, or "x509:<subject> (<leaf fingerprint>)"
    key: str  # fingerprint of the key that made the signature: k of n counts each key once


@dataclass(frozen=True, slots=True, kw_only=True)
class _Candidate:
    key: ec.EllipticCurvePublicKey
    fingerprint: str
    hint: str


class TrustContext:
    """The keys and roots a policy names, loaded once for every bundle of one verification."""

    def __init__(self, policy: TrustPolicy, *, extra_keys: Sequence[Path] = ()) -> None:
        self.policy = policy
        self._keys: list[_Candidate] = []
        self._roots: dict[Path, x509.Certificate] = {}
        paths = [s.identity.public_key for s in policy.signers if isinstance(s.identity, KeySigner)]
        for path in [*[p for p in paths if p is not None], *extra_keys]:
            key = _keys.load_public_key(path)
            self._keys.append(
                _Candidate(key=key, fingerprint=_keys.fingerprint(key), hint=_keys.pem_hint(key))
            )
        for signer in policy.signers:
            if isinstance(signer.identity, X509Signer) and signer.identity.root not in self._roots:
                roots = _keys.load_certificates([signer.identity.root])
                self._roots[signer.identity.root] = roots[0]

    def check(self, bundle: Bundle, now: datetime) -> Accepted | Refusal:
        if self.policy.trusts_nothing:
            return Refusal(
                rule_id="SIG007",
                message="no trusted signer: an empty or missing trust policy trusts nothing "
                "(pass --key PUBLIC_KEY or --trust mlwarden.yaml)",
            )
        if bundle.certificates:
            return self._check_certificate(bundle, now)
        return self._check_key(bundle, now)

    def _check_key(self, bundle: Bundle, now: datetime) -> Accepted | Refusal:
        candidates = [c for c in self._keys if bundle.key_hint is None or c.hint == bundle.key_hint]
        if not candidates:
            bare = [
                s.name
                for s in self.policy.signers
                if isinstance(s.identity, KeySigner) and s.identity.public_key is None
            ]
            hint = (
                f"; signer(s) {', '.join(bare)} have no public_key file: pass the key with --key"
                if bare
                else ""
            )
            return Refusal(
                rule_id="SIG007",
                message=f"signed by a key that is not trusted (key hint {bundle.key_hint}){hint}",
            )
        verified = next((c for c in candidates if _verifies(c.key, bundle)), None)
        if verified is None:
            return Refusal(rule_id="SIG006", message="the signature does not verify with its key")
        if verified.fingerprint in self.policy.revoked:
            return Refusal(rule_id="SIG008", message=f"key {verified.fingerprint} is revoked")
        for signer in self.policy.signers:
            identity = signer.identity
            if isinstance(identity, KeySigner) and identity.fingerprint == verified.fingerprint:
                return _windowed(signer, verified.fingerprint, verified.fingerprint, now)
        return Refusal(
            rule_id="SIG007",
            message=f"key {verified.fingerprint} is not a trusted signer in the policy",
        )

    def _check_certificate(self, bundle: Bundle, now: datetime) -> Accepted | Refusal:
        from cryptography.exceptions import UnsupportedAlgorithm

        try:
            return self._check_chain(bundle, now)
        except (ValueError, UnsupportedAlgorithm) as exc:
            # cryptography parses extensions and keys lazily: a malformed one surfaces here,
            # at first use, and is bad input like any other malformed certificate.
            return Refusal(rule_id="SIG011", message=f"a certificate does not parse: {exc}")

    def _check_chain(self, bundle: Bundle, now: datetime) -> Accepted | Refusal:
        from cryptography import x509

        chain = [x509.load_der_x509_certificate(der) for der in bundle.certificates]
        leaf_key = chain[0].public_key()
        if not _keys.curve_ok(leaf_key):
            return Refusal(rule_id="SIG011", message="the leaf key is not EC P-256 or P-384")
        from cryptography.hazmat.primitives.asymmetric import ec

        assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
        if not _verifies(leaf_key, bundle):
            return Refusal(
                rule_id="SIG006", message="the signature does not verify with the leaf certificate"
            )
        for cert in chain:
            fp = _spki_fingerprint(cert)
            if fp is not None and fp in self.policy.revoked:
                return Refusal(rule_id="SIG008", message=f"certificate key {fp} is revoked")
        reasons = []
        outside: Refusal | None = None
        for signer in self.policy.signers:
            identity = signer.identity
            if not isinstance(identity, X509Signer):
                continue
            root = self._roots[identity.root]
            reason = _chain_reason(chain, root, identity.subject, now)
            if reason is None:
                root_fp = _spki_fingerprint(root)
                if root_fp is not None and root_fp in self.policy.revoked:
                    # The root comes from the policy, not the bundle: revoking its key
                    # revokes everything it ever issued.
                    return Refusal(
                        rule_id="SIG008", message=f"root certificate key {root_fp} is revoked"
                    )
                leaf_fp = _keys.fingerprint(leaf_key)
                outcome = _windowed(signer, f"x509:{identity.subject} ({leaf_fp})", leaf_fp, now)
                if isinstance(outcome, Accepted):
                    return outcome
                # Another entry for the same chain (a renewed window) may still accept it.
                outside = outside or outcome
                continue
            reasons.append(f"{signer.name}: {reason}")
        if outside is not None:
            return outside
        detail = "; ".join(reasons) if reasons else "the policy trusts no certificate root"
        return Refusal(rule_id="SIG007", message=f"certificate signer not trusted ({detail})")


def _verifies(key: ec.EllipticCurvePublicKey, bundle: Bundle) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key.verify(
            bundle.signature,
            pae(bundle.payload_type, bundle.payload),
            ec.ECDSA(_keys.hash_for(key)),
        )
    except InvalidSignature:
        return False
    return True


def _windowed(signer: TrustedSigner, identity: str, key: str, now: datetime) -> Accepted | Refusal:
    if not signer.in_window(now):
        return Refusal(
            rule_id="SIG009",
            message=f"signer {signer.name!r} is trusted only from {signer.not_before or '-'} "
            f"to {signer.not_after or '-'}, not at {now.isoformat()}",
        )
    return Accepted(signer=signer, identity=identity, key=key)


def _spki_fingerprint(cert: x509.Certificate) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not _keys.curve_ok(key):
        return None
    return _keys.fingerprint(key)


def _valid_at(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _chain_reason(
    chain: list[x509.Certificate], root: x509.Certificate, subject: str, now: datetime
) -> str | None:
    """Why the chain does not lead from a signing leaf named `subject` to `root`, or None."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    leaf = chain[0]
    names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for kind in (x509.RFC822Name, x509.DNSName, x509.UniformResourceIdentifier):
            names.extend(str(v) for v in san.get_values_for_type(kind))
    except x509.ExtensionNotFound:
        pass
    if subject not in names:
        return f"leaf certificate names {names}, not {subject!r}"
    if not _valid_at(leaf, now):
        return f"leaf certificate is not valid at {now.isoformat()}"
    if not _may_sign(leaf):
        return "leaf certificate may not be used for signing"
    current = leaf
    pool = list(chain[1:])
    for below in range(len(chain) + 1):
        # `below` intermediates sit between `current`'s issuer and the leaf.
        if _issued_by(current, root):
            if not _path_allows(root, below):
                return "the root's path length constraint forbids this chain"
            return None if _valid_at(root, now) else "root certificate is not valid now"
        issuer = next((c for c in pool if _issued_by(current, c) and _is_ca(c)), None)
        if issuer is None:
            return "no chain of CA certificates to the trusted root"
        if not _valid_at(issuer, now):
            return "an intermediate certificate is not valid now"
        if not _path_allows(issuer, below):
            return "an intermediate's path length constraint forbids this chain"
        pool.remove(issuer)
        current = issuer
    return "the certificate chain is too long"


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    """A CA by basic constraints, and allowed to sign certificates if it states key usage."""
    from cryptography import x509

    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
    except x509.ExtensionNotFound:
        return True


def _path_allows(ca: x509.Certificate, intermediates_below: int) -> bool:
    """RFC 5280 pathLenConstraint: at most that many intermediates may follow this CA."""
    from cryptography import x509

    try:
        limit = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        return True
    return limit is None or intermediates_below <= limit


def _may_sign(leaf: x509.Certificate) -> bool:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        # Stated key usage decides (RFC 5280 4.2.1.3): without digitalSignature the key may
        # not sign, whatever the extended key usage adds. (model_signing would fall back to
        # the EKU here; refusing the contradictory certificate is the safe side.)
        return leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        pass
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return ExtendedKeyUsageOID.CODE_SIGNING in usage
    except x509.ExtensionNotFound:
        return False
