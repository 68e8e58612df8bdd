"""The exact re-expressions the gate runs: they must equal the frameworks' own outputs."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from mlwarden.errors import UnsupportedUpdateModelError
from mlwarden.update import as_update_model


def test_logistic_pipeline_is_reexpressed_exactly(old_lr: Any, digits: Any) -> None:
    x_test = digits[1]
    model = as_update_model(old_lr)
    assert model.network is not None and model.predict is not None
    from mlwarden.update._models import network_predict

    assert np.allclose(network_predict(model.network)(x_test), old_lr.predict_proba(x_test))
    assert (
        np.abs(np.exp(model.network.log_proba(x_test)) - old_lr.predict_proba(x_test)).max() < 1e-12
    )
    assert "logisticregression.coef_" in model.tensors
    assert model.params["logisticregression__C"] == "1.0"


@pytest.mark.parametrize("binary", [False, True])
def test_mlp_after_minmax_is_reexpressed_exactly(digits: Any, binary: bool) -> None:
    x_train, x_test, y_train, _ = digits
    y = (y_train > 4).astype(int) if binary else y_train
    mlp = make_pipeline(
        MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x_train, y)
    model = as_update_model(mlp)
    assert model.network is not None and model.represent is not None
    from mlwarden.update._models import network_predict

    assert np.allclose(network_predict(model.network)(x_test), mlp.predict_proba(x_test))
    hidden, _ = model.network.hidden_and_logits(x_test)
    assert hidden.shape == (len(x_test), 16)


def test_torch_state_dict_runs_as_the_network_it_came_from(digits: Any) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 20), torch.nn.ReLU(), torch.nn.Linear(20, 10))
    model = as_update_model(dict(net.state_dict()))
    x = digits[1][:50] / 16.0
    assert model.predict is not None
    expected = torch.softmax(net(torch.tensor(x, dtype=torch.float32)), dim=1).detach().numpy()
    assert np.allclose(model.predict(x), expected, atol=1e-5)
    assert model.classes == tuple(str(i) for i in range(10))


def test_unsupported_kinds_are_refused() -> None:
    with pytest.raises(UnsupportedUpdateModelError, match="not a model the update gate"):
        as_update_model(object())
    conv = torch.nn.Conv2d(1, 2, 3)
    with pytest.raises(UnsupportedUpdateModelError, match="not a feed-forward chain"):
        as_update_model(dict(conv.state_dict()))
    with pytest.raises(UnsupportedUpdateModelError, match="not a tensor"):
        as_update_model({"weight": "text"})
    linear = dict(torch.nn.Linear(4, 3).state_dict())
    with pytest.raises(UnsupportedUpdateModelError, match="activation 'gelu'"):
        as_update_model(linear, activation="gelu")
    unfitted = make_pipeline(StandardScaler(), LogisticRegression())
    with pytest.raises(UnsupportedUpdateModelError, match="not fitted"):
        as_update_model(unfitted)
