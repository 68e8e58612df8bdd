"""Attacks on the envelope, the statement, trust and the file set, each with its refusal."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlwarden.errors import PolicyFileError
from mlwarden.policy import TrustPolicy, parse_policy
from mlwarden.signing import sign, verify
from mlwarden.signing._dsse import PAYLOAD_TYPE, pae
from mlwarden.signing._keys import fingerprint

from .conftest import KeyPair, make_pki, read_payload, signed_bundle, statement


def rules(result: object) -> list[str]:
    return [f.rule_id for f in result.report.findings]  # type: ignore[attr-defined]


def _bundle(signature: Path) -> dict[str, object]:
    return json.loads(signature.read_text())  # type: ignore[no-any-return]


def _envelope(bundle: dict[str, object]) -> dict[str, object]:
    return bundle["dsseEnvelope"]  # type: ignore[return-value]


# --- DSSE --------------------------------------------------------------------------------------


def test_pae_matches_the_dsse_specification_vector() -> None:
    # The example of the DSSE v1 protocol: lengths in ASCII decimal, byte lengths, one space.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    # Lengths count bytes, not characters.
    assert pae("t\u00e9", b"\xff") == b"DSSEv1 3 t\xc3\xa9 1 \xff"
    assert PAYLOAD_TYPE == "application/vnd.in-toto+json"


def test_an_extra_signature_is_refused_not_ignored(
    model: Path, keys: Callable[..., KeyPair]
) -> None:
    # model_signing checks only signatures[0]; a second one (valid or not) would be silently
    # ignored there. mlwarden refuses the envelope instead of guessing which one counts.
    pair = keys()
    signature = sign(model, key=pair.private)
    bundle = _bundle(signature)
    sigs = _envelope(bundle)["signatures"]
    assert isinstance(sigs, list)
    for extra in (dict(sigs[0]), {"sig": base64.b64encode(b"\x30\x00").decode(), "keyid": ""}):
        _envelope(bundle)["signatures"] = [sigs[0], extra]
        signature.write_text(json.dumps(bundle))
        result = verify(model, public_key=pair.public)
        assert rules(result) == ["SIG011"]
        assert "signatures" in result.report.findings[0].message


@pytest.mark.parametrize(
    "variant",
    [
        lambda b64: b64.rstrip("="),
        lambda b64: b64.replace("+", "-").replace("/", "_"),
        lambda b64: b64[:20] + "\n" + b64[20:],
        lambda b64: b64[:20] + " " + b64[20:],
    ],
    ids=["unpadded", "urlsafe", "newline", "space"],
)
def test_non_canonical_base64_is_refused(
    model: Path, keys: Callable[..., KeyPair], variant: Callable[[str], str]
) -> None:
    # Only standard, padded base64 (what model_signing and mlwarden write). A variant is refused
    # rather than decoded leniently, so no two decoders can read different signed bytes.
    pair = keys()
    signature = sign(model, key=pair.private)
    bundle = _bundle(signature)
    envelope = _envelope(bundle)
    # A payload whose encoding has padding and both '+' and '/' characters.
    raw = json.dumps(read_payload(signature), separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 3) + b"\xfb\xff\xbf\x00"  # encodes as ...+/+/AA==
    assert {"+", "/", "="} <= set(base64.b64encode(raw).decode())
    envelope["payload"] = variant(base64.b64encode(raw).decode())
    signature.write_text(json.dumps(bundle))
    result = verify(model, public_key=pair.public)
    assert rules(result) == ["SIG011"]
    assert "base64" in result.report.findings[0].message


def test_p384_signatures_use_sha384(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    pair = keys("p384", ec.SECP384R1())
    signature = sign(model, key=pair.private)
    assert verify(model, public_key=pair.public).verified
    # The same statement signed with SHA-256 on the P-384 key: not what the spec (or
    # model_signing) uses for that curve, so it does not verify.
    raw = base64.b64decode(str(_envelope(_bundle(signature))["payload"]))
    weak = pair.key.sign(pae(PAYLOAD_TYPE, raw), ec.ECDSA(hashes.SHA256()))
    bundle = _bundle(signature)
    _envelope(bundle)["signatures"] = [{"sig": base64.b64encode(weak).decode(), "keyid": ""}]
    signature.write_text(json.dumps(bundle))
    assert rules(verify(model, public_key=pair.public)) == ["SIG006"]


def test_deeply_nested_json_is_malformed_not_a_crash(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    pair = keys()
    signature = tmp_path / "deep.sig"
    signature.write_bytes(b"[" * 100_000)
    result = verify(model, signatures=[signature], public_key=pair.public)
    assert rules(result) == ["SIG011"]
    # The same nesting inside a correctly signed payload.
    signed_bundle(pair, b'{"a":' * 100_000, signature)
    result = verify(model, signatures=[signature], public_key=pair.public)
    assert rules(result) == ["SIG011"]
    assert "nested too deeply" in result.report.findings[0].message
    with pytest.raises(PolicyFileError, match="nested too deeply"):
        parse_policy("[" * 100_000, base=tmp_path)


# --- the signed ignore list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ignored", ["/weights.bin", "../bert-tiny/weights.bin", "tokenizer/", ".", "a\\b", ""]
)
def test_unsafe_ignore_paths_are_refused(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path, ignored: str
) -> None:
    # "/weights.bin" would hide weights.bin here once stripped, and nothing for model_signing.
    pair = keys()
    signature = sign(model, key=pair.private, signature=tmp_path / "model.sig")
    body = read_payload(signature)
    resources = [r for r in body["predicate"]["resources"] if r["name"] != "weights.bin"]  # type: ignore[index]
    forged = statement(resources)
    forged["predicate"]["serialization"]["ignore_paths"] = [ignored]  # type: ignore[index]
    signed_bundle(pair, forged, signature)
    result = verify(model, signatures=[signature], public_key=pair.public)
    assert rules(result)[0] == "SIG012"
    assert "ignore path" in result.report.findings[0].message


def test_signed_ignore_paths_hide_only_what_they_name(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    pair = keys()
    signature = sign(model, key=pair.private, signature=tmp_path / "model.sig")
    # A payload in a git folder is ignored, as model_signing ignores it...
    (model / ".git").mkdir()
    (model / ".git" / "evil.pkl").write_bytes(b"x")
    assert verify(model, signatures=[signature], public_key=pair.public).verified
    # ...but not one beside it with a look-alike name, nor a hidden file, nor one in a new folder.
    (model / ".git.pkl").write_bytes(b"x")
    (model / ".hidden").write_bytes(b"x")
    (model / "new" / "deep").mkdir(parents=True)
    (model / "new" / "deep" / "w.bin").write_bytes(b"x")
    (model / "empty").mkdir()
    result = verify(model, signatures=[signature], public_key=pair.public)
    extra = sorted(Path(f.location).relative_to(model).as_posix() for f in result.report.findings)
    assert rules(result) == ["SIG002"] * 3
    assert extra == [".git.pkl", ".hidden", "new/deep/w.bin"]


def test_special_files_are_refused(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    pair = keys()
    signature = sign(model, key=pair.private, signature=tmp_path / "model.sig")
    os.mkfifo(model / "tokenizer" / "pipe")
    result = verify(model, signatures=[signature], public_key=pair.public)
    assert rules(result) == ["SIG014"]
    assert result.report.findings[0].location.endswith("pipe")


# --- trust -------------------------------------------------------------------------------------


def _write_pub(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_one_key_counts_once_across_policy_entries(model: Path, tmp_path: Path) -> None:
    # The same key listed by fingerprint and reachable through a certificate: two entries,
    # one signer. Two bundles made with it must not meet a threshold of two.
    pki = make_pki(tmp_path / "pki")
    leaf_pub = _write_pub(pki.leaf_key_obj, tmp_path / "leaf.pub")
    leaf_fp = fingerprint(pki.leaf_key_obj.public_key())
    text = f"""version: 1
