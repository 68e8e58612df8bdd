"""The diagnosis of a broken chain, as a property: for any log and any single tampering,
`walk` names the exact first broken record and the kind of change.

These run the pure chain walker over rows in memory (the SQL tamper tests in
test_chain.py cover the same operations on the real stores).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mlwarden.audit import GENESIS, BreakKind, ChainHead
from mlwarden.audit._chain import Row, chain_rows, link_hash, walk

from .conftest import event


def _log(n: int) -> list[Row]:
    return chain_rows(ChainHead(seq=0, hash=GENESIS), [event(i) for i in range(n)])


def _walk(rows: list[Row], checkpoint: ChainHead | None = None):  # type: ignore[no-untyped-def]
    ordered = sorted(rows, key=lambda r: r[0])

    def find(digest: str) -> list[int]:
        return [r[0] for r in ordered if r[2] == digest]

    return walk(iter(ordered), find, log_id="test", checkpoint=checkpoint)


def _renumber(rows: list[Row], start: int, delta: int) -> list[Row]:
    return [(s + delta if s >= start else s, p, h, d) for s, p, h, d in rows]


sizes = st.integers(min_value=3, max_value=40)


@given(n=sizes, data=st.data())
def test_change(n: int, data: st.DataObject) -> None:
    rows = _log(n)
    k = data.draw(st.integers(1, n))
    recompute = data.draw(st.booleans())
    s, p, h, d = rows[k - 1]
    forged = d.replace(b'"v":1', b'"v":1,"x":0').replace(b"{", b"{ ", 1)
    rows[k - 1] = (s, p, link_hash(p, forged, s) if recompute else h, forged)
    result = _walk(rows)
    if recompute and k == n:
        assert result.intact  # the newest record rewritten whole: only a checkpoint tells
        return
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.kind) == (k, BreakKind.CHANGED)


@given(n=sizes, data=st.data())
def test_delete(n: int, data: st.DataObject) -> None:
    rows = _log(n)
    k = data.draw(st.integers(1, n - 1))
    count = data.draw(st.integers(1, n - k))
    renumber = data.draw(st.booleans())
    kept = rows[: k - 1] + rows[k - 1 + count :]
    if renumber:
        kept = _renumber(kept, k + count, -count)
    result = _walk(kept)
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.kind) == (k, BreakKind.DELETED)
    assert result.records == k - 1


@given(n=sizes, data=st.data())
def test_insert(n: int, data: st.DataObject) -> None:
    rows = _log(n)
    k = data.draw(st.integers(1, n))
    valid = data.draw(st.booleans())
    prev = rows[k - 2][2] if k > 1 else GENESIS
    forged = event(10_000).canonical
    digest = link_hash(prev, forged, k) if valid else "ab" * 32
    tampered = [*_renumber(rows, k, +1), (k, prev, digest, forged)]
    result = _walk(tampered)
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.kind) == (k, BreakKind.INSERTED)


@given(n=sizes, data=st.data())
def test_swap(n: int, data: st.DataObject) -> None:
    rows = _log(n)
    k = data.draw(st.integers(1, n - 1))
    j = data.draw(st.integers(k + 1, n))
    swapped = list(rows)
    a, b = rows[k - 1], rows[j - 1]
    swapped[k - 1] = (k, *b[1:])
    swapped[j - 1] = (j, *a[1:])
    result = _walk(swapped)
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.kind) == (k, BreakKind.REORDERED)


@given(n=sizes, data=st.data())
def test_truncation_against_a_checkpoint(n: int, data: st.DataObject) -> None:
    rows = _log(n)
    pinned = data.draw(st.integers(1, n))
    checkpoint = ChainHead(seq=pinned, hash=rows[pinned - 1][2])
    assert _walk(rows, checkpoint).intact
    cut = data.draw(st.integers(0, pinned - 1))
    result = _walk(rows[:cut], checkpoint)
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.kind) == (cut + 1, BreakKind.DELETED)
