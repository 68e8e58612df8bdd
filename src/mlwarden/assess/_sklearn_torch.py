"""Exact torch re-expressions of fitted scikit-learn models, for white-box attacks.

A fitted LogisticRegression or MLPClassifier is a small differentiable function of
its weights; written out in torch (float64, so it matches `predict_proba` to
~1e-12) it gives FGSM, PGD and gradient inversion to scikit-learn models. Scalers
in front (StandardScaler, MinMaxScaler, MaxAbsScaler) become the first layer, so
gradients are taken with respect to the raw input the pipeline receives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mlwarden.errors import UnsupportedTargetError

__all__ = ["sklearn_to_torch", "supports_torch"]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "logistic": torch.sigmoid,
    "identity": _identity,
}


class _Affine(torch.nn.Module):
    """x * scale + shift: a fitted scaler."""

    def __init__(self, scale: np.ndarray[Any, Any], shift: np.ndarray[Any, Any]) -> None:
        super().__init__()
        self.scale = torch.nn.Buffer(torch.tensor(np.array(scale), dtype=torch.float64))
        self.shift = torch.nn.Buffer(torch.tensor(np.array(shift), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x * self.scale + self.shift
        return out


class _Dense(torch.nn.Module):
    """Stacked affine layers with one hidden activation; binary heads become 2 logits."""

    def __init__(
        self,
        coefs: list[np.ndarray[Any, Any]],
        intercepts: list[np.ndarray[Any, Any]],
        activation: str,
        binary: bool,
    ) -> None:
        super().__init__()
        self.weights = torch.nn.ParameterList(
            torch.nn.Parameter(torch.as_tensor(c, dtype=torch.float64), requires_grad=False)
            for c in coefs
        )
        self.biases = torch.nn.ParameterList(
            torch.nn.Parameter(torch.as_tensor(b, dtype=torch.float64), requires_grad=False)
            for b in intercepts
        )
        self.activation = activation
        self.binary = binary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = _ACTIVATIONS[self.activation]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < last:
                x = act(x)
        if self.binary:
            # softmax([0, z]) == [1 - sigmoid(z), sigmoid(z)]: sklearn's binary proba.
            x = torch.cat([torch.zeros_like(x), x], dim=1)
        return x


class _Chain(torch.nn.Module):
    """float32 input -> float64 layers -> float64 logits."""

    def __init__(self, layers: list[torch.nn.Module]) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64).flatten(1)
        for layer in self.layers:
            x = layer(x)
        return x


def _scaler(step: Any) -> torch.nn.Module | None:
    kind = type(step).__name__
    if kind == "StandardScaler":
        mean = step.mean_ if step.mean_ is not None else 0.0
        scale = step.scale_ if step.scale_ is not None else 1.0
        n = step.n_features_in_
        s = np.broadcast_to(1.0 / np.asarray(scale, dtype=np.float64), (n,))
        return _Affine(s, -np.broadcast_to(np.asarray(mean, dtype=np.float64), (n,)) * s)
    if kind == "MinMaxScaler" and not step.clip:
        return _Affine(step.scale_, step.min_)
    if kind == "MaxAbsScaler":
        return _Affine(1.0 / step.scale_, np.zeros_like(step.scale_))
    return None


def _head(model: Any) -> torch.nn.Module | None:
    kind = type(model).__name__
    if kind == "LogisticRegression":
        coef = np.asarray(model.coef_, dtype=np.float64)
        if len(model.classes_) > 2 and getattr(model, "solver", "") == "liblinear":
            return None  # one-vs-rest probabilities: not a softmax of the logits
        return _Dense([coef.T], [np.asarray(model.intercept_)], "identity", coef.shape[0] == 1)
    if kind == "MLPClassifier":
        if model.out_activation_ not in ("softmax", "logistic"):
            return None
        return _Dense(
            list(model.coefs_),
            list(model.intercepts_),
            model.activation,
            model.out_activation_ == "logistic",
        )
    return None


def _parts(estimator: Any) -> tuple[list[Any], Any]:
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        return [s for _, s in steps[:-1] if s not in (None, "passthrough")], steps[-1][1]
    return [], estimator


def supports_torch(estimator: Any) -> bool:
    """True when `estimator` has an exact torch re-expression."""
    pre, head = _parts(estimator)
    return _head(head) is not None and all(_scaler(s) is not None for s in pre)


def sklearn_to_torch(estimator: Any) -> torch.nn.Module:
    """The fitted `estimator` (optionally a Pipeline of scalers) as a logits module."""
    pre, head = _parts(estimator)
    layers: list[torch.nn.Module] = []
    for step in pre:
        layer = _scaler(step)
        if layer is None:
            raise UnsupportedTargetError(
                f"{type(step).__name__} has no torch re-expression: white-box attacks "
                "support StandardScaler, MinMaxScaler (clip=False) and MaxAbsScaler"
            )
        layers.append(layer)
    dense = _head(head)
    if dense is None:
        raise UnsupportedTargetError(
            f"{type(head).__name__} has no torch re-expression: white-box attacks support "
            "LogisticRegression (multinomial) and MLPClassifier; use a black-box attack"
        )
    layers.append(dense)
    module = _Chain(layers)
    module.eval()
    return module
