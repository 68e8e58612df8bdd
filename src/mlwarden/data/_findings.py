"""Every screen's result as Findings that name their rows.

A finding about one row is located at `PATH#row=ID` (for an image folder, at
the image's own path); a finding about many rows (a column holding personal
data, a group of duplicates) at `PATH!COLUMN` or `PATH#row=FIRST`, with the row
ids in `detail["rows"]` (the first `SHOWN_ROWS` of them; `detail["row_count"]`
says how many there are, and `--quarantine` writes them all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mlwarden.data._inputs import Dataset
from mlwarden.data._pii import PiiHits
from mlwarden.report import Finding

SHOWN_ROWS = 1000

_KIND_NAMES = {
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "card": "payment card numbers",
    "national_id": "national identifiers",
    "iban": "IBANs",
    "ip": "IP addresses",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RowFlag:
    """One screen's verdict on one row: the common currency between screens and findings."""

    rule_id: str
    row: int
    message: str
    detail: Mapping[str, str] = field(default_factory=dict)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _verb(verb: str, count: int) -> str:
    return verb + "s" if count == 1 else verb


def row_location(dataset: Dataset, row: int) -> str:
    if dataset.files:
        return str(dataset.files[row])
    return f"{dataset.path}#row={row}"


def rows_text(rows: Sequence[int] | npt.NDArray[np.int64]) -> dict[str, str]:
    values = [int(r) for r in rows]
    shown = ",".join(str(r) for r in values[:SHOWN_ROWS])
    return {"rows": shown, "row_count": str(len(values))}


def flag_findings(dataset: Dataset, flags: Iterable[RowFlag]) -> list[Finding]:
    return [
        Finding(
            rule_id=flag.rule_id,
            message=flag.message,
            location=row_location(dataset, flag.row),
            detail={"row": str(flag.row), **flag.detail},
        )
        for flag in flags
    ]


def pii_findings(location: str, hits: Iterable[PiiHits]) -> list[Finding]:
    findings = []
    for hit in hits:
        count = len(hit.rows)
        noun = _KIND_NAMES[hit.kind]
        findings.append(
            Finding(
                rule_id=hit.rule_id,
                message=f"column {hit.column!r}: {_rows(count)} {_verb('hold', count)} {noun} "
                f"(e.g. {hit.example})",
                location=f"{location}!{hit.column}",
                detail={"column": hit.column, "kind": hit.kind, **rows_text(hit.rows)},
            )
        )
    return findings


def duplicate_findings(location: str, groups: Mapping[int, list[int]]) -> list[Finding]:
    return [
        Finding(
            rule_id="DATA004",
            message=f"{_rows(len(later))} {_verb('repeat', len(later))} row {first} exactly",
            location=f"{location}#row={later[0]}",
            detail={"duplicate_of": str(first), **rows_text(later)},
        )
        for first, later in sorted(groups.items())
    ]


def leakage_finding(location: str, test: str, rows: Sequence[int]) -> list[Finding]:
    if not rows:
        return []
    return [
        Finding(
            rule_id="DATA006",
            message=f"{_rows(len(rows))} also {_verb('appear', len(rows))} exactly in {test}",
            location=f"{location}#row={rows[0]}",
            detail={"test": test, "match": "exact", **rows_text(rows)},
        )
    ]
