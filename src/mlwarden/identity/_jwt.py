"""Bearer-token verification with PyJWT, and the verified-token cache of the hot path.

An ES256 signature check costs far more than the rest of a gateway request, so a token that
verified once is remembered by the sha256 of its text until the earliest of: its `exp`,
`cache_max_seconds` after it was verified, or a change of the key set. The cache stores
only successes; the token itself is never kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlwarden.errors import (
    IdentityConfigError,
    InvalidTokenError,
    MissingExtraError,
    TokenExpiredError,
    UntrustedIssuerError,
)
from mlwarden.identity._config import ASYMMETRIC_ALGORITHMS, JwtConfig
from mlwarden.identity._jwks import KeySet, RemoteKeySet, load_jwks_file
from mlwarden.identity._principal import Principal

MIN_HS256_SECRET_BYTES = 32


class _StaticKeySet:
    generation = 0

    def __init__(self, keys: KeySet) -> None:
        self._keys = keys

    def current(self) -> KeySet:
        return self._keys

    def refresh(self, *, force: bool) -> KeySet:
        return self._keys


class JwtVerifier:
    """Checks a compact JWS token and turns its claims into a Principal."""

    def __init__(self, config: JwtConfig, *, clock: Callable[[], float] = time.time) -> None:
        try:
            import jwt
        except ImportError:
            raise MissingExtraError("pyjwt[crypto]", "gateway") from None

        self._config = config
        self._clock = clock
        self._algorithms = frozenset(config.algorithms)
        self._audience = list(config.audience)
        self._decoder = jwt.PyJWT()
        self._hs256_secret: bytes | None = None
        if config.hs256_secret_file is not None:
            self._hs256_secret = _read_secret(config.hs256_secret_file)
        asymmetric = self._algorithms & ASYMMETRIC_ALGORITHMS
        self._keys: _StaticKeySet | RemoteKeySet | None = None
        if asymmetric and config.jwks_file is not None:
            self._keys = _StaticKeySet(load_jwks_file(config.jwks_file, allowed=asymmetric))
        elif asymmetric and config.jwks_url is not None:
            self._keys = RemoteKeySet(
                config.jwks_url,
                allowed=asymmetric,
                timeout=config.jwks_timeout_seconds,
                cache_seconds=config.jwks_cache_seconds,
                min_refresh_seconds=config.jwks_min_refresh_seconds,
                max_stale_seconds=config.jwks_max_stale_seconds,
            )
        # sha256(token) -> (principal, valid until (unix s), key-set generation)
        self._cache: dict[bytes, tuple[Principal, float, int]] = {}

    def prefetch(self) -> None:
        """Fetch a remote key set now (at start-up, then from a background thread), so no
        request waits for the identity provider. Raises E308 as a request would."""
        if self._keys is not None:
            self._keys.refresh(force=True)

    def clear_cache(self) -> None:
        self._cache.clear()

    def verify(self, token: str) -> Principal:
        if len(token) > self._config.max_token_bytes:
            raise InvalidTokenError("bearer token is longer than the configured maximum")
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._cache.get(digest)
        if hit is not None:
            principal, valid_until, generation = hit
            if self._keys is not None:
                self._keys.current()  # a stale key set refreshes here, bumping the generation
            current = self._keys.generation if self._keys is not None else 0
            if now < valid_until and generation == current:
                return principal
            self._cache.pop(digest, None)
        # The generation is taken before verifying: should the key set change meanwhile, the
        # entry is merely stale (a miss later), never credited to keys it was not checked with.
        generation = self._keys.generation if self._keys is not None else 0
        principal, exp = self._verify_uncached(token, now)
        if self._config.cache_size:
            # Bounded by `exp` itself, not exp + skew: past `exp` the token is checked afresh.
            valid_until = min(exp, now + self._config.cache_max_seconds)
            if len(self._cache) >= self._config.cache_size:
                self._evict_oldest()
            self._cache[digest] = (principal, valid_until, generation)
        return principal

    def _evict_oldest(self) -> None:
        # Another thread may have evicted or changed the dict first: nothing to do then.
        with contextlib.suppress(StopIteration, KeyError, RuntimeError):
            del self._cache[next(iter(self._cache))]

    def _verify_uncached(self, token: str, now: float) -> tuple[Principal, float]:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("bearer token is not a well-formed JWS") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            # `none`, and any algorithm not configured (HS256 by default), end here.
            raise InvalidTokenError(f"bearer token algorithm {algorithm!r} is not accepted")
        key = self._key_for(header, algorithm)
        try:
            claims = self._decoder.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._config.issuer,
                options={
                    # exp and nbf are checked below against our clock (testable, one leeway).
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "aud", self._config.subject_claim],
                },
            )
        except (jwt.InvalidIssuerError, jwt.InvalidAudienceError):
            raise UntrustedIssuerError("bearer token issuer or audience is not trusted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"bearer token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("bearer token signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"bearer token refused: {exc}") from None
        exp = _numeric_claim(claims, "exp")
        skew = self._config.clock_skew_seconds
        if now >= exp + skew:
            raise TokenExpiredError("bearer token has expired")
        if "nbf" in claims and now < _numeric_claim(claims, "nbf") - skew:
            raise TokenExpiredError("bearer token is not valid yet (nbf)")
        return self._principal(claims, exp), exp

    def _key_for(self, header: dict[str, Any], algorithm: str) -> Any:
        if algorithm == "HS256":
            return self._hs256_secret
        if self._keys is None:
            raise InvalidTokenError(f"bearer token algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidTokenError("bearer token 'kid' is not a string")
        found = self._keys.current().select(kid, algorithm)
        if found is None and kid is not None:
            found = self._keys.refresh(force=False).select(kid, algorithm)  # key rotation
        if found is None:
            which = f"kid {kid!r}" if kid is not None else "no kid"
            raise InvalidTokenError(f"bearer token names no known {algorithm} key ({which})")
        return found.key

    def _principal(self, claims: dict[str, Any], exp: float) -> Principal:
        config = self._config
        subject = claims.get(config.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError(f"bearer token claim {config.subject_claim!r} is not a string")
        roles = claims.get(config.roles_claim, [])
        if isinstance(roles, str):
            roles = roles.split()
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidTokenError(f"bearer token claim {config.roles_claim!r} is not a list")
        tenant = claims.get(config.tenant_claim, "")
        clearance = claims.get(config.clearance_claim, 0)
        if not isinstance(tenant, str):
            raise InvalidTokenError(f"bearer token claim {config.tenant_claim!r} is not a string")
        if isinstance(clearance, bool) or not isinstance(clearance, int) or clearance < 0:
            raise InvalidTokenError(
                f"bearer token claim {config.clearance_claim!r} is not a non-negative integer"
            )
        return Principal(
            id=subject,
            method="jwt",
            roles=frozenset(roles),
            tenant=tenant,
            clearance=clearance,
            issuer=config.issuer,
            expires_at=exp,
        )


def _numeric_claim(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidTokenError(f"bearer token claim {name!r} is not a number")
    return float(value)


def _read_secret(path: Path) -> bytes:
    try:
        secret: bytes = path.read_bytes().strip()
    except OSError as exc:
        raise IdentityConfigError(f"cannot read HS256 secret file {path}: {exc.strerror}") from None
    if len(secret) < MIN_HS256_SECRET_BYTES:
        raise IdentityConfigError(
            f"HS256 secret in {path} is shorter than {MIN_HS256_SECRET_BYTES} bytes"
        )
    return secret
