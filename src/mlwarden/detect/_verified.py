"""Load a detector reference only once it verifies against the trust policy.

The reference decides who gets quarantined, so it is an artefact as sensitive as the
model: it is signed like the model (`mlwarden sign REF`) and checked the way
`mlwarden.load` checks a model. The file is read once, its bytes are matched to the
signed digest, and exactly those bytes are parsed (from a private copy), so a file
swapped after the check is never the one used.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlwarden.errors import IntegrityError, MlwardenError, ReferenceNotTrustedError

if TYPE_CHECKING:
    from mlwarden.detect import Reference
    from mlwarden.policy import TrustPolicy

MAX_REFERENCE_BYTES = 256 * 1024 * 1024


def load_verified_reference(
    path: Path,
    *,
    trust: TrustPolicy,
    signatures: Sequence[Path] = (),
    public_key: Path | None = None,
) -> Reference:
    """The reference in `path` if a trusted signer signed these very bytes; E323 otherwise
    (E16x from the detection core when the verified bytes are not a valid reference)."""
    from mlwarden.detect import load_reference
    from mlwarden.loading._read import read_once
    from mlwarden.signing import verified_manifest

    bundles = list(signatures) or [path.with_name(path.name + ".sig")]
    if public_key is None and trust.trusts_nothing:
        raise ReferenceNotTrustedError(
            f"detector reference {path}: the trust policy trusts no signer",
            hint="add the signer to 'trust:' in mlwarden.yaml",
        )
    missing = [b for b in bundles if not b.exists()]
    if missing:
        raise ReferenceNotTrustedError(
            f"detector reference {path} is not signed ({missing[0].name} not found)",
            hint=f"sign it: mlwarden sign {path.name} --key KEY",
        )
    try:
        manifest = verified_manifest(
            bundles, root_name=path.name, public_key=public_key, trust=trust
        )
    except IntegrityError as exc:
        raise ReferenceNotTrustedError(
            f"detector reference {path} does not verify: {exc.code} {exc.message}"
        ) from None
    expected = manifest.get(".") or manifest.get(path.name)
    if expected is None and len(manifest) == 1:
        expected = next(iter(manifest.values()))
    if expected is None:
        raise ReferenceNotTrustedError(f"detector reference {path}: the bundle does not cover it")
    data = read_once(path, MAX_REFERENCE_BYTES)
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, expected.removeprefix("sha256:").lower()):
        raise ReferenceNotTrustedError(
            f"detector reference {path}: content differs from the signed digest",
            hint="the file was changed after signing; refit and sign it again",
        )
    with tempfile.TemporaryDirectory(prefix="mlwarden-ref-") as folder:
        copy = Path(folder) / path.name
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        try:
            reference = load_reference(copy)
        except MlwardenError as exc:
            # Name the file the operator declared, not the private copy.
            raise exc.naming(str(copy), str(path)) from None
    return reference
