"""The exact fast path for scikit-learn models: the compiled `predict_proba` equals the
estimator's own within 1e-12 (float64) with identical labels, for every supported shape,
and everything else stays on scikit-learn."""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

from mlwarden.errors import ModelExecutionError
from mlwarden.gateway._fastpath import (
    CompiledProba,
    NotCompilable,
    check_against,
    compile_predict_proba,
)
from mlwarden.gateway._models import SklearnModel
from mlwarden.serving import ModelConfig

Array = np.ndarray[Any, Any]


@cache
def _data(kind: str) -> tuple[Array, Array]:
    if kind == "digits":
        digits = load_digits()  # a third of it: enough to fit, and fast
        return digits.data[:600].astype(np.float64), digits.target[:600]
    cancer = load_breast_cancer()
    return cancer.data[:300, :20].astype(np.float64), cancer.target[:300]


def _scaler(name: str) -> Any:
    return {
        "none": None,
        "standard": StandardScaler(),
        "standard-no-mean": StandardScaler(with_mean=False),
        "standard-no-std": StandardScaler(with_std=False),
        "minmax": MinMaxScaler(),
        "minmax-clip": MinMaxScaler(feature_range=(-1, 2), clip=True),
        "maxabs": MaxAbsScaler(),
        "maxabs-clip": MaxAbsScaler(clip=True),
    }[name]


def _final(name: str) -> Any:
    if name == "logreg":
        return LogisticRegression(max_iter=100, random_state=0)
    activation = name.removeprefix("mlp-")
    return MLPClassifier(
        hidden_layer_sizes=(16, 8), activation=activation, max_iter=10, random_state=0
    )


def _fit(scaler: str, final: str, data: str) -> Any:
    x, y = _data(data)
    step = _scaler(scaler)
    model = _final(final) if step is None else make_pipeline(step, _final(final))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def _inputs(data: str) -> list[Array]:
    x, _ = _data(data)
    rng = np.random.default_rng(7)
    low, high = x.min(axis=0), x.max(axis=0)
    return [
        x,  # the real data
        rng.uniform(low, high, (200, x.shape[1])),  # random within the data's range
        rng.normal(0.0, 3.0 * (high - low + 1), (200, x.shape[1])),  # far outside it
        x[:1],  # one row, as the gateway usually sees
    ]


def _assert_exact(compiled: CompiledProba, model: Any, data: str) -> None:
    for x in _inputs(data):
        before = x.copy()
        got = compiled(x)
        expected = model.predict_proba(x)
        assert got.dtype == np.float64
        assert got.shape == expected.shape
        assert np.max(np.abs(got - expected)) <= 1e-12
        np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
        np.testing.assert_array_equal(x, before)  # the caller's array is never written


SCALERS = [
    "none",
    "standard",
    "standard-no-mean",
    "standard-no-std",
    "minmax",
    "minmax-clip",
    "maxabs",
    "maxabs-clip",
]


@pytest.mark.parametrize("data", ["digits", "cancer"])
@pytest.mark.parametrize("scaler", SCALERS)
def test_logistic_regression_pipelines_are_exact(scaler: str, data: str) -> None:
    model = _fit(scaler, "logreg", data)
    compiled = compile_predict_proba(model)
    kind = "multinomial" if data == "digits" else "binary"
    assert compiled.description.endswith(f"LogisticRegression({kind})")
    _assert_exact(compiled, model, data)


