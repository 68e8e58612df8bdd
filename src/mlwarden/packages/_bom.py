"""A CycloneDX 1.6 ML bill of materials, built and serialized with cyclonedx-python-lib.

Models are `machine-learning-model` components with their SHA-256, the format and
verdict the scanner found and the status of their signature; datasets are `data`
components; Python packages are `library` components with a `pkg:pypi` purl.
What mlwarden concluded lives in properties under the `mlwarden:` namespace, so
other CycloneDX tools keep them untouched.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden import __version__
from mlwarden.errors import IntegrityError, MlwardenError, PathNotFoundError
from mlwarden.packages._model import Dependency, Origin
from mlwarden.report import ObjectResult, Status, Verdict

if TYPE_CHECKING:
    from cyclonedx.model import Property
    from cyclonedx.model.component import Component

    from mlwarden.policy import TrustPolicy

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureStatus:
    """What mlwarden can say about an artifact's signature."""

    status: str  # verified | refused | unsigned | not-verified
    detail: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _walk_files(root: Path, skipped: list[str] | None = None) -> Iterator[Path]:
    """Regular files under root, sorted, without following symbolic links.

    Links and special files are not hashed (a link may point anywhere); their
    names go to `skipped` so the BOM can say what it left out.
    """
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if Path(directory, d).is_symlink()]):
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path
            elif skipped is not None and (path.is_symlink() or not path.is_dir()):
                skipped.append(path.relative_to(root).as_posix())


def signature_status(
    path: Path, *, public_key: Path | None, trust: TrustPolicy | None
) -> SignatureStatus:
    """Verify the bundle at `PATH.sig` when present and a key or policy is given."""
    from mlwarden.signing import default_signature_path, verify

    bundle = default_signature_path(path)
    if not bundle.is_file():
        return SignatureStatus(status="unsigned", detail=f"no signature at {bundle}")
    if public_key is None and trust is None:
        # Verifying against nothing would refuse; "not verified" says what really happened.
        return SignatureStatus(
            status="not-verified", detail=f"{bundle} present; no key or trust policy given"
        )
    try:
        verification = verify(path, signatures=[bundle], public_key=public_key, trust=trust)
    except IntegrityError as exc:
        return SignatureStatus(status="refused", detail=exc.one_line())
    except MlwardenError as exc:
        return SignatureStatus(status="not-verified", detail=exc.one_line())
    if verification.verified:
        signers = ", ".join(verification.signers)
        return SignatureStatus(status="verified", detail=f"{bundle}; signers: {signers}")
    rules = sorted({f.rule_id for f in verification.report.findings})
    return SignatureStatus(status="refused", detail=f"{bundle}: {', '.join(rules) or 'refused'}")


def _props(values: dict[str, str]) -> list[Property]:
    from cyclonedx.model import Property

    return [Property(name=f"mlwarden:{k}", value=v) for k, v in values.items() if v != ""]


def _sha256(hex_digest: str) -> list[Any]:
    from cyclonedx.model import HashAlgorithm, HashType

    return [HashType(alg=HashAlgorithm.SHA_256, content=hex_digest)]


def _scan_props(results: Sequence[ObjectResult]) -> dict[str, str]:
    checked = [r for r in results if r.status is not Status.SKIPPED]
    verdict = Verdict.worst([r.verdict for r in checked]) if checked else None
    rules = sorted({f.rule_id for r in results for f in r.findings})
    formats = sorted({r.format for r in checked if r.format})
    failed = [f"{r.code}: {r.reason}" for r in results if r.status is Status.FAILED]
    return {
        "format": ", ".join(formats),
        # A model the scanner could not recognise is not clean: it was not checked.
        "scan.verdict": verdict.value if verdict is not None else "not-scanned",
        "scan.findings": ", ".join(rules),
        "scan.errors": "; ".join(failed),
    }


