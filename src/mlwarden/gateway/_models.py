"""The models the gateway serves: local ones loaded only through `mlwarden.load`
(scikit-learn, ONNX Runtime, a PyTorch state dict in a declared architecture), and
models proxied to an upstream Open Inference Protocol v2 server.

Each adapter turns checked input arrays into a `ModelOutput`: the predicted labels,
class probabilities when the model has them, and the raw outputs, which only a policy
granting `raw` ever returns to a caller (see `_minimize`).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson

from mlwarden.errors import (
    MissingExtraError,
    ModelExecutionError,
    UpstreamResponseError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    UsageError,
)
from mlwarden.gateway._fastpath import (
    CompiledProba,
    NotCompilable,
    check_against,
    compile_predict_proba,
)
from mlwarden.serving import ModelConfig, UpstreamConfig

if TYPE_CHECKING:
    import httpx

    from mlwarden.policy import PolicyFile

Array = np.ndarray[Any, Any]

# Keyed by dtype object: `dtype.name` is computed on each access (microseconds).
_NUMPY_TO_OIP: dict[np.dtype[Any], str] = {
    np.dtype(name): oip
    for name, oip in (
        ("bool", "BOOL"),
        ("uint8", "UINT8"),
        ("uint16", "UINT16"),
        ("uint32", "UINT32"),
        ("uint64", "UINT64"),
        ("int8", "INT8"),
        ("int16", "INT16"),
        ("int32", "INT32"),
        ("int64", "INT64"),
        ("float16", "FP16"),
        ("float32", "FP32"),
        ("float64", "FP64"),
    )
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Tensor:
    """An output tensor in Open Inference Protocol form (data flat, row-major)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": self.shape,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelOutput:
    """What a model answered, before minimization."""

    labels: Array
    probabilities: Array | None
    raw: tuple[Tensor | tuple[str, Array], ...]
    """The model's own outputs, as OIP tensors or (name, array) pairs: converted only when
    a caller is granted `raw` (most calls never pay for it)."""
    classes: Array | None = None
    """The class of each column of `probabilities`."""

    def raw_tensors(self) -> list[Tensor]:
        return [
            item if isinstance(item, Tensor) else tensor_from_array(item[0], item[1])
            for item in self.raw
        ]


def tensor_from_array(name: str, array: Array) -> Tensor:
    """An array as an OIP tensor; strings and objects become BYTES."""
    datatype = _NUMPY_TO_OIP.get(array.dtype, "BYTES")
    data = array.ravel().tolist()
    if datatype == "BYTES":
        data = [str(item) for item in data]
    return Tensor(name=name, datatype=datatype, shape=tuple(array.shape), data=data)


def softmax(scores: Array) -> Array:
    shifted = scores.astype(np.float64) - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: Array = exp / exp.sum(axis=1, keepdims=True)
    return result


class ServedModel(Protocol):
    """One served model: `predict` for local models, `apredict` for all."""

    config: ModelConfig
    local: bool

    def predict(self, arrays: Mapping[str, Array]) -> ModelOutput: ...

    async def apredict(self, arrays: Mapping[str, Array]) -> ModelOutput: ...

    async def ready(self) -> bool: ...

    async def aclose(self) -> None: ...


class _Local(abc.ABC):
    """Shared part of the in-process adapters: one input, inline or offloaded predict."""

    local = True

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._input = config.inputs[0].name

    def predict(self, arrays: Mapping[str, Array]) -> ModelOutput:
        try:
            return self._predict(arrays[self._input])
        except Exception as exc:  # the model's own failure, after the guard passed
            raise ModelExecutionError(
                f"model {self.config.name!r} failed: {type(exc).__name__}"
            ) from None

    async def apredict(self, arrays: Mapping[str, Array]) -> ModelOutput:
        if self.config.offload:
            return await asyncio.to_thread(self.predict, arrays)
        return self.predict(arrays)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

    @abc.abstractmethod
    def _predict(self, x: Array) -> ModelOutput:
        """One framework's prediction on the validated input (each adapter's own)."""

    def _from_scores(
        self, scores: Array, kind: str, raw: tuple[tuple[str, Array], ...]
    ) -> ModelOutput:
        if scores.ndim != 2:
            raise ValueError("scores are not (batch, classes)")
        probabilities = softmax(scores) if kind == "logits" else scores.astype(np.float64)
        classes = _classes(self.config, scores.shape[1])
        return ModelOutput(
            labels=classes[probabilities.argmax(axis=1)],
            probabilities=probabilities,
            raw=raw,
            classes=classes,
        )


def _classes(config: ModelConfig, count: int) -> Array:
    if config.classes is None:
        return np.arange(count, dtype=np.int64)
    if len(config.classes) != count:
        raise ValueError(f"{count} scores but {len(config.classes)} classes declared")
    return np.asarray(config.classes)


