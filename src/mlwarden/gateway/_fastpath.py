"""An exact fast path for the scikit-learn models the gateway serves.

For one row, most of `predict_proba`'s time is scikit-learn's per-call work (input
validation, configuration contexts, namespace dispatch), not arithmetic: a 64-feature
logistic regression is one 64x10 product. The gateway's input guard has already checked
shape, dtype and finiteness, so at load time the known estimators are compiled into their
fitted parameter arrays and replayed with the same float64 operations in the same order as
scikit-learn's own code (scaler arithmetic, `X @ coef_.T + intercept_`, `expit`, the
max-shifted softmax), which gives the same probabilities.

Written here rather than taken from a library because exactness is the point: converters
(skl2onnx, hummingbird) change the dtype or the operation order. Anything not listed, and
any fitted configuration not reproduced exactly, is not compiled; `compile_predict_proba`
then raises `NotCompilable` with the reason, and the adapter calls the estimator's own
`predict_proba`. A compiled model is also checked against the estimator on probe rows at
load time, so a scikit-learn release that changes a formula falls back instead of drifting.

The update gate and the assessment share one array form of these models
(`mlwarden._dense`), which folds the scalers into one multiply-add; that is exact to about
1e-12 but not step for step, so serving keeps its own replay here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

Array = np.ndarray[Any, Any]
Step = Callable[[Array], Array]

# Largest difference from the estimator's own probabilities a compiled model may show on
# the load-time probe rows (the documented guarantee is this bound, float64).
TOLERANCE = 1e-12


class NotCompilable(Exception):
    """The estimator stays on its own `predict_proba`; the message says why."""


@dataclass(frozen=True, slots=True)
class CompiledProba:
    """`predict_proba` of a compiled estimator, for float64 (batch, n_features) input."""

    n_features: int
    steps: tuple[Step, ...]
    final: Step
    description: str
    """What was compiled, e.g. 'StandardScaler -> LogisticRegression(multinomial)'."""

    def accepts(self, x: Array) -> bool:
        """Whether `x` is input the replay is exact for (else the estimator is called)."""
        return x.dtype == np.float64 and x.ndim == 2 and x.shape[1] == self.n_features

    def __call__(self, x: Array) -> Array:
        for step in self.steps:
            x = step(x)
        return self.final(x)


def _params(value: Any) -> Array:
    """A read-only float64 copy keeping the array's memory layout (so that the matrix
    products take the same BLAS path as scikit-learn's)."""
    array = np.array(value, dtype=np.float64, order="K", copy=True)
    array.setflags(write=False)
    return array


def _features(estimator: Any) -> int:
    count = getattr(estimator, "n_features_in_", None)
    if not isinstance(count, int | np.integer):
        raise NotCompilable(f"{type(estimator).__name__} has no n_features_in_")
    return int(count)


# --- transformers: each returns a new array, the input is never written -------------------


def _standard_scaler(step: Any) -> Step | None:
    # sklearn: X -= mean_ (with_mean); X /= scale_ (with_std; zero scales were set to 1 at fit).
    mean = _params(step.mean_) if step.with_mean else None
    scale = _params(step.scale_) if step.with_std else None
    if mean is not None and scale is not None:
        m, s = mean, scale

        def center_scale(x: Array) -> Array:
            out = x - m
            out /= s
            return out

        return center_scale
    if mean is not None:
        m = mean
        return lambda x: x - m
    if scale is not None:
        s = scale
        return lambda x: x / s
    return None


def _min_max_scaler(step: Any) -> Step:
    # sklearn: X *= scale_; X += min_; clip to feature_range when clip=True.
    scale, offset = _params(step.scale_), _params(step.min_)
    low, high = (np.asarray(v, dtype=np.float64) for v in step.feature_range)
    clip = bool(step.clip)

    def min_max(x: Array) -> Array:
        out = x * scale
        out += offset
        if clip:
            np.clip(out, low, high, out=out)
        return out

    return min_max


def _max_abs_scaler(step: Any) -> Step:
    # sklearn: X /= scale_; clip to [-1, 1] when clip=True.
    scale = _params(step.scale_)
    clip = bool(getattr(step, "clip", False))
    low, high = np.asarray(-1.0), np.asarray(1.0)

    def max_abs(x: Array) -> Array:
        out = x / scale
        if clip:
            np.clip(out, low, high, out=out)
        return out

    return max_abs


# --- final estimators ---------------------------------------------------------------------


