"""Where joblib's inline array data ends, from the wrapper's symbolic state.

joblib's NumpyPickler writes a `NumpyArrayWrapper` (subclass, shape, order,
dtype, numpy_array_alignment_bytes) and, right after the wrapper's BUILD, the
array itself: for plain dtypes one padding-length byte, that many padding bytes
(when aligned) and the raw data; for object dtypes a complete protocol-5 pickle
stream (see joblib/numpy_pickle.py, NumpyArrayWrapper.write_array/read_array).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mlwarden.artifacts._pickle.values import Call, Global, SymDict

WRAPPERS = frozenset({"joblib.numpy_pickle.NumpyArrayWrapper"})
_NUMPY_DTYPES = frozenset({"numpy.dtype"})
_DTYPE_TEXT = re.compile(r"[<>|=]?([a-zA-Z])(\d*)")
_NPY_ITEM_HASOBJECT = 0x01
# Kinds whose element size is part of the pickled state (bytes, str, void/structured).
_FLEXIBLE_KINDS = frozenset("SUVa")
MAX_ARRAY_BYTES = 1 << 50
ALIGNMENT = 16
"""joblib's NUMPY_ARRAY_ALIGNMENT_BYTES: its padding byte is always smaller."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    nbytes: int
    aligned: bool
    has_objects: bool


def layout(wrapper: Call) -> Layout | None:
    """The inline data's layout, or None when the state does not describe an array."""
    state = wrapper.state
    if not isinstance(state, SymDict):
        return None
    shape = state.get("shape")
    dtype = state.get("dtype")
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        return None
    described = _itemsize(dtype)
    if described is None:
        return None
    itemsize, has_objects = described
    count = math.prod(n for n in shape if isinstance(n, int))
    nbytes = count * itemsize
    if nbytes > MAX_ARRAY_BYTES:
        return None
    aligned = isinstance(state.get("numpy_array_alignment_bytes"), int)
    return Layout(nbytes=nbytes, aligned=aligned, has_objects=has_objects)


def _itemsize(dtype: object) -> tuple[int, bool] | None:
    """(itemsize, has_objects) of a pickled numpy.dtype(text, align, copy) with its state."""
    if not isinstance(dtype, Call) or not isinstance(dtype.func, Global):
        return None
    if dtype.func.name not in _NUMPY_DTYPES or not isinstance(dtype.args, tuple):
        return None
    text = dtype.args[0] if dtype.args else None
    if not isinstance(text, str):
        return None
    match = _DTYPE_TEXT.fullmatch(text)
    if match is None:
        return None
    kind, digits = match.groups()
    state = dtype.state
    flags: int | None = None
    elsize = -1
    if isinstance(state, tuple) and len(state) >= 8:
        if isinstance(state[5], int):
            elsize = state[5]
        if isinstance(state[7], int):
            flags = state[7]
    # numpy.dtype.__setstate__ takes the flags as given, hasobject included, and the
    # element size only for flexible kinds: joblib reads what numpy then says. A state
    # numpy never writes (f8 claiming 16 bytes, an object dtype without objects) is a
    # file made to have the analyzer skip a different number of bytes than joblib.
    has_objects = kind == "O" if flags is None else bool(flags & _NPY_ITEM_HASOBJECT)
    if kind == "O" and not has_objects:
        return None
    if kind in _FLEXIBLE_KINDS:
        if elsize > 0:
            return elsize, has_objects
        return (int(digits), has_objects) if digits else None
    if elsize != -1 or not digits:
        return None
    return int(digits), has_objects
