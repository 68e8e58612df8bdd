"""The read-hash-scan step: bounded, single read, fails closed."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest

from mlwarden.artifacts import _dispatch
from mlwarden.errors import (
    LimitExceededError,
    ManifestMismatchError,
    PathNotFoundError,
    ScanRefusedError,
    UnreadableInputError,
)
from mlwarden.loading._read import check_digest, read_once, read_verified, scan_clean


def test_read_once_returns_immutable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 100)
    data = read_once(path, 1000)
    assert isinstance(data, bytes)
    assert data == b"abc" * 100


def test_read_once_refuses_before_reading_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        f.truncate(1 << 40)  # a sparse terabyte: refused from fstat, never allocated
    with pytest.raises(LimitExceededError, match="load limit") as info:
        read_once(path, 1 << 20)
    assert info.value.code == "E106"


def test_read_once_refuses_special_and_missing_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # no writer: a blocking open would hang forever
    with pytest.raises(UnreadableInputError, match="not a regular file"):
        read_once(fifo, 100)
    with pytest.raises(PathNotFoundError):
        read_once(tmp_path / "missing", 100)


def test_check_digest() -> None:
    data = b"weights"
    good = hashlib.sha256(data).hexdigest()
    assert check_digest(data, good.upper(), name="w", location="w") == good
    with pytest.raises(ManifestMismatchError, match="differs from the signed digest of 'w'"):
        check_digest(data + b"!", good, name="w", location="w")


def test_scan_refuses_unrecognised_content(tmp_path: Path) -> None:
    with pytest.raises(ScanRefusedError, match="does not recognise"):
        scan_clean(b"just some text, no model format", str(tmp_path / "notes"), tmp_path)


def test_scan_that_crashes_is_not_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(_dispatch, "scan_stream", broken)
    with pytest.raises(ScanRefusedError, match=r"could not complete.*reader bug"):
        scan_clean(pickle.dumps([1]), str(tmp_path / "m.pkl"), tmp_path)


def test_read_verified_order(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2]}))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    verified = read_verified(
        path, name="m.pkl", expected_sha256=digest, root=tmp_path, max_bytes=1000
    )
    assert verified.sha256 == digest
    assert verified.format == "pickle"
    assert verified.data == path.read_bytes()
