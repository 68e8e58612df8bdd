"""A cohort of client updates as one matrix: validation, flattening and the way back.

Every rule works on an (n clients x d parameters) float64 matrix, so each is written
once, vectorised, for NumPy arrays and PyTorch tensors alike. Torch is imported only
when an update holds tensors (it is an optional extra): a tensor can only reach us if
the caller has imported torch already, so `sys.modules` tells us without importing it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

from mlwarden.errors import (
    ClientUpdateMismatchError,
    EmptyCohortError,
    NonFiniteUpdateError,
    UnsupportedUpdateError,
)

if TYPE_CHECKING:
    import torch

Update: TypeAlias = "Mapping[str, NDArray[Any]] | Mapping[str, torch.Tensor]"
"""One client's update: tensor name -> NumPy array, or a PyTorch state dict."""

Cohort: TypeAlias = "Mapping[str, Update] | Sequence[Update]"
"""The updates of one round: client id -> update, or a sequence (ids "0", "1", ...)."""

Matrix: TypeAlias = NDArray[np.float64]

_MAX_LISTED = 3


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    shape: tuple[int, ...]
    dtype: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class Layout:
    """How a flat row maps back to named tensors of the first update's kind and dtypes."""

    kind: Literal["numpy", "torch"]
    entries: tuple[_Entry, ...]
    size: int
    device: str

    def rebuild(self, row: Matrix) -> dict[str, Any]:
        """The named tensors of one flat row, cast back to each entry's dtype."""
        out: dict[str, Any] = {}
        for entry in self.entries:
            part = row[entry.start : entry.stop].reshape(entry.shape)
            if np.dtype(_numpy_dtype(entry.dtype)).kind in "iu":
                part = np.clip(np.rint(part), *_integer_bounds(_numpy_dtype(entry.dtype)))
            # np.array, not ascontiguousarray: that one turns a 0-d tensor into shape (1,).
            array = np.array(part, dtype=_numpy_dtype(entry.dtype)).reshape(entry.shape)
            if self.kind == "torch":
                torch = sys.modules["torch"]
                out[entry.name] = torch.from_numpy(array).to(
                    dtype=getattr(torch, entry.dtype), device=self.device
                )
            else:
                out[entry.name] = array
        return out


@dataclass(frozen=True, slots=True)
class Stacked:
    """A validated cohort: client ids, the (n x d) matrix, and the layout to rebuild."""

    clients: tuple[str, ...]
    matrix: Matrix
    layout: Layout


def client_items(cohort: Cohort) -> list[tuple[str, Update]]:
    """(client id, update) pairs in the cohort's order."""
    if isinstance(cohort, Mapping):
        items = []
        for client, update in cohort.items():
            if not isinstance(client, str) or not client:
                raise UnsupportedUpdateError(
                    f"client id {client!r} is not a non-empty string",
                    hint="key the cohort by client id strings",
                )
            items.append((client, update))
        return items
    if isinstance(cohort, str | bytes) or not isinstance(cohort, Sequence):
        raise UnsupportedUpdateError(
            f"a cohort is a mapping of client id to update or a sequence of updates, "
            f"not {type(cohort).__name__}"
        )
    return [(str(index), update) for index, update in enumerate(cohort)]


def stack(cohort: Cohort) -> Stacked:
    """Check every update against the first (names, shapes, dtypes, finiteness) and flatten.

    Every mismatch is listed in one error, not only the first (E190); NaN or infinity
    anywhere is refused (E191): one non-finite value would poison a mean and makes
    every distance meaningless.
    """
    items = client_items(cohort)
    if not items:
        raise EmptyCohortError("the cohort holds no client updates")
    first_client, first = items[0]
    layout = _layout(first_client, first)
    if layout.size == 0:
        # Nothing to aggregate, and nothing to screen: every client would look alike.
        raise EmptyCohortError(f"update of client {first_client!r} holds only empty tensors")
    matrix = np.empty((len(items), layout.size), dtype=np.float64)
    problems: list[str] = []
    for row, (client, update) in enumerate(items):
        tensors = _tensors(client, update)
        if row:
            problems.extend(_mismatches(client, tensors, layout, first_client))
            if problems:
                continue
        for entry in layout.entries:
            try:
                flat = _to_numpy(tensors[entry.name]).reshape(-1)
            except (RuntimeError, TypeError, ValueError) as exc:
                # Sparse, meta or quantized tensors have no dense values to compare.
                reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
                raise UnsupportedUpdateError(
                    f"update of client {client!r}: {entry.name!r} cannot be read as dense "
                    f"numbers ({reason})"
                ) from None
            matrix[row, entry.start : entry.stop] = flat
    if problems:
        listed = "; ".join(problems[:_MAX_LISTED])
        more = f" (and {len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
        raise ClientUpdateMismatchError(
            f"client updates do not match: {listed}{more}",
            hint="every client must send the same tensors, with the same shapes and dtypes",
        )
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = [items[int(i)][0] for i in np.flatnonzero(~finite)]
        raise NonFiniteUpdateError(
            f"update of client {', '.join(map(repr, bad[:_MAX_LISTED]))} holds NaN or infinity",
            hint="drop the client from the round; a finite update is required",
        )
    return Stacked(clients=tuple(c for c, _ in items), matrix=matrix, layout=layout)


