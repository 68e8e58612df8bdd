"""Canonical events: one byte string per event, floats and other ambiguities refused."""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwarden.audit import MAX_EVENT_BYTES, AuditEvent, Decision, utc_now
from mlwarden.errors import AuditEventError

GOLDEN = (
    b'{"action":null,"decision":"deny","detail":{"rule":"r\\u00e9"},"identity":"alice",'
    b'"input_sha256":null,"kind":"infer","latency_us":1500,"model":"churn",'
    b'"output":{"label":"yes","top_k":[1,2]},"reason":"E310","request_id":"req-1",'
    b'"time":"2026-01-31T12:00:00.000001Z","v":1}'
)


def _event(**changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "kind": "infer",
        "decision": Decision.DENY,
        "reason": "E310",
        "request_id": "req-1",
        "time": "2026-01-31T12:00:00.000001Z",
        "identity": "alice",
        "model": "churn",
        "output": {"top_k": [1, 2], "label": "yes"},
        "latency_us": 1500,
        "detail": {"rule": "ré"},
    }
    fields.update(changes)
    return AuditEvent(**fields)


def test_canonical_bytes_are_stable() -> None:
    event = _event()
    assert event.canonical == GOLDEN
    # Key order and mapping type do not change the bytes.
    same = _event(output=OrderedDict([("label", "yes"), ("top_k", (1, 2))]))
    assert same.canonical == GOLDEN
    assert AuditEvent.from_canonical(GOLDEN).canonical == GOLDEN
    assert event.to_dict()["decision"] == "deny"


def test_time_defaults_to_now_in_rfc3339_utc() -> None:
    stamp = AuditEvent(kind="infer", decision=Decision.ALLOW, reason="ok", request_id="r").time
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert utc_now() >= stamp


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"latency_us": 1.5}, "latency_us"),
        ({"latency_us": -1}, "latency_us"),
        ({"output": {"p": 0.93}}, "holds a float"),
        ({"output": {"nested": [{"p": float("nan")}]}}, r"output\.nested\[0\]\.p' holds a float"),
        ({"detail": {"n": 2**60}}, "beyond 2\\*\\*53"),
        ({"detail": {1: "x"}}, "not a string"),
        ({"detail": {"x": {1, 2}}}, "holds a set"),
        ({"detail": ["not", "a", "mapping"]}, "must be a mapping"),
        ({"identity": 7}, "identity"),
        ({"kind": None}, "must be strings"),
        ({"decision": "allow"}, "Decision"),
        ({"detail": {"deep": [[[[[[[[[["x"]]]]]]]]]]}}, "nests deeper"),
        ({"detail": {"big": "x" * MAX_EVENT_BYTES}}, "more than"),
    ],
)
def test_ambiguous_or_bad_events_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(AuditEventError, match=message) as info:
        _event(**changes)
    assert info.value.code == "E350"


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "fields of v1"),
        (GOLDEN.replace(b'"v":1', b'"v":2'), "fields of v1"),
        (GOLDEN.replace(b'"deny"', b'"maybe"'), "not valid"),
        (GOLDEN.replace(b'"latency_us":1500', b'"latency_us":1.5'), "latency_us"),
    ],
)
def test_stored_events_that_are_not_events(stored: bytes, message: str) -> None:
    with pytest.raises(AuditEventError, match=message):
        AuditEvent.from_canonical(stored)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(output=st.dictionaries(st.text(max_size=8), _json, max_size=5), who=st.text(max_size=30))
def test_round_trip_through_canonical_json(output: dict[str, Any], who: str) -> None:
    event = _event(output=output, identity=who)
    again = AuditEvent.from_canonical(event.canonical)
    assert again.canonical == event.canonical
    assert event.canonical.isascii()
