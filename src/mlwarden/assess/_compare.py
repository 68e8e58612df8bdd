"""Run the attacks against one target, or the same attacks against two and set them side
by side (`mlwarden assess --compare BARE DEFENDED`): how much each defense removed.

The data file is an `.npz` with the arrays `members_x`, `members_y` (records the model
was trained on), `nonmembers_x`, `nonmembers_y` (records of the same distribution it was
not trained on) and, optionally, `reference_x`, `reference_y` (the attacker's own data:
shadow models, the extraction pool and the independent classifier). Without reference
arrays, half of the non-members (every other row) become the reference. Extraction
budgets larger than the reference set are dropped for the pool strategies (random,
active): they query distinct records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mlwarden._npz import read_npz
from mlwarden.assess._config import AssessConfig, AttackSettings
from mlwarden.assess._target import Target
from mlwarden.assess.report._model import (
    ATTACKS,
    Assessment,
    AttackOutcome,
    EvasionSummary,
    ExtractionSummary,
    InversionSummary,
    MembershipSummary,
    summarise_evasion,
    summarise_extraction,
    summarise_inversion,
    summarise_membership,
)

if TYPE_CHECKING:
    from mlwarden.assess._remote import Credentials, RemoteTarget

from mlwarden.errors import (
    AssessDataError,
    AttackNotApplicableError,
    MlwardenError,
    TargetMismatchError,
)

_REQUIRED = ("members_x", "members_y", "nonmembers_x", "nonmembers_y")
_OPTIONAL = ("reference_x", "reference_y")
_MAX_ROWS = 1_000_000
_MAX_CLASSES = 100_000
"""Labels index one-hot rows and score columns: a bound keeps those allocations sane."""
_MAX_VALUE = 1e30


@dataclass(frozen=True, slots=True, kw_only=True)
class AssessData:
    members_x: NDArray[np.float32]
    members_y: NDArray[np.int64]
    nonmembers_x: NDArray[np.float32]
    nonmembers_y: NDArray[np.int64]
    reference_x: NDArray[np.float32]
    reference_y: NDArray[np.int64]

    @property
    def n_classes(self) -> int:
        return int(max(self.members_y.max(), self.nonmembers_y.max(), self.reference_y.max())) + 1

    @property
    def value_range(self) -> tuple[float, float]:
        """The data's own range: the clip range of the attacks on a remote target."""
        stacked = (self.members_x, self.nonmembers_x, self.reference_x)
        low = float(min(a.min() for a in stacked))
        high = float(max(a.max() for a in stacked))
        return (low, high if high > low else low + 1.0)


def save_data(
    path: Path,
    *,
    members: tuple[NDArray[Any], NDArray[Any]],
    nonmembers: tuple[NDArray[Any], NDArray[Any]],
    reference: tuple[NDArray[Any], NDArray[Any]] | None = None,
) -> None:
    """Write an assessment data file (the format `load_data` reads)."""
    arrays: dict[str, Any] = {
        "members_x": members[0],
        "members_y": members[1],
        "nonmembers_x": nonmembers[0],
        "nonmembers_y": nonmembers[1],
    }
    if reference is not None:
        arrays |= {"reference_x": reference[0], "reference_y": reference[1]}
    with path.open("wb") as out:
        np.savez_compressed(out, **arrays)


def connect_remote(
    url: str,
    *,
    model: str | None,
    data: AssessData,
    config: AssessConfig,
    credentials: Credentials,
) -> RemoteTarget:
    """An endpoint as a target for `data`, held to the budget and rate of `config`."""
    from mlwarden.assess._remote import RemoteTarget

    return RemoteTarget.connect(
        url,
        model=model,
        n_classes=data.n_classes,
        probe=data.reference_x[0],
        value_range=data.value_range,
        credentials=credentials,
        max_queries=config.budget.queries,
        rate=config.budget.rate,
        burst=config.budget.burst,
        timeout=config.budget.timeout,
    )


