"""fit_reference: deterministic, and bad reference data refused with E161."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from tests.detect.conftest import Fitted

from mlwarden.detect import Monitor, Signal, fit_reference
from mlwarden.errors import ReferenceFitError


def test_same_seed_same_reference(fitted: Fitted) -> None:
    again = fit_reference(
        fitted.data.x_train,
        fitted.data.y_train,
        predict_proba=fitted.proba,
        image_shape=(8, 8),
        value_range=(0.0, 1.0),
    )
    assert dict(again.thresholds) == dict(fitted.reference.thresholds)
    np.testing.assert_array_equal(again.bank, fitted.reference.bank)


def test_tabular_without_labels(fitted: Fitted) -> None:
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    x, y = load_wine(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x, y)
    ref = fit_reference(np.asarray(x), None, predict_proba=model.predict_proba)
    assert ref.n_features == 13 and ref.n_classes == 3
    assert not ref.uses_squeezing
    assert ref.projection.shape == (13, 13)  # small inputs are not projected
    monitor = Monitor(ref)
    rng = np.random.default_rng(0)
    noise = rng.uniform(x.min(axis=0), x.max(axis=0), size=(20, 13))
    state = monitor.new_state()
    seen = monitor.observe(state, noise, model.predict_proba(noise))
    assert Signal.EXTRACTION in seen.flagged and seen.queries == 20


def _bad_proba(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.ones((x.shape[0], 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": np.zeros((10, 64))}, "at least 60"),
        ({"x": np.full((100, 64), np.nan)}, "NaN"),
        ({"x": np.zeros(64)}, "2-D"),
        ({"x": [["a"] * 64] * 100}, "not numeric"),
        ({"y": np.full(1347, 12)}, "class indices"),
        ({"y": np.zeros(5, dtype=np.int64)}, "one per reference row"),
        ({"image_shape": (4, 4)}, "does not match 64 features"),
        ({"value_range": (1.0, 0.0)}, "low < high"),
        ({"target_false_alarm": 0.0}, "target_false_alarm"),
        ({"predict_proba": _bad_proba}, "predict_proba returned shape"),
    ],
)
def test_bad_input_is_refused(fitted: Fitted, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "x": fitted.data.x_train,
        "y": fitted.data.y_train,
        "predict_proba": fitted.proba,
        "image_shape": (8, 8),
        "value_range": (0.0, 1.0),
    }
    args.update(kwargs)
    if "x" in kwargs:
        # Replaced reference rows: no labels, no image shape, and a model that can
        # answer whatever they are (the rows' own checks come first).
        args.update(y=None, image_shape=None)
        args["predict_proba"] = lambda x: fitted.proba(np.zeros((len(x), 64)))
    x = args.pop("x")
    y = args.pop("y")
    with pytest.raises(ReferenceFitError, match=message) as info:
        fit_reference(x, y, **args)
    assert info.value.code == "E161"
