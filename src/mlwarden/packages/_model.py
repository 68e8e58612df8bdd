"""What the dependency readers produce: one record per declared or installed package."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Origin(enum.Enum):
    """Where pip takes the package from: the index, or around it."""

    INDEX = "index"
    URL = "url"
    VCS = "vcs"
    PATH = "path"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    """One requirement line, pyproject entry or installed distribution.

    `version` is set only when exactly one version can be installed (`==1.2`,
    `===1.2`, or an installed distribution): only then can advisories answer.
    `location` names where it was declared (``requirements.txt:12``).
    """

    name: str
    canonical: str
    version: str | None
    specifier: str
    location: str
    origin: Origin = Origin.INDEX
    url: str | None = None
    hashes: tuple[str, ...] = ()
    editable: bool = False

    @property
    def label(self) -> str:
        """How the dependency is shown: ``torch==2.13.0``, ``numpy>=1.26``, or the URL."""
        if self.version is not None and self.origin is Origin.INDEX:
            return f"{self.name}=={self.version}"
        if self.origin is not Origin.INDEX and self.url:
            return f"{self.name} @ {self.url}" if self.name else self.url
        return f"{self.name}{self.specifier}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DependencySet:
    """Everything one source declares. `require_hashes` is the file's own demand."""

    source: str
    dependencies: tuple[Dependency, ...]
    require_hashes: bool = False
    problems: tuple[tuple[str, str], ...] = ()