def load_data(path: Path) -> AssessData:
    """Read and check an assessment data file; E175 names the array that is wrong."""
    arrays = read_npz(path, error=AssessDataError)
    names = set(arrays)
    missing = [n for n in _REQUIRED if n not in names]
    if missing:
        raise AssessDataError(
            f"{path}: missing array(s) {', '.join(missing)}",
            hint="an .npz with members_x, members_y, nonmembers_x, nonmembers_y "
            "(and optionally reference_x, reference_y)",
        )
    if ("reference_x" in names) != ("reference_y" in names):
        raise AssessDataError(f"{path}: reference_x and reference_y go together")
    arrays = {n: arrays[n] for n in (*_REQUIRED, *_OPTIONAL) if n in names}
    pairs = [
        (n.removesuffix("_x"), arrays[n], arrays[n[:-1] + "y"]) for n in arrays if n.endswith("_x")
    ]
    checked: dict[str, tuple[NDArray[np.float32], NDArray[np.int64]]] = {}
    width: tuple[int, ...] | None = None
    for name, x, y in pairs:
        xs, ys = _check_pair(path, name, x, y)
        if width is not None and xs.shape[1:] != width:
            raise AssessDataError(
                f"{path}: {name}_x has samples of shape {xs.shape[1:]}, others {width}"
            )
        width = xs.shape[1:]
        checked[name] = (xs, ys)
    members, nonmembers = checked["members"], checked["nonmembers"]
    reference = checked.get("reference")
    if reference is None:
        if len(nonmembers[0]) < 4:
            raise AssessDataError(f"{path}: too few non-members to split off a reference set")
        reference = (nonmembers[0][1::2], nonmembers[1][1::2])
        nonmembers = (nonmembers[0][0::2], nonmembers[1][0::2])
    return AssessData(
        members_x=members[0],
        members_y=members[1],
        nonmembers_x=nonmembers[0],
        nonmembers_y=nonmembers[1],
        reference_x=reference[0],
        reference_y=reference[1],
    )


def _check_pair(
    path: Path, name: str, x: NDArray[Any], y: NDArray[Any]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    if x.dtype.kind not in "fiub" or x.ndim < 2 or 0 in x.shape[1:]:
        raise AssessDataError(f"{path}: {name}_x must be a numeric array of rows (n, features...)")
    if len(x) == 0 or len(x) > _MAX_ROWS:
        raise AssessDataError(f"{path}: {name}_x holds {len(x)} rows (1 to {_MAX_ROWS})")
    if y.shape != (len(x),):
        raise AssessDataError(f"{path}: {name}_y has shape {y.shape}, {name}_x has {len(x)} rows")
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= _MAX_CLASSES)):
        raise AssessDataError(
            f"{path}: {name}_y must hold class indices (integers from 0 to {_MAX_CLASSES - 1})"
        )
    wide = x.astype(np.float64)
    if not np.isfinite(wide).all():
        raise AssessDataError(f"{path}: {name}_x holds NaN or infinity")
    # Checked before the cast: a value float32 cannot hold would silently become inf.
    if np.abs(wide).max() > _MAX_VALUE:
        raise AssessDataError(f"{path}: {name}_x holds values beyond +-{_MAX_VALUE:g}")
    xs = wide.astype(np.float32)
    return xs, y.astype(np.int64)


def available_attacks() -> tuple[str, ...]:
    """The attacks this installation provides, in report order."""
    from mlwarden.assess import attacks

    return tuple(a for a in ATTACKS if hasattr(attacks, a))