def _softmax_inplace(scores: Array) -> Array:
    """sklearn.utils.extmath.softmax(copy=False): shift by the row max, exp, normalize."""
    scores -= scores.max(axis=1).reshape(-1, 1)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1).reshape(-1, 1)
    return scores


def _logistic_regression(est: Any) -> tuple[Step, str]:
    coef = _params(est.coef_)
    intercept = _params(est.intercept_)
    n_classes = len(est.classes_)
    if coef.ndim != 2 or intercept.shape != (coef.shape[0],):
        raise NotCompilable("LogisticRegression coef_/intercept_ of an unexpected shape")
    coef_t = coef.T  # a view, as in decision_function
    if n_classes == 2 and coef.shape[0] == 1:
        # _predict_proba_lr: expit of the 1-d decision function, then [1 - p, p].
        def binary(x: Array) -> Array:
            p = (x @ coef_t + intercept).reshape(-1)
            expit(p, out=p)
            return np.stack([1 - p, p], axis=1)

        return binary, "LogisticRegression(binary)"
    if n_classes > 2 and coef.shape[0] == n_classes:

        def multinomial(x: Array) -> Array:
            return _softmax_inplace(x @ coef_t + intercept)

        return multinomial, "LogisticRegression(multinomial)"
    raise NotCompilable(f"LogisticRegression with {n_classes} classes and coef_ {coef.shape}")


def _linear_parts(est: Any) -> tuple[Array, Array, int]:
    coef = _params(est.coef_)
    intercept = _params(est.intercept_)
    n_classes = len(est.classes_)
    rows = 1 if n_classes == 2 else n_classes
    if coef.ndim != 2 or coef.shape[0] != rows or intercept.shape != (rows,):
        raise NotCompilable(f"{type(est).__name__} coef_ {coef.shape} for {n_classes} classes")
    return coef.T, intercept, n_classes  # coef.T is a view, as in decision_function


def _normalize_ovr(prob: Array, n_classes: int) -> Array:
    # LinearClassifierMixin._predict_proba_lr / SGDClassifier: rows summing to 0 -> uniform.
    prob_sum = prob.sum(axis=1)
    all_zero = prob_sum == 0
    if np.any(all_zero):
        prob[all_zero, :] = 1
        prob_sum[all_zero] = n_classes
    prob /= prob_sum.reshape((prob.shape[0], -1))
    return prob


def _sgd_classifier(est: Any) -> tuple[Step, str]:
    coef_t, intercept, n_classes = _linear_parts(est)
    if est.loss == "log_loss":
        # _predict_proba_lr: expit of the decision function; one-vs-rest normalization.
        def log_loss(x: Array) -> Array:
            prob = x @ coef_t + intercept
            if n_classes == 2:
                p = prob.reshape(-1)
                expit(p, out=p)
                return np.stack([1 - p, p], axis=1)
            expit(prob, out=prob)
            return _normalize_ovr(prob, n_classes)

        return log_loss, "SGDClassifier(log_loss)"
    if est.loss == "modified_huber":
        # SGDClassifier.predict_proba: (clip(scores, -1, 1) + 1) / 2, then [1 - p, p] or
        # the one-vs-rest normalization.
        def modified_huber(x: Array) -> Array:
            scores = x @ coef_t + intercept
            if n_classes == 2:
                scores = scores.reshape(-1)
                prob2 = np.ones((scores.shape[0], 2))
                prob = prob2[:, 1]
            else:
                prob = scores
            np.clip(scores, -1, 1, prob)
            prob += 1.0
            prob /= 2.0
            if n_classes == 2:
                prob2[:, 0] -= prob
                return prob2
            return _normalize_ovr(prob, n_classes)

        return modified_huber, "SGDClassifier(modified_huber)"
    raise NotCompilable(f"SGDClassifier loss {est.loss!r} has no predict_proba")


_HIDDEN: dict[str, Callable[[Array], object] | None] = {
    # sklearn.neural_network._base.ACTIVATIONS, all in place.
    "identity": None,
    "relu": lambda a: np.maximum(a, 0, out=a),
    "tanh": lambda a: np.tanh(a, out=a),
    "logistic": lambda a: expit(a, out=a),
}


def _mlp_softmax_inplace(a: Array) -> Array:
    # sklearn.neural_network._base.inplace_softmax (a different order from extmath.softmax).
    tmp = a - a.max(axis=1)[:, np.newaxis]
    np.exp(tmp, out=a)
    a /= a.sum(axis=1)[:, np.newaxis]
    return a


