"""The assessment as one self-contained HTML page: inline CSS and SVG, no script, nothing
fetched (it must open offline and in a CI artifact viewer)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from mlwarden import __version__
from mlwarden.assess._config import Thresholds
from mlwarden.assess.report._model import (
    Assessment,
    EvasionSummary,
    ExtractionSummary,
    InversionSummary,
    MembershipSummary,
)
from mlwarden.assess.report._svg import PALETTE, Axis, Series, line_chart
from mlwarden.report import Report, Status

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1150px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.92em}th{background:#f3f3f3}.pass{color:#176b26;font-weight:bold}
.fail{color:#b00020;font-weight:bold}.error{color:#8a2be2;font-weight:bold}
.plots{display:flex;flex-wrap:wrap;gap:1em}.muted{color:#666}
"""


def render_html(
    assessments: Sequence[Assessment],
    report: Report,
    thresholds: Thresholds,
    *,
    verdict: str,
    removed: Sequence[Any] = (),
) -> str:
    """The page. `verdict` is the gate's word (pass, fail, error); `removed` the
    comparison rows (`_compare.Removed`) when two targets were assessed side by side."""
    title = "mlwarden assess: " + " vs ".join(a.label or a.target for a in assessments)
    css_class = {"pass": "pass", "fail": "fail"}.get(verdict, "error")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p>Verdict: <span class="{css_class}">{escape(verdict.upper())}</span> '
        f'<span class="muted">mlwarden {escape(__version__)}, {now}</span></p>',
        _targets_table(assessments),
    ]
    if removed:
        parts.append(_removed_table(removed))
    parts.append("<h2>Plots</h2><div class='plots'>")
    parts.append(_evasion_plot(assessments, thresholds))
    parts.append(_roc_plot(assessments))
    parts.append(_extraction_plot(assessments, thresholds))
    parts.append("</div>")
    for assessment in assessments:
        parts.append(_attack_tables(assessment))
    parts.append(_thresholds_table(thresholds))
    parts.append(_findings_table(report))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _targets_table(assessments: Sequence[Assessment]) -> str:
    rows = [
        [
            a.label or "target",
            a.target,
            a.output,
            str(a.n_classes),
            f"{a.value_range[0]:g} to {a.value_range[1]:g}",
            str(a.queries),
            f"{a.seconds:.1f} s",
        ]
        for a in assessments
    ]
    return "<h2>Targets</h2>" + _table(
        ["", "target", "reveals", "classes", "value range", "queries", "time"], rows
    )


def _removed_table(removed: Sequence[Any]) -> str:
    rows = [
        [
            r.figure,
            _f(r.bare),
            _f(r.defended),
            "n/a" if r.removed is None else f"{100 * r.removed:.0f}%",
        ]
        for r in removed
    ]
    return "<h2>What the defenses removed</h2>" + _table(
        ["figure", "bare", "defended", "attack advantage removed"], rows
    )


def _series_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _evasion_plot(assessments: Sequence[Assessment], thresholds: Thresholds) -> str:
    series = []
    high = 0.2
    for i, a in enumerate(assessments):
        s = a.summary("evasion")
        if isinstance(s, EvasionSummary):
            series.append(
                Series(label=a.label or "target", xs=s.epsilons, ys=s.robust_accuracy,
                       color=_series_color(i), dashed=i > 0)
            )  # fmt: skip
            high = max(high, *s.epsilons)
    limit = thresholds.robust_accuracy
    return line_chart(
        chart_id="plot-evasion",
        title="Robust accuracy against epsilon",
        x=Axis(label="epsilon (fraction of the value range)", low=0.0, high=high),
        y=Axis(label="robust accuracy", low=0.0, high=1.0),
        series=series,
        marker=(limit.epsilon, limit.min) if limit else None,
    )


def _roc_plot(assessments: Sequence[Assessment]) -> str:
    series = []
    for i, a in enumerate(assessments):
        s = a.summary("membership")
        if isinstance(s, MembershipSummary):
            series.append(
                Series(label=f"{a.label or 'target'} AUC {s.auc:.2f}", xs=s.roc_fpr,
                       ys=s.roc_tpr, color=_series_color(i), dashed=i > 0)
            )  # fmt: skip
    return line_chart(
        chart_id="plot-roc",
        title="Membership inference ROC (log-log)",
        x=Axis(label="false-positive rate", low=1e-3, high=1.0, log=True),
        y=Axis(label="true-positive rate", low=1e-3, high=1.0, log=True),
        series=series,
        diagonal=True,
    )


