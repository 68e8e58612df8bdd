"""Mutated bundles and statements: the parsers refuse with their own error, never crash."""

from __future__ import annotations

import base64
import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.signing._bundle import BundleError, parse_bundle
from mlwarden.signing._statement import StatementError, parse_statement

_STATEMENT = json.dumps(
    {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": "00" * 32}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
            "resources": [{"name": "a", "algorithm": "sha256", "digest": "ab" * 32, "size": 3}],
        },
    }
).encode()
_BUNDLE = json.dumps(
    {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "ab"}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(_STATEMENT).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "AAAA", "keyid": ""}],
        },
    }
).encode()


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    st.integers(0, 2000),
)
def test_mutated_bundles_are_refused_or_parsed(edits: list[tuple[int, int]], cut: int) -> None:
    data = _mutate(_BUNDLE, edits)[: len(_BUNDLE) - cut]
    try:
        bundle = parse_bundle(data, source="fuzz")
    except BundleError:
        return
    with contextlib.suppress(StatementError):
        parse_statement(bundle.payload)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4))
def test_mutated_statements_are_refused_or_parsed(edits: list[tuple[int, int]]) -> None:
    try:
        manifest = parse_statement(_mutate(_STATEMENT, edits))
    except StatementError:
        return
    assert manifest.resources