def _tensors(client: str, update: object) -> Mapping[str, Any]:
    if not isinstance(update, Mapping):
        raise UnsupportedUpdateError(
            f"update of client {client!r} is a {type(update).__name__}, not a mapping "
            f"of names to arrays or tensors"
        )
    if not update:
        raise EmptyCohortError(f"update of client {client!r} holds no tensors")
    return update


def _kind(client: str, name: object, value: object) -> Literal["numpy", "torch"]:
    if isinstance(value, np.ma.MaskedArray):
        # Its masked cells still hold numbers, which would be aggregated as if valid.
        raise UnsupportedUpdateError(
            f"update of client {client!r}: {name!r} is a masked array",
            hint="send dense arrays: fill or drop the masked values first",
        )
    if isinstance(value, np.ndarray):
        return "numpy"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return "torch"
    raise UnsupportedUpdateError(
        f"update of client {client!r}: {name!r} is a {type(value).__name__}, "
        f"not a NumPy array or a torch tensor"
    )


def _dtype_name(client: str, name: str, value: Any, kind: str) -> str:
    if kind == "torch":
        text = str(value.dtype).removeprefix("torch.")
        ok = text in _TORCH_FLOATS or text in _TORCH_INTS
    else:
        text = str(value.dtype)
        ok = value.dtype.kind in "fiu"
    if not ok:
        raise UnsupportedUpdateError(
            f"update of client {client!r}: {name!r} has dtype {text}, "
            f"not a real floating point or integer type"
        )
    return text


# The float8 types are floating point too, but have no NumPy dtype to rebuild them in.
_TORCH_FLOATS = frozenset({"float16", "bfloat16", "float32", "float64"})
_TORCH_INTS = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})


def _integer_bounds(dtype: str) -> tuple[float, float]:
    """The float64 range that casts into `dtype` without wrapping around.

    int64's largest value rounds up to 2**63 in float64, which casts to the smallest
    int64: the upper bound is the largest float64 below the type's maximum.
    """
    limits = np.iinfo(dtype)
    upper = float(limits.max)
    if int(upper) > int(limits.max):
        upper = float(np.nextafter(upper, 0.0))
    return float(limits.min), upper


def _numpy_dtype(name: str) -> str:
    # bfloat16 has no NumPy dtype: it is computed and rebuilt through float32.
    return "float32" if name == "bfloat16" else name


def _layout(client: str, update: object) -> Layout:
    tensors = _tensors(client, update)
    entries: list[_Entry] = []
    kinds: set[str] = set()
    device = "cpu"
    offset = 0
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise UnsupportedUpdateError(f"update of client {client!r}: name {name!r} is not a str")
        kind = _kind(client, name, value)
        kinds.add(kind)
        if kind == "torch":
            device = str(value.device)
        shape = tuple(int(s) for s in value.shape)
        size = int(np.prod(shape, dtype=np.int64))
        dtype = _dtype_name(client, name, value, kind)
        entries.append(_Entry(name, shape, dtype, offset, offset + size))
        offset += size
    if len(kinds) > 1:
        raise UnsupportedUpdateError(
            f"update of client {client!r} mixes NumPy arrays and torch tensors",
            hint="send all tensors of an update in one kind",
        )
    kind_name: Literal["numpy", "torch"] = "torch" if "torch" in kinds else "numpy"
    return Layout(kind=kind_name, entries=tuple(entries), size=offset, device=device)


def _mismatches(
    client: str, tensors: Mapping[str, Any], layout: Layout, reference: str
) -> list[str]:
    expected = {entry.name: entry for entry in layout.entries}
    problems: list[str] = []
    missing = [name for name in expected if name not in tensors]
    extra = [name for name in tensors if name not in expected]
    if missing:
        problems.append(f"client {client!r} lacks {', '.join(map(repr, missing[:_MAX_LISTED]))}")
    if extra:
        problems.append(
            f"client {client!r} has {', '.join(map(repr, extra[:_MAX_LISTED]))} "
            f"that client {reference!r} has not"
        )
    for name, entry in expected.items():
        if name not in tensors:
            continue
        value = tensors[name]
        kind = _kind(client, name, value)
        if kind != layout.kind:
            problems.append(f"client {client!r} sends {name!r} as {kind}, not {layout.kind}")
            continue
        shape = tuple(int(s) for s in value.shape)
        if shape != entry.shape:
            problems.append(
                f"client {client!r}: {name!r} has shape {shape}, client {reference!r} {entry.shape}"
            )
            continue
        dtype = _dtype_name(client, name, value, kind)
        if dtype != entry.dtype:
            problems.append(
                f"client {client!r}: {name!r} has dtype {dtype}, client {reference!r} {entry.dtype}"
            )
    return problems


def _to_numpy(value: Any) -> NDArray[np.float64]:
    if isinstance(value, np.ndarray):
        return value.astype(np.float64, copy=False)
    # detach: gradients are never needed; float(): bfloat16 has no NumPy twin.
    return np.asarray(value.detach().to("cpu").double().numpy(), dtype=np.float64)
