"""The shared dense form of small classifiers: equal to scikit-learn's own probabilities."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

from mlwarden._dense import from_sklearn, unsupported_step


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any]:
    data = load_digits()
    return data.data[:600], data.target[:600]


def _fit(model: Any, x: Any, y: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


@pytest.mark.parametrize(
    ("build", "binary"),
    [
        (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)), False),
        (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)), True),
        (lambda: make_pipeline(MinMaxScaler(), MLPClassifier((16,), max_iter=40)), False),
        (lambda: make_pipeline(MinMaxScaler(), MLPClassifier((16,), max_iter=40)), True),
        (
            lambda: make_pipeline(
                StandardScaler(with_mean=False),
                MaxAbsScaler(),
                MLPClassifier((8, 8), activation="tanh", max_iter=40),
            ),
            False,
        ),
        (
            lambda: Pipeline(
                [("skip", "passthrough"), ("lr", LogisticRegression(solver="liblinear"))]
            ),
            True,
        ),
        (lambda: MLPClassifier((12,), activation="logistic", max_iter=40), False),
    ],
)
def test_the_form_gives_predict_proba(digits: Any, build: Any, binary: bool) -> None:
    x, y = digits
    target = (y > 4).astype(int) if binary else y
    model = _fit(build(), x, target)
    form = from_sklearn(model)
    assert form is not None and form.binary == binary
    gap = np.exp(form.log_proba(x)) - model.predict_proba(x)
    assert np.abs(gap).max() < 1e-10
    assert unsupported_step(model) is None


def test_models_without_a_form_name_the_step_in_the_way(digits: Any) -> None:
    x, y = digits
    forest = _fit(RandomForestClassifier(n_estimators=3, random_state=0), x, y)
    assert from_sklearn(forest) is None
    assert unsupported_step(forest) == (forest, True)
    clipped = _fit(make_pipeline(MinMaxScaler(clip=True), LogisticRegression()), x, y)
    assert from_sklearn(clipped) is None
    step, final = unsupported_step(clipped) or (None, True)
    assert isinstance(step, MinMaxScaler) and not final
    unfitted = make_pipeline(StandardScaler(), LogisticRegression())
    assert from_sklearn(unfitted) is None
    assert unsupported_step(unfitted) is not None
