"""End to end through `mlwarden.artifacts.scan`: real containers made by the frameworks
are clean, hostile ones are flagged, each with the rule that explains why."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.artifacts.test_containers_support import (
    Payload,
    payload_pickle,
)

from mlwarden.artifacts import Limits, scan
from mlwarden.report import Status

torch = pytest.importorskip("torch")
joblib = pytest.importorskip("joblib")
py7zr = pytest.importorskip("py7zr")


def net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def tar_of(path: Path, members: dict[str, bytes], mode: str) -> None:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def write_benign(folder: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    folder.mkdir()
    model = net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(3, 8)).sum().backward()
    optimizer.step()
    torch.save(model.state_dict(), folder / "state_dict.pt")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 2},
               folder / "checkpoint.pth")  # fmt: skip
    np.save(folder / "array.npy", np.arange(20.0).reshape(4, 5))
    np.savez(folder / "arrays.npz", a=np.ones(3), b=np.zeros((2, 2), dtype=np.int8))
    np.savez_compressed(folder / "compressed.npz", a=np.ones(300))
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(
        np.arange(40.0).reshape(20, 2), [0, 1] * 10
    )
    for compress in (0, 3, ("bz2", 3), ("xz", 3), ("lzma", 3)):
        label = compress if isinstance(compress, int) else compress[0]
        joblib.dump(forest, folder / f"forest_{label}.joblib", compress=compress)
    weights = (folder / "state_dict.pt").read_bytes()
    members = {"model/weights.pt": weights, "model/arrays.npy": (folder / "array.npy").read_bytes()}
    tar_of(folder / "bundle.tar", members, "w")
    tar_of(folder / "bundle.tar.gz", members, "w:gz")
    tar_of(folder / "bundle.tar.xz", members, "w:xz")
    with zipfile.ZipFile(folder / "bundle.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with py7zr.SevenZipFile(folder / "bundle.7z", "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)


def test_benign_containers_are_clean(tmp_path: Path) -> None:
    write_benign(tmp_path / "benign")
    report = scan(tmp_path / "benign")
    assert len(report.results) == 15
    for result in report.results:
        assert result.status is Status.CHECKED, result
        assert result.findings == (), (result.path, result.findings)


def evil_torch() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": net().state_dict(), "hook": Payload()}, buffer)
    return buffer.getvalue()


def object_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload()], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def write_malicious(folder: Path) -> dict[str, str]:
    """Each sample and the rule that must flag it."""
    folder.mkdir()
    expected: dict[str, str] = {}

    def put(name: str, data: bytes, rule: str) -> None:
        (folder / name).write_bytes(data)
        expected[name] = rule

    put("evil.pt", evil_torch(), "PKL001")
    put("objects.npy", object_npy(), "PKL001")
    put("objects.npz", zip_bytes({"w.npy": object_npy()}), "PKL001")
    put("evil.joblib.gz", gzip.compress(payload_pickle()), "PKL001")
    noise = np.random.default_rng(0).bytes(100_000)
    put("truncated.gz", gzip.compress(payload_pickle() + noise)[:-2000], "PKL001")
    put(
        "nested.zip", zip_bytes({"inner.zip": zip_bytes({"deep/model.pt": evil_torch()})}), "PKL001"
    )
    put("traversal.zip", zip_bytes({"../../.bashrc": b"true\n"}), "ARCH001")
    put("bomb.zip", zip_bytes({"zeros.bin": bytes(96 * 1024 * 1024)}), "ARCH003")
    put("polyglot.pkl", payload_pickle() + zip_bytes({"m.pt": evil_torch()}), "ARCH005")
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w:gz") as archive:
        data = evil_torch()
        info = tarfile.TarInfo("model/model.pt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    put("evil.tar.gz", tar_buffer.getvalue(), "PKL001")
    seven = io.BytesIO()
    with py7zr.SevenZipFile(seven, "w") as archive:
        archive.writestr(object_npy(), "weights.npy")
    put("evil.7z", seven.getvalue(), "PKL001")
    deep = evil_torch()
    for level in range(8):
        deep = zip_bytes({f"level{level}.zip": deep})
    put("too_deep.zip", deep, "ARCH003")
    return expected


def test_malicious_containers_are_flagged(tmp_path: Path) -> None:
    expected = write_malicious(tmp_path / "evil")
    report = scan(tmp_path / "evil", limits=Limits(max_depth=6))
    by_name = {Path(result.path).name: result for result in report.results}
    assert set(by_name) == set(expected)
    for name, rule in expected.items():
        rules = {finding.rule_id for finding in by_name[name].findings}
        assert rule in rules, (name, rules)
