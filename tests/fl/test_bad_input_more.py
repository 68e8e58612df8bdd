"""More bad cohorts and parameters, each a one-line error with its code; the robust rules
against reference formulas; and fail-closed quarantine when the audit log cannot write."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from mlwarden.audit import BatchedAuditWriter, open_audit_log
from mlwarden.errors import (
    AggregationParameterError,
    AuditStoreError,
    ClientUpdateMismatchError,
    EmptyCohortError,
    MlwardenError,
    NonFiniteUpdateError,
    UnsupportedUpdateError,
)
from mlwarden.fl import aggregate, screen

from .conftest import Cohort, honest_cohort


def _same(update: dict[str, Any], n: int = 5) -> list[dict[str, Any]]:
    return [dict(update) for _ in range(n)]


@pytest.mark.parametrize(
    ("cohort", "error", "message"),
    [
        (_same({"w": np.ma.array([1.0, 2.0], mask=[0, 1])}), UnsupportedUpdateError, "masked"),
        (_same({"w": np.array([1.0, 2.0], dtype=object)}), UnsupportedUpdateError, "object"),
        (_same({"w": np.array([True, False])}), UnsupportedUpdateError, "dtype bool"),
        (_same({"w": torch.zeros(3, dtype=torch.bool)}), UnsupportedUpdateError, "dtype bool"),
        (
            _same({"w": torch.zeros(3, dtype=torch.float8_e4m3fn)}),
            UnsupportedUpdateError,
            "float8_e4m3fn",
        ),
        (
            _same({"w": torch.zeros(3, dtype=torch.complex64)}),
            UnsupportedUpdateError,
            "complex64",
        ),
        (_same({"w": np.zeros((0, 3))}), EmptyCohortError, "only empty tensors"),
        (
            [{"w": np.zeros(3, dtype=np.int64)}, {"w": np.zeros(3)}, {"w": np.zeros(3)}],
            ClientUpdateMismatchError,
            "dtype float64, client '0' int64",
        ),
        (
            [{"w": torch.zeros(3)}, {"w": torch.zeros(3, dtype=torch.float64)}] * 2,
            ClientUpdateMismatchError,
            "dtype float64, client '0' float32",
        ),
        (
            [{"w": torch.zeros(3)}, {"w": np.zeros(3, dtype=np.float32)}, {"w": torch.zeros(3)}],
            ClientUpdateMismatchError,
            "as numpy, not torch",
        ),
        (
            [{"w": torch.zeros(3)}, {"w": torch.zeros(3, device="meta")}, {"w": torch.zeros(3)}],
            UnsupportedUpdateError,
            "cannot be read as dense numbers",
        ),
        (
            [{"w": np.zeros(3), "b": torch.zeros(1)}] * 3,
            UnsupportedUpdateError,
            "mixes NumPy arrays and torch tensors",
        ),
        (
            [{"w": np.zeros(3)}, {"w": np.array([0.0, np.nan, 0.0])}, {"w": np.zeros(3)}],
            NonFiniteUpdateError,
            "client '1'",
        ),
        ([], EmptyCohortError, "no client updates"),
        ([{}, {}, {}], EmptyCohortError, "holds no tensors"),
    ],
)
def test_bad_cohorts_fail_every_entry_point(
    cohort: Any, error: type[MlwardenError], message: str
) -> None:
    for call in (lambda: aggregate(cohort, "median"), lambda: screen(cohort)):
        with pytest.raises(error, match=message) as info:
            call()
        line = info.value.one_line()
        assert "\n" not in line and line.startswith(f"{info.value.code}: ")
        assert info.value.exit_status == 2


@pytest.mark.parametrize(
    ("rule", "params", "message"),
    [
        ("krum", {}, "at least 3 clients"),
        ("krum", {"f": 1}, "at least 5 clients"),
    ],
)
def test_single_client_and_too_large_f(rule: str, params: dict[str, Any], message: str) -> None:
    one = list(honest_cohort(1).values())
    with pytest.raises(AggregationParameterError, match=message):
        aggregate(one, rule, **params)  # type: ignore[arg-type]
    with pytest.raises(AggregationParameterError, match="at least 3 clients to compare"):
        screen(one)
    # A single client is a legitimate (if unprotected) mean or median: itself.
    np.testing.assert_array_equal(aggregate(one, "median")["w"], one[0]["w"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rule": "trimmed_mean", "trim": 0.5}, r"trim=0.5 is not in \[0, 0.5\)"),
        ({"rule": "trimmed_mean", "trim": float("nan")}, "trim=nan"),
        ({"rule": "trimmed_mean", "trim": 0.05}, "trim=0.05 of 12 updates drops none"),
        ({"rule": "mean", "clip": -1.0}, "clip=-1.0 is not a positive finite number"),
        ({"rule": "mean", "clip": 0}, "clip=0 is not a positive finite number"),
        ({"rule": "mean", "weights": [True] * 12}, "weights are not a sequence of numbers"),
        ({"rule": "mean", "weights": ["3"] * 12}, "weights are not a sequence of numbers"),
        ({"rule": "mean", "weights": 3}, "weights are not a sequence of numbers"),
        ({"rule": "median", "f": 1}, "f applies to rules 'krum' and 'multi_krum'"),
        ({"rule": "krum", "trim": 0.2}, "trim applies to rule 'trimmed_mean'"),
        ({"rule": "multi_krum", "f": 5}, "f=5 needs at least 13 clients"),
        ({"rule": "multi_krum", "m": 13}, "m=13 is not between 1 and 12"),
    ],
)
def test_parameters_that_protect_nothing_are_refused(
    cohort: Cohort, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(AggregationParameterError, match=message) as info:
        aggregate(cohort, **params)
    assert info.value.code == "E193"


def test_a_trim_that_drops_nothing_is_refused() -> None:
    small = list(honest_cohort(5).values())
    with pytest.raises(AggregationParameterError, match=r"trim=0\.1 of 5 updates drops none"):
        aggregate(small, "trimmed_mean")
    # Asked for explicitly, trim=0 is the plain mean.
    np.testing.assert_array_equal(
        aggregate(small, "trimmed_mean", trim=0.0)["w"], aggregate(small, "mean")["w"]
    )


def test_huge_weights_do_not_overflow(cohort: Cohort) -> None:
    even = aggregate(cohort, "mean")
    huge = aggregate(cohort, "mean", weights=[1e308] * len(cohort))
    for name in even:
        np.testing.assert_allclose(huge[name], even[name], rtol=1e-6)


# --- reference formulas ---------------------------------------------------------------


def _matrix(cohort: list[dict[str, Any]]) -> Any:
    return np.stack([np.concatenate([u[k].ravel() for k in u]) for u in cohort]).astype(float)


def _flat(update: dict[str, Any]) -> Any:
    return np.concatenate([np.asarray(v, dtype=float).ravel() for v in update.values()])


def _reference_krum_scores(matrix: Any, f: int) -> Any:
    """Blanchard et al. (2017): sum of squared distances to the n - f - 2 closest others."""
    n = len(matrix)
    scores = []
    for i in range(n):
        others = sorted(float(np.sum((matrix[i] - matrix[j]) ** 2)) for j in range(n) if j != i)
        scores.append(sum(others[: n - f - 2]))
    return np.array(scores)


@pytest.mark.parametrize("seed", range(4))
def test_rules_match_their_reference_formulas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 12))
    cohort = [{"w": rng.normal(0, 1, (3, 4)), "b": rng.standard_t(2, 5) * 10.0} for _ in range(n)]
    matrix = _matrix(cohort)
    np.testing.assert_allclose(_flat(aggregate(cohort, "median")), np.median(matrix, axis=0))
    trim = float(rng.uniform(1.0 / n, 0.45))
    np.testing.assert_allclose(
        _flat(aggregate(cohort, "trimmed_mean", trim=trim)),
        stats.trim_mean(matrix, trim, axis=0),
    )
    weights = rng.integers(1, 100, n).astype(float)
    np.testing.assert_allclose(
        _flat(aggregate(cohort, "mean", weights=list(weights))),
        np.average(matrix, axis=0, weights=weights),
    )
    f = (n - 3) // 2
    scores = _reference_krum_scores(matrix, f)
    best = int(np.argmin(scores))
    np.testing.assert_allclose(_flat(aggregate(cohort, "krum", f=f)), matrix[best])
    m = int(rng.integers(1, n + 1))
    chosen = np.argsort(scores, kind="stable")[:m]
    np.testing.assert_allclose(
        _flat(aggregate(cohort, "multi_krum", f=f, m=m)), matrix[chosen].mean(axis=0)
    )


def test_krum_is_exact_far_from_the_origin() -> None:
    # Raw weights around 1e6 differing by 1e-3: the textbook expansion of the squared
    # distance cancels those differences away (every score rounds to 0 and the first
    # update wins); Krum must still pick the central one.
    base = np.full(200, 1e6)
    offsets = [2e-3, -1e-3, 1e-3, 0.0, -2e-3, 5e-2, -5e-2]
    cohort = [{"w": base + o * np.linspace(1.0, 2.0, 200)} for o in offsets]
    scores = _reference_krum_scores(_matrix(cohort), 2)
    assert int(np.argmin(scores)) == 3
    np.testing.assert_array_equal(aggregate(cohort, "krum", f=2)["w"], cohort[3]["w"])


@pytest.mark.parametrize("rule", ["mean", "median", "trimmed_mean", "krum", "multi_krum"])
def test_dtypes_kind_and_callers_updates_are_kept(rule: str) -> None:
    rng = np.random.default_rng(1)
    cohort = {
        f"c{i}": {
            "w": rng.normal(size=(2, 3)).astype(np.float16),
            "steps": np.array([10 + i], dtype=np.int32),
            "t": np.array(rng.normal()),
        }
        for i in range(7)
    }
    before = {c: {k: v.copy() for k, v in u.items()} for c, u in cohort.items()}
    trim = {"trim": 0.2} if rule == "trimmed_mean" else {}
    result = aggregate(cohort, rule, clip="median", **trim)  # type: ignore[arg-type]
    assert {k: (v.dtype, v.shape) for k, v in result.items()} == {
        "w": (np.float16, (2, 3)),
        "steps": (np.int32, (1,)),
        "t": (np.float64, ()),
    }
    for client, update in cohort.items():
        for name, value in update.items():
            np.testing.assert_array_equal(value, before[client][name])
    tensors = [{"w": torch.randn(4, dtype=torch.bfloat16, requires_grad=True)} for _ in range(7)]
    copies = [t["w"].detach().clone() for t in tensors]
    out = aggregate(tensors, rule, **trim)  # type: ignore[arg-type]
    assert out["w"].dtype == torch.bfloat16 and out["w"].device.type == "cpu"
    assert all(torch.equal(t["w"].detach(), c) for t, c in zip(tensors, copies, strict=True))


def test_integer_results_never_wrap_around() -> None:
    top = np.iinfo(np.int64).max
    cohort = [{"n": np.array([top, top - 1], dtype=np.int64)} for _ in range(3)]
    for rule in ("mean", "median"):
        result = aggregate(cohort, rule)["n"]  # type: ignore[arg-type]
        assert result.dtype == np.int64 and (result > 0).all()
        assert (result >= top - 2048).all()


# --- fail closed ------------------------------------------------------------------------


def _with_attacker(seed: int = 5) -> Cohort:
    cohort = honest_cohort(12, seed)
    cohort["evil"] = {k: -20.0 * v for k, v in cohort["c00"].items()}
    return cohort


def test_a_log_that_cannot_write_fails_the_round(tmp_path: Path) -> None:
    cohort = _with_attacker()
    assert "evil" in screen(cohort).quarantined
    log = open_audit_log(f"sqlite:///{tmp_path / 'audit.db'}")
    log.close()
    with pytest.raises(AuditStoreError):
        screen(cohort, audit=log)
    writer = BatchedAuditWriter(open_audit_log(f"sqlite:///{tmp_path / 'w.db'}"))
    writer.close()
    with pytest.raises(AuditStoreError):
        screen(cohort, audit=writer)


@pytest.mark.parametrize("audit", ["sqlite:///audit.db", object(), 0])
def test_an_audit_that_is_not_a_log_is_refused_before_scoring(audit: Any) -> None:
    honest = honest_cohort(12)
    assert screen(honest).quarantined == ()  # nobody quarantined: still refused
    with pytest.raises(AggregationParameterError, match="neither an AuditLog"):
        screen(honest, audit=audit)
    with pytest.raises(AggregationParameterError, match="model=3"):
        screen(honest, model=3)  # type: ignore[arg-type]


def test_every_pair_of_bad_kinds_is_one_line(cohort: Cohort) -> None:
    kinds: list[Any] = [None, "x", 3, [1.0], np.float32(1.0), torch.tensor(1.0).to_sparse()]
    for first, second in itertools.product(kinds, repeat=2):
        updates = [{"w": first}, {"w": second}, {"w": np.zeros(1)}]
        with pytest.raises(MlwardenError) as info:
            aggregate(updates, "median")
        assert info.value.code in {"E190", "E194"}
        assert "\n" not in info.value.one_line()
