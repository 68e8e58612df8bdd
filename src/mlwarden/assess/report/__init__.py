"""Reports of `mlwarden assess`: figures, findings against thresholds, HTML, JSON, SARIF.

SARIF and the table come from `mlwarden.report.render` on the findings report; the JSON
is that report's own JSON with the measured figures beside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mlwarden.assess.report._findings import assessment_report
from mlwarden.assess.report._html import render_html
from mlwarden.assess.report._model import (
    ATTACKS,
    Assessment,
    AttackOutcome,
    Curve,
    EvasionSummary,
    ExtractionSummary,
    InversionSummary,
    MembershipSummary,
)
from mlwarden.report import Report

__all__ = [
    "ATTACKS",
    "Assessment",
    "AttackOutcome",
    "Curve",
    "EvasionSummary",
    "ExtractionSummary",
    "InversionSummary",
    "MembershipSummary",
    "assessment_report",
    "render_html",
    "render_json",
]


def render_json(
    assessments: Sequence[Assessment], report: Report, *, removed: Sequence[Any] = ()
) -> str:
    """The findings report's JSON (it round-trips through `Report.from_dict`) with the
    measured figures under `assessment`, and the comparison under `compare`."""
    document = report.to_dict()
    document["assessment"] = [a.to_dict() for a in assessments]
    if removed:
        document["compare"] = [
            {
                "figure": r.figure,
                "bare": r.bare,
                "defended": r.defended,
                "removed": r.removed,
            }
            for r in removed
        ]
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
