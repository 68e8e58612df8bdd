"""The update gate: may NEW replace OLD? Judged by structure and behaviour, not signature.

>>> from mlwarden.update import check
>>> result = check(Path("v1/model.joblib"), Path("v2/model.joblib"), Path("canary"),
...                public_keys=[Path("signer.pub")])
>>> result.report.findings, result.passed

`check` loads both versions and the canary set only through verification (signature
by a trusted signer, clean scan: `mlwarden.load`), so an unsigned or scan-flagged file
is refused with its E2xx error before any comparison. `compare` does the comparison on
models already in memory (for tests, benchmarks and the federated code). Both return an
`UpdateCheck`: a Report of UPD findings plus every measurement behind them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.errors import (
    CanaryShapeError,
    CanaryTooSmallError,
    UpdateMismatchError,
    UsageError,
)
from mlwarden.policy import TrustPolicy
from mlwarden.report import Finding, ObjectResult, Report, Status
from mlwarden.update._behaviour import Behaviour, behaviour_findings, measure
from mlwarden.update._config import UpdateConfig
from mlwarden.update._models import UpdateModel, as_update_model
from mlwarden.update._structure import (
    StructureDiff,
    TensorDelta,
    diff_structure,
    structure_findings,
    tensor_delta,
)
from mlwarden.update._triggers import (
    ClassTrigger,
    Model,
    class_triggers,
    search,
    trigger_findings,
)

__all__ = [
    "Behaviour",
    "ClassTrigger",
    "StructureDiff",
    "TensorDelta",
    "UpdateCheck",
    "UpdateConfig",
    "UpdateModel",
    "as_update_model",
    "check",
    "compare",
    "tensor_delta",
]

REPORT_KIND = "update check"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateCheck:
    """The verdict on one update and every measurement behind it."""

    report: Report
    structure: StructureDiff
    behaviour: Behaviour
    triggers: tuple[ClassTrigger, ...]
    representation_rows: tuple[int, ...]
    """Canary rows the data screen's backdoor search flagged in the new representation."""
    config: UpdateConfig

    @property
    def passed(self) -> bool:
        return not self.report.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "expect": self.config.expect,
            "structure": self.structure.to_dict(),
            "behaviour": self.behaviour.to_dict(),
            "triggers": [t.to_dict() for t in self.triggers],
            "representation_rows": list(self.representation_rows),
        }


def compare(
    old: Any,
    new: Any,
    x: Any,
    y: Sequence[Any],
    *,
    config: UpdateConfig | None = None,
    old_name: str = "old",
    new_name: str = "new",
) -> UpdateCheck:
    """Compare two loaded versions on canary rows `x` with labels `y` (any printable values).

    `old` and `new` are models or `UpdateModel`s. Raises E180 (not comparable), E183
    (unsupported kind), E184 (canary width) or E185 (canary too small); every judgement
    about the update itself is a finding.
    """
    started = time.perf_counter()
    config = config or UpdateConfig()
    activation = config.torch_activation
    old_model = (
        old
        if isinstance(old, UpdateModel)
        else as_update_model(old, activation=activation, where=old_name)
    )
    new_model = (
        new
        if isinstance(new, UpdateModel)
        else as_update_model(new, activation=activation, where=new_name)
    )
    features = np.asarray(x, dtype=np.float64)
    labels = [_label_text(v) for v in y]
    _check_comparable(old_model, new_model, features, labels, config, new_name)
    assert old_model.predict is not None and new_model.predict is not None
    classes = new_model.classes
    codes = np.array([classes.index(v) for v in labels], dtype=np.int64)

    diff = diff_structure(old_model, new_model)
    findings: list[Finding] = structure_findings(diff, config, new_name)
    proba_old, proba_new = old_model.predict(features), new_model.predict(features)
    behaviour = measure(classes, codes, proba_old, proba_new)
    findings += behaviour_findings(behaviour, config, new_name)

    triggers: tuple[ClassTrigger, ...] = ()
    if config.trigger_search:
        rows = _stratified(codes, config.trigger_rows)
        low, high = float(features.min()), float(features.max())
        found = search(
            _search_model(new_model),
            _search_model(old_model),
            features[rows],
            classes=len(classes),
            values=(low, (low + high) / 2, high) if high > low else (low,),
            max_features=min(config.trigger_features, features.shape[1]),
            support=(features, codes),
            max_old_lean=config.max_old_lean,
            lean_swing=config.old_lean_swing,
        )
        triggers = class_triggers(
            classes, found, threshold=config.anomaly_index, min_success=config.min_trigger_success
        )
        findings += trigger_findings(triggers, config.anomaly_index, new_name)

    flagged_rows: tuple[int, ...] = ()
    if config.representation_screen and new_model.represent is not None:
        flagged_rows, screen_findings = _representation_screen(
            new_model.represent(features), labels, new_name
        )
        findings += screen_findings

    result = ObjectResult(
        path=new_name,
        status=Status.CHECKED,
        format=f"{new_model.kind} update of {old_name}",
        findings=tuple(findings),
        duration_s=time.perf_counter() - started,
    )
    from mlwarden import __version__

    report = Report(
        kind=REPORT_KIND,
        tool_version=__version__,
        results=(result,),
        duration_s=time.perf_counter() - started,
    )
    return UpdateCheck(
        report=report,
        structure=diff,
        behaviour=behaviour,
        triggers=triggers,
        representation_rows=flagged_rows,
        config=config,
    )


