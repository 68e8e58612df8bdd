"""Bad input of every kind: a clear error with a stable code, never a traceback or a guess."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.errors import (
    AggregationParameterError,
    ClientUpdateMismatchError,
    EmptyCohortError,
    MlwardenError,
    NonFiniteUpdateError,
    UnsupportedUpdateError,
)
from mlwarden.fl import aggregate, screen

from .conftest import Cohort


def _one(**tensors: Any) -> dict[str, Any]:
    return dict(tensors)


def test_mismatched_keys_name_the_client_and_the_tensor(cohort: Cohort) -> None:
    cohort["c03"] = {"w": cohort["c03"]["w"]}  # lacks "b"
    cohort["c05"] = {**cohort["c05"], "extra": np.zeros(2, dtype=np.float32)}
    with pytest.raises(ClientUpdateMismatchError, match=r"client 'c03' lacks 'b'") as info:
        aggregate(cohort)
    assert "'c05' has 'extra'" in info.value.message  # every mismatch, not the first
    assert info.value.code == "E190" and info.value.exit_status == 2


def test_mismatched_shapes(cohort: Cohort) -> None:
    cohort["c01"]["w"] = np.zeros((4, 16), dtype=np.float32)
    with pytest.raises(ClientUpdateMismatchError, match=r"'w' has shape \(4, 16\).*\(16, 4\)"):
        aggregate(cohort, "median")


def test_mismatched_dtypes(cohort: Cohort) -> None:
    cohort["c02"]["b"] = cohort["c02"]["b"].astype(np.float64)
    with pytest.raises(ClientUpdateMismatchError, match="dtype float64, client 'c00' float32"):
        screen(cohort)


def test_empty_cohort_and_empty_update() -> None:
    with pytest.raises(EmptyCohortError, match="no client updates"):
        aggregate({})
    with pytest.raises(EmptyCohortError, match="no client updates"):
        screen([])
    with pytest.raises(EmptyCohortError, match="client '1' holds no tensors"):
        aggregate([_one(x=np.zeros(2)), {}])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(cohort: Cohort, bad: float) -> None:
    cohort["c07"]["w"][3, 1] = bad
    with pytest.raises(NonFiniteUpdateError, match="client 'c07' holds NaN or infinity"):
        aggregate(cohort, "median")


def test_krum_f_too_large(cohort: Cohort) -> None:
    # 12 clients tolerate f <= 4 (n >= 2f + 3).
    with pytest.raises(AggregationParameterError, match=r"f=5 needs at least 13 clients") as info:
        aggregate(cohort, "krum", f=5)
    assert "at most 4" in (info.value.hint or "")
    with pytest.raises(AggregationParameterError, match="at least 3 clients"):
        aggregate([_one(x=np.zeros(2)), _one(x=np.ones(2))], "krum")
    with pytest.raises(AggregationParameterError, match="non-negative integer"):
        aggregate(cohort, "krum", f=-1)
    with pytest.raises(AggregationParameterError, match="m=0 is not between 1 and 12"):
        aggregate(cohort, "multi_krum", f=2, m=0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rule": "average"}, "unknown aggregation rule 'average'"),
        ({"rule": "trimmed_mean", "trim": 0.5}, r"trim=0.5 is not in \[0, 0.5\)"),
        ({"rule": "trimmed_mean", "trim": -0.1}, "trim=-0.1"),
        ({"rule": "median", "weights": [1] * 12}, "weights apply to rule 'mean'"),
        ({"rule": "mean", "weights": [1, 2]}, "2 weights for 12 client updates"),
        ({"rule": "mean", "weights": [-1] + [1] * 11}, "non-negative"),
        ({"rule": "mean", "weights": [0] * 12}, "not all zero"),
        ({"rule": "mean", "weights": ["a"] * 12}, "weights are not a sequence of numbers"),
        ({"rule": "median", "m": 3}, "m applies to rule 'multi_krum'"),
        ({"rule": "mean", "clip": 0.0}, "not a positive finite number"),
        ({"rule": "mean", "clip": float("nan")}, "not a positive finite number"),
        ({"rule": "mean", "clip": "max"}, "neither a positive number nor 'median'"),
    ],
)
def test_parameters_that_do_not_fit(cohort: Cohort, params: dict[str, Any], message: str) -> None:
    with pytest.raises(AggregationParameterError, match=message) as info:
        aggregate(cohort, **params)
    assert info.value.code == "E193"


def test_trim_that_drops_everything() -> None:
    # 3 clients with trim 0.4: k = 1, 2k < 3, fine.
    ok = aggregate([_one(x=np.zeros(1)), _one(x=np.ones(1)), _one(x=np.full(1, 9.0))],
                   "trimmed_mean", trim=0.4)  # fmt: skip
    np.testing.assert_allclose(ok["x"], [1.0])


@pytest.mark.parametrize(
    ("cohort", "message"),
    [
        ("abc", "not str"),
        (42, "not int"),
        ([np.zeros(3)], "is a ndarray, not a mapping"),
        ([{"x": [1.0, 2.0]}], "'x' is a list, not a NumPy array or a torch tensor"),
        ([{"x": np.array([True, False])}], "dtype bool"),
        ([{"x": np.array([1 + 2j])}], "dtype complex128"),
        ([{"x": np.array(["a"])}], "dtype <U1"),
        ([{"x": np.zeros(2), "y": torch.zeros(2)}], "mixes NumPy arrays and torch tensors"),
        ([{"x": np.zeros(2)}, {"x": torch.zeros(2, dtype=torch.float64)}], "as torch, not numpy"),
        ({"": {"x": np.zeros(2)}}, "client id '' is not a non-empty string"),
        ([{3: np.zeros(2)}], "name 3 is not a str"),
    ],
)
def test_what_is_not_an_update(cohort: Any, message: str) -> None:
    with pytest.raises((UnsupportedUpdateError, ClientUpdateMismatchError), match=message):
        aggregate(cohort)


def test_screen_parameters(cohort: Cohort) -> None:
    with pytest.raises(AggregationParameterError, match="at least 3 clients"):
        screen(list(cohort.values())[:2])
    for threshold in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(AggregationParameterError, match="threshold"):
            screen(cohort, threshold=threshold)
    with pytest.raises(AggregationParameterError, match="round=-1"):
        screen(cohort, round=-1)


def test_errors_are_one_line_with_code(cohort: Cohort) -> None:
    cohort["c01"]["w"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(MlwardenError) as info:
        aggregate(cohort)
    line = info.value.one_line()
    assert line.startswith("E190: client updates do not match") and "\n" not in line


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rule": "trimmed_mean", "trim": "0.1"}, "trim='0.1'"),
        ({"rule": "trimmed_mean", "trim": True}, "trim=True"),
        ({"rule": "mean", "clip": [1.0]}, r"clip=\[1.0\]"),
        ({"rule": "multi_krum", "m": "3"}, "m='3'"),
        ({"rule": "multi_krum", "m": 2.5}, "m=2.5"),
        ({"rule": "krum", "f": 1.0}, "f=1.0"),
        ({"rule": "krum", "f": True}, "f=True"),
    ],
)
def test_parameters_of_the_wrong_type(cohort: Cohort, params: dict[str, Any], message: str) -> None:
    with pytest.raises(AggregationParameterError, match=message):
        aggregate(cohort, **params)


def test_screen_parameters_of_the_wrong_type(cohort: Cohort) -> None:
    with pytest.raises(AggregationParameterError, match="threshold='5'"):
        screen(cohort, threshold="5")  # type: ignore[arg-type]
    with pytest.raises(AggregationParameterError, match=r"round=1\.0"):
        screen(cohort, round=1.0)  # type: ignore[arg-type]


def test_tensors_without_dense_values() -> None:
    sparse = torch.eye(3).to_sparse()
    with pytest.raises(UnsupportedUpdateError, match="'x' cannot be read as dense numbers"):
        aggregate([{"x": sparse}, {"x": sparse}])
    meta = torch.zeros(3, device="meta")
    with pytest.raises(UnsupportedUpdateError, match="cannot be read as dense numbers"):
        aggregate([{"x": meta}, {"x": meta}])
