"""Fixtures of the load tests: a trusted key, a stranger's key, and signing."""

from __future__ import annotations

from pathlib import Path

import pytest
from loading_support import KeyPair, Signer, make_key


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, KeyPair]:
    """A trusted key and another, unrelated one."""
    folder = tmp_path_factory.mktemp("keys")
    return make_key(folder, "trusted"), make_key(folder, "stranger")


@pytest.fixture
def trusted(keys: tuple[KeyPair, KeyPair]) -> KeyPair:
    return keys[0]


@pytest.fixture
def stranger(keys: tuple[KeyPair, KeyPair]) -> KeyPair:
    return keys[1]


@pytest.fixture
def sign() -> Signer:
    """sign(path, key, signature=None) -> the bundle written (PATH.sig by default)."""
    from mlwarden.signing import sign as sign_model

    def run(path: Path, key: KeyPair, signature: Path | None = None) -> Path:
        bundle = signature or path.with_name(path.name + ".sig")
        sign_model(path, key=key.private, signature=bundle)
        return bundle

    return run
