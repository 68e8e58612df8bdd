"""Adapters: shapes, the query budget, label-only output, exact torch re-expressions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from mlwarden.assess import (
    SklearnTarget,
    TorchTarget,
    as_label_only,
    is_white_box,
)
from mlwarden.errors import (
    AttackInputError,
    QueryBudgetExhaustedError,
    UnsupportedTargetError,
)

from .conftest import Split


def _torch_proba(target: SklearnTarget, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = target.torch_module()(torch.from_numpy(x.astype(np.float32)))
    return torch.softmax(logits, dim=1).numpy()


def test_logreg_pipeline_re_expression_matches_predict_proba(digits, digits_logreg) -> None:
    target = SklearnTarget(digits_logreg, value_range=(0, 16))
    assert is_white_box(target)
    expected = digits_logreg.predict_proba(digits.test_x.astype(np.float64))
    np.testing.assert_allclose(_torch_proba(target, digits.test_x), expected, atol=1e-6)


def test_binary_mlp_re_expression_matches_predict_proba(cancer, cancer_mlp) -> None:
    target = SklearnTarget(cancer_mlp)
    expected = cancer_mlp.predict_proba(cancer.test_x.astype(np.float64))
    np.testing.assert_allclose(_torch_proba(target, cancer.test_x), expected, atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "logistic"])
def test_multiclass_mlp_with_minmax_matches(digits: Split, activation: str) -> None:
    model = make_pipeline(
        MinMaxScaler(),
        MLPClassifier((12,), activation=activation, max_iter=60, random_state=0),
    )
    with pytest.warns(ConvergenceWarning):  # a short fit is enough here
        model.fit(digits.train_x, digits.train_y)
    target = SklearnTarget(model)
    expected = model.predict_proba(digits.test_x.astype(np.float64))
    np.testing.assert_allclose(_torch_proba(target, digits.test_x), expected, atol=1e-6)


def test_binary_logreg_matches(cancer: Split) -> None:
    model = LogisticRegression(max_iter=5000).fit(cancer.train_x / 1000, cancer.train_y)
    target = SklearnTarget(model)
    expected = model.predict_proba(cancer.test_x.astype(np.float64) / 1000)
    np.testing.assert_allclose(_torch_proba(target, cancer.test_x / 1000), expected, atol=1e-6)


def test_forest_is_black_box_only(digits_forest) -> None:
    target = SklearnTarget(digits_forest)
    assert not is_white_box(target)
    with pytest.raises(UnsupportedTargetError, match="RandomForestClassifier has no torch"):
        target.torch_module()


def test_not_a_classifier_is_refused() -> None:
    with pytest.raises(UnsupportedTargetError) as info:
        SklearnTarget(object())
    assert info.value.code == "E173"


def test_budget_refuses_before_querying(digits, digits_forest) -> None:
    target = SklearnTarget(digits_forest, max_queries=10)
    target.predict_scores(digits.test_x[:6])
    with pytest.raises(QueryBudgetExhaustedError, match="budget of 10") as info:
        target.predict_scores(digits.test_x[:5])
    assert info.value.code == "E171"
    assert target.queries == 6  # the refused batch was not sent
    target.predict_labels(digits.test_x[:4])
    assert target.remaining == 0


def test_label_only_returns_one_hot(digits, digits_forest) -> None:
    inner = SklearnTarget(digits_forest)
    target = as_label_only(inner)
    scores = target.predict_scores(digits.test_x[:20])
    assert set(np.unique(scores)) == {0.0, 1.0}
    np.testing.assert_array_equal(scores.sum(axis=1), np.ones(20))
    np.testing.assert_array_equal(
        target.predict_labels(digits.test_x[:20]), inner.predict_labels(digits.test_x[:20])
    )
    assert not is_white_box(target)


def test_wrong_shape_and_nan_are_input_errors(digits_forest) -> None:
    target = SklearnTarget(digits_forest)
    with pytest.raises(AttackInputError, match=r"shape \(3,\)"):
        target.predict_scores(np.zeros((2, 3), dtype=np.float32))
    bad = np.zeros((1, 64), dtype=np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(AttackInputError, match="NaN"):
        target.predict_scores(bad)


def test_torch_target_infers_classes(digits, digits_net) -> None:
    target = TorchTarget(digits_net, input_shape=(64,), value_range=(0.0, 1.0))
    assert target.n_classes == 10
    scores = target.predict_scores(digits.test_x[:8] / 16)
    np.testing.assert_allclose(scores.sum(axis=1), np.ones(8), atol=1e-9)
    assert target.queries == 8


def test_forest_target_scores_match(digits) -> None:
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(
        digits.train_x, digits.train_y
    )
    target = SklearnTarget(forest)
    np.testing.assert_allclose(
        target.predict_scores(digits.test_x[:10]), forest.predict_proba(digits.test_x[:10])
    )
