"""The canary set: verified like a model, then read from the verified bytes.

A canary is a dataset signed with `mlwarden data manifest` (a folder, bundle
`FOLDER.sig`) or `mlwarden sign` (one file, bundle `FILE.sig`). Its signature is
checked against the trust first; the data file is then read once, matched to its signed
digest, and parsed from a private copy of exactly those bytes, so a file swapped after
the check cannot be what is measured.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mlwarden.errors import (
    CanaryLabelsError,
    CanaryShapeError,
    IntegrityError,
    MlwardenError,
    UntrustedSignerError,
)
from mlwarden.policy import TrustPolicy

FloatArray = npt.NDArray[np.float64]


def load_canary(
    path: Path,
    *,
    trust: TrustPolicy | None,
    public_key: Path | None = None,
    label: str | None = None,
) -> tuple[FloatArray, tuple[str, ...]]:
    """(features, the label of each row as text) of a verified canary set."""
    from mlwarden.data._inputs import dataset_file, load_dataset
    from mlwarden.loading import _read
    from mlwarden.loading._locate import locate
    from mlwarden.signing import verified_manifest

    path = Path(path)
    file = dataset_file(path) if path.is_dir() else path
    target = locate(file, signature=None, root=path if path.is_dir() else None)
    if public_key is None and (trust is None or trust.trusts_nothing):
        raise UntrustedSignerError(
            f"canary {path}: no trusted signer was given; the canary set was not read",
            hint="give --key PUB or a policy with trusted signers",
        )
    try:
        manifest = verified_manifest(
            list(target.signatures), root_name=target.root_name, public_key=public_key, trust=trust
        )
    except IntegrityError as exc:
        raise type(exc)(f"canary {path}: {exc.message}", hint=exc.hint) from None
    digests = {k: (v.hex() if isinstance(v, bytes) else str(v)) for k, v in manifest.items()}
    expected = digests.get(target.name)
    if expected is None and target.single_file and len(digests) == 1:
        expected = next(iter(digests.values()))
    if expected is None:
        from mlwarden.errors import NotVerifiedError

        raise NotVerifiedError(f"canary {file}: not in the signed manifest of {target.root}")
    expected = expected.removeprefix("sha256:")
    data = _read.read_once(target.file, _read.DEFAULT_MAX_BYTES)
    _read.check_digest(data, expected, name=target.name, location=str(target.file))
    with tempfile.TemporaryDirectory(prefix="mlwarden-canary-") as private:
        copy = Path(private) / target.file.name
        copy.write_bytes(data)
        try:
            dataset = load_dataset(copy, label=label)
        except MlwardenError as exc:
            # The reader names the private copy; the user knows the file they gave.
            raise exc.naming(str(copy), str(target.file)) from None
    if dataset.filled_cells:
        raise CanaryShapeError(
            f"canary {path}: {dataset.filled_cells} feature cell(s) are missing (empty, NaN "
            "or infinite); the update gate judges only on complete rows",
            hint="drop or complete those rows, then sign the canary again",
        )
    if dataset.labels is None:
        raise CanaryLabelsError(
            f"canary {path} has no labels; behaviour cannot be judged without them",
            hint="save the canary with its labels (np.savez(path, X=X, y=y), or a label column)",
        )
    names = tuple(dataset.classes[int(code)] for code in dataset.labels)
    return dataset.features, names
