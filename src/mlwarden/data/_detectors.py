"""The model-based screens (mlwarden.data.screens), turned into RowFlags.

The detectors are functions over numpy arrays; this module is the one place that
knows their result types, so the rest of `data` stays independent of them. A
detector runs only where the data allows it: labels and at least two classes for
label issues and backdoors, numeric features for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import numpy.typing as npt

from mlwarden.data._findings import RowFlag, rows_text
from mlwarden.data._inputs import Dataset
from mlwarden.errors import DatasetShapeError
from mlwarden.report import Finding

Embed = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]

# Every check `screen` knows, in the order they run.
CHECKS = ("pii", "duplicates", "leakage", "labels", "backdoors", "outliers", "drift")
MODEL_CHECKS = ("labels", "backdoors", "outliers", "drift", "near")
# A text column with at most this many distinct baseline values is a category column.
CATEGORY_LIMIT = 50


def _labelled(dataset: Dataset) -> bool:
    return (
        dataset.labels is not None
        and dataset.features.shape[1] > 0
        and len(np.unique(dataset.labels)) >= 2
    )


def run_detectors(
    dataset: Dataset,
    *,
    checks: Collection[str],
    baseline: Dataset | None = None,
    test: Dataset | None = None,
    near: float = 0.0,
    embed: Embed | None = None,
    workers: int = 1,
) -> tuple[list[RowFlag], list[Finding]]:
    """Row flags and dataset-level findings of every model-based check the data allows.

    `baseline` is the verified earlier dataset (drift); `test` the test split (near
    leakage, with `near` > 0, which also turns on near duplicates). `embed` maps the
    features to the representation the label, backdoor and outlier screens run in
    (checked by `_represent.represent`: E145-E147); the others stay on the features.
    """
    flags: list[RowFlag] = []
    findings: list[Finding] = []
    numeric = dataset.features.shape[1] > 0
    space = dataset.features
    if numeric and embed is not None and set(checks) & {"labels", "backdoors", "outliers"}:
        from mlwarden.data._represent import represent

        space = represent(embed, dataset.features)
    if numeric and "outliers" in checks and dataset.rows >= 20:
        flags += _outliers(space, workers)
    if numeric and near > 0 and "duplicates" in checks:
        flags += _near_duplicates(dataset, near)
    if numeric and near > 0 and test is not None and "leakage" in checks:
        flags += _near_leakage(dataset, test, near)
    if baseline is not None and "drift" in checks:
        findings += drift_findings(dataset, baseline)
    if not _labelled(dataset):
        return flags, findings
    assert dataset.labels is not None
    names = dataset.classes
    if "labels" in checks:
        from mlwarden.data.screens.labels import find_label_issues

        issues = find_label_issues(space, dataset.labels, workers=workers)
        for issue in issues.issues:
            given, likely = names[int(str(issue.given))], names[int(str(issue.likely))]
            flags.append(
                RowFlag(
                    rule_id="DATA001",
                    row=issue.row,
                    message=f"labelled {given!r}, but the data says {likely!r} "
                    f"(p={issue.likely_probability:.2f} vs {issue.given_probability:.2f})",
                    detail={
                        "given": given,
                        "likely": likely,
                        "given_probability": f"{issue.given_probability:.4f}",
                        "model": issues.family,
                    },
                )
            )
    if "backdoors" in checks:
        from mlwarden.data.screens.backdoors import find_backdoors

        found = find_backdoors(space, dataset.labels)
        for trigger in found.triggers:
            target, source = names[int(str(trigger.target))], names[int(str(trigger.source))]
            cells = ",".join(
                dataset.feature_names[f] if embed is None else f"dim{f}" for f in trigger.features
            )
            for row in trigger.rows:
                flags.append(
                    RowFlag(
                        rule_id="DATA002",
                        row=row,
                        message=f"carries a trigger ({cells}) and is labelled {target!r}; "
                        f"its content says {source!r}",
                        detail={
                            "target": target,
                            "source": source,
                            "trigger": cells,
                            "method": found.method,
                        },
                    )
                )
    return flags, findings


def _outliers(space: npt.NDArray[np.float64], workers: int) -> list[RowFlag]:
    from mlwarden.data.screens.outliers import find_outliers

    return [
        RowFlag(
            rule_id="DATA003",
            row=item.row,
            message=f"far from the rest of the data (robust z {item.score:.1f}, {item.reason})",
            detail={"score": f"{item.score:.2f}", "reason": item.reason},
        )
        for item in find_outliers(space, workers=workers).outliers
    ]


def _near_duplicates(dataset: Dataset, radius: float) -> list[RowFlag]:
    from mlwarden.data.screens.duplicates import find_duplicates

    # Exact copies are the hash screen's (it also compares the text columns).
    return [
        RowFlag(
            rule_id="DATA005",
            row=row,
            message=f"almost the same as row {group.first}",
            detail={"duplicate_of": str(group.first), "radius": str(radius)},
        )
        for group in find_duplicates(dataset.features, radius=radius).groups
        if not group.exact
        for row in group.duplicates
    ]


def _near_leakage(dataset: Dataset, test: Dataset, radius: float) -> list[RowFlag]:
    from mlwarden.data.screens.leakage import find_leakage

    if test.feature_names != dataset.feature_names:
        raise DatasetShapeError(f"{test.path} has other columns than {dataset.path}")
    return [
        RowFlag(
            rule_id="DATA006",
            row=leak.row,
            message=f"almost the same as row {leak.test_row} of the test split {test.path}",
            detail={"test_row": str(leak.test_row), "distance": f"{leak.distance:.4f}"},
        )
        for leak in find_leakage(dataset.features, test.features, radius=radius).leaks
        if leak.distance > 0
    ]


def drift_findings(dataset: Dataset, baseline: Dataset) -> list[Finding]:
    """Per-feature drift (KS with PSI), class balance, and new or vanished categories."""
    from mlwarden.data.screens.drift import find_drift

    if baseline.feature_names != dataset.feature_names:
        raise DatasetShapeError(
            f"the baseline {baseline.path} has other columns than {dataset.path}",
            hint="compare a dataset with an earlier version of itself",
        )
    location = str(dataset.path)
    labels = _names(dataset)
    base_labels = _names(baseline)
    found = find_drift(
        baseline.features,
        dataset.features,
        baseline_labels=base_labels,
        labels=labels,
    )
    findings = [
        Finding(
            rule_id="DATA007",
            message=f"feature {dataset.feature_names[item.feature]!r} drifted from the baseline "
            f"({item.test} p={item.p_value:.2g}"
            + (f", PSI {item.psi:.2f})" if item.psi is not None else ")"),
            location=f"{location}!{dataset.feature_names[item.feature]}",
            detail={
                "test": item.test,
                "statistic": f"{item.statistic:.4f}",
                "p_value": f"{item.p_value:.3g}",
                "psi": "" if item.psi is None else f"{item.psi:.4f}",
            },
        )
        for item in found.features
    ]
    if found.class_balance is not None:
        balance = found.class_balance
        findings.append(
            Finding(
                rule_id="DATA008",
                message=f"the class balance differs from the baseline "
                f"(chi-square p={balance.p_value:.2g})",
                location=f"{location}!{dataset.label_name}",
                detail={
                    "p_value": f"{balance.p_value:.3g}",
                    "new": ",".join(map(str, balance.new_categories)),
                    "vanished": ",".join(map(str, balance.vanished_categories)),
                },
            )
        )
    findings += _category_changes(dataset, baseline)
    return findings


def _names(dataset: Dataset) -> npt.NDArray[np.str_] | None:
    if dataset.labels is None:
        return None
    return np.asarray(dataset.classes, dtype=str)[dataset.labels]


def _category_changes(dataset: Dataset, baseline: Dataset) -> list[Finding]:
    """Text columns of few values: values the baseline never had, or no longer present."""
    findings: list[Finding] = []
    for name, values in dataset.text.items():
        before = baseline.text.get(name)
        if before is None:
            continue
        known = set(before) - {None}
        if len(known) > CATEGORY_LIMIT:
            continue
        now = set(values) - {None}
        new, gone = sorted(now - known), sorted(known - now)  # type: ignore[type-var]
        if not new and not gone:
            continue
        rows = [i for i, v in enumerate(values) if v is not None and v not in known]
        findings.append(
            Finding(
                rule_id="DATA009",
                message=f"column {name!r}: new {new[:5]}, vanished {gone[:5]}",
                location=f"{dataset.path}!{name}",
                detail={
                    "new": ",".join(str(v) for v in new),
                    "vanished": ",".join(str(v) for v in gone),
                    **rows_text(rows),
                },
            )
        )
    return findings
