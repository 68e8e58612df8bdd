"""Render a Report: a rich table for people, JSON and SARIF for machines."""

from __future__ import annotations

import enum
import io
import json

from mlwarden.report._model import Report, Status
from mlwarden.severity import Verdict


class OutputFormat(enum.Enum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"


def render(report: Report, fmt: OutputFormat, *, color: bool = False, width: int = 120) -> str:
    """The report as text in the chosen format."""
    if fmt is OutputFormat.JSON:
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt is OutputFormat.SARIF:
        from mlwarden.report._sarif import to_sarif

        return json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
    return render_table(report, color=color, width=width)


_VERDICT_STYLE = {
    Verdict.CLEAN: "green",
    Verdict.SUSPICIOUS: "yellow",
    Verdict.MALICIOUS: "bold red",
    Verdict.ERROR: "magenta",
}


def render_table(report: Report, *, color: bool, width: int) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"mlwarden {report.kind}", expand=False, show_lines=False)
    table.add_column("object", overflow="fold", max_width=48)
    table.add_column("format", overflow="fold", max_width=22)
    table.add_column("verdict")
    table.add_column("findings", overflow="fold")
    for item in report.results:
        if item.status is Status.SKIPPED:
            verdict = Text("skipped", style="dim")
            detail = Text(item.reason or "", style="dim")
        elif item.status is Status.FAILED:
            verdict = Text("error", style=_VERDICT_STYLE[Verdict.ERROR])
            detail = Text(f"{item.code}: {item.reason}")
        else:
            verdict = Text(item.verdict.value, style=_VERDICT_STYLE[item.verdict])
            detail = Text()
            for finding in item.findings:
                if detail:
                    detail.append("\n")
                detail.append(f"{finding.rule_id} ", style="bold")
                detail.append(f"[{finding.effective_severity.label}] ")
                where = finding.location.removeprefix(item.path)
                detail.append(f"{where.lstrip('!') + ': ' if where else ''}{finding.message}")
        table.add_row(item.path, item.format or "", verdict, detail)
    counts = report.counts()
    summary = (
        f"{len(report.results)} inputs: {counts['checked']} checked, {counts['skipped']} skipped, "
        f"{counts['failed']} failed; {counts['malicious']} malicious, "
        f"{counts['suspicious']} suspicious, {counts['clean']} clean "
        f"({report.duration_s:.2f} s)"
    )
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width)
    console.print(table)
    console.print(summary)
    return buffer.getvalue()
