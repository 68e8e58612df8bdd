"""Sign and verify models and datasets: OpenSSF Model Signing v1.0 bundles.

A bundle is a Sigstore bundle v0.3 holding a DSSE envelope over an in-toto
Statement v1 with the predicate `https://model_signing/signature/v1.0` and the
`files` serialization with sha256: the format the `model-signing` package writes
and verifies, so bundles move both ways between the two tools.

>>> from mlwarden.signing import sign, verify
>>> sign(Path("model"), key=Path("key.pem"))            # writes model.sig beside it
>>> verify(Path("model"), public_key=Path("key.pub")).verified

`verify` returns data (a `Verification` with a report of SIG findings); it raises
only when it cannot decide (a key file that does not load, an unreadable file).
`verified_manifest` is for loaders: it checks signatures and trust only and
returns the signed digests, so the loader can hash exactly the bytes it
deserializes against them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from mlwarden.policy import TrustPolicy
from mlwarden.signing._verify import Verification

__all__ = [
    "Verification",
    "default_signature_path",
    "manifest",
    "sign",
    "verified_manifest",
    "verify",
]


def default_signature_path(path: Path) -> Path:
    """Where `sign` writes and `verify` looks by default: `PATH.sig` beside the model."""
    from mlwarden.signing._sign import default_signature_path as _default

    return _default(path)


def sign(
    path: Path,
    *,
    key: Path,
    signature: Path | None = None,
    certificate_chain: Sequence[Path] = (),
    workers: int | None = None,
) -> Path:
    """Sign a model folder or file with an EC P-256/P-384 PEM key; return the bundle's path.

    With `certificate_chain` (PEM files, the signing certificate first, then its
    intermediates) the bundle carries the chain instead of a key hint. Symbolic
    links, special files and unsafe names are refused with their error code.
    """
    from mlwarden.signing._sign import sign_tree

    return sign_tree(
        Path(path),
        key=Path(key),
        signature=Path(signature) if signature is not None else None,
        certificate_chain=[Path(p) for p in certificate_chain],
        workers=workers,
    )


def manifest(
    path: Path,
    *,
    key: Path,
    signature: Path | None = None,
    certificate_chain: Sequence[Path] = (),
    workers: int | None = None,
) -> Path:
    """Sign a dataset folder: the same bundle format as `sign`, verified by `verify`."""
    return sign(
        path, key=key, signature=signature, certificate_chain=certificate_chain, workers=workers
    )


def verify(
    path: Path,
    *,
    signatures: Sequence[Path] = (),
    public_key: Path | None = None,
    trust: TrustPolicy | None = None,
    cache: Path | None = None,
    fail_fast: bool = False,
    now: datetime | None = None,
    model_name: str | None = None,
    workers: int | None = None,
) -> Verification:
    """Check the signature(s), the signers against the trust, and every file of the model.

    Without `trust`, `public_key` alone is trusted; with neither, nothing is trusted
    and the verification refuses. `signatures` defaults to `PATH.sig`. `model_name`
    (default: the last component of `path`) must be the name that was signed.
    `now` is the clock for validity windows (default: the current time, UTC).
    """
    from mlwarden.signing._verify import verify_tree

    return verify_tree(
        Path(path),
        signatures=[Path(s) for s in signatures],
        public_key=Path(public_key) if public_key is not None else None,
        trust=trust,
        cache=Path(cache) if cache is not None else None,
        fail_fast=fail_fast,
        now=now,
        model_name=model_name,
        workers=workers,
    )


def verified_manifest(
    signatures: Sequence[Path],
    *,
    root_name: str,
    public_key: Path | None = None,
    trust: TrustPolicy | None = None,
    now: datetime | None = None,
) -> Mapping[str, str]:
    """Check signatures and trust only (no file is read); return resource name -> sha256.

    Raises the E2xx error of the first refusal (E201 malformed, E202 invalid, E203
    untrusted, E204 other model, E206 unsafe name). A single-file model's one
    resource is named ".".
    """
    from mlwarden.signing._verify import manifest_only

    return manifest_only(
        [Path(s) for s in signatures],
        root_name=root_name,
        public_key=Path(public_key) if public_key is not None else None,
        trust=trust,
        now=now,
    )
