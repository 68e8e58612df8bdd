"""Local targets: a fitted scikit-learn model, a torch module, an ONNX Runtime session.

`local_target` loads a model file only through `mlwarden.load` (signature verified,
bytes scanned, no code run) and wraps what it gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from mlwarden.assess._sklearn_torch import sklearn_to_torch, supports_torch
from mlwarden.assess._target import Output, TargetBase
from mlwarden.errors import (
    TargetMismatchError,
    TargetOutputError,
    UnsupportedTargetError,
    UsageError,
)

__all__ = ["OnnxTarget", "SklearnTarget", "TorchTarget", "local_target"]

_UNBOUNDED = (-np.inf, np.inf)


class SklearnTarget(TargetBase):
    """A fitted scikit-learn classifier with `predict_proba`.

    Class indices are positions in `estimator.classes_`. LogisticRegression and
    MLPClassifier (alone or after scalers in a Pipeline) are also white-box through
    an exact torch re-expression; `torch_module()` raises E173 for the others.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        name: str | None = None,
        input_shape: tuple[int, ...] | None = None,
        value_range: tuple[float, float] = _UNBOUNDED,
        output: Output = "scores",
        max_queries: int | None = None,
    ) -> None:
        classes = getattr(estimator, "classes_", None)
        if classes is None or not hasattr(estimator, "predict_proba"):
            raise UnsupportedTargetError(
                f"{type(estimator).__name__} is not a fitted classifier with predict_proba"
            )
        n_features = getattr(estimator, "n_features_in_", None)
        if input_shape is None:
            if n_features is None:
                raise UsageError("input_shape is needed: the estimator does not record it")
            input_shape = (int(n_features),)
        elif n_features is not None and int(np.prod(input_shape)) != int(n_features):
            raise TargetMismatchError(
                f"{name or type(estimator).__name__}: takes {int(n_features)} features per "
                f"sample, the data has samples of shape {tuple(input_shape)}"
            )
        super().__init__(
            name=name or type(estimator).__name__,
            n_classes=len(classes),
            input_shape=input_shape,
            value_range=value_range,
            output=output,
            max_queries=max_queries,
        )
        self.estimator = estimator
        self._module: torch.nn.Module | None = None

    @property
    def white_box(self) -> bool:
        return supports_torch(self.estimator)

    def torch_module(self) -> torch.nn.Module:
        if self._module is None:
            self._module = sklearn_to_torch(self.estimator)
        return self._module

    def _query(self, x: NDArray[np.float32]) -> NDArray[np.generic]:
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        if self.output == "labels":
            return np.asarray(np.asarray(self.estimator.predict_proba(flat)).argmax(axis=1))
        return np.asarray(self.estimator.predict_proba(flat))


class TorchTarget(TargetBase):
    """A torch module returning logits; its scores are the softmax of the logits."""

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        input_shape: tuple[int, ...],
        value_range: tuple[float, float] = _UNBOUNDED,
        n_classes: int | None = None,
        name: str | None = None,
        output: Output = "scores",
        max_queries: int | None = None,
        batch_size: int = 1024,
    ) -> None:
        module.eval()
        if n_classes is None:
            with torch.no_grad():
                probe = module(torch.zeros((1, *input_shape), dtype=torch.float32))
            n_classes = int(probe.shape[-1])
        super().__init__(
            name=name or type(module).__name__,
            n_classes=n_classes,
            input_shape=input_shape,
            value_range=value_range,
            output=output,
            max_queries=max_queries,
        )
        self.module = module
        self.batch_size = batch_size

    def torch_module(self) -> torch.nn.Module:
        return self.module

    def _query(self, x: NDArray[np.float32]) -> NDArray[np.generic]:
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], self.batch_size):
                logits = self.module(torch.from_numpy(x[i : i + self.batch_size]))
                out.append(torch.softmax(logits.to(torch.float64), dim=1).numpy())
        return np.concatenate(out)