trust:
  threshold: 2
  signers:
    - name: by-key
      fingerprint: {leaf_fp}
      public_key: {leaf_pub}
    - name: by-cert
      x509:
        root: {pki.root_cert}
        subject: ml-release
"""
    trust = parse_policy(text, base=tmp_path).trust
    plain = sign(model, key=pki.leaf_key, signature=tmp_path / "plain.sig")
    cert = sign(
        model, key=pki.leaf_key, signature=tmp_path / "cert.sig", certificate_chain=[pki.chain]
    )
    assert verify(model, signatures=[plain], trust=_threshold(trust, 1)).verified
    assert verify(model, signatures=[cert], trust=_threshold(trust, 1)).verified
    result = verify(model, signatures=[plain, cert], trust=trust)
    assert rules(result) == ["SIG010"]
    assert "1 distinct" in result.report.findings[0].message


def _threshold(policy: TrustPolicy, k: int) -> TrustPolicy:
    return TrustPolicy(signers=policy.signers, threshold=k, revoked=policy.revoked)


def _x509_policy(tmp_path: Path, root: Path, subject: str, extra: str = "") -> TrustPolicy:
    text = (
        "version: 1\ntrust:\n  signers:\n    - name: corp\n      x509:\n"
        f"        root: {root}\n        subject: {subject}\n{extra}"
    )
    return parse_policy(text, base=tmp_path).trust


def test_revoking_the_root_key_revokes_its_chains(model: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    sign(model, key=pki.leaf_key, certificate_chain=[pki.chain])
    root = x509.load_pem_x509_certificate(pki.root_cert.read_bytes())
    root_fp = fingerprint(root.public_key())  # type: ignore[arg-type]
    assert verify(model, trust=_x509_policy(tmp_path, pki.root_cert, "ml-release")).verified
    trust = _x509_policy(tmp_path, pki.root_cert, "ml-release", f"  revoked: [{root_fp}]\n")
    assert rules(verify(model, trust=trust)) == ["SIG008"]


# Hand-made certificates for the chain rules.

_NOW = datetime.now(UTC) - timedelta(minutes=5)


def _usage(*, sign: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=not sign,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
    usage: x509.KeyUsage | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW)
        .not_valid_after(_NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _chain_case(
    tmp_path: Path,
    *,
    root_path_length: int | None = None,
    mid_usage: x509.KeyUsage | None = None,
    leaf_usage: x509.KeyUsage | None = None,
    self_signed_leaf: bool = False,
) -> tuple[Path, Path, Path]:
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("Root", root_key, "Root", root_key, ca=True, path_length=root_path_length,
                 usage=_usage(sign=False, cert_sign=True))  # fmt: skip
    mid = _cert("Mid", mid_key, "Root", root_key, ca=True,
                usage=mid_usage or _usage(sign=False, cert_sign=True))  # fmt: skip
    usage = leaf_usage or _usage(sign=True, cert_sign=False)
    if self_signed_leaf:
        # Copies the subject and names the root as issuer, but signs itself.
        leaf = _cert("release", leaf_key, "Root", leaf_key, ca=False, usage=usage)
    else:
        leaf = _cert("release", leaf_key, "Mid", mid_key, ca=False, usage=usage)
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "root.pem").write_bytes(_pem(root))
    (folder / "chain.pem").write_bytes(_pem(leaf, mid))
    (folder / "leaf.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "root.pem", folder / "chain.pem", folder / "leaf.key"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ({}, None),
        ({"root_path_length": 0}, "path length"),
        ({"root_path_length": 1}, None),
        ({"mid_usage": _usage(sign=True, cert_sign=False)}, "no chain"),
        ({"leaf_usage": _usage(sign=False, cert_sign=False)}, "may not be used for signing"),
        ({"self_signed_leaf": True}, "no chain"),
    ],
    ids=["valid", "pathlen-0", "pathlen-1", "mid-not-cert-sign", "leaf-no-sign", "self-signed"],
)
def test_certificate_chain_rules(
    model: Path, tmp_path: Path, case: dict[str, object], reason: str | None
) -> None:
    root, chain, leaf_key = _chain_case(tmp_path, **case)  # type: ignore[arg-type]
    sign(model, key=leaf_key, certificate_chain=[chain])
    result = verify(model, trust=_x509_policy(tmp_path, root, "release"))
    if reason is None:
        assert result.verified, result.report.findings
    else:
        assert rules(result) == ["SIG007"]
        assert reason in result.report.findings[0].message


def test_validity_window_edges_are_inclusive(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    pair = keys()
    sign(model, key=pair.private)
    text = f"""version: 1