def run_assessment(
    target: Target,
    data: AssessData,
    *,
    config: AssessConfig,
    attacks: Sequence[str] = ATTACKS,
    label: str = "",
    seed: int = 0,
    shadow_model: Callable[[], Any] | None = None,
) -> Assessment:
    """Every requested attack against `target`; an attack that cannot finish (its budget
    spent, the endpoint refusing) is recorded with its error and the others still run."""
    from mlwarden.assess import attacks as library

    sizes: AttackSettings = config.attacks
    started = time.perf_counter()
    width = data.members_x.shape[1:]
    if tuple(target.input_shape) != tuple(width) and int(np.prod(target.input_shape)) != int(
        np.prod(width)
    ):
        raise TargetMismatchError(
            f"{target.name}: takes samples of shape {target.input_shape}, the data has {width}"
        )
    low, high = target.value_range
    span = high - low if np.isfinite(high - low) else 1.0
    thresholds = config.thresholds
    rng = np.random.default_rng(seed)
    outcomes: list[AttackOutcome] = []
    for attack in ATTACKS:
        if not hasattr(library, attack):
            outcomes.append(
                AttackOutcome(
                    attack=attack, status="not run", reason="not available in this installation"
                )
            )
            continue
        if attack not in attacks:
            outcomes.append(AttackOutcome(attack=attack, status="not run", reason="not requested"))
            continue
        run: Any = getattr(library, attack)
        before = target.queries
        began = time.perf_counter()
        summary: EvasionSummary | MembershipSummary | ExtractionSummary | InversionSummary
        try:
            if attack == "evasion":
                eps = set(sizes.evasion_epsilons)
                if thresholds.robust_accuracy is not None:
                    eps.add(thresholds.robust_accuracy.epsilon)
                from mlwarden.assess._target import is_white_box

                white = is_white_box(target)
                count = sizes.evasion_samples if white else sizes.black_box_samples
                pick = _sample(rng, len(data.nonmembers_x), count)
                result = run(
                    target,
                    data.nonmembers_x[pick],
                    data.nonmembers_y[pick],
                    epsilons=[e * span for e in sorted(eps)],
                    steps=None if white else sizes.black_box_steps,
                    seed=seed,
                )
                summary = summarise_evasion(result, span)
            elif attack == "membership":
                m = _sample(rng, len(data.members_x), sizes.membership_samples)
                n = _sample(rng, len(data.nonmembers_x), sizes.membership_samples)
                result = run(
                    target,
                    data.members_x[m],
                    data.members_y[m],
                    data.nonmembers_x[n],
                    data.nonmembers_y[n],
                    reference_x=data.reference_x,
                    reference_y=data.reference_y,
                    shadows=sizes.shadows,
                    shadow_model=shadow_model,
                    seed=seed,
                )
                summary = summarise_membership(result)
            elif attack == "extraction":
                budgets = set(sizes.extraction_budgets)
                if thresholds.extraction_fidelity is not None:
                    budgets.add(thresholds.extraction_fidelity.queries)
                if {"random", "active"} & set(sizes.extraction_strategies):
                    # Pool strategies query distinct records: no budget beyond the pool.
                    budgets = {b for b in budgets if b <= len(data.reference_x)}
                result = run(
                    target,
                    data.reference_x,
                    budgets=tuple(sorted(budgets)),
                    strategies=sizes.extraction_strategies,
                    test_x=data.nonmembers_x,
                    test_y=data.nonmembers_y,
                    seed=seed,
                )
                summary = summarise_extraction(result)
            else:
                result = run(
                    target,
                    classes=list(range(min(sizes.inversion_classes, target.n_classes))),
                    reference_x=data.reference_x,
                    reference_y=data.reference_y,
                    seed=seed,
                )
                summary = summarise_inversion(result)
        except AttackNotApplicableError as error:
            # Not measurable on this target (inversion needs gradients, ...): reported as
            # not run with the reason, like a scan's skipped file, never as a pass.
            outcomes.append(
                AttackOutcome(
                    attack=attack,
                    status="not run",
                    code=error.code,
                    reason=f"not applicable: {error.message}",
                    queries=target.queries - before,
                    seconds=time.perf_counter() - began,
                )
            )
            continue
        except MlwardenError as error:
            outcomes.append(
                AttackOutcome(
                    attack=attack,
                    status="failed",
                    code=error.code,
                    reason=error.message,
                    queries=target.queries - before,
                    seconds=time.perf_counter() - began,
                )
            )
            continue
        outcomes.append(
            AttackOutcome(
                attack=attack,
                status="done",
                summary=summary,
                queries=target.queries - before,
                seconds=time.perf_counter() - began,
            )
        )
    return Assessment(
        target=target.name,
        label=label,
        output=target.output,
        n_classes=target.n_classes,
        value_range=(float(low), float(high)),
        outcomes=tuple(outcomes),
        queries=target.queries,
        seconds=time.perf_counter() - started,
        settings={"seed": seed, "attacks": [a for a in ATTACKS if a in attacks]},
    )


