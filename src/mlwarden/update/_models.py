"""One view over the model kinds the update gate compares.

A version becomes an `UpdateModel`: its named tensors and hyperparameters (for the
structural diff), a `predict_proba` (for the canary behaviour) and, where it can be
re-expressed exactly, a PyTorch network from raw input to logits (for the trigger
search, which needs gradients). Written here rather than borrowed: the gate needs
exact re-expressions it can check against scikit-learn's own probabilities, and only
for the few kinds it can then vouch for.

Supported: scikit-learn `LogisticRegression` and `MLPClassifier`, alone or in a
`Pipeline` after `StandardScaler`/`MinMaxScaler` steps (any other classifier with
`predict_proba` gets structure and behaviour, not the trigger search); PyTorch state
dicts of a feed-forward chain of Linear layers (the activation between them is the
policy's `torch_activation`). Anything else is refused (E183), never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.errors import UnsupportedUpdateModelError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """One affine map of a re-expressed network: out = in @ weight.T + bias."""

    weight: FloatArray
    bias: FloatArray


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    """A classifier as arrays: input scaling, affine layers, activations, output."""

    shift: FloatArray
    scale: FloatArray
    layers: tuple[Layer, ...]
    activation: str
    binary: bool
    """One output unit (logistic): class 1's logit; class 0's is 0."""

    def module(self) -> Any:
        """The network as a torch.nn.Module from raw input to logits (float64)."""
        return _torch_module(self)


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
    network: Network | None = None
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
    network = _sklearn_network(steps)

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


def _sklearn_network(steps: list[tuple[str, Any]]) -> Network | None:
    """The exact array form of scaler steps + a linear model or MLP; None otherwise."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    *pre, (_, last) = steps
    width = int(getattr(last, "n_features_in_", 0))
    shift = np.zeros(width)
    scale = np.ones(width)
    for _, step in pre:
        # Compose x -> (x - shift) / scale through each scaler in order.
        if isinstance(step, StandardScaler):
            mean = step.mean_ if step.with_mean else np.zeros(width)
            std = step.scale_ if step.with_std and step.scale_ is not None else np.ones(width)
            shift, scale = shift + scale * mean, scale * std
        elif isinstance(step, MinMaxScaler) and not step.clip:
            # MinMaxScaler: x * scale_ + min_  ==  (x - (-min_/scale_)) / (1/scale_)
            s = np.asarray(step.scale_, dtype=np.float64)
            m = np.asarray(step.min_, dtype=np.float64)
            safe = np.where(s != 0, s, 1.0)
            shift, scale = shift + scale * (-m / safe), scale / safe
        else:
            return None
    if isinstance(last, LogisticRegression):
        coef = np.asarray(last.coef_, dtype=np.float64)
        if coef.shape[0] > 1 and getattr(last, "multi_class", "auto") == "ovr":
            return None  # one-vs-rest probabilities are normalised sigmoids, not a softmax
        layer = Layer(weight=coef, bias=np.asarray(last.intercept_, dtype=np.float64))
        return Network(
            shift=shift, scale=scale, layers=(layer,), activation="identity",
            binary=coef.shape[0] == 1,
        )  # fmt: skip
    if isinstance(last, MLPClassifier) and last.out_activation_ in ("softmax", "logistic"):
        layers = tuple(
            Layer(weight=np.asarray(w, dtype=np.float64).T, bias=np.asarray(b, dtype=np.float64))
            for w, b in zip(last.coefs_, last.intercepts_, strict=True)
        )
        if last.activation not in ("relu", "tanh", "logistic", "identity"):
            return None
        activation = "sigmoid" if last.activation == "logistic" else last.activation
        return Network(
            shift=shift, scale=scale, layers=layers, activation=activation,
            binary=last.out_activation_ == "logistic",
        )  # fmt: skip
    return None


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
        classes=tuple(str(i) for i in range(max(2, network.layers[-1].weight.shape[0]))),
        n_features=int(network.layers[0].weight.shape[1]),
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


def _chain(tensors: Mapping[str, npt.NDArray[Any]], activation: str) -> Network | None:
    """Linear layers in state-dict order: `X.weight` [out, in] then `X.bias` [out]."""
    layers: list[Layer] = []
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
        if layers and layers[-1].weight.shape[0] != weight.shape[1]:
            return None
        layers.append(Layer(weight=weight.astype(np.float64), bias=bias.astype(np.float64)))
    if not layers or len(layers) * 2 != len(names):
        return None
    width = layers[0].weight.shape[1]
    out = layers[-1].weight.shape[0]
    return Network(
        shift=np.zeros(width),
        scale=np.ones(width),
        layers=tuple(layers),
        activation=activation,
        binary=out == 1,
    )


# --- the array form, run ------------------------------------------------------------


def _activate(z: FloatArray, activation: str) -> FloatArray:
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "tanh":
        return np.tanh(z)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def network_hidden(network: Network, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(the last hidden representation, the logits) of raw rows, in NumPy."""
    h = (np.asarray(x, dtype=np.float64) - network.shift) / network.scale
    for layer in network.layers[:-1]:
        h = _activate(h @ layer.weight.T + layer.bias, network.activation)
    last = network.layers[-1]
    logits = h @ last.weight.T + last.bias
    if network.binary:
        logits = np.column_stack([np.zeros(len(logits)), logits[:, 0]])
    return h, logits


def network_predict(network: Network) -> Callable[[FloatArray], FloatArray]:
    log_proba = network_log_proba(network)

    def predict(x: FloatArray) -> FloatArray:
        probabilities: FloatArray = np.exp(log_proba(x))
        return probabilities

    return predict


def network_log_proba(network: Network) -> Callable[[FloatArray], FloatArray]:
    """Raw rows to log-softmax of the logits (exact far from the data, where probabilities
    underflow)."""

    def log_proba(x: FloatArray) -> FloatArray:
        _, logits = network_hidden(network, x)
        logits = logits - logits.max(axis=1, keepdims=True)
        result: FloatArray = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return result

    return log_proba


def _network_represent(network: Network) -> Callable[[FloatArray], FloatArray]:
    def represent(x: FloatArray) -> FloatArray:
        hidden, logits = network_hidden(network, x)
        return hidden if len(network.layers) > 1 else logits

    return represent


def _torch_module(network: Network) -> Any:
    import torch

    class _Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shift = torch.tensor(network.shift, dtype=torch.float64)
            self.scale = torch.tensor(network.scale, dtype=torch.float64)
            f64 = torch.float64
            self.weights = [torch.tensor(layer.weight, dtype=f64) for layer in network.layers]
            self.biases = [torch.tensor(layer.bias, dtype=f64) for layer in network.layers]

        def forward(self, x: Any) -> Any:
            h = (x - self.shift) / self.scale
            last = len(self.weights) - 1
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                h = h @ w.T + b
                if i < last:
                    if network.activation == "relu":
                        h = torch.relu(h)
                    elif network.activation == "tanh":
                        h = torch.tanh(h)
                    elif network.activation == "sigmoid":
                        h = torch.sigmoid(h)
            if network.binary:
                h = torch.cat([torch.zeros_like(h), h], dim=1)
            return h

    return _Net().eval()
