"""API keys: stored only as sha256, looked up by hash, every refusal path."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from mlwarden.errors import InvalidTokenError, MissingCredentialsError, UnknownApiKeyError
from mlwarden.identity import (
    Authenticator,
    IdentityConfig,
    Principal,
    generate_api_key,
    hash_api_key,
)


def api_key_authenticator(*entries: dict[str, object], header: str = "x-api-key") -> Authenticator:
    return Authenticator(
        IdentityConfig.model_validate({"api_keys": {"header": header, "keys": list(entries)}})
    )


def test_generated_key_round_trip() -> None:
    key, digest = generate_api_key()
    assert key.startswith("mlw_") and len(key) > 40
    assert digest == hashlib.sha256(key.encode()).hexdigest() == hash_api_key(key)
    other_key, other_digest = generate_api_key()
    assert other_key != key and other_digest != digest

    auth = api_key_authenticator(
        {"principal": "batch-job", "sha256": digest, "roles": ["scorer"], "tenant": "acme"},
        {"principal": "other", "sha256": other_digest},
    )
    principal = auth.authenticate({"x-api-key": key}, peer_cert_der=None, client_addr=None)
    assert principal == Principal(
        id="batch-job", method="api_key", roles=frozenset({"scorer"}), tenant="acme"
    )
    assert (
        auth.authenticate({"x-api-key": other_key}, peer_cert_der=None, client_addr=None).id
        == "other"
    )


@pytest.mark.parametrize("sent", ["mlw_" + "A" * 43, "short", "x" * 300, ""])
def test_unknown_keys_are_refused(sent: str) -> None:
    _, digest = generate_api_key()
    auth = api_key_authenticator({"principal": "p", "sha256": digest})
    with pytest.raises(UnknownApiKeyError, match="API key is not recognised") as info:
        auth.authenticate({"x-api-key": sent}, peer_cert_der=None, client_addr=None)
    assert (info.value.code, info.value.http_status) == ("E305", 401)


def test_the_hash_itself_is_not_a_key() -> None:
    """Someone who reads mlwarden.yaml learns hashes, and a hash does not authenticate."""
    _, digest = generate_api_key()
    auth = api_key_authenticator({"principal": "p", "sha256": digest})
    with pytest.raises(UnknownApiKeyError):
        auth.authenticate({"x-api-key": digest}, peer_cert_der=None, client_addr=None)


def test_configuration_holds_only_hashes() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        IdentityConfig.model_validate({"api_keys": {"keys": [{"principal": "p", "key": "plain"}]}})
    with pytest.raises(ValidationError, match="64 lower-case hex"):
        IdentityConfig.model_validate({"api_keys": {"keys": [{"principal": "p", "sha256": "abc"}]}})
    _, digest = generate_api_key()
    with pytest.raises(ValidationError, match="listed twice"):
        IdentityConfig.model_validate(
            {
                "api_keys": {
                    "keys": [
                        {"principal": "a", "sha256": digest},
                        {"principal": "b", "sha256": digest},
                    ]
                }
            }
        )


def test_custom_header_and_missing_key() -> None:
    key, digest = generate_api_key()
    auth = api_key_authenticator({"principal": "p", "sha256": digest}, header="x-model-key")
    assert auth.authenticate({"x-model-key": key}, peer_cert_der=None, client_addr=None).id == "p"
    with pytest.raises(MissingCredentialsError):
        auth.authenticate({"x-api-key": key}, peer_cert_der=None, client_addr=None)


def test_bearer_and_api_key_together_are_refused() -> None:
    key, digest = generate_api_key()
    auth = api_key_authenticator({"principal": "p", "sha256": digest})
    with pytest.raises(InvalidTokenError, match="send one credential"):
        auth.authenticate(
            {"x-api-key": key, "authorization": "Bearer abc"}, peer_cert_der=None, client_addr=None
        )


def test_bearer_without_jwt_configured_is_refused_not_ignored() -> None:
    _, digest = generate_api_key()
    auth = api_key_authenticator({"principal": "p", "sha256": digest})
    with pytest.raises(InvalidTokenError, match="bearer tokens are not accepted here"):
        auth.authenticate({"authorization": "Bearer abc"}, peer_cert_der=None, client_addr=None)


def test_an_identity_section_needs_a_method() -> None:
    with pytest.raises(ValidationError, match="at least one of jwt, api_keys or mtls"):
        IdentityConfig.model_validate({})


def test_principal_key_separates_methods() -> None:
    from_key = Principal(id="batch", method="api_key")
    from_token = Principal(id="batch", method="jwt")
    assert from_key.key == "api_key:batch" and from_token.key == "jwt:batch"
    assert from_key != from_token