class SklearnModel(_Local):
    """A scikit-learn estimator; probabilities from `predict_proba` when it has one.

    Known estimators (scalers in a Pipeline, LogisticRegression, MLPClassifier,
    SGDClassifier with a probabilistic loss) are compiled at load time into an exact
    float64 replay of their `predict_proba` (see `_fastpath`); `path` says which one
    serves, "compiled" or "sklearn", and `fallback_reason` why it was not compiled."""

    def __init__(self, config: ModelConfig, estimator: Any, *, fast_path: bool = True) -> None:
        super().__init__(config)
        if not callable(getattr(estimator, "predict", None)):
            raise UsageError(f"model {config.name!r}: the loaded object has no predict()")
        self._estimator = estimator
        self._proba = callable(getattr(estimator, "predict_proba", None)) and hasattr(
            estimator, "classes_"
        )
        classes = getattr(estimator, "classes_", None)
        self._classes: Array | None = (
            np.asarray(config.classes) if config.classes is not None else classes
        )
        self._compiled: CompiledProba | None = None
        self.fallback_reason: str | None = None
        if not fast_path:
            self.fallback_reason = "fast path turned off"
        elif not self._proba or self._classes is None:
            self.fallback_reason = "no predict_proba and classes_"
        else:
            self._compiled, self.fallback_reason = _compile(estimator)

    @property
    def path(self) -> str:
        """ "compiled" (the exact fast path) or "sklearn" (the estimator's own methods)."""
        return "sklearn" if self._compiled is None else "compiled"

    @property
    def compiled_description(self) -> str | None:
        return None if self._compiled is None else self._compiled.description

    def _predict(self, x: Array) -> ModelOutput:
        if self._proba and self._classes is not None:
            compiled = self._compiled
            if compiled is not None and compiled.accepts(x):
                probabilities = compiled(x)
            else:
                probabilities = np.asarray(self._estimator.predict_proba(x), dtype=np.float64)
            labels = self._classes[probabilities.argmax(axis=1)]
            return ModelOutput(
                labels=labels,
                probabilities=probabilities,
                raw=(("probabilities", probabilities),),
                classes=self._classes,
            )
        labels = np.asarray(self._estimator.predict(x))
        return ModelOutput(labels=labels, probabilities=None, raw=(("predict", labels),))


def _compile(estimator: Any) -> tuple[CompiledProba | None, str | None]:
    """The compiled model, checked against the estimator; or None and the reason."""
    try:
        compiled = compile_predict_proba(estimator)
        check_against(compiled, estimator)
    except NotCompilable as exc:
        return None, str(exc)
    except Exception as exc:  # an estimator that fails on probe rows stays on its own path
        return None, f"load-time check failed: {type(exc).__name__}"
    return compiled, None


class OnnxModel(_Local):
    """An onnxruntime session; its first output is the (batch, classes) scores."""

    def __init__(self, config: ModelConfig, session: Any) -> None:
        super().__init__(config)
        self._session = session
        self._onnx_input = session.get_inputs()[0].name
        self._output_names = [o.name for o in session.get_outputs()]

    def _predict(self, x: Array) -> ModelOutput:
        outputs = self._session.run(None, {self._onnx_input: x})
        raw = tuple(
            (name, np.asarray(value))
            for name, value in zip(self._output_names, outputs, strict=True)
        )
        return self._from_scores(np.asarray(outputs[0]), self.config.scores, raw)


