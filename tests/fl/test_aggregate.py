"""Known answers for every aggregation rule, with and without clipping."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.fl import aggregate

from .conftest import Cohort, honest_cohort


def _rows(*rows: list[float]) -> list[dict[str, np.ndarray]]:
    return [{"x": np.asarray(row, dtype=np.float64)} for row in rows]


def test_mean_and_weighted_mean() -> None:
    updates = _rows([0.0, 2.0], [10.0, 4.0])
    np.testing.assert_allclose(aggregate(updates)["x"], [5.0, 3.0])
    np.testing.assert_allclose(aggregate(updates, "mean", weights=[1, 3])["x"], [7.5, 3.5])


def test_coordinate_wise_median() -> None:
    updates = _rows([1.0, 5.0, 9.0], [2.0, 4.0, 100.0], [3.0, 6.0, -50.0])
    np.testing.assert_allclose(aggregate(updates, "median")["x"], [2.0, 5.0, 9.0])


def test_trimmed_mean_drops_the_extremes_of_each_coordinate() -> None:
    updates = _rows([0.0, -1e6], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [100.0, 1e6])
    # trim 0.2 of 5 drops one value at each end of every coordinate.
    np.testing.assert_allclose(aggregate(updates, "trimmed_mean", trim=0.2)["x"], [2.0, 2.0])
    # trim 0 is the plain mean.
    np.testing.assert_allclose(
        aggregate(updates, "trimmed_mean", trim=0.0)["x"], aggregate(updates)["x"]
    )


def test_krum_scores_known_answer() -> None:
    # Points 0, 1, 2, 10 on a line, f=0: each is scored on its 2 nearest neighbours:
    # 0 -> 1+4=5, 1 -> 1+1=2, 2 -> 1+4=5, 10 -> 64+81=145. Krum picks 1; multi-Krum with
    # m=2 adds the first of the tied 0 and 2.
    updates = _rows([0.0], [1.0], [2.0], [10.0])
    np.testing.assert_allclose(aggregate(updates, "krum", f=0)["x"], [1.0])
    np.testing.assert_allclose(aggregate(updates, "multi_krum", f=0, m=2)["x"], [0.5])


def test_krum_picks_the_honest_cluster(cohort: Cohort) -> None:
    honest = list(cohort.values())[:9]
    attackers = [{k: -5.0 * v for k, v in honest[0].items()} for _ in range(3)]
    chosen = aggregate(honest + attackers, "krum", f=3)
    assert any(all(np.array_equal(chosen[k], h[k]) for k in h) for h in honest)
    averaged = aggregate(honest + attackers, "multi_krum", f=3)  # m = n - f = 9
    for name in averaged:
        np.testing.assert_allclose(
            averaged[name], np.mean([h[name] for h in honest], axis=0), rtol=1e-5
        )


def test_clipping_bounds_every_update_norm() -> None:
    updates = _rows([3.0, 4.0], [0.0, 1.0])  # norms 5 and 1
    # Clipped to norm 1: [0.6, 0.8] and [0, 1]; their mean is [0.3, 0.9].
    np.testing.assert_allclose(aggregate(updates, "mean", clip=1.0)["x"], [0.3, 0.9])
    # clip="median": the median norm of [5, 1, 1] is 1.
    updates += _rows([1.0, 0.0])
    np.testing.assert_allclose(
        aggregate(updates, "mean", clip="median")["x"], [(0.6 + 1.0) / 3, (0.8 + 1.0) / 3]
    )
    # A large bound changes nothing.
    np.testing.assert_allclose(aggregate(updates, "mean", clip=100.0)["x"], aggregate(updates)["x"])


def test_clipping_bounds_the_pull_of_a_boosted_client(cohort: Cohort) -> None:
    clients = list(cohort.values())
    boosted = {k: 1000.0 * v for k, v in clients[0].items()}
    plain = aggregate([*clients[1:], boosted])
    clipped = aggregate([*clients[1:], boosted], "mean", clip="median")
    honest_mean = aggregate(clients[1:])
    far = sum(float(np.linalg.norm(plain[k] - honest_mean[k])) for k in plain)
    near = sum(float(np.linalg.norm(clipped[k] - honest_mean[k])) for k in clipped)
    assert far > 50 * near


@pytest.mark.parametrize("rule", ["median", "trimmed_mean", "krum", "multi_krum"])
def test_robust_rules_resist_a_sign_flipping_minority(rule: str) -> None:
    cohort = honest_cohort(10, seed=3)
    clients = list(cohort.values())
    attackers = [{k: -10.0 * v for k, v in c.items()} for c in clients[:2]]
    poisoned = [*attackers, *clients[2:]]
    honest_mean = aggregate(clients[2:])
    params = {"trimmed_mean": {"trim": 0.2}, "krum": {"f": 2}, "multi_krum": {"f": 2}}
    robust = aggregate(poisoned, rule, **params.get(rule, {}))  # type: ignore[arg-type]
    plain = aggregate(poisoned)
    for name in honest_mean:
        cos = float(
            np.dot(robust[name].ravel(), honest_mean[name].ravel())
            / (np.linalg.norm(robust[name]) * np.linalg.norm(honest_mean[name]))
        )
        assert cos > 0.9, (rule, name, cos)
        plain_cos = float(np.dot(plain[name].ravel(), honest_mean[name].ravel()))
        assert plain_cos < 0  # plain averaging is dragged to the attackers' side


def test_results_keep_names_order_and_dtypes() -> None:
    updates = [
        {"w": np.full((2, 3), 1.0, dtype=np.float32), "steps": np.array([3], dtype=np.int64)},
        {"w": np.full((2, 3), 2.0, dtype=np.float32), "steps": np.array([4], dtype=np.int64)},
    ]
    out = aggregate(updates)
    assert list(out) == ["w", "steps"]
    assert out["w"].dtype == np.float32 and out["w"].shape == (2, 3)
    assert out["steps"].dtype == np.int64 and out["steps"].tolist() == [4]  # 3.5 rounds to even
    np.testing.assert_allclose(out["w"], 1.5)


def test_sequence_and_mapping_cohorts_agree(cohort: Cohort) -> None:
    as_list = aggregate(list(cohort.values()), "median")
    as_map = aggregate(cohort, "median")
    for name in as_map:
        np.testing.assert_array_equal(as_list[name], as_map[name])


def test_inputs_are_not_modified(cohort: Cohort) -> None:
    before = {c: {k: v.copy() for k, v in u.items()} for c, u in cohort.items()}
    aggregate(cohort, "mean", clip=0.1)
    for client, update in cohort.items():
        for name, value in update.items():
            np.testing.assert_array_equal(value, before[client][name])
