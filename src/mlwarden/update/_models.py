"""One view over the model kinds the update gate compares.

A version becomes an `UpdateModel`: its named tensors and hyperparameters (for the
structural diff), a `predict_proba` (for the canary behaviour) and, where it has one,
its dense array form (`mlwarden._dense`: exact log-probabilities far from the data for
the trigger search, hidden activations for the representation screen).

Supported: any scikit-learn classifier with `predict_proba` (the array form for
`LogisticRegression` and `MLPClassifier`, alone or after affine scalers; others are
searched through `predict_proba`); PyTorch state dicts of a feed-forward chain of
Linear layers (the activation between them is the policy's `torch_activation`).
Anything else is refused (E183), never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden._dense import Activation, DenseForm, from_sklearn
from mlwarden.errors import UnsupportedUpdateModelError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateModel:
    """One version of a model as the update gate sees it."""

    kind: str
    """`sklearn` or `torch`."""
    estimator: str
    """The estimator's class (or pipeline of classes), or `state_dict`."""
    params: Mapping[str, str] = field(default_factory=dict)
    tensors: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    n_features: int = 0
    network: DenseForm | None = None
    predict: Callable[[FloatArray], FloatArray] | None = None
    """Class probabilities for raw input rows."""
    represent: Callable[[FloatArray], FloatArray] | None = None
    """The representation the classifier's last layer reads (hidden activations or scores)."""


def as_update_model(obj: Any, *, activation: str = "relu", where: str = "model") -> UpdateModel:
    """The update gate's view of a loaded model; E183 for a kind it cannot compare."""
    if isinstance(obj, Mapping):
        return _from_state_dict(obj, activation, where)
    if hasattr(obj, "get_params") and hasattr(obj, "predict_proba"):
        return _from_sklearn(obj, where)
    raise UnsupportedUpdateModelError(
        f"{where}: a {type(obj).__name__} is not a model the update gate compares",
        hint="scikit-learn classifiers with predict_proba, or PyTorch state dicts of Linear layers",
    )


# --- scikit-learn ------------------------------------------------------------------


def _steps(obj: Any) -> list[tuple[str, Any]]:
    steps = getattr(obj, "steps", None)
    if isinstance(steps, list):
        return [(str(name), step) for name, step in steps]
    return [(type(obj).__name__.lower(), obj)]


def _fitted_arrays(name: str, step: Any) -> dict[str, npt.NDArray[Any]]:
    """The fitted numeric attributes of one step (scikit-learn's trailing underscore)."""
    found: dict[str, npt.NDArray[Any]] = {}
    for attr, value in sorted(vars(step).items()):
        if not attr.endswith("_") or attr.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and attr != "classes_":
            found[f"{name}.{attr}"] = value
        elif isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
            for i, item in enumerate(value):
                if item.dtype.kind in "fiu":
                    found[f"{name}.{attr}.{i}"] = item
    return found


def _param_text(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, tuple | list):
        return repr(tuple(value))
    return type(value).__name__


def _from_sklearn(obj: Any, where: str) -> UpdateModel:
    steps = _steps(obj)
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, step in steps:
        tensors.update(_fitted_arrays(name, step))
    params = {
        key: _param_text(value)
        for key, value in sorted(obj.get_params(deep=True).items())
        if key != "steps" and not hasattr(value, "get_params")
    }
    classes = getattr(obj, "classes_", None)
    if classes is None:
        raise UnsupportedUpdateModelError(f"{where}: the estimator is not fitted (no classes_)")
    n_features = int(getattr(obj, "n_features_in_", 0))
    network = from_sklearn(obj)

    def predict(x: FloatArray) -> FloatArray:
        return np.asarray(obj.predict_proba(x), dtype=np.float64)

    represent: Callable[[FloatArray], FloatArray]
    if network is not None:
        represent = _network_represent(network)
    elif hasattr(obj, "decision_function"):

        def represent(x: FloatArray) -> FloatArray:
            scores = np.asarray(obj.decision_function(x), dtype=np.float64)
            return scores.reshape(len(x), -1)

    else:
        represent = predict
    return UpdateModel(
        kind="sklearn",
        estimator=" > ".join(f"{type(s).__module__}.{type(s).__name__}" for _, s in steps),
        params=params,
        tensors=tensors,
        classes=tuple(str(c) for c in classes),
        n_features=n_features,
        network=network,
        predict=predict,
        represent=represent,
    )


