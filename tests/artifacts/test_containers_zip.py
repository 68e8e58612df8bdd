"""Zip archives and the formats built on them: PyTorch, TorchScript, .npz, .keras."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from tests.artifacts.test_containers_support import (
    Payload,
    RecordingAnalyzer,
    have_module,
    install_fixtures,
    payload_pickle,
    rule_ids,
    scan_bytes,
    scan_path,
)

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._formats import zipfiles

torch = pytest.importorskip("torch")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingAnalyzer:
    recording = RecordingAnalyzer()
    install_fixtures(monkeypatch, recording)
    return recording


def object_npy(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def small_net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 2),
    )


def torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


# --- PyTorch ------------------------------------------------------------------


def test_state_dict_pickle_is_analysed_and_storages_skipped(recorder: RecordingAnalyzer) -> None:
    ctx = scan_bytes(torch_bytes(small_net().state_dict()), "model.pt")
    assert recorder.locations == ["model.pt!archive/data.pkl"]
    assert ctx.findings == []
    assert ctx.formats[:2] == ["zip", "pickle"]


def test_payload_in_torch_zip_is_flagged(recorder: RecordingAnalyzer) -> None:
    ctx = scan_bytes(torch_bytes({"state": small_net().state_dict(), "x": Payload()}), "m.pt")
    assert "PKL001" in rule_ids(ctx)
    assert all(f.location == "m.pt!archive/data.pkl" for f in ctx.findings)


def test_large_checkpoint_reads_only_its_pickle(
    recorder: RecordingAnalyzer, tmp_path: Path
) -> None:
    path = tmp_path / "big.pt"
    torch.save({"w": torch.zeros(4096, 4096), "b": torch.ones(1024, 1024)}, path)  # 68 MiB

    class Counting(io.FileIO):
        read_bytes = 0

        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            Counting.read_bytes += len(data)
            return data

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            count = super().readinto(buffer) or 0
            Counting.read_bytes += count
            return count

    from mlwarden.artifacts._dispatch import scan_stream

    ctx = ScanContext(limits=Limits(), root=tmp_path)
    with Counting(path) as stream:
        scan_stream(stream, str(path), ctx, 0)  # type: ignore[arg-type]
    assert ctx.findings == []
    assert Counting.read_bytes < 1024 * 1024


def test_real_torch_files_are_clean_with_the_real_analyzer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_fixtures(monkeypatch, None)
    net = small_net()
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.zeros(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    samples = {
        "state_dict.pt": net.state_dict(),
        "checkpoint.pth": {"model": net.state_dict(), "optim": optimizer.state_dict(),
                           "epoch": 3, "loss": 0.25},
        "tensor.pt": torch.arange(10, dtype=torch.int16),
    }  # fmt: skip
    for name, obj in samples.items():
        torch.save(obj, tmp_path / name)
        ctx = scan_path(tmp_path / name)
        assert ctx.findings == [], (name, ctx.findings)
    evil = tmp_path / "evil.pt"
    torch.save({"model": net.state_dict(), "hook": Payload()}, evil)
    assert "PKL001" in rule_ids(scan_path(evil))


def test_full_module_save_is_clean_with_the_real_analyzer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # torch.save(model) pickles the torch.nn classes by reference.
    install_fixtures(monkeypatch, None)
    torch.save(small_net(), tmp_path / "full_module.pt")
    assert scan_path(tmp_path / "full_module.pt").findings == []


# --- TorchScript ----------------------------------------------------------------


def test_real_torchscript_is_clean_with_the_real_analyzer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_fixtures(monkeypatch, None)
    script = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(small_net()), script)
    assert scan_path(script).findings == []
    traced = tmp_path / "traced.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's own warnings about Python control flow
        torch.jit.save(torch.jit.trace(small_net().eval(), torch.zeros(1, 3, 8, 8)), traced)
    assert scan_path(traced).findings == []


def test_script_classes_are_forgiven_only_when_the_archive_defines_them() -> None:
    unit = zipfiles._ScriptUnit()
    unit.add_source("archive/code/__torch__/torch/nn/modules/conv.py", "class Conv2d(Module):\n")
    unit.pickles.add("m.pt!archive/data.pkl")
    ctx = ScanContext(limits=Limits(), root=Path("."))
    for name in ("__torch__.torch.nn.modules.conv.Conv2d", "__torch__.evil.Other"):
        ctx.add("PKL002", f"imports {name}", "m.pt!archive/data.pkl", callable=name)
    ctx.add(
        "PKL002", "elsewhere", "m.pt!other.pkl", callable="__torch__.torch.nn.modules.conv.Conv2d"
    )
    unit.forgive_own_classes(ctx)
    assert [(f.location, f.detail["callable"]) for f in ctx.findings] == [
        ("m.pt!archive/data.pkl", "__torch__.evil.Other"),
        ("m.pt!other.pkl", "__torch__.torch.nn.modules.conv.Conv2d"),
    ]


class WithLoop(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 8, batch_first=True)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        total = torch.zeros(1)
        for i in range(out.shape[1]):
            total = total + out[:, i].sum()
        if total.item() > 1e9:
            raise ValueError("overflow")
        return self.head(out[:, -1]) + total


def jit_bytes(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "module", [small_net, WithLoop, lambda: torch.nn.TransformerEncoderLayer(8, 2)]
)
def test_real_torchscript_code_is_clean(recorder: RecordingAnalyzer, module: object) -> None:
    data = jit_bytes(module())  # type: ignore[operator]
    ctx = scan_bytes(data, "scripted.pt")
    assert "TORCH001" not in rule_ids(ctx)
    assert ctx.findings == []
    analysed = set(recorder.locations)
    assert "scripted.pt!archive/data.pkl" in analysed
    assert "scripted.pt!archive/constants.pkl" in analysed
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert not any("/data/" in location for location in analysed)
    assert any(name.endswith(".py") for name in names)


def test_traced_module_with_extra_files(recorder: RecordingAnalyzer) -> None:
    traced = torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={"meta.npy": npy_payload()})
    ctx = scan_bytes(buffer.getvalue(), "traced.pt")
    # Extra files are content like any other; the traced inputs' tensors are storages.
    assert rule_ids(ctx) == {"PKL001"}
    assert "traced.pt!archive/extra/meta.npy" in recorder.locations
    assert "traced.pt!archive/traced_inputs.pkl" in recorder.locations
    assert not any(location.endswith("traced_inputs/0") for location in recorder.locations)


def npy_payload() -> bytes:
    return object_npy(payload_pickle())


def rewrite_member(data: bytes, suffix: str, new_code: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    members = {info.filename: source.read(info) for info in source.infolist()}
    name = next(name for name in members if name.endswith(suffix))
    members[name] = new_code.encode()
    return make_zip(members)


@pytest.mark.parametrize(
    "statement",
    [
        'torch.save(x, "/tmp/stolen")',
        'ops.aten.save(x, "/tmp/stolen")',
        'y = torch.from_file("/etc/passwd", False, 10)',
        'f = open("/etc/passwd")',
        "m = __import__('os')",
        "builtins.exec('true')",
        "os.system('true')",
    ],
)
def test_torchscript_code_outside_the_model_is_flagged(
    recorder: RecordingAnalyzer, statement: str
) -> None:
    data = jit_bytes(small_net())
    code = (
        "class Sequential(Module):\n"
        "  def forward(self: __torch__.Sequential, x: Tensor) -> Tensor:\n"
        f"    {statement}\n"
        "    return x\n"
    )
    ctx = scan_bytes(rewrite_member(data, "modules/container.py", code), "evil.pt")
    assert "TORCH001" in rule_ids(ctx)


def test_torchscript_hazards_ignore_strings_and_comments() -> None:
    code = (
        '    ops.prim.RaiseException(_4, "builtins.ValueError")\n'
        "    # os.system is mentioned in a comment only\n"
        '    _1 = "open(file)"\n'
        '    pos.x = getattr(self, "0")\n'
    )
    assert zipfiles.torchscript_hazards(code) == []


# --- zip structure --------------------------------------------------------------


def rename_local_header(data: bytes, old: str, new: str) -> bytes:
    """Change one member's name in its local header only (same length)."""
    assert len(old) == len(new)
    at = data.index(old.encode(), data.index(b"PK\x03\x04"))
    return data[:at] + new.encode() + data[at + len(old) :]


