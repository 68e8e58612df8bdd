"""Drift against a verified baseline, outliers and near duplicates, through `screen`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.data.conftest import write_csv

from mlwarden.data import screen_rows
from mlwarden.errors import DatasetShapeError, NotVerifiedError
from mlwarden.signing import manifest


def _signed(folder: Path, private: Path) -> Path:
    manifest(folder, key=private)
    return folder


def test_drift_against_a_verified_baseline(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    rng = np.random.default_rng(0)
    (tmp_path / "base").mkdir()
    np.savez(tmp_path / "base" / "d.npz", X=rng.normal(size=(600, 3)), y=np.arange(600) % 2)
    _signed(tmp_path / "base", private)
    now = rng.normal(size=(600, 3))
    now[:, 1] += 3.0
    labels = (rng.random(600) < 0.9).astype(int)  # 90% of one class instead of half
    np.savez(tmp_path / "now.npz", X=now, y=labels)
    result = screen_rows(
        tmp_path / "now.npz", checks=("drift",), baseline=tmp_path / "base", baseline_key=public
    )
    drift = [f for f in result.report.findings if f.rule_id == "DATA007"]
    assert [f.location.rsplit("!", 1)[1] for f in drift] == ["x1"]
    assert [f.rule_id for f in result.report.findings if f.rule_id == "DATA008"] == ["DATA008"]
    # Same data as the baseline: no drift.
    same = screen_rows(
        tmp_path / "base" / "d.npz",
        checks=("drift",),
        baseline=tmp_path / "base",
        baseline_key=public,
    )
    assert not same.report.findings


def test_new_categories_name_their_rows(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    (tmp_path / "base").mkdir()
    rows = [[i, ["red", "blue"][i % 2], i % 2] for i in range(40)]
    write_csv(tmp_path / "base" / "t.csv", ["x", "color", "label"], rows)
    _signed(tmp_path / "base", private)
    rows[7][1] = "green"
    rows[9][1] = "green"
    now = write_csv(tmp_path / "now.csv", ["x", "color", "label"], rows)
    result = screen_rows(now, checks=("drift",), baseline=tmp_path / "base", baseline_key=public)
    (finding,) = [f for f in result.report.findings if f.rule_id == "DATA009"]
    assert finding.detail["new"] == "green"
    assert finding.detail["rows"] == "7,9"


def test_an_unverified_or_foreign_baseline_is_refused(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    (tmp_path / "base").mkdir()
    np.savez(tmp_path / "base" / "d.npz", X=np.zeros((5, 2)), y=np.arange(5) % 2)
    np.savez(tmp_path / "now.npz", X=np.zeros((5, 3)), y=np.arange(5) % 2)
    with pytest.raises(NotVerifiedError):  # not signed at all
        screen_rows(tmp_path / "now.npz", baseline=tmp_path / "base", baseline_key=public)
    _signed(tmp_path / "base", private)
    with pytest.raises(NotVerifiedError):  # signed, but nothing trusted
        screen_rows(tmp_path / "now.npz", baseline=tmp_path / "base")
    with pytest.raises(DatasetShapeError):  # trusted, but another table
        screen_rows(
            tmp_path / "now.npz", checks=("drift",), baseline=tmp_path / "base", baseline_key=public
        )
    shutil.rmtree(tmp_path / "base")


def test_outliers_are_flagged(tmp_path: Path) -> None:
    x = np.random.default_rng(2).normal(size=(300, 4))
    x[[17, 230]] = 40.0
    np.save(tmp_path / "x.npy", x)
    result = screen_rows(tmp_path / "x.npy", checks=("outliers",))
    assert {17, 230} <= set(result.suspects)
    assert all(rules == ("DATA003",) for rules in result.suspects.values())


def test_near_duplicates_and_near_leakage(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 5))
    x[150] = x[3] + 1e-4
    np.save(tmp_path / "x.npy", x)
    test = rng.normal(size=(20, 5))
    test[0] = x[60] + 1e-4
    np.save(tmp_path / "test.npy", test)
    exact_only = screen_rows(tmp_path / "x.npy", checks=("duplicates", "leakage"))
    assert exact_only.suspects == {}
    near = screen_rows(
        tmp_path / "x.npy", checks=("duplicates", "leakage"), test=tmp_path / "test.npy", near=0.01
    )
    assert near.suspects == {60: ("DATA006",), 150: ("DATA005",)}
