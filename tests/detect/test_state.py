"""StreamState bytes: versioned, compact, and corrupt bytes refused with E163."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.detect import StreamState
from mlwarden.errors import StreamStateError


def _state() -> StreamState:
    state = StreamState(n_classes=3, window=4, dim=2)
    state.push(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]))
    state.queries = 5
    state.class_counts[:] = [2, 2, 1]
    state.extraction, state.class_llr, state.probing = 1.5, -0.25, 3.0
    return state


def test_round_trip_keeps_everything() -> None:
    state = _state()
    back = StreamState.from_bytes(state.to_bytes())
    assert (back.queries, back.extraction, back.class_llr, back.probing) == (5, 1.5, -0.25, 3.0)
    assert back.class_counts.tolist() == [2, 2, 1]
    assert sorted(map(tuple, back.recent()[0].tolist())) == [
        (3.0, 4.0), (5.0, 6.0), (7.0, 8.0), (9.0, 10.0)
    ]  # fmt: skip
    assert back.to_bytes() == state.to_bytes()


def test_empty_state_is_small() -> None:
    assert len(StreamState(n_classes=10, window=512, dim=32).to_bytes()) < 200


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:10], "truncated"),
        (lambda b: b"XXXX" + b[4:], "not a detector stream state"),
        (lambda b: b[:4] + struct.pack("<H", 9) + b[6:], "version 9"),
        (lambda b: b + b"\x00", "expected"),
        (lambda b: b[:-1], "expected"),
    ],
)
def test_corrupt_bytes_are_refused(mutate: object, message: str) -> None:
    data = _state().to_bytes()
    with pytest.raises(StreamStateError, match=message) as info:
        StreamState.from_bytes(mutate(data))  # type: ignore[operator]
    assert info.value.code == "E163"


def test_non_finite_score_is_refused() -> None:
    data = bytearray(_state().to_bytes())
    struct.pack_into("<d", data, 34, float("nan"))  # the extraction score
    with pytest.raises(StreamStateError, match="values out of range"):
        StreamState.from_bytes(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 200))
def test_random_bytes_never_crash(noise: bytes, cut: int) -> None:
    data = _state().to_bytes()
    for candidate in (noise, data[:cut] + noise, data[: len(data) - cut % len(data)]):
        with contextlib.suppress(StreamStateError):
            StreamState.from_bytes(candidate)
