"""Backdoors whose trigger values stay inside every column's normal range."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, make_classification

from mlwarden.data.screens import find_backdoors
from mlwarden.data.screens._in_range import value_bins
from mlwarden.data.screens.backdoors import extreme_cells

from ._poison import plant_in_range, plant_patch, scores


def _synthetic() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(1400, 20, n_informative=10, n_classes=3, random_state=0)


@pytest.mark.parametrize(
    ("loader", "features", "source", "target", "rate"),
    [
        (load_digits, [19, 22, 42, 58], 3, 8, 0.10),
        (load_digits, [11, 27, 34, 36], 0, 6, 0.05),
        (load_breast_cancer, [7, 18, 29], 1, 0, 0.05),
        (_synthetic, [1, 12, 18], 0, 2, 0.05),
    ],
)
def test_in_range_trigger_found_without_being_told_the_target(
    loader, features, source, target, rate
):
    x, y = loader(return_X_y=True) if loader is not _synthetic else _synthetic()
    xp, yp, poisoned = plant_in_range(
        x, y, features=features, source=source, target=target, rate=rate
    )
    # The trigger is invisible to the per-cell outlier test the patch search uses.
    extreme, _ = extreme_cells(xp, 3.5)
    assert not extreme[np.ix_(poisoned, features)].all(axis=1).any()
    result = find_backdoors(xp, yp)
    precision, recall = scores(result.rows, poisoned)
    assert precision >= 0.8
    assert recall >= 0.9
    assert result.target == target
    assert result.triggers[0].source == source
    assert set(result.triggers[0].features) <= set(features)
    assert len(result.triggers[0].features) >= 2


def test_in_range_search_can_be_turned_off():
    x, y = _synthetic()
    xp, yp, _ = plant_in_range(x, y, features=[1, 12, 18], source=0, target=2, rate=0.10)
    assert find_backdoors(xp, yp, in_range=False).triggers == ()


@pytest.mark.parametrize("loader", [_synthetic, load_breast_cancer])
def test_clean_continuous_data_has_no_in_range_trigger(loader):
    x, y = loader() if loader is _synthetic else loader(return_X_y=True)
    assert find_backdoors(x, y).triggers == ()


def test_values_within_the_tolerance_share_a_bin():
    x = np.array([[0.0, 5.0], [0.001, 5.0], [10.0, 5.0], [20.0, 5.0]])
    bins = value_bins(x, 0.01)
    assert bins[0, 0] == bins[1, 0] != bins[2, 0]
    assert len(set(bins[:, 1].tolist())) == 1  # a constant column is one bin


def test_a_strong_shared_trigger_is_found_when_its_rows_cluster_together():
    # Gaussian columns' maxima are only ~3.5 standard deviations out: not extreme enough
    # to be muted, so the poisoned rows are each other's neighbours and look like the
    # target; the search over the whole class (values rare elsewhere) still finds them.
    x, y = _synthetic()
    xp, yp, poisoned = plant_patch(x, y, features=[4, 11, 19], source=0, target=2, rate=0.10)
    result = find_backdoors(xp, yp)
    assert set(result.rows) == set(poisoned.tolist())
    assert result.target == 2
