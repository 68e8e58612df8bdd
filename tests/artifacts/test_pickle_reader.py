"""The whole-file "pickle" reader: sniffing, pickles in a row, tails, polyglots, speed."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
from test_pickle_asm import Asm, rules
from tests.artifacts.counting import scan_counting

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._formats.pickles import READERS, scan, sniff
from mlwarden.report import Finding


class _System:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def _scan(data: bytes) -> list[Finding]:
    ctx = ScanContext(limits=Limits(), root=Path("."))
    scan(io.BytesIO(data), "f.pkl", ctx, 0)
    return ctx.findings


def test_reader_is_registered_under_its_name() -> None:
    (reader,) = READERS
    assert reader.name == "pickle" and reader.malformed_rule == "PKL003"


@pytest.mark.parametrize("protocol", range(6))
def test_sniffs_every_protocol(protocol: int) -> None:
    for obj in ([1, 2], {"a": "b"}, None, "text", (1.5, True), collections_dict()):
        data = pickle.dumps(obj, protocol=protocol)
        assert sniff(data[:4096], len(data)), (obj, data[:20])


def collections_dict() -> object:
    import collections

    return collections.OrderedDict(x=1)


@pytest.mark.parametrize(
    "text",
    [
        b"# model card\n\nThis model classifies images.\n",
        json.dumps({"weights": [1, 2, 3]}).encode(),
        b"(hello world)\n",
        b"1,2,3\n4,5,6\n",
        b"Name: value\nOther: thing\n",
        b"N/A",
        b"\x89PNG\r\n\x1a\n",
        b"]]]]",
        b"",
    ],
)
def test_text_and_other_formats_do_not_sniff(text: bytes) -> None:
    assert not sniff(text[:4096], len(text))


@pytest.mark.parametrize("first", [b"T", b"X", b"B", b"C", b"U", b"V"])
def test_long_text_starting_with_a_length_opcode_does_not_sniff(first: bytes) -> None:
    text = first + b"he model card says this model is fine and well tested.\n" * 200
    assert not sniff(text[:4096], len(text))


def test_payload_in_a_second_pickle() -> None:
    data = pickle.dumps({"ok": 1}, protocol=4) + pickle.dumps(_System(), protocol=4)
    assert "PKL001" in rules(_scan(data))


def test_protocol_0_pickles_in_a_row() -> None:
    data = pickle.dumps([1], protocol=0) + pickle.dumps(_System(), protocol=0)
    assert "PKL001" in rules(_scan(data))


def test_consecutive_benign_pickles_are_clean() -> None:
    data = b"".join(pickle.dumps(list(range(i)), protocol=2) for i in range(5))
    assert _scan(data) == []


def test_short_trailing_bytes_are_ignored() -> None:
    assert _scan(pickle.dumps([1, 2], protocol=4) + b"\n\x00\x00") == []


def test_payload_hidden_behind_junk_after_the_last_stop() -> None:
    data = (
        pickle.dumps([1], protocol=4) + b"\xfe" * 200 + Asm(2).call("os", "system", "true").done()
    )
    assert "PKL001" in rules(_scan(data))


def test_zip_appended_to_a_pickle_is_a_polyglot() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_System(), protocol=2))
    data = pickle.dumps({"ok": 1}, protocol=2) + buffer.getvalue()
    findings = _scan(data)
    assert "ARCH005" in rules(findings)
    try:
        from mlwarden.artifacts._dispatch import reader_named

        reader_named("zip")
    except (KeyError, ImportError):
        return  # the zip reader is not there yet; the polyglot finding is enough
    assert "PKL001" in rules(findings)


def test_legacy_torch_layout_stops_before_storage_bytes() -> None:
    # Five pickles, then raw "storage" bytes that are not pickle and must not be parsed.
    magic = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
    pickles = [pickle.dumps(x, protocol=2) for x in (1001, {"little_endian": True}, {}, ["0"])]
    raw = struct.pack("<q", 3) + b"\xfe\xff" * 100
    findings = _scan(magic + b"".join(pickles) + raw)
    assert findings == []


def test_broken_pickle_stops_the_file_scan() -> None:
    findings = _scan(pickle.dumps([1, 2, 3], protocol=4)[:-3])
    assert rules(findings) == {"PKL003"}


def test_large_bytes_are_skipped_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    size = 300 << 20
    with path.open("wb") as handle:
        handle.write(b"\x80\x04\x8e" + struct.pack("<Q", size))
        handle.seek(size, 1)
        handle.write(b".")
    findings, read = scan_counting(path)
    assert findings == []
    assert read < 8 << 20  # the 300 MiB constant is skipped, not read