trust:
  signers:
    - name: release
      fingerprint: {pair.fingerprint}
      public_key: {pair.public}
      not_before: 2030-01-01T00:00:00Z
      not_after: 2030-12-31T00:00:00Z
"""
    trust = parse_policy(text, base=tmp_path).trust
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 12, 31, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    for moment, ok in ((start - tick, False), (start, True), (end, True), (end + tick, False)):
        result = verify(model, public_key=None, trust=trust, now=moment)
        assert result.verified is ok, (moment, result.report.findings)
        if not ok:
            assert rules(result) == ["SIG009"]


# --- the verification cache as hostile input -----------------------------------------------------


def test_symlinked_or_huge_cache_is_not_trusted(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    from mlwarden.signing._cache import VerifyCache

    pair = keys()
    sign(model, key=pair.private)
    real = tmp_path / "real-cache.json"
    real.write_text('{"version": 1, "entries": {}}')
    real.chmod(0o600)
    link = tmp_path / "cache.json"
    link.symlink_to(real)
    assert not VerifyCache(link, tree=model).usable
    assert verify(model, public_key=pair.public, cache=link).verified
    assert link.is_symlink() and real.read_text() == '{"version": 1, "entries": {}}'
    # A cache inside the verified tree could be written by whoever supplies the tree.
    assert not VerifyCache(model / "cache.json", tree=model).usable
    # Nested garbage is malformed, not a crash.
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    deep.chmod(0o600)
    assert verify(model, public_key=pair.public, cache=deep).verified


# --- the fast name check agrees with the precise one ---------------------------------------------

_NAMES = [
    "a.bin", "dir/a.bin", ".hidden", "a..b", "..a", "a..", ".", "..", "../a", "a/..", "a/./b",
    "/a", "a/", "a//b", "", "c:/x", "c:", "ab:c", "a\\b", "a\nb", "a\rb", "a\x00b", "a\x7f",
    "x" * 4096, "x" * 4097, "mоdel.bin", "ｍodel", "Ωμέγα.bin", "a b", "a:b/c", "d/c:",
]  # fmt: skip


@pytest.mark.parametrize("name", _NAMES)
def test_fast_name_check_agrees_with_the_precise_one(name: str) -> None:
    from mlwarden.signing._names import all_plain, unsafe_reason

    plain = all_plain(["ok.bin", name, "dir/ok.bin"])
    # Sound: the fast check never passes a name the precise one refuses.
    assert not plain or unsafe_reason(name) is None
    simple = name.isascii() and ":" not in name
    assert plain == (simple and unsafe_reason(name) is None and name != ".")
    assert all_plain([f"shard{i}/item{i}.txt" for i in range(100)])


def test_a_renewed_certificate_entry_still_counts(model: Path, tmp_path: Path) -> None:
    # Two entries for the same chain, one expired: the one in its window accepts.
    pki = make_pki(tmp_path / "pki")
    sign(model, key=pki.leaf_key, certificate_chain=[pki.chain])
    entry = "    - name: {0}\n      x509:\n        root: {1}\n        subject: ml-release\n"
    text = (
        "version: 1\ntrust:\n  signers:\n"
        + entry.format("old", pki.root_cert)
        + "      not_after: 2000-01-01T00:00:00Z\n"
        + entry.format("new", pki.root_cert)
    )
    result = verify(model, trust=parse_policy(text, base=tmp_path).trust)
    assert result.verified, result.report.findings
    only_old = text.split("    - name: new")[0]
    assert rules(verify(model, trust=parse_policy(only_old, base=tmp_path).trust)) == ["SIG009"]


def test_an_empty_key_hint_is_no_hint(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    signature = sign(model, key=pair.private)
    bundle = _bundle(signature)
    bundle["verificationMaterial"]["publicKey"]["hint"] = ""  # type: ignore[index]
    signature.write_text(json.dumps(bundle))
    assert verify(model, public_key=pair.public).verified
    assert rules(verify(model, public_key=keys("other").public)) == ["SIG006"]


def test_a_certificate_with_a_malformed_extension_is_malformed_input(
    model: Path, tmp_path: Path
) -> None:
    from mlwarden.signing._bundle import dump_bundle

    pki = make_pki(tmp_path / "pki")
    signature = sign(model, key=pki.leaf_key, certificate_chain=[pki.chain])
    payload = base64.b64decode(str(_envelope(_bundle(signature))["payload"]))
    intermediate = x509.load_pem_x509_certificate(
        (tmp_path / "pki" / "intermediate.crt").read_bytes()
    )
    # A leaf for the same key whose key usage extension is not valid DER.
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ml-release")]))
        .issuer_name(intermediate.subject)
        .public_key(pki.leaf_key_obj.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW)
        .not_valid_after(_NOW + timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.oid.ExtensionOID.KEY_USAGE, b"\x05\x00"), critical=True
        )
        .sign(pki.intermediate_key_obj, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    sig = pki.leaf_key_obj.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    signature.write_bytes(
        dump_bundle(
            payload=payload,
            signature=sig,
            key_hint=None,
            certificates=(leaf.public_bytes(der), intermediate.public_bytes(der)),
        )
    )
    result = verify(model, trust=_x509_policy(tmp_path, pki.root_cert, "ml-release"))
    assert rules(result) == ["SIG011"]
    assert "does not parse" in result.report.findings[0].message


def test_an_existing_cache_in_a_folder_others_may_write_is_not_used(
    model: Path, tmp_path: Path
) -> None:
    from mlwarden.signing._cache import VerifyCache

    shared = tmp_path / "shared"
    shared.mkdir()
    cache = shared / "cache.json"
    cache.write_text('{"version": 1, "entries": {}}')
    cache.chmod(0o600)
    assert VerifyCache(cache, tree=model).usable
    shared.chmod(0o777)  # anyone may rename another file over the cache
    assert not VerifyCache(cache, tree=model).usable
    shared.chmod(0o1777)  # the sticky bit: only the owner may replace it
    assert VerifyCache(cache, tree=model).usable
