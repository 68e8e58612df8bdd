"""Bearer tokens: each algorithm, every refusal path, and the verified-token cache."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from mlwarden.errors import (
    IdentityConfigError,
    InvalidTokenError,
    MissingCredentialsError,
    TokenExpiredError,
    UntrustedIssuerError,
)
from mlwarden.identity import Authenticator, IdentityConfig, Principal

from .conftest import AUDIENCE, ISSUER, NOW, Clock, SigningKey, make_key, mint, write_jwks

SECRET = b"a-shared-secret-of-at-least-32-bytes!!"


def authenticator(
    tmp_path: Path, *signing_keys: SigningKey, clock: Clock | None = None, **jwt_config: Any
) -> Authenticator:
    section: dict[str, Any] = {"issuer": ISSUER, "audience": [AUDIENCE]}
    if signing_keys:
        section["jwks_file"] = str(write_jwks(tmp_path / "jwks.json", *signing_keys))
    section.update(jwt_config)
    return Authenticator(IdentityConfig.model_validate({"jwt": section}), clock=clock or Clock())


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def call(auth: Authenticator, token: str) -> Principal:
    return auth.authenticate(bearer(token), peer_cert_der=None, client_addr="127.0.0.1")


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_each_asymmetric_algorithm_is_accepted(
    tmp_path: Path, keys: dict[str, SigningKey], algorithm: str
) -> None:
    auth = authenticator(tmp_path, *keys.values())
    principal = call(auth, mint(keys[algorithm]))
    assert principal == Principal(
        id="alice",
        method="jwt",
        roles=frozenset({"analyst"}),
        tenant="acme",
        clearance=2,
        issuer=ISSUER,
        expires_at=NOW + 600,
    )


def test_hs256_only_when_configured(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "exp": NOW + 60}, SECRET)
    default = authenticator(tmp_path, keys["ES256"])
    with pytest.raises(InvalidTokenError, match=r"algorithm 'HS256' is not accepted") as info:
        call(default, token)
    assert info.value.code == "E302" and info.value.http_status == 401

    (tmp_path / "secret").write_bytes(SECRET)
    hs_only = authenticator(
        tmp_path, algorithms=["HS256"], hs256_secret_file=str(tmp_path / "secret")
    )
    assert call(hs_only, token).id == "svc"
    forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "exp": NOW + 60}, b"x" * 40)
    with pytest.raises(InvalidTokenError, match="signature does not verify"):
        call(hs_only, forged)


def test_hs256_secret_must_be_long(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"short")
    with pytest.raises(IdentityConfigError, match="shorter than 32 bytes") as info:
        authenticator(tmp_path, algorithms=["HS256"], hs256_secret_file=str(tmp_path / "secret"))
    assert info.value.code == "E309"


def _unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(payload).encode()), part(signature)]
    )


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(tmp_path: Path, keys: dict[str, SigningKey], alg: str) -> None:
    auth = authenticator(tmp_path, keys["ES256"])
    token = _unsigned(
        {"alg": alg, "typ": "JWT"}, {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": NOW + 60}
    )
    with pytest.raises(InvalidTokenError, match="is not accepted"):
        call(auth, token)


def test_rsa_public_key_as_hmac_secret_is_refused(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    """Algorithm confusion: the attacker signs HS256 with the published RS256 public key."""
    rsa_key = keys["RS256"]
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": NOW + 60}
    header = {"alg": "HS256", "kid": rsa_key.kid}
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"

    with pytest.raises(InvalidTokenError, match="'HS256' is not accepted"):
        call(authenticator(tmp_path, rsa_key), token)
    # Even with HS256 enabled, HS256 tokens are checked with the configured secret only.
    (tmp_path / "secret").write_bytes(SECRET)
    both = authenticator(
        tmp_path,
        rsa_key,
        algorithms=["RS256", "HS256"],
        hs256_secret_file=str(tmp_path / "secret"),
    )
    with pytest.raises(InvalidTokenError, match="signature does not verify"):
        call(both, token)


def test_alg_must_match_the_keys_type(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    """A token that claims ES256 but names the RSA key's kid finds no ES256 key."""
    auth = authenticator(tmp_path, keys["ES256"], keys["RS256"])
    token = mint(keys["ES256"], kid=keys["RS256"].kid)
    with pytest.raises(InvalidTokenError, match=r"no known ES256 key \(kid 'rs-1'\)"):
        call(auth, token)


