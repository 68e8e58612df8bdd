"""Label issues: rows whose given label the data itself contradicts.

Confident learning (Northcutt et al.) over out-of-fold probabilities, in two passes:

1. out-of-fold probabilities from an ensemble (an RBF SVC with Platt probabilities and
   a distance-weighted k-NN, on min-max scaled features); the rows cleanlab's
   confident-learning filter (per-class thresholds, pruning by class and by noise rate)
   rejects on them are the first-pass suspects;
2. the same ensemble again, but each fold's models are trained without the first-pass
   suspects, so the noise no longer teaches the models its own mistakes; a row is a label
   issue when these cleaner models prefer another class and give its given label less
   than `threshold` probability, or when the confident-learning filter rejects it on
   these probabilities.

Measured on scikit-learn's digits with 10% random flips (bench/data_screen.py), the second
pass is what lifts F1 from about 0.93 (cleanlab's `find_label_issues` on the first-pass
probabilities) to about 0.98. The fixed threshold alone is best on well-separated
classes; the confident-learning filter adds the rows it misses where classes overlap.
Leaving out only the confident-learning rejects (not every row the first pass gets
wrong) keeps hard clean rows near class boundaries in the second pass's training; on
small tables (wine, breast cancer, over three flip seeds) that removed most of the
settings where cleanlab alone had been ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlwarden.data.screens._arrays import (
    FloatArray,
    IntArray,
    as_features,
    as_labels,
    label_value,
)
from mlwarden.errors import MissingExtraError, UsageError

DEFAULT_THRESHOLD = 0.2
# SVC probabilities cost O(n^2) memory and time; past this many rows the ensemble is a
# logistic regression and gradient-boosted trees instead.
SVC_MAX_ROWS = 20_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelIssue:
    """A row whose label looks wrong: the label it has, and the one the data suggests."""

    row: int
    given: object
    likely: object
    given_probability: float
    likely_probability: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelIssueResult:
    """Every label issue found, most confident first, and how they were found."""

    issues: tuple[LabelIssue, ...]
    family: str
    folds: int

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(sorted(issue.row for issue in self.issues))


def find_label_issues(
    x: Any,
    y: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    folds: int = 5,
    seed: int = 0,
    workers: int = 1,
) -> LabelIssueResult:
    """Rows whose given label the out-of-fold models reject (see the module docstring)."""
    features = as_features(x)
    codes, classes = as_labels(y, features.shape[0])
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"threshold must be between 0 and 1, not {threshold}")
    if len(classes) < 2:
        raise UsageError("label issues need at least two classes, the labels have one")
    family = "svc+knn" if features.shape[0] <= SVC_MAX_ROWS else "logreg+hgb"
    folds = _fold_count(codes, folds)
    first = out_of_fold_probabilities(
        features, codes, family=family, folds=folds, seed=seed, workers=workers
    )
    # Left out of the second pass: the rows confident learning rejects on the first,
    # not every row the first pass gets wrong (hard clean rows near a boundary teach the
    # second pass where that boundary is; leaving them out made it overconfident).
    suspects = _confident_learning(codes, first)
    second = out_of_fold_probabilities(
        features, codes, family=family, folds=folds, seed=seed, exclude=suspects, workers=workers
    )
    given = second[np.arange(len(codes)), codes]
    likely = second.argmax(axis=1)
    rejected = (likely != codes) & (given < threshold)
    flagged = np.flatnonzero(rejected | _confident_learning(codes, second))
    order = flagged[np.argsort(given[flagged], kind="stable")]
    issues = tuple(
        LabelIssue(
            row=int(row),
            given=label_value(classes, int(codes[row])),
            likely=label_value(classes, int(likely[row])),
            given_probability=float(given[row]),
            likely_probability=float(second[row, likely[row]]),
        )
        for row in order
    )
    return LabelIssueResult(issues=issues, family=family, folds=folds)


def _confident_learning(codes: IntArray, probabilities: FloatArray) -> Any:
    """cleanlab's confident-learning filter ("both": prune by class and by noise rate)."""
    try:
        from cleanlab.filter import find_label_issues as cleanlab_issues
    except ImportError:
        raise MissingExtraError("cleanlab", "data") from None
    return np.asarray(cleanlab_issues(codes, probabilities, filter_by="both"), dtype=bool)


def _fold_count(codes: IntArray, folds: int) -> int:
    if folds < 2:
        raise UsageError(f"cross-validation needs at least 2 folds, not {folds}")
    smallest = int(np.bincount(codes).min())
    if smallest < 2:
        raise UsageError(
            "a class has a single row: out-of-fold probabilities need two rows of every class",
            hint="drop classes with one example or merge them",
        )
    return min(folds, smallest)


def _ensemble(family: str, seed: int) -> list[Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    from sklearn.svm import SVC

    if family == "svc+knn":
        return [
            make_pipeline(MinMaxScaler(), SVC(C=10.0, probability=True, random_state=seed)),
            make_pipeline(MinMaxScaler(), KNeighborsClassifier(10, weights="distance")),
        ]
    return [
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        HistGradientBoostingClassifier(random_state=seed),
    ]


def out_of_fold_probabilities(
    x: FloatArray,
    codes: IntArray,
    *,
    family: str = "svc+knn",
    folds: int = 5,
    seed: int = 0,
    exclude: Any = None,
    workers: int = 1,
) -> FloatArray:
    """Each row's class probabilities from models that never saw it (nor `exclude`d rows)."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    classes = int(codes.max()) + 1
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, codes))
    mask = np.zeros(len(codes), dtype=bool) if exclude is None else np.asarray(exclude, bool)
    jobs = [
        delayed(_fit_predict)(model, x, codes, train[~mask[train]], test, classes)
        for train, test in splits
        for model in _ensemble(family, seed)
    ]
    results = Parallel(n_jobs=workers)(jobs)
    probabilities = np.zeros((len(codes), classes))
    models = len(_ensemble(family, seed))
    for (_, test), start in zip(splits, range(0, len(results), models), strict=True):
        for part in results[start : start + models]:
            probabilities[test] += part / models
    return probabilities


def _fit_predict(
    model: Any, x: FloatArray, codes: IntArray, train: IntArray, test: IntArray, classes: int
) -> FloatArray:
    out = np.zeros((len(test), classes))
    fitted = model.fit(x[train], codes[train])
    out[:, fitted.classes_] = fitted.predict_proba(x[test])
    return out