def _mlp_classifier(est: Any) -> tuple[Step, str]:
    if est.activation not in _HIDDEN:
        raise NotCompilable(f"MLPClassifier activation {est.activation!r}")
    binarizer = getattr(est, "_label_binarizer", None)
    if getattr(binarizer, "y_type_", None) not in ("binary", "multiclass"):
        raise NotCompilable("MLPClassifier fitted on multilabel targets")
    hidden = _HIDDEN[est.activation]
    layers = tuple(
        (_params(w), _params(b)) for w, b in zip(est.coefs_, est.intercepts_, strict=True)
    )
    if len(layers) != est.n_layers_ - 1:
        raise NotCompilable("MLPClassifier layers do not match n_layers_")
    *inner, (last_w, last_b) = layers

    def forward(x: Array) -> Array:
        # _forward_pass_fast: a = a @ W; a += b; hidden activation except after the last.
        a = x
        for w, b in inner:
            a = a @ w
            a += b
            if hidden is not None:
                hidden(a)
        a = a @ last_w
        a += last_b
        return a

    if est.out_activation_ == "softmax" and est.n_outputs_ > 2:

        def multiclass(x: Array) -> Array:
            return _mlp_softmax_inplace(forward(x))

        return multiclass, f"MLPClassifier({est.activation}, softmax)"
    if est.out_activation_ == "logistic" and est.n_outputs_ == 1:

        def binary(x: Array) -> Array:
            y = forward(x)
            expit(y, out=y)
            y = y.ravel()
            return np.vstack([1 - y, y]).T

        return binary, f"MLPClassifier({est.activation}, logistic)"
    raise NotCompilable(
        f"MLPClassifier output {est.out_activation_!r} with {est.n_outputs_} outputs"
    )


def compile_predict_proba(estimator: Any) -> CompiledProba:
    """Compile a fitted estimator or Pipeline; `NotCompilable` when it is not reproduced
    exactly. Classes are matched exactly (a subclass may override the arithmetic)."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    transformers: dict[type, Callable[[Any], Step | None]] = {
        StandardScaler: _standard_scaler,
        MinMaxScaler: _min_max_scaler,
        MaxAbsScaler: _max_abs_scaler,
    }
    finals: dict[type, Callable[[Any], tuple[Step, str]]] = {
        LogisticRegression: _logistic_regression,
        MLPClassifier: _mlp_classifier,
        SGDClassifier: _sgd_classifier,
    }
    if type(estimator) is Pipeline:
        if not estimator.steps:
            raise NotCompilable("an empty Pipeline")
        chain = [step for _, step in estimator.steps]
    else:
        chain = [estimator]
    *before, last = chain
    steps: list[Step] = []
    names: list[str] = []
    n_features: int | None = None
    for step in before:
        if step is None or step == "passthrough":
            continue
        build = transformers.get(type(step))
        if build is None:
            raise NotCompilable(f"transformer {type(step).__name__} is not compiled")
        n_features = _features(step) if n_features is None else n_features
        compiled = build(step)
        if compiled is not None:
            steps.append(compiled)
        names.append(type(step).__name__)
    build_final = finals.get(type(last))
    if build_final is None:
        raise NotCompilable(f"estimator {type(last).__name__} is not compiled")
    final, name = build_final(last)
    names.append(name)
    return CompiledProba(
        n_features=_features(last) if n_features is None else n_features,
        steps=tuple(steps),
        final=final,
        description=" -> ".join(names),
    )


def probe_rows(n_features: int) -> Array:
    """Rows the load-time check compares on: zeros, standard normal, and wide values."""
    rng = np.random.default_rng(0)
    return np.vstack(
        [
            np.zeros((1, n_features)),
            rng.standard_normal((8, n_features)),
            rng.uniform(-50.0, 50.0, (8, n_features)),
        ]
    )


def check_against(compiled: CompiledProba, estimator: Any) -> None:
    """Fail (NotCompilable) unless the compiled model matches the estimator on probe rows."""
    x = probe_rows(compiled.n_features)
    expected = np.asarray(estimator.predict_proba(x), dtype=np.float64)
    got = compiled(x)
    if got.shape != expected.shape:
        raise NotCompilable(f"compiled output {got.shape} but predict_proba {expected.shape}")
    difference = float(np.max(np.abs(got - expected)))
    if not difference <= TOLERANCE:  # also refuses NaN
        raise NotCompilable(f"compiled output differs from predict_proba by {difference:.3g}")