def model_component(
    path: Path, results: Sequence[ObjectResult], signature: SignatureStatus
) -> Component:
    from cyclonedx.model.component import Component, ComponentType

    props = _scan_props(results) | {
        "signature.status": signature.status,
        "signature.detail": signature.detail,
        "path": str(path),
    }
    if path.is_file():
        return Component(
            type=ComponentType.MACHINE_LEARNING_MODEL,
            name=path.name,
            bom_ref=f"model:{path}",
            hashes=_sha256(sha256_file(path)),
            properties=_props(props),
        )
    by_path = {r.path: r for r in results}
    files: list[Component] = []
    skipped: list[str] = []
    for file in _walk_files(path, skipped):
        relative = file.relative_to(path).as_posix()
        result = by_path.get(str(file))
        file_props = {"path": relative}
        if result is not None and result.status is not Status.SKIPPED:
            file_props |= {"format": result.format or "", "scan.verdict": result.verdict.value}
        files.append(
            Component(
                type=ComponentType.FILE,
                name=relative,
                bom_ref=f"model:{path}!{relative}",
                hashes=_sha256(sha256_file(file)),
                properties=_props(file_props),
            )
        )
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=path.name,
        bom_ref=f"model:{path}",
        properties=_props(props | {"files": str(len(files)), "not-hashed": ", ".join(skipped)}),
        components=files,
    )


def dataset_component(path: Path, signature: SignatureStatus) -> Component:
    """A dataset: its file count, size and one digest over the sorted (name, sha256) list."""
    from cyclonedx.model.component import Component, ComponentType

    listing = hashlib.sha256()
    count = 0
    size = 0
    skipped: list[str] = []
    paths = [path] if path.is_file() else list(_walk_files(path, skipped))
    for file in paths:
        name = file.name if file == path else file.relative_to(path).as_posix()
        listing.update(f"{name}\0{sha256_file(file)}\n".encode("utf-8", "surrogateescape"))
        count += 1
        size += file.stat().st_size
    props = {
        "files": str(count),
        "bytes": str(size),
        "dataset.listing-sha256": listing.hexdigest(),
        "not-hashed": ", ".join(skipped),
        "signature.status": signature.status,
        "signature.detail": signature.detail,
        "path": str(path),
    }
    return Component(
        type=ComponentType.DATA,
        name=path.name,
        bom_ref=f"data:{path}",
        hashes=_sha256(sha256_file(path)) if path.is_file() else None,
        properties=_props(props),
    )


def library_component(dependency: Dependency) -> Component:
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    name = dependency.canonical or dependency.name or (dependency.url or "unknown")
    purl = (
        PackageURL(type="pypi", name=dependency.canonical, version=dependency.version)
        if dependency.canonical
        else None
    )
    ref = purl.to_string() if purl is not None else f"url:{dependency.url}"
    props = {
        "origin": dependency.origin.value,
        "location": dependency.location,
        "specifier": dependency.specifier if dependency.version is None else "",
        "url": (dependency.url or "") if dependency.origin is not Origin.INDEX else "",
    }
    return Component(
        type=ComponentType.LIBRARY,
        name=name,
        version=dependency.version,
        purl=purl,
        bom_ref=ref,
        properties=_props(props),
    )


def assemble(components: Sequence[Component]) -> dict[str, Any]:
    """Serialize to CycloneDX 1.6 JSON with the library's own outputter."""
    import json

    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom(components=_unique_refs(components))
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="mlwarden", version=__version__)
    )
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    document: dict[str, Any] = json.loads(text)
    return document


def _unique_refs(components: Sequence[Component]) -> list[Component]:
    """CycloneDX requires unique bom-refs: a package listed twice is kept once."""
    seen: set[str] = set()
    unique: list[Component] = []
    for component in components:
        ref = str(component.bom_ref.value)
        if ref in seen:
            continue
        seen.add(ref)
        unique.append(component)
    return unique


def require_exists(paths: Sequence[Path]) -> None:
    for path in paths:
        if not path.exists():
            raise PathNotFoundError(f"{path}: no such file or directory")
