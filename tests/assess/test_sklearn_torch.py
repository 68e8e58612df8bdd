"""White-box targets: the torch re-expression of a scikit-learn model equals it."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from mlwarden.assess._sklearn_torch import sklearn_to_torch, supports_torch
from mlwarden.errors import UnsupportedTargetError


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(
    "build",
    [
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)),
        lambda: make_pipeline(MinMaxScaler(), MLPClassifier((16,), max_iter=40, random_state=0)),
    ],
)
def test_torch_logits_give_predict_proba_and_gradients(build: Any, binary: bool) -> None:
    data = load_digits()
    x, y = data.data[:500], data.target[:500]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = build().fit(x, (y > 4).astype(int) if binary else y)
    assert supports_torch(model)
    rows = torch.tensor(x[:100], dtype=torch.float32, requires_grad=True)
    logits = sklearn_to_torch(model)(rows)
    probabilities = torch.softmax(logits, dim=1)
    assert np.abs(probabilities.detach().numpy() - model.predict_proba(x[:100])).max() < 1e-6
    probabilities[:, 1].sum().backward()
    assert rows.grad is not None and float(rows.grad.abs().sum()) > 0


def test_models_without_a_torch_form_are_refused_by_name() -> None:
    data = load_digits()
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(data.data, data.target)
    assert not supports_torch(forest)
    with pytest.raises(UnsupportedTargetError, match=r"RandomForestClassifier.*black-box"):
        sklearn_to_torch(forest)
    clipped = make_pipeline(MinMaxScaler(clip=True), LogisticRegression(max_iter=50))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clipped.fit(data.data, data.target)
    with pytest.raises(UnsupportedTargetError, match="MinMaxScaler has no torch"):
        sklearn_to_torch(clipped)
