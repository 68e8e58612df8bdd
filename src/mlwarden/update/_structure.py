"""What changed between two versions: architecture, tensors, hyperparameters.

The diff is data (`StructureDiff`); `structure_findings` turns it into findings against
the policy's expectation. A fine-tune keeps the architecture and the hyperparameters and
moves every tensor a little; a retrain keeps the architecture only; `any` allows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.errors import TensorShapeError
from mlwarden.report import Finding
from mlwarden.update._config import UpdateConfig
from mlwarden.update._models import UpdateModel

# Hyperparameters that say how long or how verbosely to train, not what the model is:
# continuing a training run (warm start, more iterations) changes them honestly.
_TRAINING_ONLY = frozenset(
    {"warm_start", "max_iter", "verbose", "n_jobs", "random_state", "tol", "max_fun",
     "n_iter_no_change", "memory"}
)  # fmt: skip
# Fitted bookkeeping (counters, iteration counts): not weights, never "tampered".
_BOOKKEEPING = ("n_iter_", "n_samples_seen_", "t_", "n_features_in_", "n_layers_", "n_outputs_")
_OUTLIER_Z = 6.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorDelta:
    """How one tensor moved between the versions (same name, same shape)."""

    name: str
    shape: tuple[int, ...]
    norm_old: float
    norm_new: float
    delta_norm: float
    relative_change: float
    """||new - old|| / ||old|| (infinite when the old tensor is all zeros and new is not)."""
    cosine: float
    """cos(old, new): 1 unchanged direction, -1 sign-flipped (0 when either is zero)."""
    share_changed: float
    outliers: int
    """Elements whose change is more than 6 robust scales from the tensor's median change."""

    @property
    def norm_ratio(self) -> float:
        if self.norm_old == 0:
            return 1.0 if self.norm_new == 0 else float("inf")
        return self.norm_new / self.norm_old

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "norm_old": self.norm_old,
            "norm_new": self.norm_new,
            "delta_norm": self.delta_norm,
            "relative_change": self.relative_change,
            "cosine": self.cosine,
            "norm_ratio": self.norm_ratio,
            "share_changed": self.share_changed,
            "outliers": self.outliers,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StructureDiff:
    """Everything structural that differs, and how each shared tensor moved."""

    estimator_old: str
    estimator_new: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    reshaped: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    retyped: tuple[tuple[str, str, str], ...]
    params_changed: tuple[tuple[str, str, str], ...]
    deltas: tuple[TensorDelta, ...]

    @property
    def architecture_changed(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.reshaped
            or self.retyped
            or self.estimator_old != self.estimator_new
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimator_old": self.estimator_old,
            "estimator_new": self.estimator_new,
            "architecture_changed": self.architecture_changed,
            "added": list(self.added),
            "removed": list(self.removed),
            "reshaped": [[n, list(a), list(b)] for n, a, b in self.reshaped],
            "retyped": [list(item) for item in self.retyped],
            "params_changed": [list(item) for item in self.params_changed],
            "tensors": [d.to_dict() for d in self.deltas],
        }


def tensor_delta(name: str, old: npt.NDArray[Any], new: npt.NDArray[Any]) -> TensorDelta:
    """Compare one tensor's two versions; E182 when their shapes differ."""
    if old.shape != new.shape:
        raise TensorShapeError(
            f"tensor {name!r} has shape {old.shape} in the old version and {new.shape} "
            "in the new one; it cannot be compared element by element"
        )
    a = np.asarray(old, dtype=np.float64).ravel()
    b = np.asarray(new, dtype=np.float64).ravel()
    delta = b - a
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    delta_norm = float(np.linalg.norm(delta))
    relative = delta_norm / norm_a if norm_a > 0 else (0.0 if delta_norm == 0 else float("inf"))
    cosine = float(a @ b / (norm_a * norm_b)) if norm_a > 0 and norm_b > 0 else 0.0
    outliers = 0
    if delta.size > 2:
        centre = float(np.median(delta))
        spread = 1.4826 * float(np.median(np.abs(delta - centre)))
        if spread > 0:
            outliers = int((np.abs(delta - centre) > _OUTLIER_Z * spread).sum())
    return TensorDelta(
        name=name,
        shape=tuple(int(s) for s in old.shape),
        norm_old=norm_a,
        norm_new=norm_b,
        delta_norm=delta_norm,
        relative_change=relative,
        cosine=cosine,
        share_changed=float((delta != 0).mean()) if delta.size else 0.0,
        outliers=outliers,
    )


