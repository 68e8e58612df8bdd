"""The Sigstore bundle v0.3 that carries a DSSE envelope: writing and strict reading.

Key signatures carry `verificationMaterial.publicKey.hint`, certificate signatures
`verificationMaterial.x509CertificateChain` (leaf first), exactly as model_signing
1.1.1 writes them. Transparency-log entries are neither written nor relied on.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlwarden.signing._dsse import PAYLOAD_TYPE
from mlwarden.signing._statement import StatementError, loads_strict

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MAX_BUNDLE_BYTES = 256 << 20


class BundleError(ValueError):
    """The bundle cannot be read; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """A parsed bundle: the signed bytes and what the signer says about itself."""

    source: str
    payload: bytes
    payload_type: str
    signature: bytes
    key_hint: str | None = None
    certificates: tuple[bytes, ...] = ()  # DER, leaf first


# --- boundary models ------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Signature(_Strict):
    sig: str
    keyid: str = ""


class _Envelope(_Strict):
    payload: str
    payloadType: str
    signatures: list[_Signature] = Field(min_length=1, max_length=1)


class _PublicKey(_Strict):
    hint: str | None = None


class _Certificate(_Strict):
    rawBytes: str


class _Chain(_Strict):
    certificates: list[_Certificate] = Field(min_length=1, max_length=10)


class _Material(_Strict):
    publicKey: _PublicKey | None = None
    x509CertificateChain: _Chain | None = None
    tlogEntries: list[dict[str, Any]] = Field(default_factory=list)
    timestampVerificationData: dict[str, Any] | None = None


class _BundleModel(_Strict):
    mediaType: str
    verificationMaterial: _Material
    dsseEnvelope: _Envelope


def read_bundle(path: Path) -> Bundle:
    """Parse a bundle file; raise BundleError naming what is wrong."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BUNDLE_BYTES + 1)
    except FileNotFoundError:
        raise BundleError("the signature file does not exist") from None
    except OSError as exc:
        raise BundleError(f"cannot read the signature file: {exc.strerror}") from None
    if len(raw) > MAX_BUNDLE_BYTES:
        raise BundleError("the signature file is larger than 256 MiB")
    return parse_bundle(raw, source=str(path))


def parse_bundle(raw: bytes, *, source: str) -> Bundle:
    try:
        data = loads_strict(raw)
    except (StatementError, ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"not JSON (truncated or corrupted?): {_short(exc)}") from None
    try:
        model = _BundleModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise BundleError(f"{field}: {first['msg']}") from None
    if model.mediaType != MEDIA_TYPE:
        raise BundleError(f"mediaType is {model.mediaType!r}, expected {MEDIA_TYPE}")
    material = model.verificationMaterial
    if (material.publicKey is None) == (material.x509CertificateChain is None):
        raise BundleError(
            "verificationMaterial needs exactly one of publicKey, x509CertificateChain"
        )
    envelope = model.dsseEnvelope
    if envelope.payloadType != PAYLOAD_TYPE:
        raise BundleError(f"payloadType is {envelope.payloadType!r}, expected {PAYLOAD_TYPE}")
    certificates: tuple[bytes, ...] = ()
    if material.x509CertificateChain is not None:
        certificates = tuple(
            _b64(c.rawBytes, "x509CertificateChain.rawBytes")
            for c in material.x509CertificateChain.certificates
        )
    return Bundle(
        source=source,
        payload=_b64(envelope.payload, "dsseEnvelope.payload"),
        payload_type=envelope.payloadType,
        signature=_b64(envelope.signatures[0].sig, "dsseEnvelope.signatures[0].sig"),
        # An empty hint is no hint (model_signing treats it so): every trusted key is tried.
        key_hint=(material.publicKey.hint or None) if material.publicKey is not None else None,
        certificates=certificates,
    )


def dump_bundle(
    *, payload: bytes, signature: bytes, key_hint: str | None, certificates: tuple[bytes, ...]
) -> bytes:
    material: dict[str, Any]
    if certificates:
        material = {
            "x509CertificateChain": {
                "certificates": [{"rawBytes": _enc(der)} for der in certificates]
            },
            "tlogEntries": [],
        }
    else:
        material = {"publicKey": {"hint": key_hint}, "tlogEntries": []}
    bundle = {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": _enc(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": _enc(signature), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode("ascii")


def _enc(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError(f"{field} is not valid base64") from None


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
