"""ML packages: the dependency audit and the ML bill of materials.

`audit_dependencies(...) -> Report` checks a requirements file, a pyproject.toml
or an installed environment for known vulnerabilities (pip-audit's services, or
a local OSV export), unpinned and unhashed requirements, installs around the
index (URL, VCS, local path) and likely typosquats of popular ML packages.

`build_bom(...) -> dict` returns a CycloneDX 1.6 BOM (JSON object) of models,
datasets and Python packages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden.errors import UsageError
from mlwarden.packages._model import Dependency, DependencySet, Origin
from mlwarden.packages._vulns import AdvisorySource, ServiceKind
from mlwarden.report import Report

if TYPE_CHECKING:
    from mlwarden.policy import TrustPolicy

__all__ = [
    "AdvisorySource",
    "Dependency",
    "DependencySet",
    "Origin",
    "ServiceKind",
    "audit_dependencies",
    "build_bom",
    "read_dependencies",
]


def read_dependencies(
    source: Path | None = None, *, search_path: Sequence[str] | None = None
) -> DependencySet:
    """The dependencies a file declares, or (with `search_path`) those installed there.

    A file named ``pyproject.toml`` is read as PEP 621 metadata; any other file as
    a pip requirements file.
    """
    if (source is None) == (search_path is None):
        raise UsageError("give either a requirements file or an environment, not both or none")
    if source is not None:
        from mlwarden.packages._requirements import read_dependency_file

        return read_dependency_file(source)
    from mlwarden.packages._environment import read_environment

    assert search_path is not None
    return read_environment(search_path)


def audit_dependencies(
    source: Path | None = None,
    *,
    search_path: Sequence[str] | None = None,
    advisories: AdvisorySource | None = None,
    require_hashes: bool = False,
) -> Report:
    """Audit a requirements file / pyproject.toml, or the environment on `search_path`.

    Every dependency gets one result. Known vulnerabilities come from `advisories`
    (default: PyPI through pip-audit); a dependency the service could not answer
    for carries DEP002 "not checked" with the reason, never a clean bill.
    """
    started = time.perf_counter()
    dependency_set = read_dependencies(source, search_path=search_path)
    from mlwarden.packages._audit import build_report
    from mlwarden.packages._vulns import check_vulnerabilities

    outcomes = check_vulnerabilities(dependency_set.dependencies, advisories or AdvisorySource())
    return build_report(dependency_set, outcomes, require_hashes=require_hashes, started=started)


def build_bom(
    paths: Sequence[Path] = (),
    *,
    datasets: Sequence[Path] = (),
    requirements: Path | None = None,
    search_path: Sequence[str] | None = None,
    public_key: Path | None = None,
    trust: TrustPolicy | None = None,
) -> dict[str, Any]:
    """A CycloneDX 1.6 ML bill of materials as a JSON object.

    Each of `paths` becomes a model component scanned with `mlwarden.scan` (a
    directory where the scanner finds no model file becomes a dataset);
    `datasets` are dataset components; packages come from `requirements` or the
    environment on `search_path`. Signatures are read from ``PATH.sig`` and
    verified with `public_key` or `trust` (a TrustPolicy); without either they are
    reported "not-verified", never "verified".
    """
    from mlwarden.artifacts import scan
    from mlwarden.packages import _bom

    _bom.require_exists([*paths, *datasets])
    if requirements is not None and search_path is not None:
        raise UsageError("give either a requirements file or an environment for packages")
    components: list[Any] = []
    for path in paths:
        report = scan([path])
        signature = _bom.signature_status(path, public_key=public_key, trust=trust)
        recognised = [r for r in report.results if r.format]
        if path.is_dir() and not recognised:
            components.append(_bom.dataset_component(path, signature))
        else:
            components.append(_bom.model_component(path, report.results, signature))
    for path in datasets:
        signature = _bom.signature_status(path, public_key=public_key, trust=trust)
        components.append(_bom.dataset_component(path, signature))
    if requirements is not None or search_path is not None:
        dependency_set = read_dependencies(requirements, search_path=search_path)
        components.extend(_bom.library_component(d) for d in dependency_set.dependencies)
    return _bom.assemble(components)
