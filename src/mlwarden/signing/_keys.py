"""Keys and certificates: loading them with clear errors, and naming them.

Only EC P-256 and P-384 keys are accepted (the curves OpenSSF model signing uses
with SHA-256 and SHA-384). A key is named by its fingerprint: the sha256 of its
DER SubjectPublicKeyInfo, in hex. The bundle's `publicKey.hint` is model_signing's
own name for a key (the sha256 of its PEM SubjectPublicKeyInfo), kept for interop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlwarden.errors import PathNotFoundError, SigningKeyError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

_MAX_KEY_FILE = 1 << 20
_CURVES = {"secp256r1": 256, "secp384r1": 384}


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise PathNotFoundError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > _MAX_KEY_FILE:
        raise SigningKeyError(f"{what} {path} is larger than 1 MiB")
    return data


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningKeyError(
            f"private key {path} is encrypted", hint="decrypt it to a PEM key first"
        ) from None
    except ValueError:
        raise SigningKeyError(f"{path} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningKeyError(f"private key {path} is not an EC key (use P-256 or P-384)")
    check_curve(key.public_key(), str(path))
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{path} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningKeyError(f"public key {path} is not an EC key (use P-256 or P-384)")
    check_curve(key, str(path))
    return key


def load_certificates(paths: Sequence[Path]) -> list[x509.Certificate]:
    from cryptography import x509

    certificates: list[x509.Certificate] = []
    for path in paths:
        data = _read(path, "certificate file")
        try:
            certificates.extend(x509.load_pem_x509_certificates(data))
        except ValueError:
            raise SigningKeyError(f"{path} holds no PEM certificate") from None
    return certificates


def check_curve(key: ec.EllipticCurvePublicKey, where: str) -> None:
    if key.curve.name not in _CURVES:
        raise SigningKeyError(f"{where}: curve {key.curve.name} is not allowed (P-256 or P-384)")


def curve_ok(key: object) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec

    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES


def hash_for(key: ec.EllipticCurvePublicKey) -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def pem_hint(key: ec.EllipticCurvePublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()
