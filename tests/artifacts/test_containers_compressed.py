"""Compressed streams (gzip, bz2, xz, lzma, zlib, zstd): bounded inflation, then a scan."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.artifacts.test_containers_support import (
    Payload,
    RecordingAnalyzer,
    install_fixtures,
    payload_pickle,
    rule_ids,
    scan_bytes,
    scan_path,
)

from mlwarden.artifacts._context import Limits
from mlwarden.artifacts._formats import compressed


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingAnalyzer:
    recording = RecordingAnalyzer()
    install_fixtures(monkeypatch, recording)
    return recording


def object_npy(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def plain_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(1000, dtype=np.float32))
    return buffer.getvalue()


def lzma_alone(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_ALONE)


def joblib_zfile(data: bytes) -> bytes:
    # The pre-0.9.3 joblib layout, as joblib/numpy_pickle_compat.py write_zfile makes it.
    return b"ZF" + hex(len(data)).encode().ljust(19) + zlib.compress(data, 3)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lzma_alone,
    "zlib": zlib.compress,
    "zlib-zfile": joblib_zfile,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_npy_is_scanned_clean(recorder: RecordingAnalyzer, kind: str) -> None:
    ctx = scan_bytes(COMPRESSORS[kind](plain_npy()), "weights.npy.gz")
    assert ctx.formats == [kind.split("-", maxsplit=1)[0], "npy"]
    assert ctx.findings == []


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_payload_is_found(recorder: RecordingAnalyzer, kind: str) -> None:
    ctx = scan_bytes(COMPRESSORS[kind](object_npy(payload_pickle())), "evil.npy.gz")
    assert "PKL001" in rule_ids(ctx)
    assert recorder.locations == ["evil.npy.gz!evil.npy"]


def test_truncated_gzip_still_scans_the_payload_before_the_break(
    recorder: RecordingAnalyzer,
) -> None:
    data = gzip.compress(object_npy(payload_pickle()) + b"\x00" * 200_000)
    ctx = scan_bytes(data[: len(data) // 2], "cut.gz")
    assert {"ARCH004", "PKL001"} <= rule_ids(ctx)


def test_corrupt_stream_is_malformed(recorder: RecordingAnalyzer) -> None:
    data = bytearray(bz2.compress(plain_npy()))
    data[40:60] = b"\xff" * 20
    ctx = scan_bytes(bytes(data), "broken.bz2")
    assert "ARCH004" in rule_ids(ctx)


def test_multi_member_gzip_is_read_to_the_end(recorder: RecordingAnalyzer) -> None:
    evil = object_npy(payload_pickle())
    data = gzip.compress(evil[:100]) + gzip.compress(evil[100:])
    ctx = scan_bytes(data, "two.gz")
    assert "PKL001" in rule_ids(ctx)
    assert "ARCH004" not in rule_ids(ctx)


def test_bytes_after_the_stream_are_flagged(recorder: RecordingAnalyzer) -> None:
    ctx = scan_bytes(gzip.compress(plain_npy()) + b"PK\x03\x04 hidden", "tail.gz")
    assert "ARCH004" in rule_ids(ctx)


def test_gzip_bomb_stops_at_the_ratio_limit(recorder: RecordingAnalyzer) -> None:
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024), 9)
    assert len(bomb) < 100_000
    ctx = scan_bytes(bomb, "bomb.gz")
    assert "ARCH003" in rule_ids(ctx)
    assert ctx.decompressed < 64 * 1024 * 1024


def test_per_member_and_total_limits(recorder: RecordingAnalyzer) -> None:
    data = gzip.compress(np.random.default_rng(0).bytes(3 * 1024 * 1024))
    member = scan_bytes(data, "a.gz", Limits(max_member_bytes=1024 * 1024))
    total = scan_bytes(data, "a.gz", Limits(max_decompressed_bytes=2 * 1024 * 1024))
    assert "ARCH003" in rule_ids(member)
    assert "ARCH003" in rule_ids(total)
    assert "ARCH003" not in rule_ids(scan_bytes(data, "a.gz"))


def test_payload_before_a_bomb_is_still_found(recorder: RecordingAnalyzer) -> None:
    bomb = gzip.compress(object_npy(payload_pickle()) + b"\x00" * (64 * 1024 * 1024))
    ctx = scan_bytes(bomb, "bomb.gz")
    assert {"ARCH003", "PKL001"} <= rule_ids(ctx)


def test_zstd_without_a_decoder_is_reported(recorder: RecordingAnalyzer) -> None:
    frame = b"\x28\xb5\x2f\xfd" + b"\x00" * 32
    ctx = scan_bytes(frame, "model.zst")
    if compressed._zstd_decompressor() is None:
        assert rule_ids(ctx) == {"ARCH007"}
    else:
        assert "ARCH007" not in rule_ids(ctx)


def test_sniffers_reject_look_alikes() -> None:
    assert not compressed.sniff_zlib(b"x\x00abc", 5)  # fails the FCHECK test
    assert not compressed.sniff_lzma(b"\x5d\x00\x00" + b"\x00" * 10, 13)  # no dictionary
    assert not compressed.sniff_gzip(b"\x1f\x8b\x07" + b"\x00" * 10, 13)  # not deflate
    assert not compressed.sniff_bz2(b"BZh91AY&SX" + b"\x00" * 10, 20)
    assert compressed.sniff_bz2(bz2.compress(b"x"), 40)
    assert compressed.sniff_bz2(bz2.compress(b""), 14)


def test_inner_names() -> None:
    assert compressed.inner_name("a/model.tar.gz") == "model.tar"
    assert compressed.inner_name("x.zip!m.tgz") == "m.tar"
    assert compressed.inner_name("model.joblib") == "model.joblib"


@pytest.mark.parametrize("compress", [3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3), 0])
def test_real_joblib_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, compress: object
) -> None:
    joblib = pytest.importorskip("joblib")
    from sklearn.linear_model import LogisticRegression

    install_fixtures(monkeypatch, None)
    model = LogisticRegression().fit(np.arange(20.0).reshape(10, 2), [0, 1] * 5)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path, compress=compress)
    ctx = scan_path(path)
    assert ctx.findings == []
    assert "pickle" in ctx.formats

    evil = tmp_path / "evil.joblib"
    joblib.dump({"model": model, "hook": Payload()}, evil, compress=compress)
    assert "PKL001" in rule_ids(scan_path(evil))


def test_gzip_of_object_npy_with_the_real_analyzer(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fixtures(monkeypatch, None)
    ctx = scan_bytes(gzip.compress(object_npy(payload_pickle())), "evil.npy.gz")
    assert "PKL001" in rule_ids(ctx)
