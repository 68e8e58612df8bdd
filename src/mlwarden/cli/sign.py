"""`mlwarden sign`, `mlwarden verify` and `mlwarden data manifest`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlwarden.cli._common import EXIT_CLEAN, EXIT_FINDINGS, FORMAT_OPTION, OUTPUT_OPTION, emit

_F = TypeVar("_F", bound=Callable[..., Any])

_KEY_HELP = "EC P-256 or P-384 private key (PEM, unencrypted)."
_SIG_HELP = "Where to write the signature bundle (default: PATH.sig beside PATH)."
_CHAIN_HELP = (
    "Sign with a certificate: PEM file(s), the signing certificate first, then its "
    "intermediates. Repeatable."
)


def _sign_options(command: _F) -> _F:
    command = click.option(
        "--certificate-chain",
        "certificate_chain",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help=_CHAIN_HELP,
    )(command)
    command = click.option(
        "--signature", type=click.Path(dir_okay=False, path_type=Path), help=_SIG_HELP
    )(command)
    command = click.option(
        "--key", required=True, type=click.Path(dir_okay=False, path_type=Path), help=_KEY_HELP
    )(command)
    return command


@click.command("sign")
@click.argument("path", type=click.Path(path_type=Path))
@_sign_options
def sign_command(
    path: Path, key: Path, signature: Path | None, certificate_chain: tuple[Path, ...]
) -> int:
    """Sign a model folder or file: an OpenSSF Model Signing v1.0 bundle.

    The bundle verifies with `mlwarden verify` and with `model_signing verify`.
    Symbolic links are refused.
    """
    from mlwarden.signing import sign

    written = sign(path, key=key, signature=signature, certificate_chain=certificate_chain)
    click.echo(f"signed {path} -> {written}")
    return EXIT_CLEAN


@click.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--signature",
    "signatures",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signature bundle(s); repeat for k-of-n policies (default: PATH.sig).",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust exactly this public key (PEM). With --trust it only supplies the key.",
)
@click.option(
    "--trust",
    type=click.Path(dir_okay=False, path_type=Path),
    help="mlwarden.yaml whose `trust:` section names the trusted signers.",
)
@click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Verification cache file: unchanged files are not hashed again.",
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first difference.")
@click.option(
    "--model-name",
    help="The model name the signature must carry (default: the last component of PATH).",
)
@FORMAT_OPTION
@OUTPUT_OPTION
def verify_command(
    path: Path,
    signatures: tuple[Path, ...],
    key: Path | None,
    trust: Path | None,
    cache: Path | None,
    fail_fast: bool,
    model_name: str | None,
    fmt: str,
    output: Path | None,
) -> int:
    """Verify a signed model or dataset: signatures, signers, and every file.

    Exit 0 verified, 1 refused (the report lists every difference), 2 bad input.
    With neither --key nor --trust nothing is trusted, so verification refuses.
    """
    from mlwarden.policy import load_policy
    from mlwarden.signing import verify

    policy = load_policy(trust).trust if trust is not None else None
    result = verify(
        path,
        signatures=signatures,
        public_key=key,
        trust=policy,
        cache=cache,
        fail_fast=fail_fast,
        model_name=model_name,
    )
    emit(result.report, fmt, output)
    if result.verified:
        click.echo(f"mlwarden: verified {path} (signed by {', '.join(result.signers)})", err=True)
        return EXIT_CLEAN
    findings = result.report.findings
    first = findings[0] if findings else None
    summary = f"{first.rule_id}: {first.location}: {first.message}" if first else "not verified"
    more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
    click.echo(f"mlwarden: refused: {summary}{more}", err=True)
    return EXIT_FINDINGS


@click.group("data")
def data_group() -> None:
    """Datasets: signed manifests, and screening before training."""


def _add_data_screen() -> None:
    from mlwarden.cli.data_screen import data_screen_command

    data_group.add_command(data_screen_command)


_add_data_screen()


@data_group.command("manifest")
@click.argument("directory", type=click.Path(path_type=Path))
@_sign_options
def data_manifest_command(
    directory: Path, key: Path, signature: Path | None, certificate_chain: tuple[Path, ...]
) -> int:
    """Write a signed manifest of a dataset folder (the same bundle format as `sign`).

    `mlwarden verify DIRECTORY` checks it.
    """
    from mlwarden.signing import manifest

    written = manifest(directory, key=key, signature=signature, certificate_chain=certificate_chain)
    click.echo(f"manifest of {directory} -> {written}")
    return EXIT_CLEAN
