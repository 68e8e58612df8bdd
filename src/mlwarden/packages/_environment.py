"""Installed distributions, read with importlib.metadata (no pip, no subprocess).

PEP 610's `direct_url.json` says how a distribution was installed: from a VCS
checkout, a local directory (editable or not) or an archive URL. The first
distribution of a name on the search path wins, as it does for `import`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata

from packaging.utils import canonicalize_name

from mlwarden.packages._model import Dependency, DependencySet, Origin


def read_environment(search_path: Sequence[str]) -> DependencySet:
    """Every distribution installed on `search_path` (a sys.path-like list)."""
    source = "environment"
    dependencies: list[Dependency] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for dist in metadata.distributions(path=list(search_path)):
        where = f"{source}:{_location(dist)}"
        name = dist.metadata["Name"] if dist.metadata is not None else None
        version = dist.version if name else None
        if not name or not version:
            problems.append((where, "installed distribution metadata has no name or version"))
            continue
        canonical = canonicalize_name(name)
        if canonical in seen:
            continue
        seen.add(canonical)
        origin, url, editable = _direct_url(dist)
        dependencies.append(
            Dependency(
                name=name,
                canonical=canonical,
                version=version,
                specifier=f"=={version}",
                location=where,
                origin=origin,
                url=url,
                editable=editable,
            )
        )
    dependencies.sort(key=lambda d: d.canonical)
    return DependencySet(source=source, dependencies=tuple(dependencies), problems=tuple(problems))


def _location(dist: metadata.Distribution) -> str:
    path = getattr(dist, "_path", None)
    return str(path) if path is not None else "?"


def _direct_url(dist: metadata.Distribution) -> tuple[Origin, str | None, bool]:
    text = dist.read_text("direct_url.json")
    if not text:
        return Origin.INDEX, None, False
    try:
        data = json.loads(text)
    except ValueError:
        # A damaged record still says the package did not come from the index.
        return Origin.URL, None, False
    if not isinstance(data, dict):
        return Origin.URL, None, False
    url = data.get("url") if isinstance(data.get("url"), str) else None
    if isinstance(data.get("vcs_info"), dict):
        vcs = data["vcs_info"].get("vcs", "git")
        commit = data["vcs_info"].get("commit_id", "")
        return Origin.VCS, f"{vcs}+{url}@{commit}" if url else None, False
    dir_info = data.get("dir_info")
    if isinstance(dir_info, dict):
        return Origin.PATH, url, bool(dir_info.get("editable", False))
    if url is not None and url.startswith("file:"):
        return Origin.PATH, url, False
    return Origin.URL, url, False
