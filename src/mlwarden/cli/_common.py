"""Pieces every command shares: output, gating, error printing."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlwarden.errors import MlwardenError, OutputError
from mlwarden.report import Gate, Report, Status
from mlwarden.report.render import OutputFormat, render

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in OutputFormat]),
    default=OutputFormat.TABLE.value,
    show_default=True,
    help="Report format.",
)
FAIL_ON_OPTION = click.option(
    "--fail-on",
    default="suspicious",
    show_default=True,
    metavar="LEVEL",
    help="Exit 1 when anything is at or above LEVEL: a verdict (suspicious, malicious) "
    "or a severity (info, low, medium, high, critical).",
)
OUTPUT_OPTION = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to FILE instead of standard output.",
)


def die(error: MlwardenError) -> int:
    """Print a one-line error with its code; return its exit status."""
    click.echo(f"mlwarden: error: {error.one_line()}", err=True)
    return error.exit_status


def parse_gate(text: str) -> Gate:
    try:
        return Gate.parse(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not one of suspicious, malicious, info, low, medium, high, critical",
            param_hint="--fail-on",
        ) from None


def emit(report: Report, fmt: str, output: Path | None) -> None:
    """Write the rendered report to FILE or standard output."""
    if output is None:
        color = fmt == OutputFormat.TABLE.value and sys.stdout.isatty()
        click.echo(render(report, OutputFormat(fmt), color=color), nl=False)
        return
    try:
        output.write_text(render(report, OutputFormat(fmt)), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write report to {output}: {exc.strerror}") from None


def exit_status(report: Report, gate: Gate, *, empty_ok: bool = False) -> int:
    """0 clean, 1 at or above the gate, 2 when nothing could be checked."""
    if not any(r.status is Status.CHECKED for r in report.results):
        failed = [r for r in report.results if r.status is Status.FAILED]
        for item in failed:
            click.echo(f"mlwarden: error: {item.code}: {item.reason}", err=True)
        if not failed and empty_ok:
            return EXIT_CLEAN
        if not failed:
            click.echo("mlwarden: error: E104: nothing to check: no model file found", err=True)
        return EXIT_USAGE
    return EXIT_FINDINGS if gate.fails(report) else EXIT_CLEAN
