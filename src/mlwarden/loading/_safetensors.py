"""safetensors files: parsed from the verified bytes by the safetensors library.

safetensors holds a JSON header and raw tensor bytes: nothing in it can run
code, so the only choice is which array type the caller wants back.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from mlwarden.errors import MissingExtraError, UsageError
from mlwarden.loading._pickle_restricted import malformed

FRAMEWORKS = ("torch", "numpy")


def default_framework() -> str:
    """torch when it is installed (safetensors' usual consumer), numpy otherwise."""
    return "torch" if importlib.util.find_spec("torch") is not None else "numpy"


def load_safetensors(data: bytes, location: str, framework: str | None) -> dict[str, Any]:
    framework = framework or default_framework()
    if framework not in FRAMEWORKS:
        raise UsageError(f"framework must be one of {', '.join(FRAMEWORKS)}, not {framework!r}")
    try:
        if framework == "torch":
            import safetensors.torch as backend
        else:
            import safetensors.numpy as backend  # type: ignore[no-redef]
    except ImportError:
        raise MissingExtraError(framework, "safetensors") from None
    try:
        return dict(backend.load(data))
    except Exception as exc:  # safetensors raises SafetensorError, a bare Exception subclass
        raise malformed(location, "the safetensors file", exc) from None
