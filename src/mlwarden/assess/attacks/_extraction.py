"""Extraction: how close a copy trained only on the target's answers gets, per query.

Each strategy spends queries up to the largest budget; at every budget on the way
the copy (`Substitute`) is retrained on what was bought so far and scored on held-out
data: fidelity is its agreement with the target's labels, accuracy its agreement with
the true labels. Strategies:

- `random`: natural samples from the attacker's pool (Knockoff-style);
- `uniform`: uniform noise over the input range (an attacker with no data);
- `jacobian`: Papernot et al.'s Jacobian-based augmentation: a small seed set, then
  rounds that step each point along the sign of the copy's gradient for its label;
- `active`: uncertainty sampling: each round queries the pool points on which the
  current copy's top two classes are closest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mlwarden.assess._target import Target
from mlwarden.assess.attacks._common import inputs, labels, small_model_threads
from mlwarden.assess.attacks._substitute import Substitute
from mlwarden.errors import AttackInputError

STRATEGIES = ("random", "uniform", "jacobian", "active")

__all__ = ["STRATEGIES", "ExtractionCurve", "ExtractionResult", "extraction"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionCurve:
    """One strategy: fidelity and accuracy of the copy at each budget."""

    strategy: str
    fidelity: tuple[float, ...]
    accuracy: tuple[float, ...]
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionResult:
    """Curves against `budgets` (queries), one per strategy."""

    budgets: tuple[int, ...]
    curves: Mapping[str, ExtractionCurve] = field(default_factory=dict)
    target_accuracy: float
    output: str
    queries: int
    seconds: float

    def best_fidelity(self) -> float:
        """The highest fidelity any strategy reached (the defender's worst case)."""
        return max((max(c.fidelity) for c in self.curves.values()), default=0.0)


class _Run:
    """Queries bought so far by one strategy, and the copy retrained at checkpoints."""

    def __init__(
        self,
        target: Target,
        test_x: NDArray[np.float32],
        test_y: NDArray[np.int64],
        target_test: NDArray[np.int64],
        substitute: Substitute,
    ) -> None:
        self.target = target
        self.test_x = test_x
        self.test_y = test_y
        self.target_test = target_test
        self.sub = substitute
        self.xs: list[NDArray[np.float32]] = []
        self.scores: list[NDArray[np.float64]] = []
        self.bought = 0

    def buy(self, x: NDArray[np.float32]) -> None:
        self.scores.append(self.target.predict_scores(x))
        self.xs.append(x)
        self.bought += len(x)

    def retrain(self) -> None:
        self.sub.fit(np.concatenate(self.xs), np.concatenate(self.scores))

    def measure(self) -> tuple[float, float]:
        pred = self.sub.predict(self.test_x)
        return float(np.mean(pred == self.target_test)), float(np.mean(pred == self.test_y))

    def all_x(self) -> NDArray[np.float32]:
        return np.concatenate(self.xs)

    def all_labels(self) -> NDArray[np.int64]:
        return np.asarray(np.concatenate(self.scores).argmax(axis=1), dtype=np.int64)


def _curve(
    strategy: str,
    run: _Run,
    pool: NDArray[np.float32],
    budgets: tuple[int, ...],
    low: NDArray[np.float32],
    high: NDArray[np.float32],
    rng: np.random.Generator,
) -> tuple[list[float], list[float]]:
    fid: list[float] = []
    acc: list[float] = []
    order = rng.permutation(len(pool))
    used = np.zeros(len(pool), dtype=bool)
    for budget in budgets:
        while run.bought < budget:
            need = budget - run.bought
            if strategy == "random":
                take = order[run.bought : run.bought + need]
                batch = pool[take]
            elif strategy == "uniform":
                batch = rng.uniform(low, high, size=(need, *pool.shape[1:])).astype(np.float32)
            elif strategy == "active" and run.bought > 0:
                # Rounds of at most half the bought set keep the copy's view current.
                step = min(need, max(10, run.bought // 2))
                run.retrain()
                free = np.flatnonzero(~used)
                proba = np.sort(run.sub.proba(pool[free]), axis=1)
                margin = proba[:, -1] - proba[:, -2]
                take = free[np.argsort(margin, kind="stable")[:step]]
                used[take] = True
                batch = pool[take]
            elif strategy == "jacobian" and run.bought > 0:
                run.retrain()
                seen = run.all_x()
                pick = rng.choice(len(seen), size=min(need, len(seen)), replace=False)
                lam = 0.1 * (high - low)
                direction = run.sub.label_gradient_sign(seen[pick], run.all_labels()[pick])
                batch = np.clip(seen[pick] + lam * direction, low, high).astype(np.float32)
            else:
                # First round of active and jacobian: a small random seed set.
                seed_n = min(need, max(10, budgets[0] // 5))
                take = order[:seed_n]
                used[take] = True
                batch = pool[take]
            if len(batch) == 0:
                raise AttackInputError(
                    f"extraction: the pool of {len(pool)} samples is too small for {budget} "
                    f"queries with the {strategy!r} strategy"
                )
            run.buy(batch)
        run.retrain()
        f, a = run.measure()
        fid.append(f)
        acc.append(a)
    return fid, acc


@small_model_threads()
def extraction(
    target: Target,
    pool_x: NDArray[np.float32],
    *,
    test_x: NDArray[np.float32],
    test_y: NDArray[np.int64],
    budgets: Sequence[int] = (100, 250, 500, 1000),
    strategies: Sequence[str] = STRATEGIES,
    epochs: int = 200,
    seed: int = 0,
) -> ExtractionResult:
    """Fidelity and accuracy of copies trained on up to `max(budgets)` queries each.

    `pool_x` is the attacker's unlabeled data (for `random` and `active` it must
    hold at least the largest budget); `test_*` is held-out data to score the copy.
    The target is queried `len(strategies) * max(budgets)` times plus once per test
    sample, within its query budget.
    """
    started = time.perf_counter()
    pool = inputs(target, pool_x, "extraction pool")
    tx = inputs(target, test_x, "extraction test data")
    ty = labels(target, test_y, len(tx), "extraction test labels")
    steps = tuple(sorted({int(b) for b in budgets}))
    if not steps or steps[0] < 1:
        raise AttackInputError("budgets must be a non-empty list of positive query counts")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise AttackInputError(f"strategies must be among {', '.join(STRATEGIES)}: {unknown}")
    if len(pool) < steps[-1] and any(s in ("random", "active") for s in strategies):
        raise AttackInputError(
            f"extraction: the pool holds {len(pool)} samples, fewer than the largest budget "
            f"{steps[-1]}"
        )
    queries_before = target.queries
    lo, hi = target.value_range
    flat = pool.reshape(len(pool), -1)
    low = np.full(pool.shape[1:], lo if np.isfinite(lo) else flat.min(), dtype=np.float32)
    high = np.full(pool.shape[1:], hi if np.isfinite(hi) else flat.max(), dtype=np.float32)
    target_test = target.predict_labels(tx)
    curves: dict[str, ExtractionCurve] = {}
    for i, strategy in enumerate(strategies):
        t0 = time.perf_counter()
        sub = Substitute(
            flat.shape[1],
            target.n_classes,
            mean=flat.mean(axis=0),
            std=flat.std(axis=0),
            seed=seed,
            epochs=epochs,
        )
        run = _Run(target, tx, ty, target_test, sub)
        fid, acc = _curve(strategy, run, pool, steps, low, high, np.random.default_rng([seed, i]))
        curves[strategy] = ExtractionCurve(
            strategy=strategy,
            fidelity=tuple(fid),
            accuracy=tuple(acc),
            seconds=time.perf_counter() - t0,
        )
    return ExtractionResult(
        budgets=steps,
        curves=curves,
        target_accuracy=float(np.mean(target_test == ty)),
        output=target.output,
        queries=target.queries - queries_before,
        seconds=time.perf_counter() - started,
    )
