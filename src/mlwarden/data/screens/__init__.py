"""The data screens' detectors: functions over numpy arrays returning typed results.

Each takes features `x` (rows by numeric features) and, where it needs them, labels `y`
(one per row); each returns row ids with scores and reasons. `mlwarden.data` turns them
into DATA findings. Heavy libraries (scikit-learn, scipy) load inside the functions.
"""

from __future__ import annotations

from mlwarden.data.screens.backdoors import (
    BackdoorResult,
    Trigger,
    find_backdoors,
    spectral_signatures,
)
from mlwarden.data.screens.drift import DriftResult, FeatureDrift, find_drift, psi
from mlwarden.data.screens.duplicates import DuplicateGroup, DuplicateResult, find_duplicates
from mlwarden.data.screens.labels import LabelIssue, LabelIssueResult, find_label_issues
from mlwarden.data.screens.leakage import Leak, LeakageResult, find_leakage
from mlwarden.data.screens.outliers import Outlier, OutlierResult, find_outliers

__all__ = [
    "BackdoorResult",
    "DriftResult",
    "DuplicateGroup",
    "DuplicateResult",
    "FeatureDrift",
    "LabelIssue",
    "LabelIssueResult",
    "Leak",
    "LeakageResult",
    "Outlier",
    "OutlierResult",
    "Trigger",
    "find_backdoors",
    "find_drift",
    "find_duplicates",
    "find_label_issues",
    "find_leakage",
    "find_outliers",
    "psi",
    "spectral_signatures",
]
