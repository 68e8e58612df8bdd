"""Load only what is verified: `mlwarden.load(path, trust=...) -> model`.

The order is fixed and fails closed:

1. find the signed object the file belongs to and its bundle(s);
2. verify the bundle(s) against the trust given (a policy, a policy file, or one
   public key) and take the file's signed sha256 from the verified manifest;
3. read the file once into an immutable buffer, hash that buffer, compare;
4. scan that buffer: any finding at all refuses the load;
5. deserialize that buffer with a loader that cannot run code: PyTorch's
   ``weights_only`` unpickler, safetensors, ONNX protobuf parsing, or a restricted
   unpickler that resolves only the scanner's allowlisted names.

Every refusal is an `MlwardenError` with a stable code, raised before a single
byte reaches a deserializer: E208 nothing signed covers the file, E203 the
signer is not trusted (or no trust was given), E201 the bundle is malformed,
E204 the bytes differ from the signed digest, E205 the scan flagged them, E113
the format is not one load can deserialize safely, E106 the file is larger than
`max_bytes`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden.errors import (
    IntegrityError,
    ManifestMismatchError,
    NotVerifiedError,
    UnsupportedLoadError,
    UntrustedSignerError,
    UsageError,
    all_error_classes,
)
from mlwarden.loading import _read
from mlwarden.loading._locate import PathLike, Target, locate
from mlwarden.loading._read import DEFAULT_MAX_BYTES, VerifiedBytes

if TYPE_CHECKING:
    from mlwarden.policy import PolicyFile, TrustPolicy

__all__ = ["DEFAULT_MAX_BYTES", "FORMATS", "load"]

FORMATS = ("torch", "safetensors", "onnx", "pickle", "joblib")
"""What `format=` may name; by default the format is recognised from the content."""

_COMPRESSED = frozenset({"gzip", "bz2", "xz", "lzma", "zlib"})


def load(
    path: PathLike,
    trust: TrustPolicy | PolicyFile | PathLike | None = None,
    *,
    signature: PathLike | Sequence[PathLike] | None = None,
    public_key: PathLike | None = None,
    root: PathLike | None = None,
    format: str | None = None,
    framework: str | None = None,
    as_session: bool = False,
    map_location: Any = "cpu",
    max_bytes: int = DEFAULT_MAX_BYTES,
    verify_folder: bool = False,
    cache: PathLike | None = None,
) -> Any:
    """Return the model in `path` once its signature verifies and its scan is clean.

    `trust` is a TrustPolicy, a parsed PolicyFile, or the path of an mlwarden.yaml;
    `public_key` trusts one PEM public key instead. With neither, nothing is trusted
    and the load is refused. `signature` names the bundle (several for k-of-n
    policies); `root` the signed folder the file lives in (see `_locate` for the
    defaults). `framework` picks torch or numpy arrays for safetensors,
    `as_session` an onnxruntime InferenceSession instead of a ModelProto for ONNX,
    `map_location` the device for PyTorch tensors. `verify_folder=True` also
    verifies every other file of a signed folder first (`mlwarden verify`, with
    the verification `cache` file if given); the loaded file itself is always
    checked on the bytes that are deserialized.
    """
    if format is not None and format not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if max_bytes <= 0:
        raise UsageError("max_bytes must be positive")
    target = locate(path, signature=signature, root=root)
    policy = _trust_policy(trust)
    key = Path(public_key) if public_key is not None else None
    if key is None and (policy is None or policy.trusts_nothing):
        raise UntrustedSignerError(
            f"{path}: no trusted signer was given, and an empty trust trusts nothing; "
            "nothing was loaded",
            hint="pass trust='mlwarden.yaml' or public_key='signer.pub'",
        )
    manifest = _verified_manifest(target, policy, key)
    if verify_folder and not target.single_file:
        _verify_folder(target, policy, key, cache)
    expected = _signed_digest(target, manifest)
    verified = _read.read_verified(
        target.file,
        name=target.name,
        expected_sha256=expected,
        root=target.root if not target.single_file else target.file.parent,
        max_bytes=max_bytes,
    )
    kind = format or _recognise(verified)
    return _deserialize(
        kind,
        verified,
        target=target,
        manifest=manifest,
        framework=framework,
        as_session=as_session,
        map_location=map_location,
        max_bytes=max_bytes,
    )


def _trust_policy(trust: TrustPolicy | PolicyFile | PathLike | None) -> TrustPolicy | None:
    if trust is None:
        return None
    from mlwarden.policy import PolicyFile, TrustPolicy, load_policy

    if isinstance(trust, TrustPolicy):
        return trust
    if isinstance(trust, PolicyFile):
        return trust.trust
    if isinstance(trust, str | os.PathLike):
        return load_policy(Path(trust)).trust
    raise UsageError(
        f"trust must be a TrustPolicy, a PolicyFile or a path to mlwarden.yaml, "
        f"not {type(trust).__name__}"
    )


def _verified_manifest(
    target: Target, policy: TrustPolicy | None, key: Path | None
) -> Mapping[str, str]:
    """The signed {resource name: sha256 hex} of the bundle(s), after verification."""
    from mlwarden.signing import verified_manifest

    try:
        manifest = verified_manifest(
            list(target.signatures), root_name=target.root_name, public_key=key, trust=policy
        )
    except IntegrityError as exc:
        raise _naming(exc, target.file) from None
    return {name: _hex(digest) for name, digest in manifest.items()}


def _naming(exc: IntegrityError, file: Path) -> IntegrityError:
    """The same refusal, its message prefixed with the file being loaded."""
    if str(file) in exc.message:
        return exc
    return type(exc)(f"{file}: {exc.message}", hint=exc.hint)


def _verify_folder(
    target: Target, policy: TrustPolicy | None, key: Path | None, cache: PathLike | None
) -> None:
    """Verify the whole signed folder; refuse with the first difference's code."""
    from mlwarden.signing import verify

    outcome = verify(
        target.root,
        signatures=list(target.signatures),
        public_key=key,
        trust=policy,
        cache=Path(cache) if cache is not None else None,
        fail_fast=True,
    )
    if outcome.verified:
        return
    findings = [f for result in outcome.report.results for f in result.findings]
    first = findings[0] if findings else None
    code = first.detail.get("code", "E204") if first is not None else "E204"
    message = "verification failed"
    if first is not None:
        message = first.message
        if first.location not in message:
            message = f"{first.location}: {message}"
    error_class = next(
        (c for c in all_error_classes() if c.code == code and issubclass(c, IntegrityError)),
        ManifestMismatchError,
    )
    raise error_class(f"{target.file}: its signed folder {target.root} does not verify: {message}")


