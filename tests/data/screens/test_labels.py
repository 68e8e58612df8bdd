import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine

from mlwarden.data.screens import find_label_issues
from mlwarden.errors import MalformedInputError, UsageError

from ._poison import flip_labels, scores


def test_digits_ten_percent_flips_found_with_given_and_likely_labels():
    x, y = load_digits(return_X_y=True)
    noisy, flipped = flip_labels(y, 0.10)
    result = find_label_issues(x, noisy)
    precision, recall = scores(result.rows, flipped)
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= 0.95, (precision, recall)
    issue = next(i for i in result.issues if i.row in set(flipped.tolist()))
    assert issue.given == noisy[issue.row]
    assert issue.likely == y[issue.row]
    assert issue.given_probability < 0.2 < issue.likely_probability


def test_string_labels_come_back_as_given():
    x, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    noisy, flipped = flip_labels(names, 0.10)
    result = find_label_issues(x, noisy)
    assert {i.given for i in result.issues} <= {"barolo", "grignolino", "barbera"}
    precision, recall = scores(result.rows, flipped)
    assert precision >= 0.8
    assert recall >= 0.8


def test_clean_labels_give_few_issues():
    x, y = load_wine(return_X_y=True)
    assert len(find_label_issues(x, y).rows) <= 3


@pytest.mark.parametrize(
    ("x", "y", "error", "words"),
    [
        (np.zeros((0, 3)), np.zeros(0), UsageError, "empty"),
        (np.zeros((4, 3)), np.zeros(3), UsageError, "3 labels for 4 rows"),
        (np.zeros((4, 2, 2)), np.zeros(4), UsageError, "2-D"),
        ([[1, "a"], [2, "b"]], [0, 1], MalformedInputError, "not numeric"),
        ([[1.0], [np.nan]], [0, 1], MalformedInputError, "row 1"),
        (np.ones((6, 2)), np.zeros(6), UsageError, "two classes"),
        (np.ones((6, 2)), [0, 0, 0, 0, 0, 1], UsageError, "single row"),
        (np.ones((4, 2)), [0, None, 1, 1], MalformedInputError, "missing label"),
    ],
)
def test_bad_input_is_a_clear_error(x, y, error, words):
    with pytest.raises(error, match=words):
        find_label_issues(x, y)


def test_workers_give_the_same_answer():
    x, y = load_wine(return_X_y=True)
    noisy, _ = flip_labels(y, 0.10)
    assert find_label_issues(x, noisy, workers=2).rows == find_label_issues(x, noisy).rows
