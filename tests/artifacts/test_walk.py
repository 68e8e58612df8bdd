"""Every input is accounted for; symlinks stay inside the scanned root."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import mlwarden
from mlwarden.report import Status, Verdict


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def _by_name(report: mlwarden.report.Report) -> dict[str, mlwarden.report.ObjectResult]:
    return {Path(r.path).name: r for r in report.results}


def test_every_input_is_reported(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    (tmp_path / "readme.md").write_text("# model\n")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere.pkl")
    report = mlwarden.scan([tmp_path, tmp_path / "missing.pt"])
    results = _by_name(report)
    assert results["a.pkl"].status is Status.CHECKED and results["a.pkl"].verdict is Verdict.CLEAN
    assert results["readme.md"].status is Status.SKIPPED
    assert results["pipe"].status is Status.SKIPPED
    assert results["dangling"].status is Status.FAILED and results["dangling"].code == "E103"
    assert results["missing.pt"].status is Status.FAILED and results["missing.pt"].code == "E102"
    assert len(report.results) == 5


def test_symlink_outside_root_is_a_finding_not_a_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "payload.pkl"
    secret.write_bytes(pickle.dumps(_Payload()))
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.pkl").symlink_to(secret)
    results = _by_name(mlwarden.scan([model]))
    link = results["weights.pkl"]
    assert [f.rule_id for f in link.findings] == ["SCAN002"]
    assert link.verdict is Verdict.SUSPICIOUS


def test_hugging_face_cache_snapshot_scans_through_its_links(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--org--tiny"
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (blobs / "aaaa").write_bytes(pickle.dumps(_Payload()))
    (blobs / "bbbb").write_bytes(pickle.dumps({"ok": 1}))
    (snapshot / "pytorch_model.bin").symlink_to("../../blobs/aaaa")
    (snapshot / "extra.pkl").symlink_to("../../blobs/bbbb")
    results = _by_name(mlwarden.scan([snapshot]))
    assert results["pytorch_model.bin"].verdict is Verdict.MALICIOUS
    assert results["extra.pkl"].verdict is Verdict.CLEAN


def test_symlink_loop_terminates(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "m.pkl").write_bytes(pickle.dumps(1))
    report = mlwarden.scan([tmp_path])
    assert [Path(r.path).name for r in report.results] == ["m.pkl"]
