"""Input checks shared by the screens: every screen takes plain numpy arrays.

The screens are numeric; a wrong shape, an empty table or a non-numeric cell is the
caller's mistake and becomes an input error with a code here, never a numpy traceback
from deep inside scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.errors import MalformedInputError, UsageError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def as_features(x: Any, *, name: str = "X") -> FloatArray:
    """A 2-D float64 copy of `x`, refusing empty, ragged, non-numeric or non-finite data."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MalformedInputError(
            f"{name} is not numeric (mixed or text values): {exc}",
            hint="encode text and categorical columns as numbers first",
        ) from None
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise UsageError(f"{name} must be a 2-D table of rows and features, got {arr.ndim} dims")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UsageError(f"{name} is empty ({arr.shape[0]} rows, {arr.shape[1]} features)")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise MalformedInputError(
            f"{name} has a missing or infinite value in row {bad}",
            hint="drop or impute missing values before screening",
        )
    return arr


def as_labels(y: Any, rows: int, *, name: str = "y") -> tuple[IntArray, npt.NDArray[Any]]:
    """Integer codes 0..k-1 for the labels and the label values they stand for."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise UsageError(f"{name} must be one label per row, got shape {arr.shape}")
    if arr.shape[0] != rows:
        raise UsageError(f"{name} has {arr.shape[0]} labels for {rows} rows")
    if rows == 0:
        raise UsageError(f"{name} is empty")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise MalformedInputError(f"{name} has a missing label")
    if arr.dtype.kind == "O" and any(v is None for v in arr):
        raise MalformedInputError(f"{name} has a missing label")
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        raise MalformedInputError(f"{name} mixes label types that cannot be ordered") from None
    return codes.astype(np.int64), classes


def label_value(classes: npt.NDArray[Any], code: int) -> object:
    """A label as a plain Python value (numpy scalars do not serialise to JSON)."""
    value: object = classes[code]
    item = getattr(value, "item", None)
    return item() if callable(item) else value
