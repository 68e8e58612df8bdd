"""`mlwarden data screen`: which rows of a dataset not to train on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlwarden.cli._common import (
    FAIL_ON_OPTION,
    FORMAT_OPTION,
    OUTPUT_OPTION,
    emit,
    exit_status,
    parse_gate,
)

if TYPE_CHECKING:
    from mlwarden.data._represent import Embed
    from mlwarden.policy import TrustPolicy

_PATH = click.Path(path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("screen")
@click.argument("path", type=_PATH)
@click.option("--label", help="The label column (default: label, target, class or y if present).")
@click.option("--test", type=_PATH, help="The test split: rows of PATH found in it are leakage.")
@click.option(
    "--baseline",
    type=click.Path(file_okay=False, path_type=Path),
    help="A signed earlier dataset folder to compare against (verified first).",
)
@click.option("--baseline-key", type=_FILE, help="Public key (PEM) the baseline is signed with.")
@click.option("--trust", type=_FILE, help="mlwarden.yaml whose `trust:` signs the baseline.")
@click.option("--quarantine", type=_FILE, help="Write the suspect rows to FILE.")
@click.option(
    "--clean",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the dataset without the suspect rows into folder OUT, signed (needs --key).",
)
@click.option("--key", type=_FILE, help="Private key (PEM) to sign the --clean dataset.")
@click.option(
    "--checks",
    help="Comma-separated checks to run (default: all): "
    "pii, duplicates, leakage, labels, backdoors, outliers, drift.",
)
@click.option(
    "--near",
    type=float,
    default=0.0,
    show_default=True,
    help="Also report near duplicates and near leakage within this distance "
    "(robustly scaled features; 0 = exact only).",
)
@click.option(
    "--model",
    type=_FILE,
    help="Screen in this model's representation (loaded only through mlwarden.load: "
    "verified and scanned first; needs --model-key or --trust).",
)
@click.option("--model-key", type=_FILE, help="Public key (PEM) the --model is signed with.")
@click.option(
    "--model-signature", type=_FILE, help="The --model's signature bundle (default: MODEL.sig)."
)
@click.option(
    "--embed",
    "embed_spec",
    help="Screen in the representation module:function returns (imports and RUNS that code).",
)
@click.option("--no-pii", is_flag=True, help="Skip the personal-data screen.")
@click.option(
    "--region",
    default="US",
    show_default=True,
    help="Region for phone numbers written without +country (ISO 3166 code).",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Local processes.")
@click.option("--dask", "dask_address", help="Run the chunked screens on this Dask scheduler.")
@click.option(
    "--stream",
    is_flag=True,
    help="Read CSV/Parquet chunk by chunk (data larger than memory): row-local screens only.",
)
@click.option("--chunk-rows", type=int, default=50_000, show_default=True, help="Rows per chunk.")
@click.option(
    "--max-row-bytes",
    type=int,
    default=16 * 1024 * 1024,
    show_default=True,
    help="Refuse a CSV row larger than this (E144).",
)
@FORMAT_OPTION
@FAIL_ON_OPTION
@OUTPUT_OPTION
def data_screen_command(
    path: Path,
    label: str | None,
    test: Path | None,
    baseline: Path | None,
    baseline_key: Path | None,
    trust: Path | None,
    quarantine: Path | None,
    clean: Path | None,
    key: Path | None,
    checks: str | None,
    near: float,
    model: Path | None,
    model_key: Path | None,
    model_signature: Path | None,
    embed_spec: str | None,
    no_pii: bool,
    region: str,
    workers: int,
    dask_address: str | None,
    stream: bool,
    chunk_rows: int,
    max_row_bytes: int,
    fmt: str,
    fail_on: str,
    output: Path | None,
) -> int:
    """Screen a dataset (CSV, Parquet, .npy/.npz, or a folder per class) before training.

    Finds mislabeled, planted, duplicated, leaked and drifted rows and personal data;
    every finding names its rows. With --model or --embed the label, backdoor and
    outlier screens run in that representation instead of on the raw features.
    Exit 0 clean, 1 findings at or above --fail-on, 2 bad input. A --baseline is
    used only once its signature verifies.
    """
    from mlwarden.data import screen_rows, write_clean, write_quarantine
    from mlwarden.errors import UsageError

    gate = parse_gate(fail_on)
    if clean is not None and key is None:
        raise UsageError("--clean needs --key: the private key that signs the cleaned dataset")
    if baseline is not None and baseline_key is None and trust is None:
        raise UsageError(
            "--baseline needs --baseline-key or --trust: an unverified baseline is not trusted"
        )
    policy = None
    if trust is not None:
        from mlwarden.policy import load_policy

        policy = load_policy(trust).trust
    if stream and (model is not None or embed_spec is not None):
        # Refused before the model is loaded or the function imported: it would not be used.
        raise UsageError("--model and --embed need the whole dataset: not with --stream")
    embed = _embedding(model, model_key, model_signature, policy, embed_spec)
    result = screen_rows(
        path,
        label=label,
        test=test,
        baseline=baseline,
        baseline_key=baseline_key,
        trust=policy,
        checks=[c.strip() for c in checks.split(",") if c.strip()] if checks else None,
        near=near,
        embed=embed,
        pii=not no_pii,
        region=region,
        workers=workers,
        dask=dask_address,
        stream=stream,
        chunk_rows=chunk_rows,
        max_row_bytes=max_row_bytes,
    )
    emit(result.report, fmt, output)
    rows = result.report.results[0].size or 0
    click.echo(f"mlwarden: {len(result.suspects)} of {rows} rows suspect in {path}", err=True)
    if quarantine is not None:
        count = write_quarantine(
            path,
            result.kind,
            result.suspects,
            quarantine,
            dataset=result.dataset,
            chunk_rows=chunk_rows,
        )
        click.echo(f"mlwarden: quarantined {count} rows -> {quarantine}", err=True)
    if clean is not None and key is not None:
        kept, bundle = write_clean(
            path,
            result.kind,
            result.suspects,
            clean,
            key=key,
            dataset=result.dataset,
            chunk_rows=chunk_rows,
        )
        click.echo(f"mlwarden: kept {kept} rows -> {clean} (signed: {bundle})", err=True)
    return exit_status(result.report, gate)


def _embedding(
    model: Path | None,
    model_key: Path | None,
    signature: Path | None,
    policy: TrustPolicy | None,
    spec: str | None,
) -> Embed | None:
    """The representation to screen in: a verified model's, or a named function's."""
    from mlwarden.errors import UsageError

    if model is not None and spec is not None:
        raise UsageError("give --model or --embed, not both")
    if spec is not None:
        from mlwarden.data import import_embedding

        return import_embedding(spec)
    if model is None:
        if model_key is not None or signature is not None:
            raise UsageError("--model-key and --model-signature need --model")
        return None
    if model_key is None and policy is None:
        raise UsageError(
            "--model needs --model-key or --trust: an unverified model is never loaded"
        )
    from mlwarden import load
    from mlwarden.data import model_embedding

    loaded = load(model, policy, public_key=model_key, signature=signature)
    return model_embedding(loaded)
