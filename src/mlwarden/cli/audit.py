"""`mlwarden audit verify|tail|checkpoint`: check and read the tamper-evident audit log."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlwarden.cli._common import EXIT_CLEAN, EXIT_FINDINGS, FORMAT_OPTION, OUTPUT_OPTION
from mlwarden.errors import OutputError, UsageError

if TYPE_CHECKING:
    from mlwarden.audit import AuditRecord, ChainVerification

_DB_HELP = (
    "The audit log: sqlite:///RELATIVE.db, sqlite:////ABSOLUTE.db, a path, "
    "or postgresql://USER@HOST/DB."
)
_db_option = click.option("--db", "db", required=True, metavar="URL", help=_DB_HELP)
_table_option = click.option(
    "--table", default="audit_log", show_default=True, help="The log's table name."
)
_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


@click.group("audit")
def audit_group() -> None:
    """Verify and read the gateway's hash-chained audit log."""


@audit_group.command("verify")
@_db_option
@_table_option
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A signed checkpoint the log must still reach (detects truncation).",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The EC public key (PEM) that signed the checkpoint.",
)
@FORMAT_OPTION
@OUTPUT_OPTION
def verify_command(
    db: str, table: str, checkpoint: Path | None, key: Path | None, fmt: str, output: Path | None
) -> int:
    """Check every link of the chain; name the first broken one.

    Exit 0 intact, 1 broken (changed, deleted, inserted or reordered records, or a
    log that no longer reaches the checkpoint), 2 bad usage or an unreadable log.
    """
    from mlwarden.audit import Checkpoint, load_public_key, open_audit_log

    if (checkpoint is None) != (key is None):
        raise UsageError("--checkpoint and --key go together: a checkpoint is trusted by its key")
    pinned = Checkpoint.read(checkpoint) if checkpoint is not None else None
    public = load_public_key(key) if key is not None else None
    with open_audit_log(db, table=table, create=False) as log:
        result = log.verify(checkpoint=pinned, public_key=public)
        location = log.url
    text = _render_sarif(result, location) if fmt == "sarif" else _render_verification(result, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write report to {output}: {exc.strerror}") from None
    if output is not None or fmt != "table":
        click.echo(f"mlwarden: {_summary(result)}", err=True)
    return EXIT_CLEAN if result.intact else EXIT_FINDINGS


@audit_group.command("tail")
@_db_option
@_table_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=0, max=1_000_000),
    default=10,
    show_default=True,
    help="How many of the latest records to show.",
)
@_format_option
def tail_command(db: str, table: str, count: int, fmt: str) -> int:
    """Show the latest records, oldest first (the chain is not checked: use verify)."""
    from mlwarden.audit import open_audit_log

    with open_audit_log(db, table=table, create=False) as log:
        records = log.tail(count)
    click.echo(_render_records(records, fmt), nl=False)
    return EXIT_CLEAN


@audit_group.command("checkpoint")
@_db_option
@_table_option
@click.option(
    "--key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="EC P-256 or P-384 private key (PEM, unencrypted) to sign the head with.",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the checkpoint (JSON).",
)
def checkpoint_command(db: str, table: str, key: Path, output: Path) -> int:
    """Sign the chain head; keep the file where the log's writers cannot change it.

    The log is verified first: a broken chain is not signed (exit 1).
    """
    from mlwarden.audit import load_private_key, open_audit_log

    private = load_private_key(key)
    with open_audit_log(db, table=table, create=False) as log:
        result = log.verify()
        if not result.intact:
            click.echo(_render_verification(result, "table"), nl=False, err=True)
            return EXIT_FINDINGS
        signed = log.export_checkpoint(private)
    if signed.seq != result.head.seq:
        # Records appended between the check and the signature were not verified.
        click.echo(
            f"mlwarden: note: {signed.seq - result.head.seq} records appended during the check "
            "are covered by the checkpoint but were verified only by their links",
            err=True,
        )
    try:
        output.write_text(signed.to_json(), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint to {output}: {exc.strerror}") from None
    click.echo(f"checkpoint of record {signed.seq} ({signed.hash[:16]}...) -> {output}")
    return EXIT_CLEAN


def _summary(result: ChainVerification) -> str:
    broken = result.first_break
    if broken is None:
        return f"audit log intact: {result.records} records"
    return f"audit log BROKEN at record {broken.seq}: {broken.kind.value}"


def _render_sarif(result: ChainVerification, location: str) -> str:
    from mlwarden import __version__
    from mlwarden.report import Finding, ObjectResult, Report, Status
    from mlwarden.report.render import OutputFormat, render
    from mlwarden.rules.audit import BREAK_RULES

    broken = result.first_break
    findings: tuple[Finding, ...] = ()
    if broken is not None:
        findings = (
            Finding(
                rule_id=BREAK_RULES[broken.kind.value],
                message=f"record {broken.seq}: {broken.message}",
                location=f"{location}#seq={broken.seq}",
                detail={"seq": str(broken.seq), "kind": broken.kind.value, "log_id": result.log_id},
            ),
        )
    report = Report(
        kind="audit-verify",
        tool_version=__version__,
        results=(
            ObjectResult(
                path=location, status=Status.CHECKED, format="mlwarden-audit", findings=findings
            ),
        ),
    )
    return render(report, OutputFormat.SARIF)


def _render_verification(result: ChainVerification, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2) + "\n"
    broken = result.first_break
    against = (
        f", reaches checkpoint record {result.checkpoint.seq}"
        if result.checkpoint is not None and broken is None
        else ""
    )
    if broken is None:
        return (
            f"intact: {result.records} records, head {result.head.seq} "
            f"{result.head.hash[:16]}...{against} (log {result.log_id})\n"
        )
    return (
        f"BROKEN at record {broken.seq}: {broken.kind.value}: {broken.message}\n"
        f"{result.records} records before it are intact (log {result.log_id})\n"
    )


def _render_records(records: list[AuditRecord], fmt: str) -> str:
    if fmt == "json":
        data = [
            {"seq": r.seq, "prev_hash": r.prev_hash, "hash": r.hash, "event": r.event.to_dict()}
            for r in records
        ]
        return json.dumps(data, indent=2) + "\n"
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    columns = ("seq", "time", "decision", "reason", "identity", "model", "kind", "ms", "request")
    for column in columns:
        table.add_column(column, justify="right" if column in {"seq", "ms"} else "left")
    for r in records:
        e = r.event
        table.add_row(
            str(r.seq),
            e.time,
            e.decision.value,
            e.reason,
            e.identity or "-",
            e.model or "-",
            e.kind,
            "-" if e.latency_us is None else f"{e.latency_us / 1000:.3f}",
            e.request_id,
        )
    # Markup off: identities and models come from callers and may hold "[...]".
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=160, color_system=None, markup=False, highlight=False, emoji=False
    )
    console.print(table)
    return buffer.getvalue()
