"""`mlwarden deps` and `mlwarden bom`."""

from __future__ import annotations

import json
import sys
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
from mlwarden.errors import OutputError, UsageError

if TYPE_CHECKING:
    from mlwarden.policy import TrustPolicy

_SITE_PACKAGES_OPTION = click.option(
    "--site-packages",
    "site_packages",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Read installed packages from DIR instead of this interpreter's path (repeatable).",
)


def _search_path(environment: bool, site_packages: tuple[Path, ...]) -> list[str] | None:
    if site_packages:
        missing = [p for p in site_packages if not p.is_dir()]
        if missing:
            from mlwarden.errors import PathNotFoundError

            raise PathNotFoundError(f"{missing[0]}: no such directory")
        return [str(p) for p in site_packages]
    return list(sys.path) if environment else None


@click.command("deps")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option(
    "--environment",
    is_flag=True,
    help="Audit the packages installed for this Python instead of a file.",
)
@_SITE_PACKAGES_OPTION
@click.option(
    "--advisories",
    type=click.Path(path_type=Path),
    default=None,
    help="Answer from a local OSV export (a JSON file, a folder of them, or OSV's zip) "
    "instead of an online service: for offline and air-gapped audits.",
)
@click.option(
    "--service",
    type=click.Choice(["pypi", "osv"]),
    default="pypi",
    show_default=True,
    help="The online advisory service pip-audit asks.",
)
@click.option("--osv-url", default=None, help="The OSV query endpoint (a mirror).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0, max=600.0),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the advisory service.",
)
@click.option(
    "--require-hashes",
    is_flag=True,
    help="Report every requirement without --hash (always on when the file hashes any).",
)
@FORMAT_OPTION
@FAIL_ON_OPTION
@OUTPUT_OPTION
def deps_command(
    source: Path | None,
    environment: bool,
    site_packages: tuple[Path, ...],
    advisories: Path | None,
    service: str,
    osv_url: str | None,
    timeout: float,
    require_hashes: bool,
    fmt: str,
    fail_on: str,
    output: Path | None,
) -> int:
    """Audit Python dependencies: a requirements file, a pyproject.toml, or --environment.

    Reports known vulnerabilities (pip-audit's services, or --advisories), packages
    the service could not answer for ("not checked", never clean), unpinned or
    unhashed requirements, URL, VCS and local-path installs, and likely typosquats of
    popular ML packages.
    """
    gate = parse_gate(fail_on)
    from_environment = environment or bool(site_packages)
    if (source is None) == (not from_environment):
        raise UsageError("give a requirements file or pyproject.toml, or --environment")
    if osv_url is not None and service != "osv":
        raise UsageError("--osv-url needs --service osv")
    from mlwarden.packages import AdvisorySource, ServiceKind, audit_dependencies

    if advisories is not None:
        advisory_source = AdvisorySource(kind=ServiceKind.FILE, path=advisories)
    else:
        advisory_source = AdvisorySource(kind=ServiceKind(service), url=osv_url, timeout=timeout)
    report = audit_dependencies(
        source,
        search_path=_search_path(from_environment, site_packages),
        advisories=advisory_source,
        require_hashes=require_hashes,
    )
    emit(report, fmt, output)
    return exit_status(report, gate, empty_ok=True)


def _load_trust(path: Path | None) -> TrustPolicy | None:
    if path is None:
        return None
    from mlwarden.policy import load_policy

    return load_policy(path).trust


@click.command("bom")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A dataset file or folder to list as a data component (repeatable).",
)
@click.option(
    "--requirements",
    type=click.Path(path_type=Path),
    default=None,
    help="List the packages a requirements file or pyproject.toml declares.",
)
@click.option("--environment", is_flag=True, help="List the packages installed for this Python.")
@_SITE_PACKAGES_OPTION
@click.option(
    "--key",
    "public_key",
    type=click.Path(path_type=Path),
    default=None,
    help="Public key to verify each PATH.sig with.",
)
@click.option(
    "--trust",
    type=click.Path(path_type=Path),
    default=None,
    help="mlwarden.yaml whose trust policy verifies each PATH.sig.",
)
@OUTPUT_OPTION
def bom_command(
    paths: tuple[Path, ...],
    datasets: tuple[Path, ...],
    requirements: Path | None,
    environment: bool,
    site_packages: tuple[Path, ...],
    public_key: Path | None,
    trust: Path | None,
    output: Path | None,
) -> int:
    """Write a CycloneDX 1.6 ML bill of materials (JSON) for models, datasets and packages.

    Each PATH is scanned; its hash, format, scan verdict and signature status
    (PATH.sig, checked with --key or --trust) are recorded as properties.
    """
    from_environment = environment or bool(site_packages)
    if requirements is not None and from_environment:
        raise UsageError("give --requirements or --environment, not both")
    if not paths and not datasets and requirements is None and not from_environment:
        raise UsageError("nothing to list: give a PATH, --dataset, --requirements or --environment")
    if public_key is not None and trust is not None:
        raise UsageError("give --key or --trust, not both")
    from mlwarden.packages import build_bom

    document = build_bom(
        paths,
        datasets=datasets,
        requirements=requirements,
        search_path=_search_path(from_environment, site_packages),
        public_key=public_key,
        trust=_load_trust(trust),
    )
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return 0
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write BOM to {output}: {exc.strerror}") from None
    return 0
