"""mlwarden.assess: attack a model (or its endpoint) and measure the risk.

Targets (`Target`, `TargetBase`, the local adapters and `local_target`) and the
attacks (`evasion`, `membership`, `extraction`, `inversion`) are the core; they
return frozen results and never print. The attacks need the `sklearn` and
`torch` extras.
"""

from mlwarden.errors import MissingExtraError

try:
    import sklearn  # noqa: F401
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError(exc.name or "torch", "torch,sklearn") from None

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
