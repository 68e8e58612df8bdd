"""A JWKS fetched from a real HTTP server on 127.0.0.1: caching, rotation, failures."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlwarden.errors import InvalidTokenError, KeySetUnavailableError
from mlwarden.identity import Authenticator, IdentityConfig, Principal

from .conftest import AUDIENCE, ISSUER, Clock, JwksServer, SigningKey, make_key, mint


def remote(url: str, **extra: Any) -> Authenticator:
    section = {
        "issuer": ISSUER,
        "audience": [AUDIENCE],
        "jwks_url": url,
        "allow_http_jwks": True,
        "jwks_timeout_seconds": 2,
    }
    section.update(extra)
    return Authenticator(IdentityConfig.model_validate({"jwt": section}), clock=Clock())


def call(auth: Authenticator, token: str) -> Principal:
    return auth.authenticate(
        {"authorization": f"Bearer {token}"}, peer_cert_der=None, client_addr="127.0.0.1"
    )


def test_keys_are_fetched_once_and_cached(
    jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks_server.set_keys(keys["ES256"], keys["EdDSA"])
    auth = remote(jwks_server.url)
    auth.prefetch()
    assert jwks_server.hits == 1
    for _ in range(3):
        assert call(auth, mint(keys["ES256"])).id == "alice"
        assert call(auth, mint(keys["EdDSA"], sub="bob")).id == "bob"
    assert jwks_server.hits == 1


def test_unknown_kid_refetches_for_rotation(
    jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks_server.set_keys(keys["ES256"])
    auth = remote(jwks_server.url, jwks_min_refresh_seconds=0)
    assert call(auth, mint(keys["ES256"])).id == "alice"
    rotated = make_key("ES256", "es-rotated")
    jwks_server.set_keys(keys["ES256"], rotated)
    assert call(auth, mint(rotated)).id == "alice"
    assert jwks_server.hits == 2


def test_unknown_kid_refetch_is_rate_limited(
    jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks_server.set_keys(keys["ES256"])
    auth = remote(jwks_server.url, jwks_min_refresh_seconds=3600)
    auth.prefetch()
    for i in range(5):
        with pytest.raises(InvalidTokenError, match="no known ES256 key"):
            call(auth, mint(keys["ES256"], kid=f"made-up-{i}"))
    assert jwks_server.hits == 1


def test_removed_key_invalidates_cached_tokens(
    jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    """A token verified (and cached) under key A is refused once A leaves the key set."""
    jwks_server.set_keys(keys["ES256"])
    auth = remote(jwks_server.url, jwks_cache_seconds=0, jwks_min_refresh_seconds=0)
    token = mint(keys["ES256"])
    assert call(auth, token).id == "alice"
    jwks_server.set_keys(make_key("ES256", "es-new"))
    with pytest.raises(InvalidTokenError, match="kid 'es-1'"):
        call(auth, token)


def test_unreachable_key_set_fails_closed(keys: dict[str, SigningKey]) -> None:
    auth = remote("http://127.0.0.1:9/jwks.json", jwks_timeout_seconds=0.5)
    with pytest.raises(KeySetUnavailableError, match="unreachable") as info:
        call(auth, mint(keys["ES256"]))
    assert (info.value.code, info.value.http_status) == ("E308", 503)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"<html>", 200, "is not JSON"),
        (b'{"keys": {}}', 200, "no 'keys' list"),
        (b'{"keys": []}', 200, "no usable signature key"),
        (b"{}", 500, "HTTP 500"),
        (b"x" * ((1 << 20) + 10), 200, "larger than"),
    ],
)
def test_bad_key_set_responses_fail_closed(
    jwks_server: JwksServer, keys: dict[str, SigningKey], body: bytes, status: int, message: str
) -> None:
    jwks_server.body, jwks_server.status = body, status
    with pytest.raises(KeySetUnavailableError, match=message):
        call(remote(jwks_server.url), mint(keys["ES256"]))


def test_redirects_are_not_followed(jwks_server: JwksServer, keys: dict[str, SigningKey]) -> None:
    jwks_server.redirect_to = "http://127.0.0.1:9/elsewhere.json"
    with pytest.raises(KeySetUnavailableError, match="HTTP 302"):
        call(remote(jwks_server.url), mint(keys["ES256"]))


def test_failed_refresh_keeps_the_last_good_set(
    jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks_server.set_keys(keys["ES256"])
    auth = remote(jwks_server.url, jwks_cache_seconds=0, jwks_min_refresh_seconds=0, cache_size=0)
    assert call(auth, mint(keys["ES256"])).id == "alice"
    jwks_server.status = 503
    assert call(auth, mint(keys["ES256"])).id == "alice"
    assert jwks_server.hits >= 2


def test_plain_http_needs_the_explicit_switch() -> None:
    with pytest.raises(ValidationError, match="allow_http_jwks"):
        IdentityConfig.model_validate(
            {"jwt": {"issuer": ISSUER, "audience": [AUDIENCE], "jwks_url": "http://idp.test/k"}}
        )
    with pytest.raises(ValidationError, match="https"):
        IdentityConfig.model_validate(
            {"jwt": {"issuer": ISSUER, "audience": [AUDIENCE], "jwks_url": "file:///etc/passwd"}}
        )


def test_a_key_set_that_cannot_be_refreshed_expires(
    jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    import time

    jwks_server.set_keys(keys["ES256"])
    auth = remote(
        jwks_server.url,
        jwks_cache_seconds=0,
        jwks_min_refresh_seconds=0,
        jwks_max_stale_seconds=0.3,
    )
    token = mint(keys["ES256"])
    assert call(auth, token).id == "alice"
    jwks_server.status = 503
    assert call(auth, token).id == "alice"  # cached token, stale keys still within bounds
    time.sleep(0.4)
    with pytest.raises(
        KeySetUnavailableError, match=r"could not be refreshed for 0.3 s: .*HTTP 503"
    ):
        call(auth, token)


def test_an_unreachable_provider_is_not_asked_on_every_request(
    jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks_server.status = 503
    auth = remote(jwks_server.url, jwks_min_refresh_seconds=3600)
    for _ in range(5):
        with pytest.raises(KeySetUnavailableError, match="HTTP 503"):
            call(auth, mint(keys["ES256"]))
    assert jwks_server.hits == 1


def test_prefetch_refreshes_so_requests_never_fetch(
    jwks_server: JwksServer, keys: dict[str, SigningKey]
) -> None:
    jwks_server.set_keys(keys["ES256"])
    auth = remote(jwks_server.url, jwks_min_refresh_seconds=3600)
    auth.prefetch()
    rotated = make_key("ES256", "es-next")
    jwks_server.set_keys(keys["ES256"], rotated)
    auth.prefetch()  # the background refresh, not rate-limited
    assert jwks_server.hits == 2
    assert call(auth, mint(rotated)).id == "alice"
    assert jwks_server.hits == 2