def diff_structure(old: UpdateModel, new: UpdateModel) -> StructureDiff:
    """The structural difference of two versions (never raises on a difference)."""
    old_names, new_names = set(old.tensors), set(new.tensors)
    reshaped, retyped, deltas = [], [], []
    for name in (n for n in old.tensors if n in new_names):
        a, b = old.tensors[name], new.tensors[name]
        if a.shape != b.shape:
            reshaped.append((name, tuple(int(s) for s in a.shape), tuple(int(s) for s in b.shape)))
            continue
        if a.dtype != b.dtype:
            retyped.append((name, str(a.dtype), str(b.dtype)))
        deltas.append(tensor_delta(name, a, b))
    keys = sorted(set(old.params) | set(new.params))
    params = [
        (key, old.params.get(key, "(absent)"), new.params.get(key, "(absent)"))
        for key in keys
        if old.params.get(key) != new.params.get(key)
    ]
    return StructureDiff(
        estimator_old=old.estimator,
        estimator_new=new.estimator,
        added=tuple(n for n in new.tensors if n not in old_names),
        removed=tuple(n for n in old.tensors if n not in new_names),
        reshaped=tuple(reshaped),
        retyped=tuple(retyped),
        params_changed=tuple(params),
        deltas=tuple(deltas),
    )


def _training_only(key: str) -> bool:
    return key.rsplit("__", 1)[-1] in _TRAINING_ONLY


def _bookkeeping(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in _BOOKKEEPING or any(
        f".{b}." in f"{name}." for b in _BOOKKEEPING
    )


def structure_findings(diff: StructureDiff, config: UpdateConfig, location: str) -> list[Finding]:
    """UPD002 architecture, UPD003 hyperparameters, UPD004 tampered tensors."""
    findings: list[Finding] = []
    if diff.architecture_changed and config.expect != "any":
        what = []
        if diff.estimator_old != diff.estimator_new:
            what.append(f"estimator {diff.estimator_old} -> {diff.estimator_new}")
        if diff.added:
            what.append(f"{len(diff.added)} added ({', '.join(diff.added[:3])})")
        if diff.removed:
            what.append(f"{len(diff.removed)} removed ({', '.join(diff.removed[:3])})")
        for name, a, b in diff.reshaped[:3]:
            what.append(f"{name} {list(a)} -> {list(b)}")
        for name, was, now in diff.retyped[:3]:
            what.append(f"{name} {was} -> {now}")
        findings.append(
            Finding(
                rule_id="UPD002",
                message=f"architecture changed where the policy expects a {config.expect}: "
                + "; ".join(what),
                location=location,
                detail={"expect": config.expect},
            )
        )
    if config.expect == "fine-tune":
        changed = [p for p in diff.params_changed if not _training_only(p[0])]
        if changed:
            shown = "; ".join(f"{k}: {a} -> {b}" for k, a, b in changed[:5])
            findings.append(
                Finding(
                    rule_id="UPD003",
                    message=f"{len(changed)} hyperparameter(s) changed in a fine-tune: {shown}",
                    location=location,
                    detail={"params": ",".join(k for k, _, _ in changed)},
                )
            )
        findings.extend(_tampering(diff, config, location))
    return findings


def _tampering(diff: StructureDiff, config: UpdateConfig, location: str) -> list[Finding]:
    found = []
    for delta in diff.deltas:
        if _bookkeeping(delta.name) or delta.norm_old == 0 or int(np.prod(delta.shape)) < 2:
            continue
        reasons = []
        if delta.cosine < config.min_cosine:
            reasons.append(f"cosine {delta.cosine:.2f} < {config.min_cosine:g} (sign-flipped?)")
        ratio = delta.norm_ratio
        if ratio > config.max_norm_ratio or ratio < 1 / config.max_norm_ratio:
            reasons.append(f"norm ratio {ratio:.2f} outside x{config.max_norm_ratio:g} (scaled?)")
        if delta.relative_change > config.max_relative_change:
            reasons.append(
                f"relative change {delta.relative_change:.2f} > {config.max_relative_change:g}"
            )
        if reasons:
            found.append(
                Finding(
                    rule_id="UPD004",
                    message=f"tensor {delta.name}: " + "; ".join(reasons),
                    location=f"{location}!{delta.name}",
                    detail={
                        "cosine": f"{delta.cosine:.4f}",
                        "norm_ratio": f"{ratio:.4f}",
                        "relative_change": f"{delta.relative_change:.4f}",
                    },
                )
            )
    return found