def test_algorithm_not_in_config_is_refused(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    auth = authenticator(tmp_path, *keys.values(), algorithms=["ES256"])
    with pytest.raises(InvalidTokenError, match="'RS256' is not accepted"):
        call(auth, mint(keys["RS256"]))


def test_kid_selection(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    second = make_key("ES256", "es-2")
    auth = authenticator(tmp_path, keys["ES256"], second)
    assert call(auth, mint(second)).id == "alice"
    assert call(auth, mint(keys["ES256"])).id == "alice"
    with pytest.raises(InvalidTokenError, match="kid 'es-9'"):
        call(auth, mint(second, kid="es-9"))
    with pytest.raises(InvalidTokenError, match=r"no known ES256 key \(no kid\)"):
        call(auth, mint(second, kid=None))
    # With one key of the algorithm, a token without kid is accepted.
    single = authenticator(tmp_path, keys["ES256"])
    assert call(single, mint(keys["ES256"], kid=None)).id == "alice"


def test_wrong_key_signature_is_refused(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    impostor = SigningKey(
        kid=keys["ES256"].kid, algorithm="ES256", private=make_key("ES256", "x").private
    )
    with pytest.raises(InvalidTokenError, match="signature does not verify"):
        call(authenticator(tmp_path, keys["ES256"]), mint(impostor))


def test_tampered_payload_is_refused(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    token = mint(keys["ES256"])
    header, _, signature = token.split(".")
    payload = base64.urlsafe_b64encode(
        json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "exp": NOW + 60}).encode()
    )
    forged = f"{header}.{payload.rstrip(b'=').decode()}.{signature}"
    with pytest.raises(InvalidTokenError, match="signature does not verify"):
        call(authenticator(tmp_path, keys["ES256"]), forged)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"iss": "https://evil.test"}, UntrustedIssuerError, "issuer or audience"),
        ({"aud": "someone-else"}, UntrustedIssuerError, "issuer or audience"),
        ({"iss": None}, InvalidTokenError, "lacks the 'iss' claim"),
        ({"aud": None}, InvalidTokenError, "lacks the 'aud' claim"),
        ({"exp": None}, InvalidTokenError, "lacks the 'exp' claim"),
        ({"sub": None}, InvalidTokenError, "lacks the 'sub' claim"),
        ({"sub": ""}, InvalidTokenError, "'sub' is not a string"),
        ({"exp": "soon"}, InvalidTokenError, "'exp' is not a number"),
        ({"exp": int(NOW) - 31}, TokenExpiredError, "has expired"),
        ({"nbf": int(NOW) + 31}, TokenExpiredError, "not valid yet"),
        ({"roles": {"a": 1}}, InvalidTokenError, "'roles' is not a list"),
        ({"tenant": 5}, InvalidTokenError, "'tenant' is not a string"),
        ({"clearance": -1}, InvalidTokenError, "'clearance' is not a non-negative integer"),
        ({"clearance": True}, InvalidTokenError, "'clearance' is not a non-negative integer"),
    ],
)
def test_claim_refusals(
    tmp_path: Path,
    keys: dict[str, SigningKey],
    overrides: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        call(authenticator(tmp_path, keys["ES256"]), mint(keys["ES256"], **overrides))


def test_error_codes(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    auth = authenticator(tmp_path, keys["ES256"])
    with pytest.raises(UntrustedIssuerError) as untrusted:
        call(auth, mint(keys["ES256"], iss="https://evil.test"))
    with pytest.raises(TokenExpiredError) as expired:
        call(auth, mint(keys["ES256"], exp=int(NOW) - 100))
    assert (untrusted.value.code, untrusted.value.http_status) == ("E303", 401)
    assert (expired.value.code, expired.value.http_status) == ("E304", 401)


def test_clock_skew_is_allowed(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    auth = authenticator(tmp_path, keys["ES256"])
    assert call(auth, mint(keys["ES256"], exp=int(NOW) - 29)).id == "alice"
    assert call(auth, mint(keys["ES256"], nbf=int(NOW) + 29)).id == "alice"


def test_roles_may_be_a_space_separated_string(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    principal = call(authenticator(tmp_path, keys["ES256"]), mint(keys["ES256"], roles="a b"))
    assert principal.roles == frozenset({"a", "b"})


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc", "bearer not-a-jwt"],
)
def test_malformed_authorization_headers(
    tmp_path: Path, keys: dict[str, SigningKey], header: str
) -> None:
    auth = authenticator(tmp_path, keys["ES256"])
    with pytest.raises(InvalidTokenError):
        auth.authenticate({"authorization": header}, peer_cert_der=None, client_addr=None)


def test_overlong_token_is_refused_before_parsing(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    auth = authenticator(tmp_path, keys["ES256"], max_token_bytes=256)
    with pytest.raises(InvalidTokenError, match="longer than the configured maximum"):
        call(auth, mint(keys["ES256"], padding="x" * 300))


def test_no_credentials(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    auth = authenticator(tmp_path, keys["ES256"])
    with pytest.raises(MissingCredentialsError) as info:
        auth.authenticate({}, peer_cert_der=None, client_addr="127.0.0.1")
    assert (info.value.code, info.value.http_status) == ("E301", 401)


# --- the verified-token cache ---------------------------------------------------------------


def test_cache_never_serves_an_expired_token(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    clock = Clock()
    auth = authenticator(tmp_path, keys["ES256"], clock=clock, clock_skew_seconds=0)
    token = mint(keys["ES256"], exp=int(NOW) + 10)
    assert call(auth, token).id == "alice"
    clock.now = NOW + 9.9
    assert call(auth, token).id == "alice"
    clock.now = NOW + 10
    with pytest.raises(TokenExpiredError):
        call(auth, token)


def test_cache_hit_within_skew_then_refused(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    """Past exp the cache is bypassed, the skew still applies, and after exp + skew: refused."""
    clock = Clock()
    auth = authenticator(tmp_path, keys["ES256"], clock=clock, clock_skew_seconds=5)
    token = mint(keys["ES256"], exp=int(NOW) + 10)
    assert call(auth, token).id == "alice"
    clock.now = NOW + 14
    assert call(auth, token).id == "alice"
    clock.now = NOW + 15
    with pytest.raises(TokenExpiredError):
        call(auth, token)


def test_cache_is_bounded_and_keeps_answering(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    auth = authenticator(tmp_path, keys["ES256"], cache_size=2)
    tokens = [mint(keys["ES256"], sub=f"user-{i}") for i in range(5)]
    for _ in range(2):
        assert [call(auth, t).id for t in tokens] == [f"user-{i}" for i in range(5)]


def test_jwks_file_errors(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    config = {"issuer": ISSUER, "audience": [AUDIENCE], "jwks_file": str(tmp_path / "missing.json")}
    with pytest.raises(IdentityConfigError, match="cannot read JWKS file") as info:
        Authenticator(IdentityConfig.model_validate({"jwt": config}))
    assert info.value.code == "E309"
    (tmp_path / "bad.json").write_text("{not json")
    config["jwks_file"] = str(tmp_path / "bad.json")
    with pytest.raises(IdentityConfigError, match="is not JSON"):
        Authenticator(IdentityConfig.model_validate({"jwt": config}))
    # Only a symmetric key and a private key: nothing usable is left.
    private_jwk = keys["ES256"].jwk() | {"d": "AAAA"}
    (tmp_path / "bad.json").write_text(
        json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, private_jwk]})
    )
    with pytest.raises(IdentityConfigError, match="no usable signature key"):
        Authenticator(IdentityConfig.model_validate({"jwt": config}))


def test_relative_paths_resolve_against_base_dir(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    write_jwks(tmp_path / "jwks.json", keys["ES256"])
    config = IdentityConfig.model_validate(
        {"jwt": {"issuer": ISSUER, "audience": [AUDIENCE], "jwks_file": "jwks.json"}}
    )
    auth = Authenticator(config, base_dir=tmp_path, clock=Clock())
    assert call(auth, mint(keys["ES256"])).id == "alice"


def test_missing_extra_names_the_install_command(
    tmp_path: Path, keys: dict[str, SigningKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from mlwarden.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "jwt", None)  # makes `import jwt` fail
    with pytest.raises(MissingExtraError, match="pyjwt") as info:
        authenticator(tmp_path, keys["ES256"])
    assert info.value.hint == "pip install 'mlwarden[gateway]'"


def test_headers_from_asgi_refuses_repeated_credentials(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    auth = authenticator(tmp_path, keys["ES256"])
    token = mint(keys["ES256"]).encode()
    raw = [(b"host", b"gw"), (b"Authorization", b"Bearer " + token), (b"accept", b"*/*")]
    headers = auth.headers_from_asgi(raw)
    assert call(auth, headers["authorization"].removeprefix("Bearer ")).id == "alice"
    assert auth.authenticate(headers, peer_cert_der=None, client_addr=None).id == "alice"
    assert auth.headers_from_asgi([(b"accept", b"a"), (b"accept", b"b")]) == {"accept": "b"}
    with pytest.raises(InvalidTokenError, match="'authorization' header is repeated"):
        auth.headers_from_asgi([*raw, (b"authorization", b"Bearer other")])


def test_audience_may_be_one_string(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    write_jwks(tmp_path / "jwks.json", keys["ES256"])
    config = IdentityConfig.model_validate(
        {"jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(tmp_path / "jwks.json")}}
    )
    assert call(Authenticator(config, clock=Clock()), mint(keys["ES256"])).id == "alice"


def test_a_key_embedded_in_the_token_is_never_used(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    """CVE-2018-0114 class: the token carries its own `jwk` (or `jku`) naming the real kid."""
    attacker = make_key("ES256", keys["ES256"].kid)
    headers = {"kid": attacker.kid, "jwk": attacker.jwk(), "jku": "http://127.0.0.1:9/k.json"}
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "exp": NOW + 60},
        attacker.private,
        algorithm="ES256",
        headers=headers,
    )
    with pytest.raises(InvalidTokenError, match="signature does not verify"):
        call(authenticator(tmp_path, keys["ES256"]), token)


def test_unknown_critical_header_is_refused(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    key = keys["ES256"]
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 60},
        key.private,
        algorithm="ES256",
        headers={"kid": key.kid, "crit": ["exp-ext"], "exp-ext": 1},
    )
    with pytest.raises(InvalidTokenError, match="not a well-formed JWS"):
        call(authenticator(tmp_path, key), token)
