"""Mutated bytes reach the loaders only as a clear error (or a harmless object), never a crash."""

from __future__ import annotations

import contextlib
import io
import pickle

import joblib
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from mlwarden.errors import MlwardenError
from mlwarden.loading._joblib import load_joblib
from mlwarden.loading._pickle_restricted import load_pickle

_X = np.arange(40, dtype=np.float64).reshape(20, 2)
_MODEL = LogisticRegression().fit(_X, np.arange(20) % 2)
PICKLED = pickle.dumps(_MODEL, protocol=4)
_buffer = io.BytesIO()
joblib.dump(_MODEL, _buffer)
JOBLIBBED = _buffer.getvalue()


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(edits=EDITS)
def test_restricted_pickle_on_mutations(edits: list[tuple[int, int]]) -> None:
    with contextlib.suppress(MlwardenError):
        load_pickle(_mutate(PICKLED, edits), "fuzz.pkl")


@settings(max_examples=150, deadline=None)
@given(edits=EDITS)
def test_joblib_on_mutations(edits: list[tuple[int, int]]) -> None:
    with contextlib.suppress(MlwardenError):
        load_joblib(_mutate(JOBLIBBED, edits), "fuzz.joblib", max_bytes=1 << 24)
