"""`mlwarden update check OLD NEW --canary DATA`: the update gate."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlwarden.cli._common import (
    EXIT_FINDINGS,
    FAIL_ON_OPTION,
    FORMAT_OPTION,
    OUTPUT_OPTION,
    die,
    emit,
    parse_gate,
)
from mlwarden.errors import IntegrityError, OutputError


@click.group("update")
def update_group() -> None:
    """Gate model updates by their behaviour, not only by their signature."""


@update_group.command("check")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option(
    "--canary",
    required=True,
    type=click.Path(path_type=Path),
    help="Signed canary dataset (folder from `mlwarden data manifest`, or a signed file).",
)
@click.option("--label", default=None, help="Label column of the canary set.")
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="mlwarden.yaml: trusted signers and the `update` thresholds.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust this public key (PEM); repeatable: any one of them may sign. Used when "
    "--policy lists no signers (a policy's signers always decide).",
)
@click.option(
    "--html",
    "html",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a self-contained HTML page to FILE.",
)
@FORMAT_OPTION
@FAIL_ON_OPTION
@OUTPUT_OPTION
def check_command(
    old: Path,
    new: Path,
    canary: Path,
    label: str | None,
    policy: Path | None,
    keys: tuple[Path, ...],
    html: Path | None,
    fmt: str,
    fail_on: str,
    output: Path | None,
) -> int:
    """Compare NEW with OLD: structure, behaviour on the canary set, trigger search.

    OLD, NEW and the canary set are loaded only once their signatures verify against
    the policy's signers or --key, and the scan finds nothing. Exit 0 passed, 1
    refused (findings at or above --fail-on, or a verification refused), 2 bad input.
    """
    from mlwarden.policy import load_policy
    from mlwarden.update import UpdateConfig, check

    gate = parse_gate(fail_on)
    policy_file = load_policy(policy) if policy is not None else None
    config = (policy_file.update if policy_file is not None else None) or UpdateConfig()
    trust = policy_file.trust if policy_file is not None else None
    try:
        result = check(old, new, canary, trust=trust, public_keys=keys, config=config, label=label)
    except IntegrityError as exc:
        _emit_refusal(exc, new, fmt, output)
        return die(exc)
    report = result.report
    if html is not None:
        # First, so an unwritable --html path fails before any report is printed.
        from mlwarden.update._html import render_html

        _write(render_html(result), html)
    if fmt == "json":
        text = json.dumps(report.to_dict() | {"update": result.to_dict()}, indent=2) + "\n"
        _write(text, output)
    else:
        emit(report, fmt, output)
        if fmt == "table" and output is None:
            b = result.behaviour
            click.echo(
                f"{'passed' if result.passed else 'REFUSED'}: accuracy {b.accuracy_old:.3f} -> "
                f"{b.accuracy_new:.3f}, agreement {b.agreement:.1%}, "
                f"{len(report.findings)} finding(s); policy expects {config.expect}"
            )
    return EXIT_FINDINGS if gate.fails(report) else 0


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write to {output}: {exc.strerror}") from None


def _emit_refusal(exc: IntegrityError, new: Path, fmt: str, output: Path | None) -> None:
    """For machine formats, the refusal as a UPD001 finding (the error line goes to stderr)."""
    if fmt == "table":
        return
    from mlwarden import __version__
    from mlwarden.report import Finding, ObjectResult, Report, Status

    finding = Finding(
        rule_id="UPD001", message=exc.one_line(), location=str(new), detail={"code": exc.code}
    )
    report = Report(
        kind="update check",
        tool_version=__version__,
        results=(ObjectResult(path=str(new), status=Status.CHECKED, findings=(finding,)),),
    )
    emit(report, fmt, output)
