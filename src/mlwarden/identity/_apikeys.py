"""API keys, stored only as sha256 hashes.

Why a plain sha256 and not a slow password hash (scrypt, argon2): a slow hash protects
*low-entropy* secrets against guessing once the hashes leak. mlwarden's keys are 256 random
bits (`generate_api_key`), so guessing a preimage of a leaked sha256 is as hard as guessing
the key; a slow hash would add nothing but cost on every request. The digest is also the
lookup key (one dict probe, no per-key loop). The probe's timing depends only on the
digest of what the caller sent, which tells an attacker nothing about any stored key; the
final `hmac.compare_digest` keeps the equality check itself constant-time regardless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from mlwarden.errors import UnknownApiKeyError
from mlwarden.identity._config import ApiKeyEntryConfig
from mlwarden.identity._principal import Principal

KEY_PREFIX = "mlw_"
MIN_KEY_CHARS = 20
MAX_KEY_CHARS = 256


def generate_api_key() -> tuple[str, str]:
    """A new API key and its sha256 (hex) for mlwarden.yaml. Show the key once; store the hash."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, entries: Iterable[ApiKeyEntryConfig]) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        for entry in entries:
            stored = bytes.fromhex(entry.sha256)
            self._by_digest[stored] = (
                stored,
                Principal(
                    id=entry.principal,
                    method="api_key",
                    roles=frozenset(entry.roles),
                    tenant=entry.tenant,
                    clearance=entry.clearance,
                ),
            )

    def lookup(self, key: str) -> Principal:
        if not MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS:
            raise UnknownApiKeyError("API key is not recognised")
        digest = hashlib.sha256(key.encode()).digest()
        found = self._by_digest.get(digest)
        if found is None:
            raise UnknownApiKeyError("API key is not recognised")
        stored, principal = found
        # The probe matched by hash equality; the stored digest is compared once more in
        # constant time so the decision never rests on a short-circuiting comparison.
        if not hmac.compare_digest(stored, digest):
            raise UnknownApiKeyError("API key is not recognised")
        return principal
