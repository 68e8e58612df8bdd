"""Run the row-local screens chunk by chunk: in this process, a local pool, or Dask.

The screens that need no other row to judge a row (personal data) or only a
small summary of the others (exact duplicates: one 64-bit digest per row) run
over chunks, so a dataset larger than memory is screened in bounded memory.
`map_chunks` keeps at most two chunks per worker in flight, whatever runs them:
the reader is never more than a few chunks ahead of the workers.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from mlwarden.data._pii import PiiHits, scan_text
from mlwarden.errors import MissingExtraError, UsageError

_T = TypeVar("_T")
_R = TypeVar("_R")

DEFAULT_CHUNK_ROWS = 50_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """Rows `offset`.. of a dataset: what a worker needs to screen them."""

    offset: int
    features: npt.NDArray[np.float64]
    text: Mapping[str, list[str | None]] = field(default_factory=dict)
    region: str = "US"
    pii: bool = True
    digests: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkResult:
    """What a worker found in one chunk: personal data, and each row's digest.

    Without digests (no duplicate or leakage check asked for) they are zeros: the
    array still counts the chunk's rows.
    """

    offset: int
    pii: tuple[PiiHits, ...]
    digests: npt.NDArray[np.uint64]


def row_digests(
    features: npt.NDArray[np.float64], text: Mapping[str, Sequence[str | None]]
) -> npt.NDArray[np.uint64]:
    """A 64-bit BLAKE2b digest of each row's values (the label excluded).

    Two rows with the same digest are treated as equal: at 64 bits a chance
    collision needs billions of rows, and a duplicate only ever adds a finding.
    """
    rows = features.shape[0]
    # -0.0 and 0.0 are the same value: one byte pattern for both.
    values = np.ascontiguousarray(features + 0.0)
    columns = list(text.values())
    out = np.empty(rows, dtype=np.uint64)
    for index in range(rows):
        digest = hashlib.blake2b(values[index].tobytes(), digest_size=8)
        for column in columns:
            cell = column[index]
            digest.update(b"\x00" if cell is None else b"\x01" + cell.encode() + b"\x1f")
        out[index] = int.from_bytes(digest.digest(), "little")
    return out


def screen_chunk(chunk: Chunk) -> ChunkResult:
    """The row-local screens of one chunk (runs in a worker: a top-level function)."""
    return ChunkResult(
        offset=chunk.offset,
        pii=tuple(scan_text(chunk.text, offset=chunk.offset, region=chunk.region))
        if chunk.pii
        else (),
        digests=row_digests(chunk.features, chunk.text)
        if chunk.digests
        else np.zeros(chunk.features.shape[0], dtype=np.uint64),
    )


def map_chunks(
    function: Callable[[_T], _R],
    items: Iterable[_T],
    *,
    workers: int = 1,
    dask: str | Any | None = None,
) -> Iterator[_R]:
    """`function` over `items`, results in order, with a bounded number in flight.

    `dask` is a scheduler address ("tcp://host:8786") or a `distributed.Client`;
    `workers` > 1 uses a local process pool; else everything runs here.
    """
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if dask is not None:
        yield from _on_dask(function, items, dask)
        return
    if workers == 1:
        for item in items:
            yield function(item)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[_R]] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _on_dask(function: Callable[[_T], _R], items: Iterable[_T], dask: str | Any) -> Iterator[_R]:
    try:
        from distributed import Client
    except ImportError:
        raise MissingExtraError("dask[distributed]", "scale") from None
    own = isinstance(dask, str)
    connect: Any = Client  # distributed ships no type hints
    client: Any = connect(dask, set_as_default=False) if own else dask
    try:
        limit = 2 * max(1, sum(client.nthreads().values()))
        pending: deque[Any] = deque()
        for item in items:
            # pure=False: two equal chunks are still two tasks (their row offsets differ anyway).
            pending.append(client.submit(function, item, pure=False))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if own:
            client.close()


def duplicate_groups(digests: Iterable[npt.NDArray[np.uint64]]) -> dict[int, list[int]]:
    """First row -> later rows with the same digest, over digests given chunk by chunk."""
    first: dict[int, int] = {}
    groups: dict[int, list[int]] = {}
    row = 0
    for block in digests:
        for value in block.tolist():
            seen = first.setdefault(value, row)
            if seen != row:
                groups.setdefault(seen, []).append(row)
            row += 1
    return groups
