"""Signed checkpoints: round trip, forgery, truncation and a log rebuilt from scratch."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.audit import BreakKind, Checkpoint, key_id, link_hash, verify_checkpoint
from mlwarden.errors import (
    CheckpointMalformedError,
    CheckpointSignatureError,
    PathNotFoundError,
    SigningKeyError,
    UsageError,
)

from .conftest import KeyFiles, Store, event


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["p256", "p384"])
def test_round_trip(store: Store, curve: ec.EllipticCurve) -> None:
    log = store.open()
    log.append_many([event(i) for i in range(1, 11)])
    key = ec.generate_private_key(curve)
    checkpoint = log.export_checkpoint(key)
    assert (checkpoint.seq, checkpoint.hash) == (10, log.head().hash)
    assert checkpoint.log_id == log.log_id and checkpoint.key_id == key_id(key.public_key())
    parsed = Checkpoint.from_json(checkpoint.to_json())
    assert parsed == checkpoint
    verify_checkpoint(parsed, key.public_key())
    log.append(event(11))  # appending after a checkpoint is normal
    result = log.verify(checkpoint=parsed, public_key=key.public_key())
    assert result.intact and result.checkpoint == parsed.head and result.records == 11


def test_forged_or_foreign_checkpoints_are_refused(store: Store) -> None:
    log = store.open()
    log.append_many([event(i) for i in range(1, 4)])
    key = ec.generate_private_key(ec.SECP256R1())
    checkpoint = log.export_checkpoint(key)
    moved = dataclasses.replace(checkpoint, seq=2)
    with pytest.raises(CheckpointSignatureError, match="altered or forged"):
        log.verify(checkpoint=moved, public_key=key.public_key())
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CheckpointSignatureError, match="not by the given key"):
        verify_checkpoint(checkpoint, other.public_key())
    garbled = dataclasses.replace(checkpoint, signature="!!")
    with pytest.raises(CheckpointSignatureError):
        verify_checkpoint(garbled, key.public_key())
    with pytest.raises(UsageError, match="public key"):
        log.verify(checkpoint=checkpoint)


def test_truncation_is_detected_only_with_a_checkpoint(store: Store) -> None:
    log = store.open()
    log.append_many([event(i) for i in range(1, 11)])
    key = ec.generate_private_key(ec.SECP256R1())
    checkpoint = log.export_checkpoint(key)
    store.tamper("DELETE FROM {t} WHERE seq >= 9")
    assert log.verify().intact  # a shorter chain is still a chain
    result = log.verify(checkpoint=checkpoint, public_key=key.public_key())
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.kind) == (9, BreakKind.DELETED)
    assert "records 9..10 deleted (truncated)" in result.first_break.message


def test_a_rebuilt_chain_does_not_reach_the_checkpoint(store: Store) -> None:
    log = store.open()
    log.append_many([event(i) for i in range(1, 6)])
    key = ec.generate_private_key(ec.SECP256R1())
    checkpoint = log.export_checkpoint(key)
    # Rewrite the whole history consistently: every link holds, but not the signed head.
    store.tamper("DELETE FROM {t}")
    prev = "0" * 64
    for seq in range(1, 6):
        data = event(seq + 100).canonical
        digest = link_hash(prev, data, seq)
        store.tamper(f"INSERT INTO {{t}} VALUES ({seq}, '{prev}', '{digest}', '{data.decode()}')")
        prev = digest
    assert log.verify().intact
    found = log.verify(checkpoint=checkpoint, public_key=key.public_key()).first_break
    assert found is not None
    assert (found.seq, found.kind) == (5, BreakKind.CHANGED)
    assert "rewritten" in found.message


def test_a_checkpoint_of_another_log(store: Store, tmp_path: Path) -> None:
    log = store.open()
    log.append(event(1))
    key = ec.generate_private_key(ec.SECP256R1())
    checkpoint = dataclasses.replace(log.export_checkpoint(key))
    store.tamper("UPDATE {t}_meta SET value = 'another' WHERE key = 'log_id'")
    found = store.open().verify(checkpoint=checkpoint, public_key=key.public_key()).first_break
    assert found is not None
    assert (found.seq, found.kind) == (1, BreakKind.CHANGED)
    assert "another log" in found.message


def test_a_checkpoint_of_an_empty_log(store: Store) -> None:
    log = store.open()
    key = ec.generate_private_key(ec.SECP256R1())
    checkpoint = log.export_checkpoint(key)
    assert checkpoint.seq == 0
    assert log.verify(checkpoint=checkpoint, public_key=key.public_key()).intact


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "not json{", "not JSON"),
        (lambda d: {**d, "extra": 1}, "exactly the fields"),
        (lambda d: {**d, "type": "other"}, "type is not"),
        (lambda d: {**d, "seq": -1}, "non-negative"),
        (lambda d: {**d, "seq": "3"}, "non-negative"),
        (lambda d: {**d, "hash": "XYZ"}, "64 hex digits"),
        (lambda d: {**d, "log_id": 5}, "must be a string"),
    ],
)
def test_malformed_checkpoint_files(
    mutate: Callable[[dict[str, object]], object], message: str, sqlite_store: Store
) -> None:
    log = sqlite_store.open()
    data = json.loads(log.export_checkpoint(ec.generate_private_key(ec.SECP256R1())).to_json())
    changed = mutate(data)
    text = changed if isinstance(changed, str) else json.dumps(changed)
    with pytest.raises(CheckpointMalformedError, match=message):
        Checkpoint.from_json(text)


def test_checkpoint_files_and_keys(tmp_path: Path, keys: Callable[..., KeyFiles]) -> None:
    from mlwarden.audit import load_private_key, load_public_key

    with pytest.raises(PathNotFoundError):
        Checkpoint.read(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (65 * 1024))
    with pytest.raises(CheckpointMalformedError, match="larger than 64 KiB"):
        Checkpoint.read(big)
    pair = keys()
    assert key_id(load_private_key(pair.private).public_key()) == key_id(
        load_public_key(pair.public)
    )
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        load_private_key(pair.public)
    with pytest.raises(SigningKeyError, match=r"not a PEM public key|larger than"):
        load_public_key(big)
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_public_key(pair.private)
    secp521 = keys("big", ec.SECP521R1())
    with pytest.raises(SigningKeyError, match="P-256 or P-384"):
        load_public_key(secp521.public)
