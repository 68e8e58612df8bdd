"""Representation space: screen what a model sees instead of the raw features.

A representation is a function from the feature matrix (rows by features) to another
matrix with one row per row. Two ways to get one:

- `model_embedding(model)`: from a model already loaded (the CLI loads it only through
  `mlwarden.load`, so only a verified, scanned file is ever deserialized). A scikit-learn
  MLP (or a Pipeline ending in one) gives its last hidden layer's activations; a PyTorch
  state dict of Linear layers is run as the MLP it describes (ReLU between layers) and
  gives the input of its last layer; any other scikit-learn estimator gives
  `predict_proba`, else `decision_function`, else `transform`.
- `import_embedding("package.module:function")`: a function the user names. This RUNS
  THE USER'S CODE: it is for code the user trusts as much as their training code.

`represent(embed, x)` calls either and checks what comes back (E145-E147).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.errors import (
    EmbeddingFailedError,
    EmbeddingShapeError,
    EmbeddingValueError,
    EmbedSpecError,
    MlwardenError,
    NoRepresentationError,
)

FloatArray = npt.NDArray[np.float64]
Embed = Callable[[FloatArray], Any]

_ACTIVATIONS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "relu": lambda a: np.maximum(a, 0.0),
    "tanh": np.tanh,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "identity": lambda a: a,
}


def represent(embed: Embed, features: FloatArray) -> FloatArray:
    """`embed(features)` as a checked 2-D float array with one row per input row."""
    try:
        out = embed(features)
    except MlwardenError:
        raise
    # SystemExit too: user code that exits must not end the screen with its status.
    except (Exception, SystemExit) as exc:  # user code or a model: any failure is the input's
        raise EmbeddingFailedError(
            f"the representation failed on the dataset's features: {type(exc).__name__}: {exc}",
            hint="check that the model or function takes this dataset's feature columns",
        ) from None
    try:
        raw = np.asarray(_numpy(out))
        if raw.dtype.kind == "c":
            # Casting would silently drop the imaginary parts.
            raise TypeError(f"it holds complex numbers ({raw.dtype})")
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError, AttributeError) as exc:
        raise EmbeddingValueError(f"the representation is not numeric: {exc}") from None
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    rows = features.shape[0]
    if arr.ndim != 2 or arr.shape[0] != rows or arr.shape[1] == 0:
        raise EmbeddingShapeError(
            f"the representation has shape {arr.shape}; expected ({rows}, d): "
            "one row of numbers per dataset row",
        )
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise EmbeddingValueError(
            f"the representation has a missing or infinite value in row "
            f"{int(np.flatnonzero(~finite)[0])}"
        )
    return arr


def _numpy(out: Any) -> Any:
    """A torch tensor (or anything with `.detach().numpy()`) as a numpy array."""
    detach = getattr(out, "detach", None)
    if not callable(detach):
        return out
    tensor = detach().cpu()
    # bfloat16 has no NumPy dtype; float32 holds every bfloat16 value exactly.
    if str(getattr(tensor, "dtype", "")) == "torch.bfloat16":
        tensor = tensor.float()
    return tensor.numpy()


def import_embedding(spec: str) -> Embed:
    """The function named `module:function` (imported, so its module's code runs)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise EmbedSpecError(
            f"--embed wants module:function, not {spec!r}",
            hint="for example mypackage.features:embed",
        )
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # importing user code: any failure is the spec's
        raise EmbedSpecError(
            f"cannot import {module_name!r} for --embed: {type(exc).__name__}: {exc}",
            hint="the module must be importable from the current directory or sys.path",
        ) from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise EmbedSpecError(f"{module_name!r} has no {attribute!r}")
    if not callable(target):
        raise EmbedSpecError(f"{spec!r} is not callable")
    function: Embed = target
    return function


