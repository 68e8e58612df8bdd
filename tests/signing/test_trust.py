"""Trust policies: fingerprints, X.509 chains with a pinned subject, k of n, windows, revocation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlwarden.errors import PolicyFileError
from mlwarden.policy import KeySigner, TrustPolicy, X509Signer, load_policy, parse_policy
from mlwarden.signing import sign, verify

from .conftest import KeyPair, make_pki


def rules(result: object) -> list[str]:
    return [f.rule_id for f in result.report.findings]  # type: ignore[attr-defined]


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mlwarden.yaml"
    path.write_text(text)
    return path


def key_policy(tmp_path: Path, *pairs: KeyPair, threshold: int = 1, extra: str = "") -> TrustPolicy:
    signers = "".join(
        f"    - name: s{i}\n      fingerprint: {p.fingerprint}\n      public_key: {p.public}\n"
        for i, p in enumerate(pairs)
    )
    text = f"version: 1\ntrust:\n  threshold: {threshold}\n  signers:\n{signers}{extra}"
    return load_policy(policy_file(tmp_path, text)).trust


# --- loading the policy ------------------------------------------------------------------------


def test_policy_loads_to_core_types(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    text = f"""version: 1
trust:
  threshold: 1
  signers:
    - name: release
      fingerprint: {pair.fingerprint}
      public_key: keys/signer.pub
      not_after: 2030-01-01T00:00:00Z
    - name: corp
      x509:
        root: certs/root.pem
        subject: ml-release@example.com
  revoked: ["{"0" * 64}"]
