"""Runtime detectors: model extraction, adversarial inputs and inversion/membership probing.

A `Reference` is fitted once on the model's reference data (`fit_reference`) and
holds everything the detectors need, thresholds included; a `Monitor` scores each
identity's stream of queries against it, keeping a bounded `StreamState` per
stream. The package is pure numpy/scipy; it never prints and never does I/O
beyond `Reference.save` and `load_reference`.

The numpy-heavy modules are imported on first use so that importing
`mlwarden.detect` (the policy loader does) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwarden.detect._signal import Signal

if TYPE_CHECKING:
    from mlwarden.detect._monitor import Monitor, Observation
    from mlwarden.detect._reference import Reference, fit_reference, load_reference
    from mlwarden.detect._state import StreamState

__all__ = [
    "Monitor",
    "Observation",
    "Reference",
    "Signal",
    "StreamState",
    "fit_reference",
    "load_reference",
]

_LAZY = {
    "Monitor": "mlwarden.detect._monitor",
    "Observation": "mlwarden.detect._monitor",
    "Reference": "mlwarden.detect._reference",
    "fit_reference": "mlwarden.detect._reference",
    "load_reference": "mlwarden.detect._reference",
    "StreamState": "mlwarden.detect._state",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlwarden.detect' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