# --- PyTorch state dicts ----------------------------------------------------------------


def _from_state_dict(state: Mapping[Any, Any], activation: str, where: str) -> UpdateModel:
    tensors: dict[str, npt.NDArray[Any]] = {}
    for key, value in state.items():
        array = _as_array(value)
        if array is None:
            raise UnsupportedUpdateModelError(
                f"{where}: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        tensors[str(key)] = array
    if not tensors:
        raise UnsupportedUpdateModelError(f"{where}: the state dict holds no tensors")
    if activation not in _TORCH_ACTIVATIONS:
        raise UnsupportedUpdateModelError(
            f"{where}: activation {activation!r} is not one the gate runs "
            f"({', '.join(_TORCH_ACTIVATIONS)})"
        )
    network = _chain(tensors, activation)
    if network is None:
        raise UnsupportedUpdateModelError(
            f"{where}: the state dict is not a feed-forward chain of Linear layers "
            "(weight [out, in] with bias [out], each layer's input the last one's output)",
            hint="the update gate runs Linear-layer networks; compare others from Python "
            "with compare() and your own predict function",
        )
    return UpdateModel(
        kind="torch",
        estimator="state_dict",
        tensors=tensors,
        classes=tuple(str(i) for i in range(max(2, network.weights[-1].shape[1]))),
        n_features=network.width,
        network=network,
        predict=network_predict(network),
        represent=_network_represent(network),
    )


def _as_array(value: Any) -> npt.NDArray[Any] | None:
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if detach is None:
        return None
    array: npt.NDArray[Any] = detach().cpu().numpy()
    return array


def _chain(tensors: Mapping[str, npt.NDArray[Any]], activation: str) -> DenseForm | None:
    """Linear layers in state-dict order: `X.weight` [out, in] then `X.bias` [out]."""
    weights: list[FloatArray] = []
    biases: list[FloatArray] = []
    names = list(tensors)
    for name in names:
        if not name.endswith(".weight") and name != "weight":
            if not (name.endswith(".bias") or name == "bias"):
                return None  # buffers, norms, embeddings: not a plain Linear chain
            continue
        weight = tensors[name]
        bias_name = name[: -len("weight")] + "bias"
        if weight.ndim != 2 or bias_name not in tensors:
            return None
        bias = tensors[bias_name]
        if bias.shape != (weight.shape[0],):
            return None
        if weights and weights[-1].shape[1] != weight.shape[1]:
            return None
        weights.append(weight.astype(np.float64).T)
        biases.append(bias.astype(np.float64))
    if not weights or len(weights) * 2 != len(names):
        return None
    width = weights[0].shape[0]
    return DenseForm(
        mul=np.ones(width),
        add=np.zeros(width),
        weights=tuple(weights),
        biases=tuple(biases),
        activation=_TORCH_ACTIVATIONS[activation],
        binary=weights[-1].shape[1] == 1,
    )


_TORCH_ACTIVATIONS: dict[str, Activation] = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "logistic",
}


# --- the array form, run ------------------------------------------------------------


def network_predict(network: DenseForm) -> Callable[[FloatArray], FloatArray]:
    def predict(x: FloatArray) -> FloatArray:
        probabilities: FloatArray = np.exp(network.log_proba(x))
        return probabilities

    return predict


def _network_represent(network: DenseForm) -> Callable[[FloatArray], FloatArray]:
    def represent(x: FloatArray) -> FloatArray:
        hidden, logits = network.hidden_and_logits(x)
        return hidden if len(network.weights) > 1 else logits

    return represent
