"""Keys, certificates and small models for the signing tests, all made at test time."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlwarden.signing import _keys
from mlwarden.signing._bundle import dump_bundle
from mlwarden.signing._dsse import PAYLOAD_TYPE, pae
from mlwarden.signing._statement import PREDICATE_TYPE, STATEMENT_TYPE, root_digest


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    key: ec.EllipticCurvePrivateKey

    @property
    def fingerprint(self) -> str:
        return _keys.fingerprint(self.key.public_key())


def write_key(folder: Path, name: str, curve: ec.EllipticCurve | None = None) -> KeyPair:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private=private, public=public, key=key)


@pytest.fixture
def keys(tmp_path: Path) -> Callable[..., KeyPair]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return lambda name="signer", curve=None: write_key(folder, name, curve)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A small model folder: weights of a few sizes, a config, a nested tokenizer."""
    root = tmp_path / "bert-tiny"
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden": 8}')
    (root / "weights.bin").write_bytes(bytes(range(256)) * 4096)
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    (root / "README.md").write_text("tiny")
    return root


# --- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    root_cert: Path
    chain: Path  # leaf first, then the intermediate
    leaf_key: Path
    leaf_key_obj: ec.EllipticCurvePrivateKey
    intermediate_key_obj: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
    san: str | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(san)]), critical=False
            )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(
    folder: Path,
    *,
    leaf_cn: str = "ml-release",
    san: str | None = "ml-release@example.com",
    leaf_days: int = 30,
) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP384R1())
    mid_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Test Root CA", root_key, "Test Root CA", root_key, ca=True,
                 not_before=now, not_after=now + timedelta(days=3650))  # fmt: skip
    mid = _cert("Test Intermediate CA", mid_key, "Test Root CA", root_key, ca=True,
                not_before=now, not_after=now + timedelta(days=365))  # fmt: skip
    leaf = _cert(leaf_cn, leaf_key, "Test Intermediate CA", mid_key, ca=False,
                 not_before=now, not_after=now + timedelta(days=leaf_days), san=san)  # fmt: skip
    pem = serialization.Encoding.PEM
    (folder / "root.pem").write_bytes(root.public_bytes(pem))
    (folder / "chain.pem").write_bytes(leaf.public_bytes(pem) + mid.public_bytes(pem))
    (folder / "leaf.crt").write_bytes(leaf.public_bytes(pem))
    (folder / "intermediate.crt").write_bytes(mid.public_bytes(pem))
    (folder / "leaf.pem").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Pki(
        root_cert=folder / "root.pem",
        chain=folder / "chain.pem",
        leaf_key=folder / "leaf.pem",
        leaf_key_obj=leaf_key,
        intermediate_key_obj=mid_key,
    )


# --- hand-made bundles -----------------------------------------------------------------------


def statement(
    resources: list[dict[str, object]], *, name: str = "bert-tiny", **extra: object
) -> dict[str, object]:
    digest = root_digest(str(r["digest"]) for r in resources)
    body: dict[str, object] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
            "resources": resources,
        },
    }
    body.update(extra)
    return body


def signed_bundle(pair: KeyPair, payload: bytes | dict[str, object], target: Path) -> Path:
    """A correctly signed bundle over any payload: for names and shapes sign() never writes."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = pair.key.sign(pae(PAYLOAD_TYPE, raw), ec.ECDSA(hashes.SHA256()))
    target.write_bytes(
        dump_bundle(
            payload=raw,
            signature=signature,
            key_hint=_keys.pem_hint(pair.key.public_key()),
            certificates=(),
        )
    )
    return target


def read_payload(bundle: Path) -> dict[str, object]:
    data = json.loads(bundle.read_text())
    return json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))
