"""mlwarden.assess: attack a model (or its endpoint) and measure the risk.

Targets (`Target`, `TargetBase`, the local adapters and `local_target`) and the
attacks (`evasion`, `membership`, `extraction`, `inversion`) are the core; they
return frozen results and never print. The attacks need the `sklearn` and
`torch` extras; they are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlwarden.assess._adapters import OnnxTarget, SklearnTarget, TorchTarget, local_target
    from mlwarden.assess._target import (
        LabelOnly,
        Target,
        TargetBase,
        WhiteBox,
        as_label_only,
        is_white_box,
    )
    from mlwarden.assess.attacks import (
        EvasionResult,
        ExtractionCurve,
        ExtractionResult,
        InversionResult,
        MembershipResult,
        evasion,
        extraction,
        inversion,
        membership,
    )

__all__ = [
    "EvasionResult",
    "ExtractionCurve",
    "ExtractionResult",
    "InversionResult",
    "LabelOnly",
    "MembershipResult",
    "OnnxTarget",
    "SklearnTarget",
    "Target",
    "TargetBase",
    "TorchTarget",
    "WhiteBox",
    "as_label_only",
    "evasion",
    "extraction",
    "inversion",
    "is_white_box",
    "local_target",
    "membership",
]

_LAZY = {
    "OnnxTarget": "mlwarden.assess._adapters",
    "SklearnTarget": "mlwarden.assess._adapters",
    "TorchTarget": "mlwarden.assess._adapters",
    "local_target": "mlwarden.assess._adapters",
    "LabelOnly": "mlwarden.assess._target",
    "Target": "mlwarden.assess._target",
    "TargetBase": "mlwarden.assess._target",
    "WhiteBox": "mlwarden.assess._target",
    "as_label_only": "mlwarden.assess._target",
    "is_white_box": "mlwarden.assess._target",
    "EvasionResult": "mlwarden.assess.attacks",
    "ExtractionCurve": "mlwarden.assess.attacks",
    "ExtractionResult": "mlwarden.assess.attacks",
    "InversionResult": "mlwarden.assess.attacks",
    "MembershipResult": "mlwarden.assess.attacks",
    "evasion": "mlwarden.assess.attacks",
    "extraction": "mlwarden.assess.attacks",
    "inversion": "mlwarden.assess.attacks",
    "membership": "mlwarden.assess.attacks",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the `assess:` section of mlwarden.yaml imports
    # `mlwarden.assess._config`, and loading a policy must not import torch.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlwarden.assess' has no attribute {name!r}")
    import importlib

    from mlwarden.errors import MissingExtraError

    try:
        import sklearn  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError(exc.name or "torch", "torch,sklearn") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
