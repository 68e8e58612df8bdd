"""Signing: list the tree, refuse what cannot be signed safely, hash, sign, write the bundle."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mlwarden.errors import (
    FileChangedError,
    InputError,
    InternalError,
    MlwardenError,
    PathNotFoundError,
    SigningKeyError,
    SymlinkEscapeError,
    UnreadableInputError,
    UnsafeResourceNameError,
)
from mlwarden.signing import _keys
from mlwarden.signing._bundle import dump_bundle
from mlwarden.signing._dsse import PAYLOAD_TYPE, pae
from mlwarden.signing._hashing import HashJob, hash_many, list_tree, path_of
from mlwarden.signing._names import collision_key, unsafe_reason
from mlwarden.signing._statement import GIT_PATHS, Manifest, Resource, build_statement


def default_signature_path(path: Path) -> Path:
    """`PATH.sig` beside the model (outside a model folder, so it is never part of it)."""
    absolute = Path(os.path.abspath(path))
    return absolute.with_name(absolute.name + ".sig")


def model_name_of(path: Path) -> str:
    return Path(os.path.abspath(path)).name


def sign_tree(
    path: Path,
    *,
    key: Path,
    signature: Path | None,
    certificate_chain: Sequence[Path],
    workers: int | None = None,
) -> Path:
    if not os.path.lexists(path):
        raise PathNotFoundError(f"{path} does not exist")
    private_key = _keys.load_private_key(key)
    certificates: tuple[bytes, ...] = ()
    if certificate_chain:
        certificates = _chain_der(private_key, certificate_chain)
    target = Path(os.path.abspath(signature)) if signature else default_signature_path(path)
    root = Path(os.path.abspath(path))
    ignore = list(GIT_PATHS)
    if root.is_dir() and target.is_relative_to(root):
        ignore.append(target.relative_to(root).as_posix())
    listing = list_tree(root, ignore=ignore)
    if listing.symlinks:
        raise SymlinkEscapeError(
            f"{path_of(root, listing.symlinks[0])} is a symbolic link; mlwarden signs no links",
            hint="replace the link with the file it points to",
        )
    if listing.special:
        raise UnreadableInputError(f"{path_of(root, listing.special[0])} is not a regular file")
    if not listing.files:
        raise InputError(f"{path} holds no file to sign")
    seen: dict[str, str] = {}
    for name in listing.files:
        reason = unsafe_reason(name)
        if reason is not None:
            raise UnsafeResourceNameError(f"cannot sign {path_of(root, name)!r}: {reason}")
        other = seen.setdefault(collision_key(name), name)
        if other != name:
            raise UnsafeResourceNameError(
                f"cannot sign both {other!r} and {name!r}: they are one file on "
                "case-insensitive or normalising file systems"
            )
    digests: dict[str, str] = {}
    failure: list[MlwardenError] = []

    def done(job: HashJob, result: str | Exception) -> bool:
        if isinstance(result, Exception):
            failure.append(
                result if isinstance(result, MlwardenError) else FileChangedError(str(result))
            )
            return False
        digests[job.name] = result
        return True

    jobs = [HashJob(name=n, path=path_of(root, n), listed=s) for n, s in listing.files.items()]
    complete = hash_many(jobs, done, workers=workers)
    if failure:
        raise failure[0]
    if not complete or len(digests) != len(jobs):
        raise InternalError("signing stopped before every file was hashed")
    manifest = Manifest(
        model_name=model_name_of(path),
        resources=tuple(
            Resource(name=n, digest=d, size=listing.files[n].st_size) for n, d in digests.items()
        ),
        ignore_paths=tuple(ignore),
    )
    payload = build_statement(manifest)
    signature_bytes = _sign_payload(private_key, payload)
    bundle = dump_bundle(
        payload=payload,
        signature=signature_bytes,
        key_hint=None if certificates else _keys.pem_hint(private_key.public_key()),
        certificates=certificates,
    )
    _write_atomically(target, bundle)
    return target


def _sign_payload(private_key: object, payload: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    return private_key.sign(
        pae(PAYLOAD_TYPE, payload), ec.ECDSA(_keys.hash_for(private_key.public_key()))
    )


def _chain_der(private_key: object, paths: Sequence[Path]) -> tuple[bytes, ...]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    certificates = _keys.load_certificates(paths)
    if certificates[0].public_key() != private_key.public_key():
        raise SigningKeyError(
            f"the first certificate in {paths[0]} is not for this private key",
            hint="put the signing (leaf) certificate first, then its intermediates",
        )
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certificates)


def _write_atomically(target: Path, data: bytes) -> None:
    from mlwarden.errors import OutputError

    try:
        fd, temp = tempfile.mkstemp(prefix=".mlwarden-sig-", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write the signature {target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise OutputError(f"cannot write the signature {target}: {exc.strerror}") from None
