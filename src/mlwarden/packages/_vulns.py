"""Known vulnerabilities, with pip-audit's vulnerability services as the engine.

Three sources answer through pip-audit's `VulnerabilityService` interface:
PyPI's JSON API (pip-audit's default), the OSV API (its URL can be changed, for a
mirror), and a local OSV export (`_osv_file`). Only exactly pinned versions can be
asked about. Whatever goes wrong, a dependency ends either with the advisories that
affect it or with the reason it was not checked: an unreachable service is never
reported as "no vulnerabilities".
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.errors import UsageError
from mlwarden.packages._advisory import Advisory, VulnerabilityOutcome
from mlwarden.packages._model import Dependency, Origin

# Questions in flight at once for an online service: PyPI answers one version per request,
# and an environment holds a few hundred. One session is shared (requests pools connections
# thread-safely); a local database is answered in-process, one question at a time.
ONLINE_WORKERS = 8


class ServiceKind(enum.Enum):
    PYPI = "pypi"
    OSV = "osv"
    FILE = "file"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdvisorySource:
    """Which advisory service to ask, and how long to wait for it."""

    kind: ServiceKind = ServiceKind.PYPI
    url: str | None = None
    path: Path | None = None
    timeout: float = 15.0
    cache_dir: Path | None = None

    def describe(self) -> str:
        if self.kind is ServiceKind.FILE:
            return f"local OSV database {self.path}"
        if self.kind is ServiceKind.OSV:
            return f"OSV at {self.url or 'https://api.osv.dev'}"
        return "PyPI JSON API"


def _service(source: AdvisorySource) -> Any:
    if source.kind is ServiceKind.FILE:
        if source.path is None:
            raise UsageError("a local advisory database needs a path")
        from mlwarden.packages._osv_file import LocalOsvService

        return LocalOsvService(source.path)
    timeout = max(1, round(source.timeout))
    if source.kind is ServiceKind.OSV:
        from pip_audit._service.osv import OsvService

        if source.url:
            return OsvService(cache_dir=source.cache_dir, timeout=timeout, osv_url=source.url)
        return OsvService(cache_dir=source.cache_dir, timeout=timeout)
    from pip_audit._service.pypi import PyPIService

    return PyPIService(cache_dir=source.cache_dir, timeout=timeout)


def _not_checkable(dependency: Dependency) -> str | None:
    """Why advisories cannot answer for this dependency, if they cannot."""
    if dependency.origin is Origin.VCS:
        return "installed from a VCS checkout: advisories name index releases only"
    if dependency.origin is Origin.URL:
        return "installed from a direct URL: advisories name index releases only"
    if dependency.origin is Origin.PATH:
        return "installed from a local path: advisories name index releases only"
    if dependency.version is None:
        return f"no exact version pinned ({dependency.specifier or 'any version'})"
    return None


def check_vulnerabilities(
    dependencies: Sequence[Dependency], source: AdvisorySource
) -> list[VulnerabilityOutcome]:
    """One outcome per dependency, in order."""
    outcomes: list[VulnerabilityOutcome | None] = []
    pending: list[int] = []
    for position, dependency in enumerate(dependencies):
        reason = _not_checkable(dependency)
        outcomes.append(VulnerabilityOutcome(not_checked=reason) if reason else None)
        if reason is None:
            pending.append(position)
    if pending:
        _query(dependencies, pending, outcomes, source)
    return [
        o if o is not None else VulnerabilityOutcome(not_checked="not queried") for o in outcomes
    ]


def _query(
    dependencies: Sequence[Dependency],
    pending: list[int],
    outcomes: list[VulnerabilityOutcome | None],
    source: AdvisorySource,
) -> None:
    """Ask once per (name, version), several questions in flight for online services."""
    import subprocess

    from pip_audit._service.interface import ServiceError

    try:
        service = _service(source)  # errors in a local database surface here, before any thread
    except (ServiceError, OSError, subprocess.SubprocessError) as exc:
        # pip-audit could not even set up its client (its cache, pip): nothing was asked.
        reason = f"{source.describe()} could not be set up: {_reason(exc)}"
        for position in pending:
            outcomes[position] = VulnerabilityOutcome(not_checked=reason)
        return
    groups: dict[tuple[str, str], list[int]] = {}
    for position in pending:
        version = dependencies[position].version
        assert version is not None
        groups.setdefault((dependencies[position].canonical, version), []).append(position)
    unreachable: list[str] = []

    def ask(position: int) -> VulnerabilityOutcome:
        if unreachable:
            # One refused connection predicts the rest: stop asking, mark them all.
            return VulnerabilityOutcome(not_checked=unreachable[0])
        outcome, lost = _ask(service, dependencies[position], source)
        if lost:
            unreachable.append(outcome.not_checked or "unreachable")
        return outcome

    firsts = [positions[0] for positions in groups.values()]
    workers = 1 if source.kind is ServiceKind.FILE else min(ONLINE_WORKERS, len(firsts))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        answers = list(pool.map(ask, firsts))
    for positions, answer in zip(groups.values(), answers, strict=True):
        for position in positions:
            outcomes[position] = answer


def _ask(
    service: Any, dependency: Dependency, source: AdvisorySource
) -> tuple[VulnerabilityOutcome, bool]:
    """The outcome for one dependency, and whether the service was unreachable."""
    import requests
    from packaging.version import InvalidVersion, Version
    from pip_audit._service.interface import ConnectionError as AuditConnectionError
    from pip_audit._service.interface import ResolvedDependency, ServiceError

    try:
        version = Version(dependency.version or "")
    except InvalidVersion:
        reason = f"version {dependency.version!r} is not a PEP 440 version"
        return VulnerabilityOutcome(not_checked=reason), False
    try:
        answered, results = service.query(ResolvedDependency(name=dependency.name, version=version))
    except (AuditConnectionError, requests.ConnectionError, requests.Timeout) as exc:
        reason = f"{source.describe()} unreachable: {_reason(exc)}"
        return VulnerabilityOutcome(not_checked=reason), True
    except (ServiceError, requests.RequestException, ValueError, KeyError, TypeError) as exc:
        return VulnerabilityOutcome(
            not_checked=f"{source.describe()} failed: {_reason(exc)}"
        ), False
    if answered.is_skipped():
        return VulnerabilityOutcome(
            not_checked=f"{source.describe()}: {answered.skip_reason}"
        ), False
    return VulnerabilityOutcome(advisories=tuple(_advisory(r) for r in results)), False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if cause is not None and (not text or text == "None"):
        text = str(cause).strip()
    text = text or type(exc).__name__
    return text.splitlines()[0][:300]


def _advisory(result: Any) -> Advisory:
    return Advisory(
        id=str(result.id),
        aliases=tuple(sorted(str(a) for a in result.aliases)),
        summary=str(result.description),
        fixed_in=tuple(str(v) for v in result.fix_versions),
        severity=getattr(result, "severity", None),
    )