def check(
    old: Path,
    new: Path,
    canary: Path,
    *,
    trust: TrustPolicy | None = None,
    public_keys: Sequence[Path] = (),
    config: UpdateConfig | None = None,
    label: str | None = None,
) -> UpdateCheck:
    """Verify and load OLD, NEW and the canary set, then `compare` them.

    Trust is `trust` (a policy's signers) or the given public keys (any one of them
    signs); with neither, nothing is trusted and every load is refused (E203).
    """
    import mlwarden
    from mlwarden.update._canary import load_canary

    policy = _trust(trust, public_keys)
    if policy is None:
        from mlwarden.errors import UntrustedSignerError

        raise UntrustedSignerError(
            "no trusted signer was given, so neither version was loaded",
            hint="give --key PUB or --policy mlwarden.yaml with trusted signers",
        )
    old_model = mlwarden.load(old, trust=policy)
    new_model = mlwarden.load(new, trust=policy)
    x, y = load_canary(canary, trust=policy, label=label)
    return compare(old_model, new_model, x, y, config=config, old_name=str(old), new_name=str(new))


def _trust(trust: TrustPolicy | None, keys: Sequence[Path]) -> TrustPolicy | None:
    if trust is not None and not trust.trusts_nothing:
        return trust
    if not keys:
        return None
    from mlwarden.policy._model import KeySigner, TrustedSigner
    from mlwarden.signing import _keys

    signers = tuple(
        TrustedSigner(
            name=f"key {Path(key).name}",
            identity=KeySigner(
                fingerprint=_keys.fingerprint(_keys.load_public_key(Path(key))),
                public_key=Path(key),
            ),
        )
        for key in keys
    )
    return TrustPolicy(signers=signers, threshold=1)


def _search_model(model: UpdateModel) -> Model:
    """The array form when there is one (exact log-softmax, no per-call validation, no
    underflow far from the data, stamped rows by rank-k updates), else per-class
    log-probabilities from predict, floored."""
    if model.network is not None:
        return model.network
    predict = model.predict
    assert predict is not None

    def scores(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.log(np.maximum(predict(x), _PROBABILITY_FLOOR))

    return scores


_PROBABILITY_FLOOR = 1e-300  # log(0) would make the old version's lean undefined


def _label_text(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_comparable(
    old: UpdateModel,
    new: UpdateModel,
    x: npt.NDArray[np.float64],
    labels: list[str],
    config: UpdateConfig,
    where: str,
) -> None:
    if old.kind != new.kind:
        raise UpdateMismatchError(
            f"{where}: a {new.kind} model cannot replace a {old.kind} model in this comparison"
        )
    if old.classes != new.classes:
        raise UpdateMismatchError(
            f"{where}: the versions predict different classes "
            f"({', '.join(old.classes)} vs {', '.join(new.classes)})"
        )
    if x.ndim != 2:
        raise CanaryShapeError(f"canary features are {x.ndim}-D, not rows x features")
    if len(labels) != x.shape[0]:
        raise CanaryShapeError(f"canary has {x.shape[0]} rows but {len(labels)} labels")
    for model, name in ((old, "old"), (new, "new")):
        if model.n_features and model.n_features != x.shape[1]:
            raise CanaryShapeError(
                f"the {name} version reads {model.n_features} features; "
                f"the canary rows have {x.shape[1]}"
            )
    if x.shape[0] < config.min_canary_rows:
        raise CanaryTooSmallError(
            f"the canary set has {x.shape[0]} rows; at least {config.min_canary_rows} are "
            "needed to judge an update",
            hint="use a larger canary set, or lower update.min_canary_rows",
        )
    unknown = sorted(set(labels) - set(new.classes))
    if unknown:
        raise UpdateMismatchError(
            f"canary labels {', '.join(unknown[:5])} are not classes of the model "
            f"({', '.join(new.classes[:10])})"
        )
    if not np.isfinite(x).all():
        raise CanaryShapeError("canary features hold NaN or infinity")


def _stratified(codes: npt.NDArray[np.int64], limit: int) -> npt.NDArray[np.int64]:
    """Up to `limit` row ids, taken round-robin over the classes (deterministic)."""
    groups = [list(np.flatnonzero(codes == c)) for c in np.unique(codes)]
    picked: list[int] = []
    while len(picked) < min(limit, len(codes)):
        for group in groups:
            if group and len(picked) < limit:
                picked.append(int(group.pop(0)))
    return np.array(sorted(picked), dtype=np.int64)


def _representation_screen(
    reps: npt.NDArray[np.float64], labels: list[str], location: str
) -> tuple[tuple[int, ...], list[Finding]]:
    """The data screen's backdoor search over the canary in the new representation."""
    from mlwarden.data.screens.backdoors import find_backdoors

    if len(set(labels)) < 2:
        raise UsageError("the canary set needs at least two classes")
    result = find_backdoors(reps, np.asarray(labels))
    findings = [
        Finding(
            rule_id="UPD010",
            message=f"{len(t.rows)} canary row(s) of class {t.source} are pulled to class "
            f"{t.target} by representation feature(s) {', '.join(map(str, t.features[:6]))}",
            location=f"{location}#class={t.target}",
            detail={
                "target": str(t.target),
                "source": str(t.source),
                "rows": ",".join(map(str, t.rows[:100])),
            },
        )
        for t in result.triggers
    ]
    return result.rows, findings
