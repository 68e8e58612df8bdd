"""Checks shared by the attacks: arrays that fit the target, labels in range."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from mlwarden.assess._target import Target
from mlwarden.errors import AttackInputError


def inputs(target: Target, x: Any, what: str) -> NDArray[np.float32]:
    """`x` as a non-empty float32 batch of the target's input shape, or E170."""
    arr = np.asarray(x, dtype=np.float32)
    # Flat rows for an image-shaped target are accepted when the sizes agree.
    flat_rows = arr.ndim == 2 and arr.shape[1:] != target.input_shape
    if flat_rows and arr.shape[1] == int(np.prod(target.input_shape)):
        arr = arr.reshape((arr.shape[0], *target.input_shape))
    if arr.ndim < 1 or arr.shape[1:] != target.input_shape:
        raise AttackInputError(
            f"{what}: shape {arr.shape} does not fit the target's input {target.input_shape}"
        )
    if arr.shape[0] == 0:
        raise AttackInputError(f"{what}: no samples given")
    if not np.isfinite(arr).all():
        raise AttackInputError(f"{what}: holds NaN or infinity")
    return arr


def labels(target: Target, y: Any, n: int, what: str) -> NDArray[np.int64]:
    """`y` as n class indices of the target, or E170."""
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise AttackInputError(f"{what}: {arr.shape} labels for {n} samples")
    if arr.dtype.kind not in "iu" and not (
        arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr))
    ):
        raise AttackInputError(f"{what}: labels must be class indices (integers)")
    out = arr.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() >= target.n_classes):
        raise AttackInputError(f"{what}: labels must be class indices 0..{target.n_classes - 1}")
    return out


def positive(value: float, what: str) -> float:
    if not value > 0:
        raise AttackInputError(f"{what} must be positive, not {value}")
    return float(value)


@contextlib.contextmanager
def small_model_threads() -> Iterator[None]:
    """One torch thread while an attack runs, restored after.

    The attacks' models are small: on a busy machine several intra-op threads spin
    against each other and one thread is many times faster (measured: 0.8 s against
    20 s for the same fit under load).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