class OnnxTarget(TargetBase):
    """An ONNX Runtime session (or a path to one, trusted by the caller).

    The scores are the output named `probabilities`/`output_probability` when the
    model has one (scikit-learn conversions, with zipmap off), else the first
    output: a softmax is applied when its rows are not already probabilities.
    """

    def __init__(
        self,
        session: Any,
        *,
        input_shape: tuple[int, ...] | None = None,
        value_range: tuple[float, float] = _UNBOUNDED,
        n_classes: int | None = None,
        name: str | None = None,
        output: Output = "scores",
        max_queries: int | None = None,
    ) -> None:
        if isinstance(session, (str, Path)):
            import onnxruntime

            session = onnxruntime.InferenceSession(str(session), providers=["CPUExecutionProvider"])
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise UnsupportedTargetError("the ONNX model must take exactly one input")
        self._input = inputs[0].name
        dims = inputs[0].shape[1:]
        fixed = all(isinstance(d, int) for d in dims)
        if input_shape is None:
            if not fixed:
                raise UsageError("input_shape is needed: the ONNX input has symbolic dims")
            input_shape = tuple(int(d) for d in dims)
        elif fixed and tuple(dims) != tuple(input_shape):
            # Caught here: ONNX Runtime's own refusal would surface mid-attack as a traceback.
            raise TargetMismatchError(
                f"{name or 'onnx'}: takes samples of shape {tuple(dims)}, the data has "
                f"{tuple(input_shape)}"
            )
        names = [o.name for o in session.get_outputs()]
        preferred = [n for n in names if n in ("probabilities", "output_probability")]
        self._output = preferred[0] if preferred else names[-1 if len(names) > 1 else 0]
        self.session = session
        if n_classes is None:
            probe = self._run(np.zeros((1, *input_shape), dtype=np.float32))
            n_classes = int(probe.shape[1])
        super().__init__(
            name=name or "onnx",
            n_classes=n_classes,
            input_shape=input_shape,
            value_range=value_range,
            output=output,
            max_queries=max_queries,
        )

    def _run(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        (raw,) = self.session.run([self._output], {self._input: x})
        if isinstance(raw, list):  # zipmap: a list of {class: probability}
            raw = np.array([[row[k] for k in sorted(row)] for row in raw])
        scores = np.asarray(raw, dtype=np.float64)
        if scores.ndim != 2:
            raise TargetOutputError(f"ONNX output {self._output!r} is not a score matrix")
        rows_are_probs = (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
        if not rows_are_probs:
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = shifted / shifted.sum(axis=1, keepdims=True)
        return scores

    def _query(self, x: NDArray[np.float32]) -> NDArray[np.generic]:
        return self._run(x)


def local_target(
    path: str | Path,
    *,
    trust: Any = None,
    public_key: str | Path | None = None,
    signature: str | Path | Sequence[str | Path] | None = None,
    value_range: tuple[float, float] = _UNBOUNDED,
    input_shape: tuple[int, ...] | None = None,
    output: Output = "scores",
    max_queries: int | None = None,
    module: torch.nn.Module | None = None,
) -> TargetBase:
    """Load a model file through `mlwarden.load` (verified, scanned) and wrap it.

    A scikit-learn pickle/joblib becomes a `SklearnTarget`, an ONNX file an
    `OnnxTarget`. A PyTorch file holds weights only: pass the architecture as
    `module`, and the verified state dict is loaded into it.
    """
    from mlwarden.loading import load

    name = Path(path).name
    if module is not None:
        state = load(path, trust, signature=signature, public_key=public_key, format="torch")
        if not isinstance(state, dict):
            raise UnsupportedTargetError(f"{name}: the torch file does not hold a state dict")
        try:
            module.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise UnsupportedTargetError(
                f"{name}: the weights do not fit the module: {exc}"
            ) from None
        if input_shape is None:
            raise UsageError("input_shape is needed for a torch target")
        return TorchTarget(
            module,
            input_shape=input_shape,
            value_range=value_range,
            name=name,
            output=output,
            max_queries=max_queries,
        )
    if str(path).endswith(".onnx"):
        session = load(path, trust, signature=signature, public_key=public_key, as_session=True)
        return OnnxTarget(
            session,
            input_shape=input_shape,
            value_range=value_range,
            name=name,
            output=output,
            max_queries=max_queries,
        )
    model = load(path, trust, signature=signature, public_key=public_key)
    if hasattr(model, "predict_proba"):
        return SklearnTarget(
            model,
            name=name,
            input_shape=input_shape,
            value_range=value_range,
            output=output,
            max_queries=max_queries,
        )
    raise UnsupportedTargetError(
        f"{name}: loaded a {type(model).__name__}, which is not a classifier mlwarden can "
        "assess (a scikit-learn classifier, an ONNX model, or torch weights with `module`)"
    )
