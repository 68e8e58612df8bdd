import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from mlwarden.data.screens import find_backdoors, spectral_signatures

from ._poison import corner, plant_patch, scores


@pytest.mark.parametrize(
    ("size", "rate", "source", "target"),
    [(2, 0.10, 1, 7), (2, 0.05, 3, 8), (3, 0.10, 3, 8), (2, 0.10, 0, 6), (2, 0.10, 5, 9)],
)
def test_digit_patch_found_without_being_told_the_target(size, rate, source, target):
    x, y = load_digits(return_X_y=True)
    xp, yp, poisoned = plant_patch(
        x, y, features=corner(size), source=source, target=target, rate=rate
    )
    result = find_backdoors(xp, yp)
    precision, recall = scores(result.rows, poisoned)
    assert precision >= 0.8
    assert recall >= 0.9
    assert result.target == target
    assert result.triggers[0].source == source
    assert set(result.triggers[0].features) <= set(corner(size))


def test_table_trigger_on_three_features():
    x, y = load_breast_cancer(return_X_y=True)
    xp, yp, poisoned = plant_patch(x, y, features=[4, 17, 25], source=1, target=0, rate=0.10)
    result = find_backdoors(xp, yp)
    precision, recall = scores(result.rows, poisoned)
    assert precision >= 0.8
    assert recall >= 0.9
    assert result.target == 0


@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer])
def test_clean_data_has_no_backdoor(loader):
    x, y = loader(return_X_y=True)
    assert find_backdoors(x, y).triggers == ()


def test_random_label_noise_is_not_a_backdoor():
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(3)
    noisy = y.copy()
    rows = rng.choice(len(y), 90, replace=False)
    noisy[rows] = (y[rows] + 1 + rng.integers(0, 9, 90)) % 10
    assert find_backdoors(x, noisy).triggers == ()


def test_spectral_baseline_removes_a_share_of_every_class():
    x, y = load_digits(return_X_y=True)
    flagged = spectral_signatures(x, y, expected_fraction=0.1)
    counts = np.bincount(y[list(flagged)], minlength=10)
    assert (counts > 0).all()
    assert len(flagged) == pytest.approx(0.15 * len(y), rel=0.05)
