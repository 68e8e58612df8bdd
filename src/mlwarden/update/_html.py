"""A self-contained HTML page of one update check (no scripts, no external resources)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlwarden.update import UpdateCheck


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    body = "".join(_row(r) for r in rows) or _row(["(none)"] + [""] * (len(head) - 1))
    return f"<table><thead>{_row(head, 'th')}</thead><tbody>{body}</tbody></table>"


def render_html(result: UpdateCheck, *, title: str = "mlwarden update check") -> str:
    """The check as one HTML page: verdict, findings, structure, behaviour, triggers."""
    verdict = "PASSED" if result.passed else "REFUSED"
    colour = "#1a7f37" if result.passed else "#cf222e"
    findings = _table(
        ["rule", "severity", "where", "message"],
        [
            [f.rule_id, f.effective_severity.label, f.location, f.message]
            for f in result.report.findings
        ],
    )
    s = result.structure
    structure = _table(
        ["tensor", "shape", "relative change", "cosine", "norm ratio", "changed", "outliers"],
        [
            [
                d.name,
                "x".join(map(str, d.shape)),
                f"{d.relative_change:.4f}",
                f"{d.cosine:.4f}",
                f"{d.norm_ratio:.3f}",
                f"{d.share_changed:.1%}",
                str(d.outliers),
            ]
            for d in s.deltas
        ],
    )
    b = result.behaviour
    behaviour = _table(
        ["class", "accuracy old", "accuracy new", "flips into (share of rows)"],
        [
            [c, f"{b.class_accuracy_old[c]:.3f}", f"{b.class_accuracy_new[c]:.3f}",
             f"{b.flips_into.get(c, 0.0):.1%}"]
            for c in b.class_accuracy_old
        ],
    )  # fmt: skip
    triggers = _table(
        ["class", "differential success", "anomaly index", "pattern", "flagged"],
        [
            [t.target, f"{t.success:.2f}", f"{t.anomaly_index:.2f}",
             ", ".join(f"x{f}={v:g}" for f, v in zip(t.features, t.values, strict=True)),
             "yes" if t.flagged else ""]
            for t in result.triggers
        ],
    )  # fmt: skip
    summary = (
        f"{b.rows} canary rows; accuracy {b.accuracy_old:.3f} -> {b.accuracy_new:.3f}; "
        f"agreement {b.agreement:.1%}; confidence {b.confidence_old:.3f} -> "
        f"{b.confidence_new:.3f}; policy expects: {result.config.expect}"
    )
    arch = (
        f"estimator {s.estimator_old} -> {s.estimator_new}; added {len(s.added)}, removed "
        f"{len(s.removed)}, reshaped {len(s.reshaped)}, retyped {len(s.retyped)}, "
        f"hyperparameters changed {len(s.params_changed)}"
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
        f".verdict{{color:{colour};font-weight:bold}}"
    )
    name = result.report.results[0].path if result.report.results else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f'</title><style>{style}</style></head><body><section id="update-check">'
        f'<h1>{escape(title)}</h1><p>{escape(name)}: <span class="verdict">{verdict}</span>'
        f"</p><p>{escape(summary)}</p><h2>Findings</h2>{findings}<h2>Structure</h2>"
        f"<p>{escape(arch)}</p>{structure}<h2>Behaviour on the canary set</h2>{behaviour}"
        f"<h2>Trigger search</h2>{triggers}</section></body></html>\n"
    )
