import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from mlwarden.data.screens import (
    find_drift,
    find_duplicates,
    find_leakage,
    find_outliers,
    psi,
)
from mlwarden.errors import UsageError

from ._poison import scores


@pytest.fixture
def table():
    x, _ = load_breast_cancer(return_X_y=True)
    return x[np.random.default_rng(7).permutation(len(x))]


def test_injected_points_are_outliers(table):
    rng = np.random.default_rng(0)
    x = table.copy()
    injected = rng.choice(len(x), 10, replace=False)
    x[injected] = x.mean(0) + rng.choice([-1, 1], (10, x.shape[1])) * 4 * x.std(0)
    result = find_outliers(x)
    precision, recall = scores(result.rows, injected)
    assert recall == 1.0
    assert precision >= 0.5
    assert result.outliers[0].row in set(injected.tolist())


def test_exact_and_near_duplicates(table):
    rng = np.random.default_rng(1)
    near = table[5:10] * (1 + rng.normal(0, 0.001, (5, table.shape[1])))
    x = np.vstack([table, table[:5], near])
    n = len(table)
    exact_only = find_duplicates(x)
    assert exact_only.rows == tuple(range(n, n + 5))
    assert all(g.exact for g in exact_only.groups)
    assert [g.first for g in exact_only.groups] == [0, 1, 2, 3, 4]
    both = find_duplicates(x, radius=0.05)
    assert both.rows == tuple(range(n, n + 10))
    assert find_duplicates(table, radius=0.05).rows == ()


def test_leakage_between_splits(table):
    train, test = table[:400], table[400:]
    leaked = np.vstack([train, test[:3], test[3:6] * 1.0005])
    assert find_leakage(leaked, test).rows == (400, 401, 402)
    result = find_leakage(leaked, test, radius=0.05)
    assert result.rows == (400, 401, 402, 403, 404, 405)
    assert result.leaks[0].test_row == 0
    assert result.leaks[0].distance == 0.0
    assert find_leakage(train, test).rows == ()
    with pytest.raises(UsageError, match="features"):
        find_leakage(train, test[:, :5])


def test_drift_found_in_the_shifted_features_only(table):
    base, current = table[:280].copy(), table[280:].copy()
    assert not find_drift(base, current).drifted
    current[:, [2, 11]] += 0.5 * table[:, [2, 11]].std(0)
    result = find_drift(base, current)
    assert [f.feature for f in result.features] == [2, 11]
    assert all(f.test == "ks" and f.psi is not None and f.psi >= 0.1 for f in result.features)


def test_categories_new_vanished_and_class_balance():
    rng = np.random.default_rng(2)
    base = np.column_stack([rng.integers(0, 3, 600), rng.normal(size=600)])
    current = np.column_stack([rng.integers(1, 4, 600), rng.normal(size=600)])
    labels_before = rng.integers(0, 2, 600)
    labels_after = (rng.random(600) < 0.8).astype(int)
    result = find_drift(
        base, current, categorical=(0,), baseline_labels=labels_before, labels=labels_after
    )
    (feature,) = result.features
    assert feature.test == "chi2"
    assert feature.new_categories == (3.0,)
    assert feature.vanished_categories == (0.0,)
    assert result.class_balance is not None
    assert result.class_balance.p_value < 1e-6


def test_psi_is_zero_for_the_same_sample_and_grows_with_shift():
    values = np.random.default_rng(0).normal(size=5000)
    assert psi(values, values) == pytest.approx(0.0, abs=1e-9)
    assert psi(values, values + 0.2) < psi(values, values + 1.0)


def test_wrong_shapes_and_arguments_are_clear_errors(table):
    with pytest.raises(UsageError, match="baseline has 30 features"):
        find_drift(table, table[:, :3])
    with pytest.raises(UsageError, match="out of range"):
        find_drift(table, table, categorical=(40,))
    with pytest.raises(UsageError, match="radius"):
        find_duplicates(table, radius=-1)
    with pytest.raises(UsageError, match="empty"):
        find_outliers(np.zeros((0, 4)))


def test_huge_rows_are_screened_without_failure():
    wide = np.random.default_rng(0).normal(size=(50, 20_000))
    assert find_duplicates(np.vstack([wide, wide[:1]])).rows == (50,)
    assert find_outliers(wide).rows == ()
