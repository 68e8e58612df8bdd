"""`mlwarden admin quarantined|release`: see and lift the runtime detectors' sanctions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlwarden.cli._common import EXIT_CLEAN, EXIT_FINDINGS
from mlwarden.errors import DetectorStoreError

if TYPE_CHECKING:
    from mlwarden.detect._store import DetectorStore

_config_option = click.option(
    "--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The gateway's mlwarden.yaml (its budgets store holds the sanctions).",
)  # fmt: skip


@click.group("admin")
def admin_group() -> None:
    """Administer the gateway's runtime responses (quarantine, throttle, degrade)."""


@admin_group.command("quarantined")
@_config_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def quarantined_command(config: Path, fmt: str) -> int:
    """List every identity under a sanction, per model."""
    store = _open_store(config)
    try:
        records = store.sanctions()
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([
            {"identity": r.identity, "model": r.model, "sanction": r.sanction,
             "reason": r.reason, "since": _when(r.since)}
            for r in records
        ], indent=2))  # fmt: skip
        return EXIT_CLEAN
    if not records:
        click.echo("no identity is under a sanction")
    for r in records:
        click.echo(f"{r.identity}\t{r.model}\t{r.sanction}\t{r.reason}\tsince {_when(r.since)}")
    return EXIT_CLEAN


@admin_group.command("release")
@_config_option
@click.option("--identity", required=True, help="The identity (as the audit log names it).")
@click.option("--model", required=True, help="The model name.")
def release_command(config: Path, identity: str, model: str) -> int:
    """Lift the sanction of IDENTITY on MODEL and reset its detector stream.

    Running gateways see the release within `detectors.refresh_seconds`."""
    store = _open_store(config)
    try:
        lifted = store.release(identity, model)
    finally:
        store.close()
    if not lifted:
        click.echo(f"{identity!r} had no sanction on model {model!r}", err=True)
        return EXIT_FINDINGS
    click.echo(f"released {identity!r} on model {model!r}")
    return EXIT_CLEAN


def _open_store(config: Path) -> DetectorStore:
    """The gateway's detector store, refusing one that cannot be the gateway's: an
    in-memory store lives inside the gateway process, and a missing SQLite file would be
    created empty (listing nothing, releasing nothing, while the gateway's file is elsewhere).
    """
    from mlwarden.budgets import MemoryStoreConfig, SQLiteStoreConfig
    from mlwarden.detect._store import open_detector_store
    from mlwarden.policy import load_policy

    policy = load_policy(config)
    store = policy.budgets.store if policy.budgets is not None else SQLiteStoreConfig()
    if isinstance(store, MemoryStoreConfig):
        raise DetectorStoreError(
            f"{config}: budgets.store is 'memory': sanctions live inside the gateway process",
            hint="use a sqlite or redis store to administer sanctions from the command line",
        )
    if isinstance(store, SQLiteStoreConfig):
        path = Path(store.path)
        path = path if path.is_absolute() else config.parent / path
        if not path.is_file():
            raise DetectorStoreError(
                f"{config}: no detector store at {path}",
                hint="point --config at the running gateway's mlwarden.yaml",
            )
    return open_detector_store(policy.budgets, base=config.parent)


def _when(since: float) -> str:
    return datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