class TorchModel(_Local):
    """A PyTorch state dict in the `nn.Sequential` the configuration declares."""

    def __init__(self, config: ModelConfig, state_dict: Any) -> None:
        super().__init__(config)
        import torch

        assert config.torch is not None
        if not isinstance(state_dict, Mapping):
            raise UsageError(f"model {config.name!r}: the file does not hold a state dict")
        layers: list[torch.nn.Module] = []
        for index, kind in enumerate(config.torch.layers):
            if kind == "linear":
                weight = state_dict.get(f"{index}.weight")
                if weight is None or weight.ndim != 2:
                    raise UsageError(f"model {config.name!r}: no 2-d '{index}.weight'")
                out_features, in_features = weight.shape
                layers.append(
                    torch.nn.Linear(in_features, out_features, bias=f"{index}.bias" in state_dict)
                )
            else:
                layers.append(
                    {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}[
                        kind
                    ]()
                )
        module = torch.nn.Sequential(*layers)
        try:
            module.load_state_dict(dict(state_dict), strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise UsageError(f"model {config.name!r}: state dict does not fit: {first}") from None
        module.eval()
        self._module = module
        self._torch = torch

    def _predict(self, x: Array) -> ModelOutput:
        with self._torch.inference_mode():
            scores = self._module(self._torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        array = scores.numpy()
        return self._from_scores(array, self.config.scores, (("scores", array),))


class UpstreamModel:
    """A model served by an upstream OIP v2 server; the gateway adds every control."""

    local = False

    def __init__(self, config: ModelConfig, upstream: UpstreamConfig) -> None:
        try:
            import httpx
        except ImportError:
            raise MissingExtraError("httpx", "gateway") from None
        self.config = config
        self._upstream = upstream
        base = upstream.url.rstrip("/")
        name = upstream.model or config.name
        self._infer_url = f"{base}/v2/models/{name}/infer"
        self._ready_url = f"{base}/v2/models/{name}/ready"
        self._client: httpx.AsyncClient = httpx.AsyncClient(
            timeout=httpx.Timeout(upstream.timeout_seconds),
            limits=httpx.Limits(max_connections=upstream.max_connections),
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc from the environment decides where data goes
        )
        self._httpx = httpx

    def predict(self, arrays: Mapping[str, Array]) -> ModelOutput:
        raise UsageError("an upstream model is called with apredict")

    async def apredict(self, arrays: Mapping[str, Array]) -> ModelOutput:
        httpx = self._httpx
        body = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": spec.name,
                        "shape": list(arrays[spec.name].shape),
                        "datatype": spec.datatype,
                        "data": arrays[spec.name].ravel().tolist(),
                    }
                    for spec in self.config.inputs
                ]
            }
        )
        try:
            response = await self._client.post(
                self._infer_url, content=body, headers={"content-type": "application/json"}
            )
        except httpx.TimeoutException:
            raise UpstreamTimeoutError(
                f"upstream of model {self.config.name!r} did not answer in "
                f"{self._upstream.timeout_seconds} s"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(
                f"upstream of model {self.config.name!r} cannot be reached: {type(exc).__name__}"
            ) from None
        if response.status_code == 503:
            raise UpstreamUnavailableError(f"upstream of model {self.config.name!r} is unavailable")
        if response.status_code != 200:
            raise UpstreamResponseError(
                f"upstream of model {self.config.name!r} answered HTTP {response.status_code}"
            )
        return self._parse(response.content)

    def _parse(self, content: bytes) -> ModelOutput:
        name = self.config.name
        try:
            answer = orjson.loads(content)
            outputs = answer["outputs"]
            tensors = []
            for item in outputs:
                shape = tuple(int(d) for d in item["shape"])
                data = item["data"]
                if not isinstance(data, list) or not isinstance(item["name"], str):
                    raise TypeError
                tensors.append(
                    Tensor(
                        name=item["name"], datatype=str(item["datatype"]), shape=shape, data=data
                    )
                )
            wanted = self._upstream.scores_output
            chosen = next(t for t in tensors if wanted is None or t.name == wanted)
            scores = np.asarray(chosen.data, dtype=np.float64).reshape(chosen.shape)
            if scores.ndim != 2 or not np.isfinite(scores).all():
                raise ValueError
            probabilities = softmax(scores) if self._upstream.scores == "logits" else scores
            classes = _classes(self.config, scores.shape[1])
        except (KeyError, TypeError, ValueError, StopIteration, orjson.JSONDecodeError):
            raise UpstreamResponseError(
                f"upstream of model {name!r} sent a response that is not the expected OIP v2 answer"
            ) from None
        return ModelOutput(
            labels=classes[probabilities.argmax(axis=1)],
            probabilities=probabilities,
            raw=tuple(tensors),
            classes=classes,
        )

    async def ready(self) -> bool:
        try:
            response = await self._client.get(self._ready_url)
        except self._httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        await self._client.aclose()


def load_model(
    config: ModelConfig, *, policy: PolicyFile, base_dir: Path, sklearn_fast_path: bool = True
) -> ServedModel:
    """Build the adapter for `config`; local files go through `mlwarden.load` (verify, scan,
    then a loader that cannot run code) with the policy's trust, or not at all.
    `sklearn_fast_path=False` keeps scikit-learn models on their own `predict_proba`."""
    if config.format == "upstream":
        assert config.upstream is not None
        return UpstreamModel(config, config.upstream)
    from mlwarden.loading import load

    assert config.path is not None
    path = base_dir / config.path
    signatures = [base_dir / s for s in config.signature] or None
    if config.format == "sklearn":
        estimator = load(path, policy, signature=signatures)
        return SklearnModel(config, estimator, fast_path=sklearn_fast_path)
    if config.format == "onnx":
        return OnnxModel(config, load(path, policy, signature=signatures, as_session=True))
    return TorchModel(config, load(path, policy, signature=signatures))
