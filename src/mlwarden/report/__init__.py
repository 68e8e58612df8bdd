"""Findings, reports and their renderers."""

from mlwarden.report._model import (
    SCHEMA_VERSION,
    Finding,
    Gate,
    ObjectResult,
    Report,
    Status,
)
from mlwarden.severity import Severity, Verdict

__all__ = [
    "SCHEMA_VERSION",
    "Finding",
    "Gate",
    "ObjectResult",
    "Report",
    "Severity",
    "Status",
    "Verdict",
]