def model_embedding(model: Any) -> Embed:
    """The representation a loaded model gives (see the module docstring); E148 if none."""
    if isinstance(model, Mapping):
        return _state_dict_mlp(model)
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        head = steps[:-1]
        last = steps[-1][1]
        inner = model_embedding(last)

        def through(x: FloatArray) -> Any:
            for _, step in head:
                if step is None or step == "passthrough":
                    continue
                x = step.transform(x)
            return inner(x)

        return through
    if hasattr(model, "coefs_") and hasattr(model, "intercepts_"):
        return _sklearn_mlp(model)
    for method in ("predict_proba", "decision_function", "transform"):
        function = getattr(model, method, None)
        if callable(function):
            chosen: Embed = function
            return chosen
    raise NoRepresentationError(
        f"cannot compute a representation from a {type(model).__name__}",
        hint="give a scikit-learn estimator, a PyTorch state dict of Linear layers, "
        "or --embed module:function",
    )


def _sklearn_mlp(model: Any) -> Embed:
    """The last hidden layer of a fitted scikit-learn MLPClassifier or MLPRegressor."""
    act = _ACTIVATIONS.get(str(getattr(model, "activation", "relu")))
    if act is None:
        raise NoRepresentationError(f"unknown MLP activation {model.activation!r}")
    weights = [np.asarray(w, dtype=np.float64) for w in model.coefs_[:-1]]
    biases = [np.asarray(b, dtype=np.float64) for b in model.intercepts_[:-1]]
    if not weights:
        raise NoRepresentationError("the MLP has no hidden layer")

    def hidden(x: FloatArray) -> FloatArray:
        _fits(x, weights[0].shape[0])
        for w, b in zip(weights, biases, strict=True):
            x = act(x @ w + b)
        return x

    return hidden


def _state_dict_mlp(state: Mapping[str, Any]) -> Embed:
    """A state dict of Linear layers (`name.weight` out x in, `name.bias`) as an MLP.

    The layers run in the dict's order with ReLU between them; the representation is the
    input of the last layer (with a single layer, its outputs).
    """
    layers: list[tuple[FloatArray, FloatArray]] = []
    for name, value in state.items():
        if not str(name).endswith(".weight"):
            continue
        weight = _layer_array(name, value)
        bias_value = state.get(str(name)[: -len("weight")] + "bias")
        bias = np.zeros(weight.shape[0]) if bias_value is None else _layer_array(name, bias_value)
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise NoRepresentationError(
                f"layer {name!r} is not a Linear layer (weight shape {weight.shape})",
                hint="for other architectures give --embed module:function",
            )
        if layers and layers[-1][0].shape[0] != weight.shape[1]:
            raise NoRepresentationError(
                f"layer {name!r} takes {weight.shape[1]} inputs but the layer before it "
                f"gives {layers[-1][0].shape[0]}",
                hint="for other architectures give --embed module:function",
            )
        layers.append((weight, bias))
    if not layers:
        raise NoRepresentationError("the state dict has no Linear layer weights")
    body = layers[:-1] if len(layers) > 1 else layers

    def hidden(x: FloatArray) -> FloatArray:
        _fits(x, body[0][0].shape[1])
        for index, (weight, bias) in enumerate(body):
            x = x @ weight.T + bias
            if len(layers) > 1 or index < len(body) - 1:
                x = np.maximum(x, 0.0)
        return x

    return hidden


def _layer_array(name: object, value: object) -> FloatArray:
    """A layer's weight or bias as real float64 numbers; E148 for anything else."""
    try:
        raw = np.asarray(_numpy(value))
    except (TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise NoRepresentationError(f"layer {name!r} is not numeric: {exc}") from None
    if raw.dtype.kind not in "biuf":
        raise NoRepresentationError(
            f"layer {name!r} holds {raw.dtype} values, not real numbers",
            hint="for other architectures give --embed module:function",
        )
    return np.asarray(raw, dtype=np.float64)


def _fits(x: FloatArray, inputs: int) -> None:
    if x.shape[1] != inputs:
        raise NoRepresentationError(
            f"the model takes {inputs} features; the dataset has {x.shape[1]}",
            hint="give the model trained on this dataset's feature columns",
        )
