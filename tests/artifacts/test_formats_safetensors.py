"""safetensors: real files are clean; every header inconsistency is SAFET001."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch
from tests.artifacts.counting import scan_counting

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._dispatch import HEAD_BYTES, run_reader
from mlwarden.artifacts._formats import safetensors as reader_module
from mlwarden.report import Finding

READER = reader_module.READERS[0]


def scan_file(path: Path, limits: Limits | None = None) -> list[Finding]:
    ctx = ScanContext(limits=limits or Limits(), root=path.parent)
    with path.open("rb") as stream:
        head = stream.read(HEAD_BYTES)
        assert READER.sniff(head, path.stat().st_size)
        run_reader(READER, stream, str(path), ctx, 0)
    return ctx.findings


def build(header: dict[str, object] | str, data: bytes, tmp_path: Path) -> Path:
    raw = header if isinstance(header, str) else json.dumps(header)
    encoded = raw.encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


def test_torch_file_is_clean(tmp_path: Path) -> None:
    tensors = {
        "w": torch.randn(3, 4),
        "b": torch.zeros(4, dtype=torch.bfloat16),
        "i": torch.arange(5, dtype=torch.int64),
        "m": torch.ones(2, 2, dtype=torch.bool),
        "empty": torch.zeros(0, 3),
        "h": torch.randn(7, dtype=torch.float16),
        "f8": torch.zeros(3, dtype=torch.float8_e4m3fn),
    }
    save_torch(tensors, str(tmp_path / "m.safetensors"), metadata={"format": "pt"})
    assert scan_file(tmp_path / "m.safetensors") == []


def test_numpy_file_is_clean(tmp_path: Path) -> None:
    arrays = {"a": np.ones((2, 3), dtype=np.float64), "u": np.arange(9, dtype=np.uint16)}
    save_numpy(arrays, str(tmp_path / "n.safetensors"))
    assert scan_file(tmp_path / "n.safetensors") == []


def test_big_file_reads_header_only(tmp_path: Path) -> None:
    header = {"big": {"dtype": "F32", "shape": [256, 1024, 1024], "data_offsets": [0, 1 << 30]}}
    path = build(header, b"", tmp_path)
    with path.open("r+b") as stream:
        stream.truncate(path.stat().st_size + (1 << 30))  # sparse: 1 GiB of zeros
    findings, read = scan_counting(path)
    assert findings == []
    assert read < 1 << 20  # the header only, not the 1 GiB of tensor data


TENSOR = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("header", "data", "expected"),
    [
        ({"t": {**TENSOR, "dtype": "F128"}}, b"\0" * 8, "unknown dtype"),
        ({"t": {**TENSOR, "shape": [-2]}}, b"\0" * 8, "not a list of non-negative ints"),
        ({"t": {**TENSOR, "shape": [3]}}, b"\0" * 8, "needs 12 bytes"),
        ({"t": {**TENSOR, "data_offsets": [8, 0]}}, b"\0" * 8, "is after end"),
        ({"t": {**TENSOR, "data_offsets": [0, 8, 9]}}, b"\0" * 8, "is not [begin, end]"),
        ({"t": {**TENSOR, "extra": 1}}, b"\0" * 8, "unknown fields ['extra']"),
        ({"t": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "missing fields ['data_offsets']"),
        ({"t": TENSOR}, b"\0" * 12, "4 bytes after the last tensor"),
        ({"t": TENSOR}, b"\0" * 4, "past the 4-byte data buffer"),
        (
            {"a": TENSOR, "b": {**TENSOR, "data_offsets": [4, 12]}},
            b"\0" * 12,
            "tensor 'b' overlaps tensor 'a'",
        ),
        (
            {"a": TENSOR, "b": {**TENSOR, "data_offsets": [12, 20]}},
            b"\0" * 20,
            "4 unclaimed bytes before tensor 'b'",
        ),
        ({"__metadata__": {"k": 1}, "t": TENSOR}, b"\0" * 8, "not a string"),
        ({"__metadata__": ["x"], "t": TENSOR}, b"\0" * 8, "map of strings"),
        ({"t": {**TENSOR, "dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0\0", "bits"),
        ({"t": [1, 2]}, b"", "not an object"),
    ],
)
def test_header_problems_are_findings(
    tmp_path: Path, header: dict[str, object], data: bytes, expected: str
) -> None:
    findings = scan_file(build(header, data, tmp_path))
    assert rules(findings) and set(rules(findings)) == {"SAFET001"}
    assert any(expected in f.message for f in findings), [f.message for f in findings]


def test_four_bit_types_counted_in_bits(tmp_path: Path) -> None:
    header = {"t": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}
    assert scan_file(build(header, b"\0\0", tmp_path)) == []


def test_duplicate_keys_are_found(tmp_path: Path) -> None:
    raw = (
        '{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        '"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    )
    findings = scan_file(build(raw, b"\0" * 8, tmp_path))
    assert any("duplicate key 't'" in f.message for f in findings)


def test_padding_spaces_are_allowed(tmp_path: Path) -> None:
    raw = json.dumps({"t": TENSOR}) + "    "
    assert scan_file(build(raw, b"\0" * 8, tmp_path)) == []


@pytest.mark.parametrize(
    "raw", ['{"t": ', "{\"t\": 1e999999, 'x'}", '{"a": "\udcff"}'.encode("utf-8", "surrogatepass")]
)
def test_unparseable_header_is_malformed(tmp_path: Path, raw: str | bytes) -> None:
    encoded = raw if isinstance(raw, bytes) else raw.encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded)
    assert rules(scan_file(path)) == ["SAFET001"]


def test_header_limit(tmp_path: Path) -> None:
    path = build({"t": TENSOR}, b"\0" * 8, tmp_path)
    findings = scan_file(path, Limits(max_header_bytes=16))
    assert rules(findings) == ["SAFET001"]
    assert "exceeds the limit" in findings[0].message


def test_sniff_rejects_other_content() -> None:
    assert not READER.sniff(b"\x80\x04\x95" + b"\0" * 20, 100)
    assert not READER.sniff(b"PK\x03\x04" + b"\0" * 20, 100)
    assert not READER.sniff(struct.pack("<Q", 1000) + b"{", 500)  # header longer than the file


def test_hostile_shape_stays_cheap(tmp_path: Path) -> None:
    header = {"t": {"dtype": "F32", "shape": [10**18] * 5000, "data_offsets": [0, 8]}}
    findings = scan_file(build(header, b"\0" * 8, tmp_path))
    assert any("needs more than 8 bytes" in f.message for f in findings)
