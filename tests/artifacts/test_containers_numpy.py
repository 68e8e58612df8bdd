"""The .npy reader: header validation, data length, object arrays' pickles."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from tests.artifacts.test_containers_support import (
    RecordingAnalyzer,
    install_fixtures,
    payload_pickle,
    rule_ids,
    scan_bytes,
    scan_path,
)

from mlwarden.artifacts._formats import numpy_files


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingAnalyzer:
    recording = RecordingAnalyzer()
    install_fixtures(monkeypatch, recording)
    return recording


def npy_bytes(array: np.ndarray, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


def npy_with_header(header: str, data: bytes = b"", version: int = 1) -> bytes:
    raw = header.encode("latin1")
    length = struct.pack("<H", len(raw)) if version == 1 else struct.pack("<I", len(raw))
    return b"\x93NUMPY" + bytes([version, 0]) + length + raw + data


BENIGN_ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "int64-fortran": np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
    "scalar": np.array(3.5),
    "empty": np.zeros((0, 5), dtype=np.float64),
    "bool": np.array([True, False]),
    "unicode": np.array(["ab", "cde"]),
    "bytes": np.array([b"ab", b"c"]),
    "datetime": np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[D]"),
    "complex": np.array([1 + 2j], dtype=np.complex128),
    "float16": np.ones(7, dtype=np.float16),
    "structured": np.zeros(3, dtype=[("x", "<f4"), ("y", "<i2", (2,)), ("z", "S3")]),
    "nested": np.zeros(2, dtype=[("a", [("b", "<u1"), ("c", "<f8")]), ("d", "?")]),
}


@pytest.mark.parametrize("name", sorted(BENIGN_ARRAYS))
def test_real_npy_files_are_clean(recorder: RecordingAnalyzer, name: str) -> None:
    ctx = scan_bytes(npy_bytes(BENIGN_ARRAYS[name]), f"{name}.npy")
    assert ctx.formats == ["npy"]
    assert ctx.findings == []
    assert recorder.calls == []  # plain arrays are never handed to the pickle analyzer


def test_large_array_data_is_not_read(recorder: RecordingAnalyzer, tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((4096, 4096), dtype=np.float32))  # 64 MiB

    class Counting(io.FileIO):
        read_bytes = 0

        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            Counting.read_bytes += len(data)
            return data

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            count = super().readinto(buffer)
            Counting.read_bytes += count or 0
            return count or 0

    from mlwarden.artifacts._context import Limits, ScanContext
    from mlwarden.artifacts._dispatch import scan_stream

    ctx = ScanContext(limits=Limits(), root=tmp_path)
    with Counting(path) as stream:
        scan_stream(stream, str(path), ctx, 0)  # type: ignore[arg-type]
    assert ctx.findings == []
    assert Counting.read_bytes < 64 * 1024


def test_object_array_pickle_is_analysed_from_the_data_offset(
    recorder: RecordingAnalyzer,
) -> None:
    data = npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    header, offset = numpy_files.read_header(io.BytesIO(data))
    ctx = scan_bytes(data, "objects.npy")
    assert recorder.calls == [("objects.npy", offset)]
    assert numpy_files.has_objects(header.descr)
    assert ctx.findings == []


@pytest.mark.parametrize("descr", ["'|O'", "[('a', '<f4'), ('b', '|O')]"])
def test_object_array_with_payload_is_flagged(recorder: RecordingAnalyzer, descr: str) -> None:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (2,), }}"
    ctx = scan_bytes(npy_with_header(header.ljust(118) + "\n", payload_pickle()), "evil.npy")
    assert "PKL001" in rule_ids(ctx)
    assert len(recorder.calls) == 1


def test_object_array_with_payload_real_analyzer(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlwarden.artifacts._pickle.analyzer")
    install_fixtures(monkeypatch, None)
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    ctx = scan_bytes(npy_with_header(header, payload_pickle()), "evil.npy")
    assert "PKL001" in rule_ids(ctx)


def test_truncated_data_is_malformed(recorder: RecordingAnalyzer) -> None:
    data = npy_bytes(np.arange(100, dtype=np.float64))
    ctx = scan_bytes(data[:-8], "cut.npy")
    assert rule_ids(ctx) == {"NPY001"}


def test_bytes_after_the_data_are_flagged(recorder: RecordingAnalyzer) -> None:
    data = npy_bytes(np.arange(10, dtype=np.int32)) + payload_pickle()
    ctx = scan_bytes(data, "tail.npy")
    assert rule_ids(ctx) == {"NPY001"}
    assert recorder.calls == []


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
        "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': [1]}",
        "{'descr': 'not a dtype', 'fortran_order': False, 'shape': (1,)}",
        "{'descr': [('a',)], 'fortran_order': False, 'shape': (1,)}",
        "['descr', '<f8']",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)",
    ],
)
def test_bad_headers_are_malformed(recorder: RecordingAnalyzer, header: str) -> None:
    ctx = scan_bytes(npy_with_header(header, b"\x00" * 8), "bad.npy")
    assert rule_ids(ctx) == {"NPY001"}
    assert recorder.calls == []


def test_unknown_version_and_truncated_header(recorder: RecordingAnalyzer) -> None:
    good = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}"
    bad_version = bytearray(npy_with_header(good, b"\x00" * 8))
    bad_version[6] = 9
    assert rule_ids(scan_bytes(bytes(bad_version), "v9.npy")) == {"NPY001"}
    assert rule_ids(scan_bytes(npy_with_header(good)[:20], "short.npy")) == {"NPY001"}


def test_version_2_and_3_headers(recorder: RecordingAnalyzer) -> None:
    for version in (2, 3):
        header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,)}"
        ctx = scan_bytes(npy_with_header(header, b"\x00" * 8, version=version), "v.npy")
        assert ctx.findings == [], version


def test_itemsize_matches_numpy() -> None:
    for array in BENIGN_ARRAYS.values():
        descr = np.lib.format.dtype_to_descr(array.dtype)
        assert numpy_files.itemsize(descr) == array.dtype.itemsize, descr


def test_saved_file_on_disk(recorder: RecordingAnalyzer, tmp_path: Path) -> None:
    path = tmp_path / "weights.npy"
    np.save(path, np.ones((3, 3)))
    ctx = scan_path(path)
    assert ctx.findings == []
    assert ctx.formats == ["npy"]
