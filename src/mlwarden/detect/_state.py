"""Per-stream detector state: fixed-size, whatever the stream's length.

Serialized to a small versioned binary (a struct header, then little-endian
arrays), never pickle: the state lives in a shared store (SQLite, Redis) and
must be safe to read back. Its size is bounded by the window: the header, the
class counts and at most `window` projected queries in float16.
"""

from __future__ import annotations

import struct

import numpy as np
from numpy.typing import NDArray

from mlwarden.errors import StreamStateError

_MAGIC = b"MWDS"
_VERSION = 1
_HEADER = struct.Struct("<4sHHIHQIddd")
MAX_CLASSES = 65535
MAX_WINDOW = 1 << 16


class StreamState:
    """What a Monitor remembers of one (identity, model) stream."""

    __slots__ = (
        "class_counts",
        "class_llr",
        "extraction",
        "fill",
        "pos",
        "probing",
        "queries",
        "ring",
        "ring_sq",
    )

    def __init__(self, *, n_classes: int, window: int, dim: int) -> None:
        if (
            not 2 <= n_classes <= MAX_CLASSES
            or not 1 <= window <= MAX_WINDOW
            or not 1 <= dim <= 1024
        ):
            raise StreamStateError(
                f"stream state sizes out of range (classes {n_classes}, window {window}, dim {dim})"
            )
        self.queries = 0
        self.extraction = 0.0  # CUSUM of the per-query extraction evidence
        self.class_llr = 0.0  # log-likelihood ratio: answers' class mix vs the prior
        self.probing = 0.0  # CUSUM of near-identical / boundary-walk evidence
        self.class_counts: NDArray[np.int64] = np.zeros(n_classes, dtype=np.int64)
        # Kept as float16-exact values in float32 so that a state read back from
        # bytes is the state that was written; squared norms cached for the kNN.
        self.ring: NDArray[np.float32] = np.zeros((window, dim), dtype=np.float32)
        self.ring_sq: NDArray[np.float32] = np.zeros(window, dtype=np.float32)
        self.pos = 0
        self.fill = 0

    @property
    def n_classes(self) -> int:
        return int(self.class_counts.shape[0])

    @property
    def window(self) -> int:
        return int(self.ring.shape[0])

    @property
    def dim(self) -> int:
        return int(self.ring.shape[1])

    def recent(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """The remembered projected queries and their squared norms (in no particular order)."""
        return self.ring[: self.fill], self.ring_sq[: self.fill]

    def push(self, rows: NDArray[np.float64]) -> None:
        stored = rows[-self.window :].astype(np.float16).astype(np.float32)
        for row in stored:
            self.ring[self.pos] = row
            self.ring_sq[self.pos] = row @ row
            self.pos = (self.pos + 1) % self.window
            self.fill = min(self.fill + 1, self.window)

    def to_bytes(self) -> bytes:
        """Versioned compact binary form (see the module docstring)."""
        head = _HEADER.pack(
            _MAGIC,
            _VERSION,
            self.n_classes,
            self.window,
            self.dim,
            self.queries,
            self.fill,
            self.extraction,
            self.class_llr,
            self.probing,
        )
        if self.fill < self.window:
            rows = self.ring[: self.fill]
        else:  # chronological order, oldest first
            rows = np.concatenate([self.ring[self.pos :], self.ring[: self.pos]])
        return head + self.class_counts.astype("<i8").tobytes() + rows.astype("<f2").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamState:
        """Read `to_bytes` output back; anything malformed -> StreamStateError."""
        if len(data) < _HEADER.size:
            raise StreamStateError("detector stream state is truncated")
        magic, version, k, window, dim, queries, fill, ext, cls_llr, probe = _HEADER.unpack_from(
            data
        )
        if magic != _MAGIC:
            raise StreamStateError("bytes are not a detector stream state")
        if version != _VERSION:
            raise StreamStateError(f"detector stream state version {version} is not supported")
        state = cls(n_classes=k, window=window, dim=dim)
        if fill > window:
            raise StreamStateError("detector stream state is corrupt (fill exceeds window)")
        expected = _HEADER.size + 8 * k + 2 * fill * dim
        if len(data) != expected:
            raise StreamStateError(
                f"detector stream state has {len(data)} bytes, expected {expected}"
            )
        counts = np.frombuffer(data, dtype="<i8", count=k, offset=_HEADER.size)
        rows = np.frombuffer(data, dtype="<f2", count=fill * dim, offset=_HEADER.size + 8 * k)
        scalars = np.array([ext, cls_llr, probe])
        if (
            not np.all(np.isfinite(scalars))
            or ext < 0
            or probe < 0
            or np.any(counts < 0)
            or int(counts.sum()) > queries
            or not np.all(np.isfinite(rows))
        ):
            raise StreamStateError("detector stream state is corrupt (values out of range)")
        state.queries = int(queries)
        state.extraction, state.class_llr, state.probing = float(ext), float(cls_llr), float(probe)
        state.class_counts[:] = counts
        state.ring[:fill] = rows.reshape(fill, dim)
        state.ring_sq[:fill] = np.einsum("ij,ij->i", state.ring[:fill], state.ring[:fill])
        state.fill = int(fill)
        state.pos = int(fill) % window
        return state
