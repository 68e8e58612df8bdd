"""The verification cache: hits skip hashing, and nothing in it can make a tampered file pass."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlwarden.signing import sign, verify
from mlwarden.signing._cache import VerifyCache
from mlwarden.signing._hashing import list_tree

from .conftest import KeyPair


@pytest.fixture
def settled_model(model: Path) -> Path:
    """A model older than the cache's racy window (files written in the last 2 s are not cached)."""
    time.sleep(2.1)
    return model


def entries(cache: Path) -> dict[str, list[object]]:
    return json.loads(cache.read_text())["entries"]  # type: ignore[no-any-return]


def test_cache_hit_skips_hashing_and_tampering_still_refused(
    settled_model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    model = settled_model
    pair = keys()
    sign(model, key=pair.private)
    cache = tmp_path / "verify-cache.json"
    assert verify(model, public_key=pair.public, cache=cache).verified
    assert len(entries(cache)) == 4
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    # Every entry matches the file as it is now: a second verification hashes nothing.
    store = VerifyCache(cache, tree=model)
    digests = verify(model, public_key=pair.public).digests
    for name, info in list_tree(model).files.items():
        assert store.matches(name, info, digests[name])
    assert verify(model, public_key=pair.public, cache=cache).verified
    # Same size, same mtime (restored), new content: ctime moves, so the cache misses.
    weights = model / "weights.bin"
    before = weights.stat()
    data = bytearray(weights.read_bytes())
    data[10] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = verify(model, public_key=pair.public, cache=cache)
    assert [f.rule_id for f in result.report.findings] == ["SIG003"]
    assert not any(k.endswith("weights.bin") for k in entries(cache))


def test_forged_cache_entry_never_asserts_a_digest(
    settled_model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    model = settled_model
    pair = keys()
    sign(model, key=pair.private)
    (model / "config.json").write_text('{"hidden": 9}')  # same size, different content
    info = (model / "config.json").stat()
    cache = tmp_path / "cache.json"
    key = os.path.abspath(model) + "\0config.json"
    forged = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
    # An entry with the current stat but the *actual* digest does not match the signed one.
    cache.write_text(json.dumps({"version": 1, "entries": {key: [*forged, "00" * 32]}}))
    cache.chmod(0o600)
    result = verify(model, public_key=pair.public, cache=cache)
    assert [f.rule_id for f in result.report.findings] == ["SIG003"]


def test_malformed_cache_is_ignored_and_rewritten(
    settled_model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    model = settled_model
    pair = keys()
    sign(model, key=pair.private)
    cache = tmp_path / "cache.json"
    for junk in (b"{not json", b"[]", b'{"version": 1, "entries": {"x": 5}}', b"\xff\xfe"):
        cache.write_bytes(junk)
        cache.chmod(0o600)
        assert verify(model, public_key=pair.public, cache=cache).verified
        assert json.loads(cache.read_text())["version"] == 1


def test_cache_others_may_write_is_not_used(
    settled_model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    model = settled_model
    pair = keys()
    sign(model, key=pair.private)
    cache = tmp_path / "cache.json"
    assert verify(model, public_key=pair.public, cache=cache).verified
    cache.chmod(0o666)
    assert not VerifyCache(cache, tree=model).usable
    inside = model.parent / "inside.json"
    assert not VerifyCache(model / "cache.json", tree=model).usable
    assert VerifyCache(inside, tree=model).usable


def test_fresh_files_are_not_cached(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path
) -> None:
    pair = keys()
    sign(model, key=pair.private)
    cache = tmp_path / "cache.json"
    assert verify(model, public_key=pair.public, cache=cache).verified
    assert not cache.exists() or entries(cache) == {}