"""
    loaded = load_policy(policy_file(tmp_path, text))
    assert loaded.version == 1
    release, corp = loaded.trust.signers
    assert release.identity == KeySigner(
        fingerprint=pair.fingerprint, public_key=tmp_path / "keys/signer.pub"
    )
    assert release.not_after == datetime(2030, 1, 1, tzinfo=UTC)
    assert corp.identity == X509Signer(
        root=tmp_path / "certs/root.pem", subject="ml-release@example.com"
    )
    assert loaded.trust.revoked == frozenset({"0" * 64})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\n", "version"),
        ("version: 1\ntrust:\n  signers: []\n  extra: 1\n", "trust.extra"),
        ("version: 1\ntrust:\n  signers:\n    - name: a\n", "trust.signers.0"),
        ("version: 1\ntrust:\n  signers:\n    - name: a\n      fingerprint: AB\n", "64 lowercase"),
        (
            "version: 1\ntrust:\n  threshold: 2\n  signers:\n    - name: a\n      fingerprint: "
            + "a" * 64
            + "\n",
            "can never be met",
        ),
        ("version: 1\nversion: 1\n", "duplicate key"),
        (
            "version: 1\ntrust:\n  signers:\n"
            + "".join(f"    - name: {n}\n      fingerprint: {'a' * 64}\n" for n in "ab"),
            "two signers",
        ),
        ("version: 1\ntrust: [\n", "not valid YAML"),
        (
            "version: 1\ntrust:\n  signers:\n    - name: a\n      fingerprint: "
            + "a" * 64
            + "\n      not_after: 2030-01-01\n",
            "not_after",
        ),
    ],
)
def test_bad_policies_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyFileError, match=message) as info:
        load_policy(policy_file(tmp_path, text))
    assert info.value.code == "E110"
    assert "mlwarden.yaml" in str(info.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text", ["", "version: 1\n", "version: 1\ntrust:\n  signers: []\n"])
def test_empty_policy_trusts_nothing(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path, text: str
) -> None:
    pair = keys()
    sign(model, key=pair.private)
    trust = parse_policy(text, base=tmp_path).trust
    assert trust.trusts_nothing
    result = verify(model, trust=trust, public_key=pair.public)
    assert rules(result) == ["SIG007"]
    assert "trusts nothing" in result.report.findings[0].message
    assert rules(verify(model)) == ["SIG007"]


# --- key signers --------------------------------------------------------------------------------


def test_fingerprint_policy(model: Path, keys: Callable[..., KeyPair], tmp_path: Path) -> None:
    pair, other = keys(), keys("other")
    sign(model, key=pair.private)
    result = verify(model, trust=key_policy(tmp_path, pair))
    assert result.verified
    assert result.signers == (pair.fingerprint,)
    assert rules(verify(model, trust=key_policy(tmp_path, other))) == ["SIG007"]


def test_key_from_command_line_counts_only_if_listed(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    pair = keys()
    sign(model, key=pair.private)
    text = f"version: 1\ntrust:\n  signers:\n    - name: a\n      fingerprint: {pair.fingerprint}\n"
    trust = parse_policy(text, base=tmp_path).trust
    assert rules(verify(model, trust=trust)) == ["SIG007"]  # the policy has no key material
    assert verify(model, trust=trust, public_key=pair.public).verified
    unlisted = keys("unlisted")
    sign(model, key=unlisted.private)
    assert rules(verify(model, trust=trust, public_key=unlisted.public)) == ["SIG007"]


def test_revoked_key(model: Path, keys: Callable[..., KeyPair], tmp_path: Path) -> None:
    pair = keys()
    sign(model, key=pair.private)
    trust = key_policy(tmp_path, pair, extra=f"  revoked:\n    - {pair.fingerprint}\n")
    result = verify(model, trust=trust)
    assert rules(result) == ["SIG008"]
    assert result.report.findings[0].detail["code"] == "E203"


def test_validity_window_with_explicit_clock(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    pair = keys()
    sign(model, key=pair.private)
    text = (
        f"version: 1\ntrust:\n  signers:\n    - name: a\n      fingerprint: {pair.fingerprint}\n"
        f"      public_key: {pair.public}\n"
        "      not_before: 2026-01-01T00:00:00Z\n      not_after: 2026-12-31T23:59:59Z\n"
    )
    trust = parse_policy(text, base=tmp_path).trust
    inside = datetime(2026, 6, 1, tzinfo=UTC)
    assert verify(model, trust=trust, now=inside).verified
    for outside in (datetime(2025, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)):
        result = verify(model, trust=trust, now=outside)
        assert rules(result) == ["SIG009"]


def test_k_of_n(model: Path, keys: Callable[..., KeyPair], tmp_path: Path) -> None:
    alice, bob, carol = keys("alice"), keys("bob"), keys("carol")
    trust = key_policy(tmp_path, alice, bob, carol, threshold=2)
    sig_a = sign(model, key=alice.private, signature=tmp_path / "a.sig")
    sig_b = sign(model, key=bob.private, signature=tmp_path / "b.sig")
    sig_a2 = sign(model, key=alice.private, signature=tmp_path / "a2.sig")
    assert rules(verify(model, signatures=[sig_a], trust=trust)) == ["SIG010"]
    # The same signer twice is one signer.
    assert rules(verify(model, signatures=[sig_a, sig_a2], trust=trust)) == ["SIG010"]
    result = verify(model, signatures=[sig_a, sig_b], trust=trust)
    assert result.verified
    assert set(result.signers) == {alice.fingerprint, bob.fingerprint}
    # A signature from outside the policy is refused, not silently skipped.
    mallory = keys("mallory")
    sig_m = sign(model, key=mallory.private, signature=tmp_path / "m.sig")
    assert rules(verify(model, signatures=[sig_a, sig_b, sig_m], trust=trust)) == ["SIG007"]


def test_signatures_that_disagree(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    alice, bob = keys("alice"), keys("bob")
    trust = key_policy(tmp_path, alice, bob, threshold=2)
    sig_a = sign(model, key=alice.private, signature=tmp_path / "a.sig")
    (model / "README.md").write_text("v2")
    sig_b = sign(model, key=bob.private, signature=tmp_path / "b.sig")
    assert rules(verify(model, signatures=[sig_a, sig_b], trust=trust)) == ["SIG017"]


# --- certificate signers -------------------------------------------------------------------------


def x509_policy(tmp_path: Path, root: Path, subject: str, extra: str = "") -> TrustPolicy:
    text = (
        "version: 1\ntrust:\n  signers:\n    - name: corp\n      x509:\n"
        f"        root: {root}\n        subject: {subject}\n{extra}"
    )
    return parse_policy(text, base=tmp_path).trust


def test_x509_chain_with_pinned_subject(model: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    sign(model, key=pki.leaf_key, certificate_chain=[pki.chain])
    for subject in ("ml-release@example.com", "ml-release"):
        result = verify(model, trust=x509_policy(tmp_path, pki.root_cert, subject))
        assert result.verified, result.report.findings
        assert result.signers[0].startswith(f"x509:{subject}")
    wrong = verify(model, trust=x509_policy(tmp_path, pki.root_cert, "someone@example.com"))
    assert rules(wrong) == ["SIG007"]
    assert "not 'someone@example.com'" in wrong.report.findings[0].message


def test_x509_chain_to_another_root_is_untrusted(model: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other")
    sign(model, key=pki.leaf_key, certificate_chain=[pki.chain])
    result = verify(model, trust=x509_policy(tmp_path, other.root_cert, "ml-release"))
    assert rules(result) == ["SIG007"]
    assert "no chain" in result.report.findings[0].message


def test_x509_expired_leaf_is_untrusted(model: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", leaf_days=1)
    sign(model, key=pki.leaf_key, certificate_chain=[pki.chain])
    trust = x509_policy(tmp_path, pki.root_cert, "ml-release")
    later = datetime.now(UTC) + timedelta(days=2)
    result = verify(model, trust=trust, now=later)
    assert rules(result) == ["SIG007"]
    assert "not valid" in result.report.findings[0].message


def test_x509_revoked_intermediate(model: Path, tmp_path: Path) -> None:
    from mlwarden.signing._keys import fingerprint

    pki = make_pki(tmp_path / "pki")
    sign(model, key=pki.leaf_key, certificate_chain=[pki.chain])
    revoked = fingerprint(pki.intermediate_key_obj.public_key())
    trust = x509_policy(tmp_path, pki.root_cert, "ml-release", f"  revoked: [{revoked}]\n")
    assert rules(verify(model, trust=trust)) == ["SIG008"]


def test_certificate_must_match_the_signing_key(model: Path, tmp_path: Path) -> None:
    from mlwarden.errors import SigningKeyError

    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other")
    with pytest.raises(SigningKeyError, match="not for this private key"):
        sign(model, key=other.leaf_key, certificate_chain=[pki.chain])
