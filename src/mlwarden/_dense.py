"""One array form for the small dense classifiers mlwarden re-expresses.

A scikit-learn Pipeline of affine scalers (StandardScaler, MinMaxScaler without
clipping, MaxAbsScaler without clipping) in front of a LogisticRegression with softmax
probabilities or an MLPClassifier, and a PyTorch state dict of Linear layers, are all

    logits = layers(x * mul + add)

with one hidden activation between the affine layers and a softmax on top (with one
output unit: a logistic, written as the logits [0, z]). `DenseForm` holds those arrays,
extracted once here; the update gate runs them in NumPy (trigger search, representation
screen) and the assessment in torch (gradients for white-box attacks).

The gateway's fast path is deliberately not built on it: it must be bit-identical to
`predict_proba`, so it replays scikit-learn's own operation order step by step
(gateway/_fastpath.py); folding the scalers into one multiply-add changes the last bits.
Here the results match `predict_proba` to about 1e-12.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Activation = Literal["relu", "tanh", "logistic", "identity"]

__all__ = ["Activation", "DenseForm", "from_sklearn", "unsupported_step"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DenseForm:
    """x * mul + add, then affine layers (h @ weight + bias) with `activation` between them."""

    mul: FloatArray
    add: FloatArray
    weights: tuple[FloatArray, ...]
    """Each [inputs, outputs], as scikit-learn's `coefs_`."""
    biases: tuple[FloatArray, ...]
    activation: Activation
    binary: bool
    """One output unit (logistic): class 1's logit; class 0's is 0."""

    @property
    def width(self) -> int:
        return int(self.weights[0].shape[0])

    def hidden_and_logits(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(the input of the last layer, the logits) of raw rows."""
        h = np.asarray(x, dtype=np.float64) * self.mul + self.add
        for weight, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = _ACTIVATE[self.activation](h @ weight + bias)
        logits = h @ self.weights[-1] + self.biases[-1]
        if self.binary:
            logits = np.column_stack([np.zeros(len(logits)), logits[:, 0]])
        return h, logits

    def log_proba(self, x: FloatArray) -> FloatArray:
        """Log-softmax of the logits: exact far from the data, where probabilities underflow."""
        _, logits = self.hidden_and_logits(x)
        return _log_softmax(logits)

    def first_layer(self, x: FloatArray) -> FloatArray:
        """The first affine layer's output (before any activation) for raw rows."""
        scaled = np.asarray(x, dtype=np.float64) * self.mul + self.add
        result: FloatArray = scaled @ self.weights[0] + self.biases[0]
        return result

    def log_proba_after_first(self, first: FloatArray) -> FloatArray:
        """`log_proba` from the first affine layer's output: lets a caller that changes a
        few input features move that output by their weight rows alone (a rank-k update)
        instead of running every feature through the first layer again."""
        z = first
        for weight, bias in zip(self.weights[1:], self.biases[1:], strict=True):
            z = _ACTIVATE[self.activation](z) @ weight + bias
        if self.binary:
            z = np.column_stack([np.zeros(len(z)), z[:, 0]])
        return _log_softmax(z)


def _log_softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    result: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result


def _sigmoid(z: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return result


_ACTIVATE: dict[str, Callable[[FloatArray], FloatArray]] = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "logistic": _sigmoid,
    "identity": lambda z: z,
}


def from_sklearn(estimator: Any) -> DenseForm | None:
    """The form of a fitted estimator or Pipeline; None when it has none (see
    `unsupported_step` for which step is in the way)."""
    pre, head = _parts(estimator)
    width = int(getattr(head, "n_features_in_", 0))
    if width <= 0:
        return None
    mul, add = np.ones(width), np.zeros(width)
    for step in pre:
        affine = _scaler(step, width)
        if affine is None:
            return None
        step_mul, step_add = affine
        # x -> (x * mul + add) * step_mul + step_add
        mul, add = mul * step_mul, add * step_mul + step_add
    layers = _head(head)
    if layers is None:
        return None
    weights, biases, activation, binary = layers
    return DenseForm(
        mul=mul, add=add, weights=weights, biases=biases, activation=activation, binary=binary
    )


def unsupported_step(estimator: Any) -> tuple[Any, bool] | None:
    """(the first step of `estimator` that has no dense form, whether it is the final
    estimator); None when every step has one."""
    pre, head = _parts(estimator)
    width = max(1, int(getattr(head, "n_features_in_", 0)))
    for step in pre:
        if _scaler(step, width) is None:
            return step, False
    return None if from_sklearn(estimator) is not None else (head, True)


def _parts(estimator: Any) -> tuple[list[Any], Any]:
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps:
        return [s for _, s in steps[:-1] if s is not None and s != "passthrough"], steps[-1][1]
    return [], estimator


def _vector(value: Any, width: int, default: float) -> FloatArray:
    if value is None:
        return np.full(width, default)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (width,)).copy()


def _scaler(step: Any, width: int) -> tuple[FloatArray, FloatArray] | None:
    """(mul, add) of one fitted scaler (its zero scales were set to 1 at fit); classes are
    matched exactly, as a subclass may change the arithmetic."""
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    kind = type(step)
    if not hasattr(step, "n_features_in_"):
        return None  # not fitted
    if kind is StandardScaler:
        mean = _vector(step.mean_ if step.with_mean else None, width, 0.0)
        scale = _vector(step.scale_ if step.with_std else None, width, 1.0)
        return 1.0 / scale, -mean / scale
    if kind is MinMaxScaler and not step.clip:
        return _vector(step.scale_, width, 1.0), _vector(step.min_, width, 0.0)
    if kind is MaxAbsScaler and not getattr(step, "clip", False):
        return 1.0 / _vector(step.scale_, width, 1.0), np.zeros(width)
    return None


def _head(
    model: Any,
) -> tuple[tuple[FloatArray, ...], tuple[FloatArray, ...], Activation, bool] | None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    kind = type(model)
    if not hasattr(model, "n_features_in_"):
        return None  # not fitted
    if kind is LogisticRegression:
        coef = np.asarray(model.coef_, dtype=np.float64)
        if coef.shape[0] > 1 and _one_vs_rest(model):
            return None  # normalised per-class sigmoids, not a softmax of the logits
        return (
            (coef.T,),
            (np.asarray(model.intercept_, dtype=np.float64),),
            "identity",
            (coef.shape[0] == 1),
        )
    if kind is MLPClassifier:
        if model.out_activation_ not in ("softmax", "logistic"):
            return None  # multilabel output: independent sigmoids
        if model.activation not in ("relu", "tanh", "logistic", "identity"):
            return None
        weights = tuple(np.asarray(w, dtype=np.float64) for w in model.coefs_)
        biases = tuple(np.asarray(b, dtype=np.float64) for b in model.intercepts_)
        return weights, biases, model.activation, model.out_activation_ == "logistic"
    return None


def _one_vs_rest(model: Any) -> bool:
    """A multiclass LogisticRegression that is one-vs-rest: `multi_class="ovr"` (older
    scikit-learn, kept by pickles) or the liblinear solver, which is always one-vs-rest."""
    return getattr(model, "multi_class", "auto") == "ovr" or model.solver == "liblinear"
