"""Small real models for the attack tests, made once per session with fixed seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class Split:
    train_x: NDArray[np.float32]
    train_y: NDArray[np.int64]
    test_x: NDArray[np.float32]
    test_y: NDArray[np.int64]
    ref_x: NDArray[np.float32]
    ref_y: NDArray[np.int64]


def _split(x: NDArray[np.float64], y: NDArray[np.int64], n: int) -> Split:
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    return Split(x[:n], y[:n], x[n : 2 * n], y[n : 2 * n], x[2 * n :], y[2 * n :])


@pytest.fixture(scope="session")
def digits() -> Split:
    x, y = load_digits(return_X_y=True)
    return _split(x, y, 599)


@pytest.fixture(scope="session")
def cancer() -> Split:
    x, y = load_breast_cancer(return_X_y=True)
    return _split(x, y, 190)


@pytest.fixture(scope="session")
def digits_logreg(digits: Split) -> Pipeline:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return model.fit(digits.train_x, digits.train_y)


@pytest.fixture(scope="session")
def digits_forest(digits: Split) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=50, random_state=0).fit(
        digits.train_x, digits.train_y
    )


@pytest.fixture(scope="session")
def cancer_mlp(cancer: Split) -> Pipeline:
    model = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=500, random_state=0)
    )
    return model.fit(cancer.train_x, cancer.train_y)


@pytest.fixture(scope="session")
def digits_net(digits: Split) -> torch.nn.Module:
    """A small torch MLP on digits scaled to [0, 1]."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.from_numpy(digits.train_x / 16.0)
    y = torch.from_numpy(digits.train_y)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()  # type: ignore[no-untyped-call]
        opt.step()
    return net.eval()
