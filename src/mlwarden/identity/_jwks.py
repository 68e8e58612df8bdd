"""JSON Web Key Sets: parse, select by `kid`, and fetch from a URL with a bound and a cache.

Only signature keys for the asymmetric algorithms the configuration allows are kept; a
symmetric (`oct`) key in a key set is dropped, so a token can never be checked with a
published key used as an HMAC secret.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.errors import IdentityConfigError, KeySetUnavailableError

MAX_JWKS_BYTES = 1 << 20

# The algorithm each key type may sign with. A token's `alg` must equal its key's entry.
_ALGORITHM_FOR_KEY: dict[tuple[object, object], str] = {
    ("RSA", None): "RS256",
    ("EC", "P-256"): "ES256",
    ("OKP", "Ed25519"): "EdDSA",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationKey:
    kid: str | None
    algorithm: str
    key: Any  # a cryptography public key object


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySet:
    keys: tuple[VerificationKey, ...]

    def select(self, kid: str | None, algorithm: str) -> VerificationKey | None:
        """The key for this `kid` and algorithm; without a `kid`, the only key of that algorithm."""
        matching = [k for k in self.keys if k.algorithm == algorithm]
        if kid is not None:
            return next((k for k in matching if k.kid == kid), None)
        return matching[0] if len(matching) == 1 else None


def parse_jwks(document: bytes, *, allowed: Iterable[str], origin: str) -> KeySet:
    """Parse a JWKS document; keep the usable signature keys; refuse a set with none."""
    import jwt

    allowed_set = frozenset(allowed)
    try:
        data = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeySetUnavailableError(f"key set {origin} is not JSON: {exc}") from None
    raw_keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(raw_keys, list):
        raise KeySetUnavailableError(f"key set {origin} has no 'keys' list")
    keys: list[VerificationKey] = []
    for raw in raw_keys:
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        kty, crv = raw.get("kty"), raw.get("crv")
        algorithm = _ALGORITHM_FOR_KEY.get((kty, None if kty == "RSA" else crv))
        if algorithm is None or algorithm not in allowed_set:
            continue
        if raw.get("alg", algorithm) != algorithm:
            continue  # a key published for another algorithm is not ours to reinterpret
        if "d" in raw:
            continue  # a private key in a public key set is a publishing mistake: never use it
        try:
            jwk = jwt.PyJWK(raw, algorithm=algorithm)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        kid = raw.get("kid")
        keys.append(
            VerificationKey(
                kid=kid if isinstance(kid, str) else None, algorithm=algorithm, key=jwk.key
            )
        )
    if not keys:
        raise KeySetUnavailableError(
            f"key set {origin} holds no usable signature key for {sorted(allowed_set)}"
        )
    return KeySet(keys=tuple(keys))


def load_jwks_file(path: Path, *, allowed: Iterable[str]) -> KeySet:
    try:
        document = path.read_bytes()
    except OSError as exc:
        raise IdentityConfigError(f"cannot read JWKS file {path}: {exc.strerror}") from None
    try:
        return parse_jwks(document, allowed=allowed, origin=str(path))
    except KeySetUnavailableError as exc:
        raise IdentityConfigError(exc.message) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A key set URL that redirects is refused: the configured URL is the trust anchor."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class RemoteKeySet:
    """A JWKS fetched from a URL, cached for `cache_seconds`.

    An unknown `kid` triggers a refetch (key rotation), at most once per
    `min_refresh_seconds`, so a flood of tokens with made-up `kid`s cannot turn the gateway
    into a load generator against the identity provider; failed fetches are rate-limited the
    same way, so an unreachable provider does not make every request wait for a timeout. A
    failed refetch keeps the last good set for up to `max_stale_seconds`; with no good set
    every token is refused (E308).
    """

    def __init__(
        self,
        url: str,
        *,
        allowed: Iterable[str],
        timeout: float,
        cache_seconds: float,
        min_refresh_seconds: float,
        max_stale_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._allowed = frozenset(allowed)
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._max_stale = max_stale_seconds
        self._last_error: KeySetUnavailableError | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self.generation = 0
        # No proxy handler from the environment (library code reads no environment).
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)

    def current(self) -> KeySet:
        """The cached set, refreshed when older than `cache_seconds`."""
        keys = self._keys
        if keys is not None and self._clock() - self._fetched_at < self._cache_seconds:
            return keys
        return self.refresh(force=False)

    def refresh(self, *, force: bool) -> KeySet:
        """Fetch now unless a fetch was attempted within `min_refresh_seconds` (or `force`).

        Fails closed: with no good set, or one not refreshed for `max_stale_seconds` (a key
        the provider has withdrawn must not stay trusted forever), it raises E308.
        """
        with self._lock:
            now = self._clock()
            if force or now - self._attempted_at >= self._min_refresh:
                self._attempted_at = now
                try:
                    fresh = parse_jwks(self._fetch(), allowed=self._allowed, origin=self._url)
                except KeySetUnavailableError as exc:
                    self._last_error = exc
                else:
                    if self._keys is None or fresh != self._keys:
                        self.generation += 1
                    self._keys = fresh
                    self._fetched_at = now
                    self._last_error = None
            if self._keys is None:
                raise self._last_error or KeySetUnavailableError(f"key set {self._url} not fetched")
            if now - self._fetched_at > self._max_stale:
                raise KeySetUnavailableError(
                    f"key set {self._url} could not be refreshed for {self._max_stale:g} s"
                    + (f": {self._last_error.message}" if self._last_error else "")
                )
            return self._keys

    def _fetch(self) -> bytes:
        # The scheme was checked at configuration (https, or http when explicitly allowed).
        request = urllib.request.Request(  # noqa: S310
            self._url, headers={"Accept": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                if response.status != 200:
                    raise KeySetUnavailableError(f"key set {self._url}: HTTP {response.status}")
                body: bytes = response.read(MAX_JWKS_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise KeySetUnavailableError(f"key set {self._url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise KeySetUnavailableError(f"key set {self._url} unreachable: {reason}") from None
        if len(body) > MAX_JWKS_BYTES:
            raise KeySetUnavailableError(
                f"key set {self._url} is larger than {MAX_JWKS_BYTES} bytes"
            )
        return body
