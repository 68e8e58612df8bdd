"""Untrusted text never escapes as anything but an identity error (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import IdentityError, UntrustedProxyHeaderError
from mlwarden.identity import Authenticator, IdentityConfig, generate_api_key, parse_xfcc

from .conftest import AUDIENCE, ISSUER, Clock, make_key, write_jwks

KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8)
VALUES = st.text(max_size=40)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(st.lists(st.dictionaries(KEYS, VALUES, min_size=1, max_size=4), min_size=1, max_size=3))
def test_xfcc_round_trip(elements: list[dict[str, str]]) -> None:
    header = ",".join(";".join(f"{k}={_quote(v)}" for k, v in e.items()) for e in elements)
    assert parse_xfcc(header) == elements


@given(st.text(max_size=300))
def test_xfcc_parser_only_raises_its_error(header: str) -> None:
    try:
        result = parse_xfcc(header)
    except UntrustedProxyHeaderError:
        return
    assert all(isinstance(element, dict) for element in result)


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Authenticator:
    tmp = tmp_path_factory.mktemp("fuzz")
    write_jwks(tmp / "jwks.json", make_key("ES256", "k1"), make_key("EdDSA", "k2"))
    _, digest = generate_api_key()
    config = {
        "jwt": {"issuer": ISSUER, "audience": [AUDIENCE], "jwks_file": str(tmp / "jwks.json")},
        "api_keys": {"keys": [{"principal": "p", "sha256": digest}]},
        "mtls": {
            "clients": [{"principal": "s", "dns": "s.test"}],
            "trusted_proxies": ["10.0.0.0/8"],
        },
    }
    return Authenticator(IdentityConfig.model_validate(config), clock=Clock())


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["authorization", "x-api-key", "x-forwarded-client-cert"]),
        st.one_of(
            st.text(max_size=200),
            st.builds(lambda t: "Bearer " + t, st.text(max_size=200)),
            st.builds(
                lambda a, b, c: f"Bearer {a}.{b}.{c}",
                st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_", max_size=60),
                st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_", max_size=60),
                st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_", max_size=60),
            ),
        ),
    ),
    st.one_of(st.none(), st.binary(max_size=64)),
    st.sampled_from([None, "10.1.2.3", "192.0.2.1", "::1", "junk"]),
)
def test_authenticate_only_raises_identity_errors(
    everything: Authenticator, headers: dict[str, str], der: bytes | None, addr: str | None
) -> None:
    with pytest.raises(IdentityError):
        everything.authenticate(headers, peer_cert_der=der, client_addr=addr)
