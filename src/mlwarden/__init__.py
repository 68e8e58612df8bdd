"""mlwarden: Zero Trust for machine-learning systems.

>>> import mlwarden
>>> report = mlwarden.scan(["model.pt"])
>>> report.verdict
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlwarden.artifacts import scan as scan
    from mlwarden.loading import load as load

__all__ = ["__version__", "load", "scan"]


def __getattr__(name: str) -> Any:
    # Lazy: `import mlwarden` stays cheap for the CLI's start-up time.
    if name == "scan":
        from mlwarden.artifacts import scan

        return scan
    if name == "load":
        from mlwarden.loading import load

        return load
    raise AttributeError(f"module 'mlwarden' has no attribute {name!r}")
