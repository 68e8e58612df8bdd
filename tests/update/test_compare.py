"""`compare` on real models: a poisoned retrain is refused, an unchanged one passes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlwarden.errors import CanaryShapeError, CanaryTooSmallError, UpdateMismatchError
from mlwarden.update import UpdateConfig, compare

from .conftest import fit_lr

FAST = UpdateConfig(trigger_search=False, representation_screen=False)


def test_label_flip_retrain_is_refused(old_lr: Any, flipped_lr: Any, digits: Any) -> None:
    _, x_test, _, y_test = digits
    result = compare(old_lr, flipped_lr, x_test, y_test, config=FAST)
    rules = {f.rule_id for f in result.report.findings}
    assert {"UPD006", "UPD007"} <= rules
    assert not result.passed
    drop = next(f for f in result.report.findings if f.rule_id == "UPD006")
    assert drop.detail["class"] == "3"
    into = next(f for f in result.report.findings if f.rule_id == "UPD007")
    assert into.detail["class"] == "8"


def test_unchanged_update_passes_every_check(old_lr: Any, digits: Any) -> None:
    _, x_test, _, y_test = digits
    result = compare(
        old_lr, old_lr, x_test, y_test, config=UpdateConfig(representation_screen=True)
    )
    assert result.passed, [f.message for f in result.report.findings]
    assert result.behaviour.agreement == 1.0
    assert all(t.success == 0.0 for t in result.triggers)
    assert result.to_dict()["passed"] is True


def test_mismatched_models_and_canaries_are_clear_errors(old_lr: Any, digits: Any) -> None:
    x_train, x_test, y_train, y_test = digits
    five = y_train < 5
    fewer = fit_lr(x_train[five], y_train[five])
    with pytest.raises(UpdateMismatchError, match="different classes") as info:
        compare(old_lr, fewer, x_test, y_test, config=FAST)
    assert info.value.code == "E180"
    with pytest.raises(CanaryShapeError, match="reads 64 features; the canary rows have 10"):
        compare(old_lr, old_lr, x_test[:, :10], y_test, config=FAST)
    with pytest.raises(CanaryShapeError, match="rows but"):
        compare(old_lr, old_lr, x_test, y_test[:-1], config=FAST)
    with pytest.raises(CanaryTooSmallError, match="at least 50"):
        compare(old_lr, old_lr, x_test[:10], y_test[:10], config=FAST)
    with pytest.raises(UpdateMismatchError, match="canary labels 11 are not classes"):
        compare(old_lr, old_lr, x_test, np.where(y_test == 0, 11, y_test), config=FAST)
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(64, 10))
    with pytest.raises(UpdateMismatchError, match="torch model cannot replace a sklearn"):
        compare(old_lr, dict(net.state_dict()), x_test, y_test, config=FAST)