def _sample(rng: np.random.Generator, n: int, count: int) -> NDArray[np.int64]:
    if n <= count:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=count, replace=False)).astype(np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class Removed:
    """One figure before and behind the defense; `removed` is the share of the attack's
    advantage over chance that the defense took away (1: all of it, 0: none)."""

    figure: str
    bare: float | None
    defended: float | None
    chance: float
    higher_is_riskier: bool

    @property
    def removed(self) -> float | None:
        if self.bare is None or self.defended is None:
            return None
        bare_gain = (self.bare - self.chance) * (1 if self.higher_is_riskier else -1)
        if bare_gain <= 0:
            return None
        defended_gain = (self.defended - self.chance) * (1 if self.higher_is_riskier else -1)
        return max(0.0, min(1.0, 1.0 - max(defended_gain, 0.0) / bare_gain))


def compare(bare: Assessment, defended: Assessment, config: AssessConfig) -> tuple[Removed, ...]:
    """The headline figure of each attack, bare and defended, and what the defense removed."""
    if bare.n_classes != defended.n_classes:
        raise TargetMismatchError(
            f"{bare.target} has {bare.n_classes} classes, {defended.target} {defended.n_classes}"
        )
    thresholds = config.thresholds
    eps = thresholds.robust_accuracy.epsilon if thresholds.robust_accuracy else 0.1
    queries = thresholds.extraction_fidelity.queries if thresholds.extraction_fidelity else 500

    def evasion(a: Assessment) -> float | None:
        s = a.summary("evasion")
        return s.at(eps) if isinstance(s, EvasionSummary) else None

    def auc(a: Assessment) -> float | None:
        s = a.summary("membership")
        return s.auc if isinstance(s, MembershipSummary) else None

    def tpr(a: Assessment) -> float | None:
        s = a.summary("membership")
        return s.tpr_at_1pct_fpr if isinstance(s, MembershipSummary) else None

    def fidelity(a: Assessment) -> float | None:
        s = a.summary("extraction")
        return s.best_fidelity_within(queries) if isinstance(s, ExtractionSummary) else None

    def recognised(a: Assessment) -> float | None:
        s = a.summary("inversion")
        return s.recognised / s.classes if isinstance(s, InversionSummary) and s.classes else None

    chance_class = 1.0 / bare.n_classes
    return (
        Removed(figure=f"robust accuracy at epsilon {eps:g}", bare=evasion(bare),
                defended=evasion(defended), chance=1.0, higher_is_riskier=False),
        Removed(figure="membership AUC", bare=auc(bare), defended=auc(defended), chance=0.5,
                higher_is_riskier=True),
        Removed(figure="membership TPR at 1% FPR", bare=tpr(bare), defended=tpr(defended),
                chance=0.01, higher_is_riskier=True),
        Removed(figure=f"extraction fidelity at {queries} queries", bare=fidelity(bare),
                defended=fidelity(defended), chance=chance_class, higher_is_riskier=True),
        Removed(figure="inversion: share of classes recognised", bare=recognised(bare),
                defended=recognised(defended), chance=chance_class, higher_is_riskier=True),
    )  # fmt: skip