def _extraction_plot(assessments: Sequence[Assessment], thresholds: Thresholds) -> str:
    series = []
    high = 100.0
    index = 0
    for i, a in enumerate(assessments):
        s = a.summary("extraction")
        if isinstance(s, ExtractionSummary):
            for curve in s.curves:
                series.append(
                    Series(label=f"{a.label or 'target'} {curve.strategy}",
                           xs=tuple(float(q) for q in curve.queries), ys=curve.fidelity,
                           color=_series_color(index), dashed=i > 0)
                )  # fmt: skip
                index += 1
                high = max(high, *(float(q) for q in curve.queries))
    limit = thresholds.extraction_fidelity
    return line_chart(
        chart_id="plot-extraction",
        title="Extraction fidelity against queries",
        x=Axis(label="queries", low=0.0, high=high),
        y=Axis(label="fidelity (agreement with the target)", low=0.0, high=1.0),
        series=series,
        marker=(float(limit.queries), limit.max) if limit else None,
    )


def _attack_tables(a: Assessment) -> str:
    parts = [f"<h2>Attacks on {escape(a.label or a.target)}</h2>"]
    rows = []
    for o in a.outcomes:
        detail = o.reason or ""
        if o.status == "failed":
            detail = f"{o.code}: {o.reason}"
        rows.append([o.attack, o.status, str(o.queries), f"{o.seconds:.2f} s", detail])
    parts.append(_table(["attack", "status", "queries", "time", "note"], rows))
    for o in a.outcomes:
        s = o.summary
        if isinstance(s, EvasionSummary):
            parts.append(
                f"<p>Evasion: {escape(s.method)} ({escape(s.norm)}, "
                f"{'white-box' if s.white_box else 'black-box'}), {s.samples} samples, "
                f"clean accuracy {s.clean_accuracy:.3f}</p>"
            )
            parts.append(
                _table(
                    ["epsilon (fraction)", "robust accuracy"],
                    [[f"{e:g}", _f(r)] for e, r in zip(s.epsilons, s.robust_accuracy, strict=True)],
                )
            )
        elif isinstance(s, MembershipSummary):
            parts.append(f"<p>Membership inference: {escape(s.method)}</p>")
            parts.append(
                _table(
                    ["members", "non-members", "ROC AUC", "TPR at 1% FPR", "TPR at 0.1% FPR"],
                    [
                        [
                            str(s.members),
                            str(s.nonmembers),
                            _f(s.auc),
                            _f(s.tpr_at_1pct_fpr),
                            _f(s.tpr_at_01pct_fpr),
                        ]
                    ],
                )
            )
        elif isinstance(s, ExtractionSummary):
            rows = [
                [c.strategy, str(q), _f(f), _f(acc)]
                for c in s.curves
                for q, f, acc in zip(c.queries, c.fidelity, c.accuracy, strict=True)
            ]
            parts.append("<p>Extraction</p>")
            parts.append(_table(["strategy", "queries", "fidelity", "copy accuracy"], rows))
        elif isinstance(s, InversionSummary):
            parts.append("<p>Inversion</p>")
            parts.append(
                _table(
                    ["recognised", "classes", "mean similarity"],
                    [[str(s.recognised), str(s.classes), _f(s.similarity)]],
                )
            )
    return "\n".join(parts)


def _thresholds_table(thresholds: Thresholds) -> str:
    rows = []
    for name, value in thresholds.model_dump().items():
        text = "off" if value is None else ", ".join(f"{k} {v}" for k, v in value.items())
        rows.append([name, text])
    return "<h2>Thresholds</h2>" + _table(["threshold", "setting"], rows)


def _findings_table(report: Report) -> str:
    rows = []
    for item in report.results:
        if item.status is Status.FAILED:
            rows.append([item.path, "error", f"{item.code}: {item.reason}"])
        elif item.status is Status.SKIPPED:
            rows.append([item.path, "skipped", item.reason or ""])
        elif not item.findings:
            rows.append([item.path, "pass", "within the thresholds"])
        for finding in item.findings:
            rows.append([item.path, f"{finding.rule_id} fail", finding.message])
    return "<h2>Findings</h2>" + _table(["object", "result", "detail"], rows)
