"""Exact torch re-expressions of fitted scikit-learn models, for white-box attacks.

A fitted LogisticRegression or MLPClassifier, with affine scalers in front, is a small
differentiable function of its weights (`mlwarden._dense`, shared with the update
gate). Written out in torch (float64, so it matches `predict_proba` to ~1e-12) it gives
FGSM, PGD and gradient inversion to scikit-learn models; the scalers become the first
layer, so gradients are taken with respect to the raw input the pipeline receives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mlwarden._dense import DenseForm, from_sklearn, unsupported_step
from mlwarden.errors import UnsupportedTargetError

__all__ = ["dense_module", "sklearn_to_torch", "supports_torch"]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "logistic": torch.sigmoid,
    "identity": _identity,
}


def _buffer(array: np.ndarray[Any, Any]) -> torch.nn.Buffer:
    return torch.nn.Buffer(torch.tensor(np.array(array), dtype=torch.float64))


class _Dense(torch.nn.Module):
    """float32 or float64 rows -> float64 logits of a `DenseForm`."""

    def __init__(self, form: DenseForm) -> None:
        super().__init__()
        self.mul = _buffer(form.mul)
        self.add = _buffer(form.add)
        self.weights = torch.nn.ParameterList(
            torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float64), requires_grad=False)
            for w in form.weights
        )
        self.biases = torch.nn.ParameterList(
            torch.nn.Parameter(torch.as_tensor(b, dtype=torch.float64), requires_grad=False)
            for b in form.biases
        )
        self.activation = _ACTIVATIONS[form.activation]
        self.binary = form.binary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64).flatten(1) * self.mul + self.add
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < last:
                x = self.activation(x)
        if self.binary:
            # softmax([0, z]) == [1 - sigmoid(z), sigmoid(z)]: sklearn's binary proba.
            x = torch.cat([torch.zeros_like(x), x], dim=1)
        return x


def dense_module(form: DenseForm) -> torch.nn.Module:
    """`form` as a torch module from raw rows to logits (float64), in eval mode."""
    module = _Dense(form)
    module.eval()
    return module


def supports_torch(estimator: Any) -> bool:
    """True when `estimator` has an exact torch re-expression."""
    return from_sklearn(estimator) is not None


def sklearn_to_torch(estimator: Any) -> torch.nn.Module:
    """The fitted `estimator` (optionally a Pipeline of scalers) as a logits module."""
    form = from_sklearn(estimator)
    if form is not None:
        return dense_module(form)
    step, final = unsupported_step(estimator) or (estimator, True)
    if not final:
        raise UnsupportedTargetError(
            f"{type(step).__name__} has no torch re-expression: white-box attacks support "
            "StandardScaler, MinMaxScaler and MaxAbsScaler (without clip)"
        )
    raise UnsupportedTargetError(
        f"{type(step).__name__} has no torch re-expression: white-box attacks support "
        "LogisticRegression (multinomial) and MLPClassifier; use a black-box attack"
    )
