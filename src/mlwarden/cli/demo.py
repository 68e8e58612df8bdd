"""`mlwarden demo`: walk the system on its embedded defaults."""

from __future__ import annotations

from pathlib import Path

import click

from mlwarden.cli._common import EXIT_CLEAN, EXIT_FINDINGS
from mlwarden.report import Gate, Verdict
from mlwarden.report.render import OutputFormat, render


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


@click.command("demo")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Folder for the demo's files.",
)
def demo_command(folder: Path) -> int:
    """Make real model files (and one harmless poisoned one), then scan them."""
    from mlwarden.artifacts import scan
    from mlwarden.demo import make_demo_models

    _step("1. Train a scikit-learn model on the digits data and save it as people do")
    files = make_demo_models(folder)
    for item in files:
        tag = "poisoned (harmless payload: `true`)" if item.malicious else "benign"
        click.echo(f"  {item.path}  [{tag}] {item.what}")

    _step(f"2. mlwarden scan {folder}")
    report = scan([folder])
    click.echo(render(report, OutputFormat.TABLE, width=110), nl=False)

    expected = {str(f.path): f.malicious for f in files}
    wrong = [
        r.path
        for r in report.results
        if r.path in expected and (r.verdict is not Verdict.CLEAN) != expected[r.path]
    ]
    status = EXIT_FINDINGS if Gate.parse("suspicious").fails(report) else EXIT_CLEAN
    _step("Result")
    click.echo(
        f"  `mlwarden scan {folder}` exits {status}: the poisoned pickle is caught, "
        "the real models are clean."
        if not wrong
        else f"  unexpected verdicts for: {', '.join(wrong)}"
    )
    return 1 if wrong else 0
