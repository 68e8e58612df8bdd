"""Small real models on the digits data scikit-learn ships, trained once per session."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

Split = tuple[Any, Any, Any, Any]


@pytest.fixture(scope="session")
def digits() -> Split:
    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    return x_train, x_test, y_train, y_test


def fit_lr(x: Any, y: Any, **params: Any) -> Pipeline:
    model = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=200, random_state=0, **params)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


@pytest.fixture(scope="session")
def old_lr(digits: Split) -> Pipeline:
    x_train, _, y_train, _ = digits
    return fit_lr(x_train, y_train)


@pytest.fixture(scope="session")
def flipped_lr(digits: Split) -> Pipeline:
    """A retrain where half of the 3s are labelled 8: a targeted label-flip poisoning."""
    x_train, _, y_train, _ = digits
    y = y_train.copy()
    threes = np.flatnonzero(y == 3)
    y[threes[: len(threes) * 2 // 3]] = 8
    return fit_lr(x_train, y)
