"""A real digits model and its detector reference, fitted once per test session."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from mlwarden.detect import Reference, fit_reference
from mlwarden.detect.simulate import Digits, digits


@dataclass(frozen=True)
class Fitted:
    data: Digits
    model: LogisticRegression
    reference: Reference

    def proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = self.model.predict_proba(x)
        return out

    def fgsm(self, x: NDArray[np.float64], y: NDArray[np.int64], eps: float) -> NDArray[np.float64]:
        p = self.model.predict_proba(x)
        p[np.arange(len(y)), y] -= 1.0
        out: NDArray[np.float64] = np.clip(x + eps * np.sign(p @ self.model.coef_), 0.0, 1.0)
        return out


@pytest.fixture(scope="session")
def fitted() -> Fitted:
    data = digits()
    model = LogisticRegression(max_iter=3000).fit(data.x_train, data.y_train)
    reference = fit_reference(
        data.x_train,
        data.y_train,
        predict_proba=model.predict_proba,
        image_shape=(8, 8),
        value_range=(0.0, 1.0),
    )
    return Fitted(data=data, model=model, reference=reference)