def test_local_and_central_names_that_differ(recorder: RecordingAnalyzer) -> None:
    data = make_zip({"model/readme.txt": object_npy(payload_pickle()), "b.txt": b"hello"})
    data = rename_local_header(data, "model/readme.txt", "model/data.pkl!!")
    ctx = scan_bytes(data, "mismatch.zip")
    assert "ARCH002" in rule_ids(ctx)
    assert "PKL001" in rule_ids(ctx)  # the content was scanned whatever its name


def test_local_name_says_data_pkl_in_torch_zip(recorder: RecordingAnalyzer) -> None:
    members = {"archive/data.pkl": payload_pickle(), "archive/data/0": payload_pickle()}
    data = make_zip(members)
    # The central directory calls the payload a storage; the local header calls it a pickle.
    local = data.index(b"archive/data/0")
    forged = data[:local] + b"archive/x0.pkl" + data[local + 14 :]
    ctx = scan_bytes(forged, "m.pt")
    assert zipfile.ZipFile(io.BytesIO(forged)).namelist()[1] == "archive/data/0"
    assert "ARCH002" in rule_ids(ctx)
    assert "m.pt!archive/data/0" in recorder.locations


@pytest.mark.parametrize(
    "name", ["../evil.sh", "/etc/cron.d/x", "a\\..\\..\\x", "C:/x", "a/../../b"]
)
def test_names_that_escape(recorder: RecordingAnalyzer, name: str) -> None:
    ctx = scan_bytes(make_zip({name: b"x", "ok.txt": b"y"}), "t.zip")
    assert rule_ids(ctx) == {"ARCH001"}


