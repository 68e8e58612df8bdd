"""Read an `.npz` of named arrays from an untrusted file, never unpickling.

Shared by every reader of array files (assessment data, detector reference data, the
detector reference itself) so that each refuses the same bad inputs with the same clear
words: an empty file, a CSV or a single `.npy`, object arrays (pickles: refused, not
loaded), a corrupt archive, and an archive that would decompress beyond `max_bytes`
(a zip bomb costs memory before any shape check could run).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlwarden.errors import InputError

__all__ = ["MAX_NPZ_BYTES", "check_npz_size", "read_npz"]

MAX_NPZ_BYTES = 1 << 31
"""Uncompressed size an archive may hold: 2 GiB."""

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def read_npz(
    path: Path, *, error: type[InputError], max_bytes: int = MAX_NPZ_BYTES
) -> dict[str, NDArray[Any]]:
    """Every array of the archive at `path`, by name; `error` (one line) otherwise."""
    try:
        # One open for the check and the load: the bytes checked are the bytes read.
        with path.open("rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
            if not head:
                raise error(f"{path}: the file is empty")
            if head.startswith(_NPY_MAGIC):
                raise error(f"{path}: a single .npy array, not an .npz of named arrays")
            if not head.startswith(_ZIP_MAGIC):
                raise error(f"{path}: not an .npz archive (NumPy's zip of named arrays)")
            handle.seek(0)
            return _arrays(path, handle, error, max_bytes)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None


def check_npz_size(
    archive: np.lib.npyio.NpzFile, path: Path, error: type[InputError], max_bytes: int
) -> None:
    """Refuse an archive whose members would decompress past `max_bytes` (their declared
    sizes, which zipfile enforces while reading), before any member is read."""
    members = archive.zip.infolist() if archive.zip is not None else []
    size = sum(int(info.file_size) for info in members)
    if size > max_bytes:
        raise error(f"{path}: the arrays would take {size} bytes (at most {max_bytes})")


def _arrays(
    path: Path, handle: Any, error: type[InputError], max_bytes: int
) -> dict[str, NDArray[Any]]:
    try:
        archive = np.load(handle, allow_pickle=False)
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise error(f"{path}: a corrupt .npz archive ({type(exc).__name__})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise error(f"{path}: not an .npz archive of named arrays")
    with archive:
        check_npz_size(archive, path, error, max_bytes)
        arrays: dict[str, NDArray[Any]] = {}
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise error(
                        f"{path}: array {name!r} holds Python objects (pickled data is "
                        "refused, never loaded)"
                    ) from None
                raise error(f"{path}: array {name!r} is corrupt ({exc})"[:300]) from None
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise error(f"{path}: array {name!r} is corrupt ({type(exc).__name__})") from None
    return arrays
