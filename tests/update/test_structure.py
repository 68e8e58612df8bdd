"""Structural diff: known answers for deltas, architecture, hyperparameters, tampering."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.errors import TensorShapeError
from mlwarden.update import UpdateConfig, as_update_model, tensor_delta
from mlwarden.update._structure import diff_structure, structure_findings

from .conftest import fit_lr


def test_tensor_delta_known_answers() -> None:
    old = np.array([[3.0, 4.0], [0.0, 0.0]])
    flipped = tensor_delta("w", old, -old)
    assert flipped.cosine == pytest.approx(-1.0)
    assert flipped.relative_change == pytest.approx(2.0)
    assert flipped.share_changed == pytest.approx(0.5)
    scaled = tensor_delta("w", old, 3 * old)
    assert scaled.norm_ratio == pytest.approx(3.0)
    assert scaled.cosine == pytest.approx(1.0)
    same = tensor_delta("w", old, old.copy())
    assert same.delta_norm == 0 and same.share_changed == 0


def test_tensor_delta_refuses_different_shapes() -> None:
    with pytest.raises(TensorShapeError, match=r"'w' has shape \(2,\).*\(3,\)") as info:
        tensor_delta("w", np.zeros(2), np.zeros(3))
    assert info.value.code == "E182"


def _net(hidden: int) -> dict[str, Any]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    )
    return dict(net.state_dict())


def test_architecture_change_is_a_finding_unless_any() -> None:
    diff = diff_structure(as_update_model(_net(16)), as_update_model(_net(32)))
    assert diff.architecture_changed
    assert {name for name, _, _ in diff.reshaped} == {"0.weight", "0.bias", "2.weight"}
    rules = [f.rule_id for f in structure_findings(diff, UpdateConfig(), "new")]
    # The one tensor of the same shape (2.bias) was re-initialised: tampering in a fine-tune.
    assert rules == ["UPD002", "UPD004"]
    assert structure_findings(diff, UpdateConfig(expect="any"), "new") == []


def test_sign_flipped_and_scaled_layers_are_tampering() -> None:
    old = _net(16)
    flipped = copy.deepcopy(old)
    flipped["2.weight"] = -flipped["2.weight"]
    scaled = copy.deepcopy(old)
    scaled["0.weight"] = 10 * scaled["0.weight"]
    for new, name in ((flipped, "2.weight"), (scaled, "0.weight")):
        diff = diff_structure(as_update_model(old), as_update_model(new))
        findings = structure_findings(diff, UpdateConfig(), "new")
        assert [(f.rule_id, f.location) for f in findings] == [("UPD004", f"new!{name}")]
        # A retrain may move weights anywhere: not tampering then.
        assert structure_findings(diff, UpdateConfig(expect="retrain"), "new") == []


def test_hyperparameter_change_in_a_fine_tune(digits: Any, old_lr: Any) -> None:
    x_train, _, y_train, _ = digits
    other = fit_lr(x_train, y_train, C=0.05)
    diff = diff_structure(as_update_model(old_lr), as_update_model(other))
    assert ("logisticregression__C", "1.0", "0.05") in diff.params_changed
    findings = structure_findings(diff, UpdateConfig(max_relative_change=100), "new")
    assert [f.rule_id for f in findings if f.rule_id == "UPD003"] == ["UPD003"]
    # Training-only parameters (iterations, warm start) change honestly in a fine-tune.
    longer = copy.deepcopy(old_lr)
    longer.set_params(logisticregression__max_iter=999, logisticregression__warm_start=True)
    diff = diff_structure(as_update_model(old_lr), as_update_model(longer))
    assert structure_findings(diff, UpdateConfig(), "new") == []