def test_benign_names_do_not_escape() -> None:
    for name in ("a/b.txt", "a..b/c", "./x", "dir/", "..hidden"):
        assert not zipfiles.path_escapes(name), name


def set_flag(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    for magic, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(magic)
        while at >= 0:
            flags = struct.unpack_from("<H", out, at + offset)[0]
            struct.pack_into("<H", out, at + offset, flags | bit)
            at = out.find(magic, at + 4)
    return bytes(out)


def test_encrypted_member(recorder: RecordingAnalyzer) -> None:
    ctx = scan_bytes(set_flag(make_zip({"secret.pkl": payload_pickle()}), 1), "enc.zip")
    assert rule_ids(ctx) == {"ARCH006"}


def test_zip_bomb_by_ratio(recorder: RecordingAnalyzer) -> None:
    data = make_zip({"zeros.bin": b"\x00" * (32 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)
    assert len(data) < 100_000
    ctx = scan_bytes(data, "bomb.zip")
    assert "ARCH003" in rule_ids(ctx)
    assert ctx.decompressed < 32 * 1024 * 1024


def test_zip_member_and_total_limits(recorder: RecordingAnalyzer) -> None:
    noise = np.random.default_rng(1).bytes(2 * 1024 * 1024)
    data = make_zip({"a.bin": noise, "b.bin": noise}, zipfile.ZIP_DEFLATED)
    assert "ARCH003" not in rule_ids(scan_bytes(data, "z.zip"))
    assert "ARCH003" in rule_ids(scan_bytes(data, "z.zip", Limits(max_member_bytes=1024 * 1024)))
    total = scan_bytes(data, "z.zip", Limits(max_decompressed_bytes=3 * 1024 * 1024))
    assert "ARCH003" in rule_ids(total)


def test_declared_size_is_not_trusted(recorder: RecordingAnalyzer) -> None:
    data = bytearray(make_zip({"x.npy": object_npy(payload_pickle())}, zipfile.ZIP_DEFLATED))
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<L", data, central + 24, 10)  # uncompressed size: 10 bytes
    ctx = scan_bytes(bytes(data), "lie.zip")
    assert {"ARCH004", "PKL001"} <= rule_ids(ctx)


def overlapping_zip(copies: int) -> bytes:
    """Many central entries sharing one deflated member: the overlap bomb's trick."""
    data = make_zip({"a.bin": b"\x00" * 1024 * 1024}, zipfile.ZIP_DEFLATED)
    central = data.index(b"PK\x01\x02")
    eocd = data.index(b"PK\x05\x06")
    record = data[central:eocd]
    records = b"".join(record.replace(b"a.bin", f"{i:05d}".encode()[:5]) for i in range(copies))
    end = bytearray(data[eocd:])
    struct.pack_into("<HHLL", end, 8, copies, copies, len(records), central)
    return data[:central] + records + bytes(end)


def test_overlapping_entries(recorder: RecordingAnalyzer) -> None:
    ctx = scan_bytes(overlapping_zip(50), "overlap.zip")
    assert "ARCH003" in rule_ids(ctx)
    assert ctx.decompressed <= 1024 * 1024


def test_duplicate_names(recorder: RecordingAnalyzer) -> None:
    data = make_zip({"a.npy": object_npy(payload_pickle()), "b.npy": b"x"})
    data = data.replace(b"b.npy", b"a.npy")
    ctx = scan_bytes(data, "dup.zip")
    assert {"ARCH002", "PKL001"} <= rule_ids(ctx)


def test_member_missing_from_the_central_directory(recorder: RecordingAnalyzer) -> None:
    data = make_zip({"a.txt": b"hello", "evil.npy": object_npy(payload_pickle()), "c.txt": b"x"})
    # Drop evil.npy's central record: zip readers no longer list it, streaming readers do.
    first = data.index(b"PK\x01\x02")
    second = data.index(b"PK\x01\x02", first + 4)
    third = data.index(b"PK\x01\x02", second + 4)
    eocd = data.index(b"PK\x05\x06")
    central = data[first:second] + data[third:eocd]
    end = bytearray(data[eocd:])
    struct.pack_into("<HHL", end, 8, 2, 2, len(central))
    forged = data[:first] + central + bytes(end)
    assert zipfile.ZipFile(io.BytesIO(forged)).namelist() == ["a.txt", "c.txt"]
    ctx = scan_bytes(forged, "hidden.zip")
    assert {"ARCH002", "PKL001"} <= rule_ids(ctx)
    assert recorder.locations == ["hidden.zip!evil.npy"]


def test_truncated_and_garbage_zips(recorder: RecordingAnalyzer) -> None:
    data = make_zip({"a.txt": b"hello" * 100})
    assert rule_ids(scan_bytes(data[:60], "cut.zip")) == {"ARCH004"}
    assert rule_ids(scan_bytes(b"PK\x03\x04" + b"\x00" * 100, "junk.zip")) == {"ARCH004"}


def test_compression_methods(recorder: RecordingAnalyzer) -> None:
    evil = object_npy(payload_pickle())
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        ctx = scan_bytes(make_zip({"x.npy": evil}, method), "m.zip")
        assert rule_ids(ctx) == {"PKL001"}, method


def test_unsupported_method(recorder: RecordingAnalyzer) -> None:
    data = bytearray(make_zip({"x.bin": b"data"}))
    for magic, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        struct.pack_into("<H", data, data.find(magic) + offset, 93)  # zstd
    assert rule_ids(scan_bytes(bytes(data), "zstd.zip")) == {"ARCH007"}


# --- polyglots and nesting ---------------------------------------------------------


def test_pickle_with_zip_appended(recorder: RecordingAnalyzer) -> None:
    inner = make_zip({"x.npy": object_npy(payload_pickle())})
    polyglot = payload_pickle() + inner
    stream = io.BytesIO(polyglot)
    assert zipfiles.has_zip_eocd(stream)
    assert not zipfiles.has_zip_eocd(io.BytesIO(payload_pickle()))
    assert not zipfiles.sniff(polyglot[:4096], len(polyglot))
    ctx = ScanContext(limits=Limits(), root=Path("."))
    zipfiles.scan_zip(stream, "poly.pkl", ctx, 0)
    assert "PKL001" in rule_ids(ctx)
    assert recorder.locations == ["poly.pkl!x.npy"]


def test_zip_eocd_with_comment() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a", b"b")
        archive.comment = b"c" * 1000
    assert zipfiles.has_zip_eocd(io.BytesIO(b"junk" + buffer.getvalue()))


def test_archives_in_archives(recorder: RecordingAnalyzer) -> None:
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w:gz") as archive:
        evil = object_npy(payload_pickle())
        info = tarfile.TarInfo("deep/evil.npy")
        info.size = len(evil)
        archive.addfile(info, io.BytesIO(evil))
    data = make_zip({"inner.tar.gz": tar_buffer.getvalue()}, zipfile.ZIP_DEFLATED)
    ctx = scan_bytes(data, "outer.zip")
    assert "PKL001" in rule_ids(ctx)
    assert recorder.locations == ["outer.zip!inner.tar.gz!inner.tar!deep/evil.npy"]
    assert ctx.formats == ["zip", "gzip", "tar", "npy", "pickle"]


def test_nesting_deeper_than_the_limit(recorder: RecordingAnalyzer) -> None:
    data = make_zip({"x.npy": object_npy(payload_pickle())})
    for level in range(4):
        data = make_zip({f"level{level}.zip": data})
    shallow = scan_bytes(data, "nest.zip", Limits(max_depth=3))
    assert "ARCH003" in rule_ids(shallow)
    assert "PKL001" not in rule_ids(shallow)
    deep = scan_bytes(data, "nest.zip", Limits(max_depth=6))
    assert rule_ids(deep) == {"PKL001"}


# --- NumPy .npz and Keras ------------------------------------------------------------


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_real_npz(recorder: RecordingAnalyzer, tmp_path: Path, save: object) -> None:
    path = tmp_path / "arrays.npz"
    save(path, a=np.arange(10), b=np.ones((3, 3), dtype=np.float32))  # type: ignore[operator]
    ctx = scan_path(path)
    assert ctx.findings == []
    assert ctx.formats == ["zip", "npy", "npy"]
    assert recorder.calls == []


def test_npz_with_object_array(recorder: RecordingAnalyzer, tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, good=np.arange(3), bad=np.array([Payload()], dtype=object))
    ctx = scan_path(path)
    assert "PKL001" in rule_ids(ctx)
    assert recorder.locations == [f"{path}!bad.npy"]


@pytest.mark.skipif(not have_module("mlwarden.artifacts._formats.keras_config"), reason="no keras")
def test_real_keras_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    install_fixtures(monkeypatch, RecordingAnalyzer())
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    path = tmp_path / "model.keras"
    model.save(path)
    ctx = scan_path(path)
    assert "keras" in ctx.formats
    assert ctx.findings == []
    # The same archive with a config that is not JSON: its config is reported, not the zip.
    source = zipfile.ZipFile(path)
    members = {info.filename: source.read(info) for info in source.infolist()}
    members["config.json"] = b"{not json"
    broken = tmp_path / "broken.keras"
    broken.write_bytes(make_zip(members))
    assert "KERAS003" in rule_ids(scan_path(broken))


def test_pickle_zip_polyglot_end_to_end(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_fixtures(monkeypatch, None)
    path = tmp_path / "model.pkl"
    inner = make_zip({"x.npy": object_npy(payload_pickle())})
    path.write_bytes(zlib.decompress(zlib.compress(b"\x80\x02}q\x00.")) + inner)
    ctx = scan_path(path)
    assert {"ARCH005", "PKL001"} <= rule_ids(ctx)


def _object_npy(payload: bytes) -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


@pytest.mark.parametrize("member", ["weights/data/x.npy", "weights/data/0", "weights/version"])
@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npy_hidden_where_pytorch_keeps_storages(
    monkeypatch: pytest.MonkeyPatch, member: str, method: int
) -> None:
    install_fixtures(monkeypatch, None)
    # numpy.load reads every member that starts with the .npy magic, whatever its
    # name, and unpickles object arrays: a torch-shaped layout must not hide one.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        archive.writestr("weights/data.pkl", pickle.dumps({"a": 1}, protocol=2))
        archive.writestr(member, _object_npy(payload_pickle()))
    ctx = scan_bytes(buffer.getvalue(), "model.npz")
    assert "PKL001" in rule_ids(ctx)
    assert any(f.location == f"model.npz!{member}" for f in ctx.findings)


def test_real_storages_are_still_skipped(recorder: RecordingAnalyzer) -> None:
    ctx = scan_bytes(torch_bytes({"w": torch.zeros(1000)}), "model.pt")
    assert recorder.locations == ["model.pt!archive/data.pkl"]
    assert ctx.findings == []
