"""The model-based checks, wired through `screen`: poisoned digits, known poisoned rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlwarden.cli import main
from mlwarden.data import screen_rows


@pytest.fixture(scope="module")
def poisoned_digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int], set[int]]:
    """Digits with 10% labels flipped and a 2x2 trigger on 10% of the 1s, relabelled 7."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data.copy(), digits.target.copy()
    rng = np.random.default_rng(1)
    flips = rng.choice(len(y), len(y) // 10, replace=False)
    y[flips] = (y[flips] + rng.integers(1, 10, len(flips))) % 10
    ones = np.flatnonzero(digits.target == 1)
    planted = rng.choice(np.setdiff1d(ones, flips), len(ones) // 10, replace=False)
    x[np.ix_(planted, [54, 55, 62, 63])] = 16.0
    y[planted] = 7
    path = tmp_path_factory.mktemp("digits") / "poisoned.npz"
    np.savez(path, X=x, y=y)
    return path, {int(r) for r in flips}, {int(r) for r in planted}


def test_label_issues_and_backdoors_find_the_poisoned_rows(
    poisoned_digits: tuple[Path, set[int], set[int]],
) -> None:
    path, flips, planted = poisoned_digits
    result = screen_rows(path, checks=("labels", "backdoors"))
    found = set(result.suspects)
    poisoned = flips | planted
    assert len(found & poisoned) / len(found) >= 0.9
    assert len(found & poisoned) / len(poisoned) >= 0.9
    backdoor = [f for f in result.report.findings if f.rule_id == "DATA002"]
    assert {int(f.detail["row"]) for f in backdoor} >= planted
    assert {f.detail["target"] for f in backdoor} == {"7"}
    label = next(f for f in result.report.findings if f.rule_id == "DATA001")
    row = int(label.detail["row"])
    assert label.location == f"{path}#row={row}"
    assert label.detail["given"] != label.detail["likely"]


def test_cli_quarantines_the_poisoned_rows(
    tmp_path: Path, poisoned_digits: tuple[Path, set[int], set[int]]
) -> None:
    path, _, planted = poisoned_digits
    quarantine = tmp_path / "q.npz"
    args = ["data", "screen", str(path), "--checks", "backdoors", "--quarantine", str(quarantine)]
    assert main(args) == 1
    with np.load(quarantine) as aside:
        assert set(aside["_row_id"].tolist()) >= planted
        assert set(aside["_rules"].tolist()) == {"DATA002"}


def test_model_checks_are_skipped_without_labels(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random((50, 4)))
    assert screen_rows(path).suspects == {}
