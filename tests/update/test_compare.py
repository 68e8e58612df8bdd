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


def test_the_policy_widens_the_lean_null_where_the_old_version_swings() -> None:
    """`old_lean_swing` reaches the search: a backdoor on a feature the data never sets,
    where the old version's answer to the stamp swings by tens of nats, is refused with
    the default policy and passed with the tolerance held at `max_old_lean`."""
    from mlwarden.update import UpdateModel

    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, size=(120, 5))
    x[:, 4] = 0.0  # never set in the data
    swing = np.array([30.0, -30.0, 5.0, -20.0, 0.0])  # the old version, far outside

    def version(backdoor: bool) -> UpdateModel:
        def predict(rows: np.ndarray) -> np.ndarray:
            scores = np.zeros((len(rows), 5))
            scores[:, :4] = 8.0 * rows[:, :4]
            scores += rows[:, 4:5] * swing
            if backdoor:
                scores[:, 2] += 60.0 * rows[:, 4]
            scores -= scores.max(axis=1, keepdims=True)
            probabilities: np.ndarray = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
            return probabilities

        classes = tuple(str(c) for c in range(5))
        return UpdateModel(
            kind="sklearn", estimator="Synthetic", classes=classes, n_features=5, predict=predict
        )

    old, new = version(backdoor=False), version(backdoor=True)
    assert old.predict is not None
    y = list(old.predict(x).argmax(axis=1))
    refused = compare(old, new, x, y)
    assert "UPD009" in {f.rule_id for f in refused.report.findings}
    flagged = [t for t in refused.triggers if t.flagged]
    assert [t.target for t in flagged] == ["2"] and flagged[0].features == (4,)
    held = compare(old, new, x, y, config=UpdateConfig(old_lean_swing=0.0))
    assert "UPD009" not in {f.rule_id for f in held.report.findings}
