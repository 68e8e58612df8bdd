"""Tar archives (plain and compressed), legacy PyTorch tars, and 7z archives."""

from __future__ import annotations

import io
import pickle
import shutil
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from tests.artifacts.test_containers_support import (
    RecordingAnalyzer,
    install_fixtures,
    payload_pickle,
    rule_ids,
    scan_bytes,
)

from mlwarden.artifacts._context import Limits
from mlwarden.artifacts._formats import tarfiles
from mlwarden.severity import Severity

torch = pytest.importorskip("torch")
py7zr = pytest.importorskip("py7zr")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingAnalyzer:
    recording = RecordingAnalyzer()
    install_fixtures(monkeypatch, recording)
    return recording


def object_npy(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def make_tar(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def model_files(tmp_path: Path) -> list[tuple[str, bytes]]:
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    torch.save(net.state_dict(), tmp_path / "model.pt")
    return [
        ("model/model.pt", (tmp_path / "model.pt").read_bytes()),
        ("model/embeddings.npy", npy(np.ones((5, 4), dtype=np.float32))),
        ("model/config.txt", b"layers=3\n"),
    ]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_benign_tars(recorder: RecordingAnalyzer, tmp_path: Path, mode: str) -> None:
    data = make_tar(model_files(tmp_path), mode)  # type: ignore[arg-type]
    ctx = scan_bytes(data, "bundle.tar" if mode == "w" else "bundle.tar.x")
    assert ctx.findings == []
    assert "tar" in ctx.formats and "zip" in ctx.formats and "npy" in ctx.formats
    assert recorder.locations[-1].endswith("model/model.pt!model/data.pkl")


def test_payload_in_tar_member(recorder: RecordingAnalyzer) -> None:
    data = make_tar([("ok.txt", b"hi"), ("deep/evil.npy", object_npy(payload_pickle()))], "w:gz")
    ctx = scan_bytes(data, "x.tar.gz")
    assert rule_ids(ctx) == {"PKL001"}
    assert recorder.locations == ["x.tar.gz!x.tar!deep/evil.npy"]


@pytest.mark.parametrize(
    "member",
    [
        ("../escape.txt", b"x"),
        ("/etc/cron.d/job", b"x"),
        link("innocent", "/etc/passwd", tarfile.SYMTYPE),
        link("sub/innocent", "../../outside", tarfile.SYMTYPE),
        link("hard", "../../etc/shadow", tarfile.LNKTYPE),
    ],
)
def test_escaping_names_and_links(recorder: RecordingAnalyzer, member: object) -> None:
    ctx = scan_bytes(make_tar([member, ("ok.txt", b"y")]), "t.tar")  # type: ignore[list-item]
    assert rule_ids(ctx) == {"ARCH001"}


def test_links_inside_the_archive_are_fine(recorder: RecordingAnalyzer) -> None:
    members = [
        ("a/file.txt", b"x"),
        link("a/b/up", "../file.txt", tarfile.SYMTYPE),
        link("hard", "a/file.txt", tarfile.LNKTYPE),
    ]
    assert scan_bytes(make_tar(members), "t.tar").findings == []  # type: ignore[arg-type]


def test_device_files_are_noted(recorder: RecordingAnalyzer) -> None:
    device = tarfile.TarInfo("dev/null")
    device.type = tarfile.CHRTYPE
    ctx = scan_bytes(make_tar([device, ("ok.txt", b"y")]), "t.tar")
    assert rule_ids(ctx) == {"ARCH004"}
    assert ctx.findings[0].effective_severity is Severity.LOW


def test_data_hidden_after_the_end(recorder: RecordingAnalyzer) -> None:
    data = make_tar([("ok.txt", b"y")]) + object_npy(payload_pickle())
    assert rule_ids(scan_bytes(data, "t.tar")) == {"ARCH004"}


def test_truncated_member(recorder: RecordingAnalyzer) -> None:
    data = make_tar([("big.bin", b"z" * 100_000)])
    assert "ARCH004" in rule_ids(scan_bytes(data[:50_000], "t.tar"))


def test_too_many_members(recorder: RecordingAnalyzer) -> None:
    data = make_tar([(f"f{i}.txt", b"x") for i in range(20)])
    assert rule_ids(scan_bytes(data, "t.tar", Limits(max_members=5))) == {"ARCH003"}


def test_v7_header_sniff() -> None:
    data = make_tar([("a.txt", b"x")], "w")
    v7 = bytearray(data)
    v7[257:265] = b"\x00" * 8  # drop the ustar magic and version
    checksum = sum(v7[:148]) + 8 * 32 + sum(v7[156:512])
    v7[148:156] = f"{checksum:06o}\x00 ".encode()
    assert tarfiles.sniff(bytes(v7[:4096]), len(v7))
    assert not tarfiles.sniff(b"\x01" * 4096, 4096)
    assert not tarfiles.sniff(b"\x00" * 4096, 4096)


# --- legacy PyTorch tar ------------------------------------------------------------


def legacy_torch_tar(view_payload: bool) -> bytes:
    """The layout of torch.save(..., _use_new_zipfile_serialization=False) on old torch.

    storages: count, then per storage a pickle (key, location, storage class) followed
    by an int64 element count and raw data; then the storage views pickle.
    """
    raw = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    record = pickle.dumps(("0", "cpu", torch.FloatStorage), protocol=2)
    views = payload_pickle() if view_payload else pickle.dumps([], protocol=2)
    storages = pickle.dumps(1, protocol=2) + record + struct.pack("<q", 4) + raw + views
    tensor_record = pickle.dumps(("t0", "0", torch.FloatTensor), protocol=2)
    tensors = (
        pickle.dumps(1, protocol=2)
        + tensor_record
        + struct.pack("<ii", 1, 0)
        + struct.pack("<q", 4)
        + struct.pack("<q", 1)
        + struct.pack("<q", 0)
    )
    main = pickle.dumps({"weight": "t0"}, protocol=2)
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
    return make_tar(
        [("sys_info", sys_info), ("pickle", main), ("storages", storages), ("tensors", tensors)]
    )


def test_legacy_torch_tar_is_walked(recorder: RecordingAnalyzer) -> None:
    ctx = scan_bytes(legacy_torch_tar(view_payload=False), "old.tar")
    assert ctx.findings == []
    starts = [start for location, start in recorder.calls if location.endswith("!storages")]
    assert len(starts) == 3  # count, the storage record, the views after the raw data
    tensor_starts = [s for location, s in recorder.calls if location.endswith("!tensors")]
    assert len(tensor_starts) == 2
    assert {loc.rsplit("!", 1)[1] for loc, _ in recorder.calls} == {
        "sys_info", "pickle", "storages", "tensors"
    }  # fmt: skip


def test_legacy_torch_tar_payload_after_raw_storage(recorder: RecordingAnalyzer) -> None:
    ctx = scan_bytes(legacy_torch_tar(view_payload=True), "old.tar")
    assert "PKL001" in rule_ids(ctx)
    assert ctx.findings[0].location == "old.tar!storages"


def test_small_int_pickles() -> None:
    for value in (0, 7, 300, 70_000, -5):
        for protocol in (0, 2, 4):
            assert tarfiles.small_int_pickle(pickle.dumps(value, protocol=protocol)) == value
    assert tarfiles.small_int_pickle(pickle.dumps([1])) is None


def test_legacy_torch_tar_with_the_real_analyzer(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fixtures(monkeypatch, None)
    assert "PKL001" in rule_ids(scan_bytes(legacy_torch_tar(view_payload=True), "old.tar"))


# --- 7z ----------------------------------------------------------------------------


def make_7z(members: dict[str, bytes], password: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password=password) as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return buffer.getvalue()


def test_benign_7z(recorder: RecordingAnalyzer, tmp_path: Path) -> None:
    ctx = scan_bytes(make_7z(dict(model_files(tmp_path))), "bundle.7z")
    assert ctx.findings == []
    assert ctx.formats[0] == "7z" and "zip" in ctx.formats and "npy" in ctx.formats


def test_7z_with_payload(recorder: RecordingAnalyzer) -> None:
    data = make_7z({"a.txt": b"hello", "evil.npy": object_npy(payload_pickle())})
    ctx = scan_bytes(data, "x.7z")
    assert rule_ids(ctx) == {"PKL001"}
    assert recorder.locations == ["x.7z!evil.npy"]


def test_encrypted_7z(recorder: RecordingAnalyzer) -> None:
    data = make_7z({"evil.npy": object_npy(payload_pickle())}, password="secret")
    assert rule_ids(scan_bytes(data, "x.7z")) == {"ARCH006"}


def test_7z_bomb_and_limits(recorder: RecordingAnalyzer) -> None:
    data = make_7z({"zeros.bin": b"\x00" * (16 * 1024 * 1024)})
    assert len(data) < 100_000
    assert "ARCH003" in rule_ids(scan_bytes(data, "bomb.7z"))  # the ratio guard
    limited = scan_bytes(data, "bomb.7z", Limits(max_member_bytes=1024 * 1024))
    assert "ARCH003" in rule_ids(limited)
    assert limited.decompressed == 0  # refused on its declared size


def forge_7z_name(old: str, new: str) -> bytes:
    """A 7z whose member is named `new` (py7zr refuses to write such names), with the
    header checksums redone so readers accept it."""
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.set_encoded_header_mode(False)
        archive.writestr(b"x", old)
    data = bytearray(buffer.getvalue().replace(old.encode("utf-16-le"), new.encode("utf-16-le")))
    offset, size = struct.unpack_from("<QQ", data, 12)
    header = bytes(data[32 + offset : 32 + offset + size])
    struct.pack_into("<L", data, 28, zlib.crc32(header))
    struct.pack_into("<L", data, 8, zlib.crc32(bytes(data[12:32])))
    return bytes(data)


def test_7z_traversal_and_garbage(recorder: RecordingAnalyzer) -> None:
    assert scan_bytes(forge_7z_name("ab/x.txt", "ab/x.txt"), "t.7z").findings == []
    ctx = scan_bytes(forge_7z_name("ab/x.txt", "../x.txt"), "t.7z")
    assert "ARCH001" in rule_ids(ctx)
    assert rule_ids(scan_bytes(b"7z\xbc\xaf\x27\x1c" + b"\x00" * 40, "junk.7z")) == {"ARCH004"}


def test_7z_links(recorder: RecordingAnalyzer, tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("hi")
    (folder / "inside").symlink_to("sub/a.txt")
    (folder / "sub" / "up").symlink_to("../sub/a.txt")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writeall(folder, "tree")
    assert scan_bytes(buffer.getvalue(), "ok.7z").findings == []
    (folder / "passwd").symlink_to("/etc/passwd")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writeall(folder, "tree")
    ctx = scan_bytes(buffer.getvalue(), "bad.7z")
    assert rule_ids(ctx) == {"ARCH001"}
    assert ctx.findings[0].location == "bad.7z!tree/passwd"


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar to write sparse members")
def test_sparse_member_is_bounded_and_scanned(recorder: RecordingAnalyzer, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    payload = object_npy(payload_pickle())
    with (folder / "evil.npy").open("wb") as handle:
        handle.write(payload)
        handle.truncate(4 * 1024 * 1024)  # a hole after the payload
    archive = tmp_path / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-cf", str(archive), "-C", str(folder), "evil.npy"],
        check=True,
    )
    with tarfile.open(archive) as opened:
        assert opened.getmembers()[0].issparse()
    ctx = scan_bytes(archive.read_bytes(), "sparse.tar")
    assert {"ARCH003", "PKL001"} <= rule_ids(ctx)  # a 4 MiB hole from a few KiB: bounded
    lenient = scan_bytes(
        archive.read_bytes(),
        "sparse.tar",
        Limits(max_compression_ratio=1e9, ratio_floor_bytes=1024 * 1024),
    )
    assert "ARCH003" not in rule_ids(lenient)
    assert lenient.decompressed == 4 * 1024 * 1024


def test_7z_skipped_member_in_a_solid_block_is_bounded(recorder: RecordingAnalyzer) -> None:
    # The big member is refused by its declared size, but it shares a solid block with
    # the payload after it: reaching the payload means inflating it, within the budget.
    members = {"big.bin": bytes(8 * 1024 * 1024), "evil.npy": object_npy(payload_pickle())}
    data = make_7z(members)
    limits = Limits(max_member_bytes=1024 * 1024, max_decompressed_bytes=4 * 1024 * 1024)
    ctx = scan_bytes(data, "solid.7z", limits)
    assert "ARCH003" in rule_ids(ctx)
    generous = Limits(max_member_bytes=1024 * 1024)
    assert {"ARCH003", "PKL001"} <= rule_ids(scan_bytes(data, "solid.7z", generous))