@pytest.mark.parametrize("data", ["digits", "cancer"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_mlp_pipelines_are_exact(activation: str, data: str) -> None:
    model = _fit("standard", f"mlp-{activation}", data)
    compiled = compile_predict_proba(model)
    output = "softmax" if data == "digits" else "logistic"
    assert compiled.description == f"StandardScaler -> MLPClassifier({activation}, {output})"
    _assert_exact(compiled, model, data)


@pytest.mark.parametrize("data", ["digits", "cancer"])
@pytest.mark.parametrize("loss", ["log_loss", "modified_huber"])
def test_sgd_classifier_pipelines_are_exact(loss: str, data: str) -> None:
    x, y = _data(data)
    model = make_pipeline(
        StandardScaler(), SGDClassifier(loss=loss, max_iter=20, tol=None, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    compiled = compile_predict_proba(model)
    assert compiled.description == f"StandardScaler -> SGDClassifier({loss})"
    _assert_exact(compiled, model, data)


def test_sgd_classifier_without_probabilities_is_not_compiled() -> None:
    x, y = _data("digits")
    model = SGDClassifier(loss="hinge", max_iter=5, tol=None, random_state=0).fit(x, y)
    with pytest.raises(NotCompilable, match="hinge"):
        compile_predict_proba(model)


@pytest.mark.parametrize("scaler", ["none", "minmax-clip", "maxabs"])
def test_mlp_with_other_scalers_is_exact(scaler: str) -> None:
    model = _fit(scaler, "mlp-relu", "digits")
    _assert_exact(compile_predict_proba(model), model, "digits")


def test_passthrough_steps_are_skipped() -> None:
    x, y = _data("digits")
    model = Pipeline(
        [("nothing", "passthrough"), ("scale", StandardScaler()), ("clf", LogisticRegression())]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    compiled = compile_predict_proba(model)
    assert compiled.description == "StandardScaler -> LogisticRegression(multinomial)"
    _assert_exact(compiled, model, "digits")


class _TweakedLogisticRegression(LogisticRegression):
    """A subclass may change the arithmetic: it must not be compiled."""


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (RandomForestClassifier(n_estimators=3, random_state=0), "RandomForestClassifier"),
        (make_pipeline(PCA(n_components=8), LogisticRegression(max_iter=30)), "transformer PCA"),
        (_TweakedLogisticRegression(max_iter=30), "_TweakedLogisticRegression"),
    ],
)
def test_unsupported_estimators_are_not_compiled(model: Any, reason: str) -> None:
    x, y = _data("digits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    with pytest.raises(NotCompilable, match=reason):
        compile_predict_proba(model)


def test_multilabel_mlp_is_not_compiled() -> None:
    x, y = _data("digits")
    targets = np.stack([y % 2, (y > 4).astype(int)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(x, targets)
    with pytest.raises(NotCompilable, match="multilabel"):
        compile_predict_proba(model)


def test_the_load_time_check_refuses_a_replay_that_differs() -> None:
    model = _fit("standard", "logreg", "digits")
    good = compile_predict_proba(model)
    check_against(good, model)
    wrong = CompiledProba(
        n_features=good.n_features,
        steps=(),  # the scaler left out: plausible probabilities, wrong ones
        final=good.final,
        description="broken",
    )
    with pytest.raises(NotCompilable, match="differs from predict_proba"):
        check_against(wrong, model)


# --- through the gateway's adapter -------------------------------------------------------


def _config(width: int) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": "m",
            "format": "sklearn",
            "path": "m.joblib",
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, width]}],
        }
    )


def test_the_adapter_serves_supported_models_compiled() -> None:
    model = _fit("standard", "logreg", "digits")
    adapter = SklearnModel(_config(64), model)
    assert adapter.path == "compiled"
    assert adapter.fallback_reason is None
    assert adapter.compiled_description == "StandardScaler -> LogisticRegression(multinomial)"
    x, _ = _data("digits")
    output = adapter.predict({"x": x})
    assert output.probabilities is not None
    assert np.max(np.abs(output.probabilities - model.predict_proba(x))) <= 1e-12
    np.testing.assert_array_equal(output.labels, model.predict(x))
    np.testing.assert_array_equal(output.classes, model.classes_)


def test_the_adapter_falls_back_for_random_forest() -> None:
    x, y = _data("digits")
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    adapter = SklearnModel(_config(64), forest)
    assert adapter.path == "sklearn"
    assert adapter.fallback_reason is not None
    assert "RandomForestClassifier" in adapter.fallback_reason
    output = adapter.predict({"x": x[:50]})
    assert output.probabilities is not None
    np.testing.assert_array_equal(output.probabilities, forest.predict_proba(x[:50]))
    np.testing.assert_array_equal(output.labels, forest.predict(x[:50]))


def test_the_fast_path_can_be_turned_off() -> None:
    model = _fit("standard", "logreg", "digits")
    adapter = SklearnModel(_config(64), model, fast_path=False)
    assert adapter.path == "sklearn"
    assert adapter.fallback_reason == "fast path turned off"
    x, _ = _data("digits")
    output = adapter.predict({"x": x[:5]})
    assert output.probabilities is not None
    np.testing.assert_array_equal(output.probabilities, model.predict_proba(x[:5]))


def test_input_the_replay_is_not_exact_for_goes_to_sklearn() -> None:
    model = _fit("standard", "logreg", "digits")
    adapter = SklearnModel(_config(64), model)
    x, _ = _data("digits")
    as_float32 = x[:20].astype(np.float32)  # sklearn keeps float32: not the replay's dtype
    output = adapter.predict({"x": as_float32})
    assert output.probabilities is not None
    np.testing.assert_array_equal(
        output.probabilities, np.asarray(model.predict_proba(as_float32), dtype=np.float64)
    )
    # A row of the wrong width would broadcast in plain numpy: sklearn refuses it instead.
    with pytest.raises(ModelExecutionError, match="failed: ValueError"):
        adapter.predict({"x": np.zeros((1, 1))})