def _hex(digest: str | bytes) -> str:
    if isinstance(digest, bytes):
        return digest.hex()
    return digest.removeprefix("sha256:").lower()


def _signed_digest(target: Target, manifest: Mapping[str, str]) -> str:
    if target.name in manifest:
        return manifest[target.name]
    if target.single_file and len(manifest) == 1:
        # A file signed on its own: the bundle's one resource is the file, whatever
        # name the signing tool gave it; its digest still has to match below.
        return next(iter(manifest.values()))
    raise NotVerifiedError(
        f"{target.file}: {target.name!r} is not in the signed manifest of {target.root}; "
        "nothing was loaded"
    )


def _recognise(verified: VerifiedBytes) -> str:
    """The loader for the content, from the scanner's format and the leading bytes."""
    from mlwarden.loading._joblib import compression_of
    from mlwarden.loading._torch import LEGACY_MAGIC, torch_zip_kind

    fmt = verified.format
    data = verified.data
    if fmt in ("safetensors", "onnx"):
        return fmt
    if fmt == "zip":
        kind = torch_zip_kind(data)
        if kind == "torch":
            return "torch"
        if kind == "torchscript":
            raise UnsupportedLoadError(
                f"{verified.location}: a TorchScript archive holds code, which mlwarden.load "
                "never runs; nothing was deserialized",
                hint="save the weights with torch.save(model.state_dict()) or as safetensors",
            )
    if fmt in ("pickle", "joblib"):
        if data.startswith(LEGACY_MAGIC):
            return "torch"
        if fmt == "joblib" or b"NumpyArrayWrapper" in data[:65536]:
            return "joblib"
        if verified.location.lower().endswith(".joblib"):
            return "joblib"
        return "pickle"
    if fmt in _COMPRESSED and compression_of(data) is not None:
        return "joblib"
    raise UnsupportedLoadError(
        f"{verified.location}: mlwarden.load does not load {fmt} content; it loads "
        f"{', '.join(FORMATS)} (verified and scanned, nothing was deserialized)"
    )


def _deserialize(
    kind: str,
    verified: VerifiedBytes,
    *,
    target: Target,
    manifest: Mapping[str, str],
    framework: str | None,
    as_session: bool,
    map_location: Any,
    max_bytes: int,
) -> Any:
    data, location = verified.data, verified.location
    if kind == "torch":
        from mlwarden.loading._torch import load_torch

        return load_torch(data, location, map_location)
    if kind == "safetensors":
        from mlwarden.loading._safetensors import load_safetensors

        return load_safetensors(data, location, framework)
    if kind == "onnx":
        from mlwarden.loading._onnx import load_onnx

        reader = None if target.single_file else _resource_reader(target, manifest, max_bytes)
        return load_onnx(
            data, location, name=target.name, read_resource=reader, as_session=as_session
        )
    if kind == "joblib":
        from mlwarden.loading._joblib import load_joblib

        return load_joblib(data, location, max_bytes)
    from mlwarden.loading._pickle_restricted import load_pickle

    return load_pickle(data, location)


def _resource_reader(target: Target, manifest: Mapping[str, str], max_bytes: int) -> Any:
    """Read another file of the same signed folder, matched to its signed digest."""

    def read(name: str) -> bytes:
        expected = manifest.get(name)
        if expected is None:
            raise NotVerifiedError(
                f"{target.file}: it refers to {name!r}, which is not in the signed manifest "
                f"of {target.root}; nothing was loaded"
            )
        path = target.root.joinpath(*name.split("/"))
        data = _read.read_once(path, max_bytes)
        _read.check_digest(data, expected, name=name, location=str(path))
        return data

    return read
