"""Which signed object a model file belongs to, and its name in that object's manifest.

Two layouts are supported:

* a file signed on its own: the bundle is ``PATH.sig`` by default and the
  manifest names the file by its base name;
* a file inside a signed folder ROOT: the bundle is ``ROOT.sig`` beside the
  folder by default, and the file's resource name is its path relative to ROOT
  with ``/`` separators (``text_encoder/model.safetensors``).

Without `root=`, the folder is inferred: from `signature=` when it is
``ROOT.sig`` beside an ancestor ROOT of the file, otherwise by looking for
``PATH.sig`` and then ``ANCESTOR.sig`` beside each ancestor, nearest first. A
bundle found this way still has to verify against the caller's trust: finding
it decides only which manifest is consulted, never whether it is trusted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlwarden.errors import NotVerifiedError, PathNotFoundError, UsageError

SIGNATURE_SUFFIX = ".sig"

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """The file to load and the signed object that vouches for it."""

    file: Path
    root: Path
    """The signed file itself, or the signed folder that holds it."""
    name: str
    """The file's resource name in the manifest."""
    signatures: tuple[Path, ...]
    single_file: bool

    @property
    def root_name(self) -> str:
        """The model name the bundle must carry (the signed file's or folder's name)."""
        return self.root.name


def bundle_beside(path: Path) -> Path:
    """Where `mlwarden sign PATH` writes its bundle by default: ``PATH.sig``."""
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def _absolute(path: Path) -> Path:
    # Lexical, not resolved: a link's own place in the tree is what was (or was not) signed.
    return Path(os.path.normpath(os.path.abspath(path)))


def _signature_list(signature: PathLike | Sequence[PathLike] | None) -> tuple[Path, ...]:
    if signature is None:
        return ()
    if isinstance(signature, str | os.PathLike):
        return (Path(signature),)
    paths = tuple(Path(s) for s in signature)
    if not paths:
        raise UsageError("signature= is an empty list; name at least one bundle")
    return paths


def locate(
    path: PathLike,
    *,
    signature: PathLike | Sequence[PathLike] | None,
    root: PathLike | None,
) -> Target:
    """Decide the signed object, the bundle(s) and the resource name for `path`."""
    file = _absolute(Path(path))
    if not os.path.lexists(file):
        raise PathNotFoundError(f"{path}: no such file")
    if file.is_dir():
        raise UsageError(
            f"{path} is a folder; mlwarden.load loads one model file",
            hint="name the model file inside the signed folder",
        )
    signatures = _signature_list(signature)

    if root is not None:
        return _with_root(file, _absolute(Path(root)), signatures)
    if signatures:
        first = _absolute(signatures[0])
        for ancestor in file.parents:
            if ancestor.parent != ancestor and bundle_beside(ancestor) == first:
                return _with_root(file, ancestor, signatures)
        return _with_root(file, file, signatures)
    if bundle_beside(file).exists():
        return _with_root(file, file, ())
    for ancestor in file.parents:
        if ancestor.parent != ancestor and bundle_beside(ancestor).exists():
            return _with_root(file, ancestor, ())
    raise NotVerifiedError(
        f"{path}: no signature found ({bundle_beside(file).name} beside the file, or "
        "FOLDER.sig beside a folder that holds it); nothing was loaded",
        hint="sign it with `mlwarden sign`, or pass signature= and root=",
    )


def _with_root(file: Path, root: Path, signatures: tuple[Path, ...]) -> Target:
    if root == file:
        return Target(
            file=file,
            root=file,
            name=file.name,
            signatures=signatures or (bundle_beside(file),),
            single_file=True,
        )
    try:
        relative = file.relative_to(root)
    except ValueError:
        raise UsageError(f"{file} is not inside the signed folder {root}") from None
    if not root.is_dir():
        raise UsageError(f"root {root} is not a folder")
    return Target(
        file=file,
        root=root,
        name=relative.as_posix(),
        signatures=signatures or (bundle_beside(root),),
        single_file=False,
    )
