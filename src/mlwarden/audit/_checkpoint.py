"""Signed checkpoints: the chain head at a moment, signed with an EC key.

Kept somewhere the log's writers cannot reach (another host, a ticket, a release),
a checkpoint turns "the chain is self-consistent" into "the chain still holds what
it held at that moment": a log rewritten from scratch or cut short no longer
matches it. The signature is ECDSA (P-256 with SHA-256, P-384 with SHA-384) over
the canonical JSON of the unsigned fields.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden.audit._chain import ChainHead
from mlwarden.audit._event import utc_now
from mlwarden.errors import (
    CheckpointMalformedError,
    CheckpointSignatureError,
    PathNotFoundError,
    SigningKeyError,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

CHECKPOINT_TYPE = "mlwarden.audit.checkpoint/v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_FILE = 64 * 1024
_CURVES = frozenset({"secp256r1", "secp384r1"})
_FIELDS = frozenset({"type", "log_id", "seq", "hash", "time", "key_id", "signature"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A signed chain head: log `log_id` had `seq` records ending in `hash` at `time`.

    `key_id` is the sha256 of the signing key's DER SubjectPublicKeyInfo (the same
    fingerprint `mlwarden.yaml` uses for signers); `signature` is base64 DER ECDSA.
    """

    log_id: str
    seq: int
    hash: str
    time: str
    key_id: str
    signature: str

    @property
    def head(self) -> ChainHead:
        return ChainHead(seq=self.seq, hash=self.hash)

    def payload(self) -> bytes:
        """The bytes the signature covers."""
        return _payload(self.log_id, self.seq, self.hash, self.time)

    def to_json(self) -> str:
        data = {
            "type": CHECKPOINT_TYPE,
            "log_id": self.log_id,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time,
            "key_id": self.key_id,
            "signature": self.signature,
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Checkpoint:
        """Parse a checkpoint; E353 names what is wrong with it."""
        try:
            data: Any = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise CheckpointMalformedError("checkpoint is not JSON") from None
        if not isinstance(data, dict) or set(data) != _FIELDS:
            raise CheckpointMalformedError(
                f"checkpoint must hold exactly the fields {', '.join(sorted(_FIELDS))}"
            )
        if data["type"] != CHECKPOINT_TYPE:
            raise CheckpointMalformedError(f"checkpoint type is not {CHECKPOINT_TYPE!r}")
        for name in ("log_id", "hash", "time", "key_id", "signature"):
            if type(data[name]) is not str:
                raise CheckpointMalformedError(f"checkpoint field {name!r} must be a string")
        if type(data["seq"]) is not int or data["seq"] < 0:
            raise CheckpointMalformedError("checkpoint field 'seq' must be a non-negative integer")
        for name in ("hash", "key_id"):
            if not _HEX64.fullmatch(data[name]):
                raise CheckpointMalformedError(f"checkpoint field {name!r} must be 64 hex digits")
        return cls(
            log_id=data["log_id"],
            seq=data["seq"],
            hash=data["hash"],
            time=data["time"],
            key_id=data["key_id"],
            signature=data["signature"],
        )

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_FILE + 1)
        except FileNotFoundError:
            raise PathNotFoundError(f"checkpoint {path} does not exist") from None
        except OSError as exc:
            raise CheckpointMalformedError(
                f"cannot read checkpoint {path}: {exc.strerror}"
            ) from None
        if len(data) > _MAX_FILE:
            raise CheckpointMalformedError(f"checkpoint {path} is larger than 64 KiB")
        return cls.from_json(data)


def _payload(log_id: str, seq: int, digest: str, time: str) -> bytes:
    data = {"type": CHECKPOINT_TYPE, "log_id": log_id, "seq": seq, "hash": digest, "time": time}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """The sha256 of the key's DER SubjectPublicKeyInfo, in hex."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _hash_for(key: ec.EllipticCurvePublicKey) -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    if key.curve.name not in _CURVES:
        raise SigningKeyError(f"curve {key.curve.name} is not allowed (P-256 or P-384)")
    return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()


def sign_head(log_id: str, head: ChainHead, private_key: ec.EllipticCurvePrivateKey) -> Checkpoint:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise SigningKeyError("a checkpoint is signed with an EC private key (P-256 or P-384)")
    public = private_key.public_key()
    time = utc_now()
    signature = private_key.sign(
        _payload(log_id, head.seq, head.hash, time), ec.ECDSA(_hash_for(public))
    )
    return Checkpoint(
        log_id=log_id,
        seq=head.seq,
        hash=head.hash,
        time=time,
        key_id=key_id(public),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def verify_checkpoint(checkpoint: Checkpoint, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raise E354 unless `public_key` signed exactly this checkpoint."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise SigningKeyError("a checkpoint verifies with an EC public key (P-256 or P-384)")
    algorithm = _hash_for(public_key)
    if checkpoint.key_id != key_id(public_key):
        raise CheckpointSignatureError(
            f"checkpoint was signed by key {checkpoint.key_id[:16]}..., "
            f"not by the given key {key_id(public_key)[:16]}..."
        )
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(signature, checkpoint.payload(), ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError):
        raise CheckpointSignatureError(
            "checkpoint signature does not verify: the checkpoint was altered or forged"
        ) from None


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An unencrypted EC P-256/P-384 private key from a PEM file (E102, E112 otherwise):
    the same keys, and the same checks, as model signing."""
    from mlwarden.signing._keys import load_private_key as load

    return load(path)


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """An EC P-256/P-384 public key from a PEM file (E102, E112 otherwise)."""
    from mlwarden.signing._keys import load_public_key as load

    return load(path)
