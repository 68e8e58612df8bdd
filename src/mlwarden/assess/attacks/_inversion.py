"""Inversion: what the model gives away about its training data's classes and columns.

`image`: class-representative reconstruction, MIFace-style (Fredrikson et al. 2015)
but built to finish in a fraction of its steps: all classes in one batch, Adam
instead of plain gradient descent, a start from the attacker's class-agnostic mean
input instead of zeros, a total-variation prior that keeps the reconstruction
image-like, a margin objective that keeps moving the image towards what the
model holds typical of the class after the boundary is crossed (cross-entropy
stalls there and leaves adversarial-looking noise), and an early stop per class
once the target is confident and the image has settled. Success is judged by an INDEPENDENT
classifier trained during the assessment on the reference data (a different model
family from the target): a reconstruction counts when it recognises the class.

`tabular`: attribute inference (Fredrikson et al. 2014): for each known record,
try every value of the sensitive column, keep the one under which the target is
most confident in the record's known label; the advantage is the accuracy of that
guess minus the accuracy of guessing the column's most common value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.neighbors import KNeighborsClassifier

from mlwarden.assess._target import Target, is_white_box
from mlwarden.assess.attacks._common import inputs, labels, small_model_threads
from mlwarden.errors import AttackInputError, AttackNotApplicableError

__all__ = ["InversionResult", "inversion", "recognised_by_independent"]


@dataclass(frozen=True, slots=True, kw_only=True)
class InversionResult:
    """Image: per-class reconstructions and their recognition; tabular: the advantage."""

    kind: str
    classes: tuple[int, ...] = ()
    recognised: tuple[bool, ...] = ()
    """Per class: the independent classifier names the reconstruction's class."""
    similarity: tuple[float, ...] = ()
    """Per class: correlation of the reconstruction with the class's reference mean."""
    steps: tuple[int, ...] = ()
    reconstructions: NDArray[np.float32] | None = field(default=None, repr=False)
    independent_accuracy: float | None = None
    """The independent classifier's accuracy on held-out reference data."""
    attribute_accuracy: float | None = None
    baseline_accuracy: float | None = None
    advantage: float | None = None
    queries: int
    seconds: float

    @property
    def recognised_count(self) -> int:
        return sum(self.recognised)


def _grid(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The 2-D image layout of one input: its last two axes, or a square flat vector."""
    if len(shape) >= 2:
        return shape[-2], shape[-1]
    side = math.isqrt(shape[0])
    return (side, side) if side * side == shape[0] else None


def _total_variation(x: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
    if grid is None:
        return torch.zeros(len(x), dtype=x.dtype)
    img = x.reshape(len(x), -1, *grid)
    dh = (img[:, :, 1:, :] - img[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw


def recognised_by_independent(
    reconstructions: NDArray[np.float32],
    classes: Sequence[int],
    reference_x: NDArray[np.float32],
    reference_y: NDArray[np.int64],
    *,
    seed: int = 0,
) -> tuple[tuple[bool, ...], float]:
    """Which reconstructions a k-NN classifier trained on the reference data names right.

    k-NN on the raw inputs (one unit, pixel intensity, for all features: scaling
    them would blow up the near-constant border pixels): a model family far from
    the attacked ones, which names a reconstruction's class only when it lies near
    real samples of that class. Also returns its held-out accuracy (trained on 80%,
    scored on 20% of the reference data).
    """
    flat = reference_x.reshape(len(reference_x), -1)
    order = np.random.default_rng(seed).permutation(len(flat))
    cut = max(1, int(0.8 * len(flat)))
    check = KNeighborsClassifier(n_neighbors=5)
    check.fit(flat[order[:cut]], reference_y[order[:cut]])
    held = order[cut:]
    accuracy = float(np.mean(check.predict(flat[held]) == reference_y[held])) if len(held) else 0.0
    check.fit(flat, reference_y)
    pred = check.predict(reconstructions.reshape(len(reconstructions), -1))
    return tuple(bool(p == c) for p, c in zip(pred, classes, strict=True)), accuracy


def _similarity(
    rec: NDArray[np.float32],
    classes: Sequence[int],
    reference_x: NDArray[np.float32],
    reference_y: NDArray[np.int64],
) -> tuple[float, ...]:
    flat = reference_x.reshape(len(reference_x), -1).astype(np.float64)
    out = []
    for r, c in zip(rec.reshape(len(rec), -1), classes, strict=True):
        mean = flat[reference_y == c].mean(axis=0) if np.any(reference_y == c) else flat.mean(0)
        a, b = r - r.mean(), mean - mean.mean()
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        out.append(float(a @ b / denom) if denom > 0 else 0.0)
    return tuple(out)


def _reconstruct(
    target: Target,
    classes: NDArray[np.int64],
    init: NDArray[np.float32],
    *,
    max_steps: int,
    learning_rate: float,
    tv_weight: float,
    confidence: float,
    tolerance: float,
) -> tuple[NDArray[np.float32], tuple[int, ...]]:
    module = target.torch_module()  # type: ignore[attr-defined]
    low, high = target.value_range
    span = high - low if np.isfinite(high - low) else float(np.abs(init).max() + 1.0)
    grid = _grid(target.input_shape)
    # Optimise in units of the value range so one learning rate fits every scale.
    base = torch.from_numpy(np.repeat(init[None], len(classes), axis=0))
    z = torch.zeros_like(base, requires_grad=True)
    opt = torch.optim.Adam([z], lr=learning_rate)
    y = torch.from_numpy(classes)
    done = torch.zeros(len(classes), dtype=torch.bool)
    steps = np.full(len(classes), max_steps, dtype=np.int64)
    lo = torch.tensor(low, dtype=base.dtype)
    hi = torch.tensor(high, dtype=base.dtype)
    charge = getattr(target, "charge", None)
    previous = base.clone()
    for step in range(max_steps):
        x = torch.maximum(torch.minimum(base + span * z, hi), lo)
        logits = module(x)
        # The margin over the log-sum of the other classes never saturates, so the
        # image keeps moving towards what the model holds typical of the class
        # after the decision boundary is crossed (cross-entropy stalls there).
        own = logits[torch.arange(len(y)), y]
        others = logits.masked_fill(
            torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -torch.inf
        )
        loss = (
            -(own - torch.logsumexp(others, dim=1)) + tv_weight * _total_variation(x, grid) / span
        )
        # Classes already done keep their image: their rows get no gradient.
        opt.zero_grad()
        (loss * (~done)).sum().backward()
        opt.step()
        if charge is not None:
            charge(int((~done).sum()))
        with torch.no_grad():
            p = torch.softmax(logits.to(torch.float64), dim=1)[torch.arange(len(y)), y]
            moved = (x - previous).abs().reshape(len(x), -1).mean(dim=1) / span
            previous = x.detach()
            # Done once confident AND settled: stopping at the boundary leaves an
            # adversarial-looking image; the prior needs steps to shape it.
            newly = (~done) & (p >= confidence) & (moved < tolerance)
            steps[newly.numpy()] = step + 1
            done |= newly
            z.grad = None
        if bool(done.all()):
            break
    with torch.no_grad():
        final = torch.maximum(torch.minimum(base + span * z, hi), lo)
    return np.asarray(final.numpy(), dtype=np.float32), tuple(int(s) for s in steps)


def _attribute(
    target: Target,
    records_x: NDArray[np.float32],
    records_y: NDArray[np.int64],
    column: int,
    values: NDArray[np.float32],
    prior_value: float,
) -> tuple[float, float]:
    n = len(records_x)
    flat = records_x.reshape(n, -1)
    truth = flat[:, column].copy()
    trials = np.repeat(flat[None], len(values), axis=0)  # (values, n, features)
    trials[:, :, column] = values[:, None]
    scores = target.predict_scores(trials.reshape((-1, *target.input_shape)))
    conf = scores[np.arange(len(values) * n), np.tile(records_y, len(values))]
    conf = conf.reshape(len(values), n)
    # Ties (label-only output makes most of them) go to the prior's value.
    prior_index = int(np.argmin(np.abs(values - prior_value)))
    best = conf.max(axis=0)
    tied = conf == best
    guess_index = np.where(tied[prior_index], prior_index, conf.argmax(axis=0))
    guess = values[guess_index]
    accuracy = float(np.mean(np.isclose(guess, truth)))
    baseline = float(np.mean(np.isclose(prior_value, truth)))
    return accuracy, baseline


@small_model_threads()
def inversion(
    target: Target,
    *,
    classes: Sequence[int] | None = None,
    kind: Literal["image", "tabular"] = "image",
    reference_x: NDArray[np.float32],
    reference_y: NDArray[np.int64],
    max_steps: int = 300,
    learning_rate: float = 0.02,
    tv_weight: float = 0.3,
    confidence: float = 0.99,
    tolerance: float = 1e-3,
    records_x: NDArray[np.float32] | None = None,
    records_y: NDArray[np.int64] | None = None,
    sensitive_column: int | None = None,
    seed: int = 0,
) -> InversionResult:
    """Image reconstruction of `classes` (default all), or attribute inference.

    `reference_*` is the attacker's labeled data (not the training set): for
    images it gives the start (its class-agnostic mean) and trains the independent
    judge; for tabular data it gives the candidate values of `sensitive_column` and
    the prior guess. `records_*` are the training records attacked (tabular).
    """
    started = time.perf_counter()
    queries_before = target.queries
    rx = inputs(target, reference_x, "reference data")
    ry = labels(target, reference_y, len(rx), "reference labels")
    if kind == "tabular":
        if records_x is None or records_y is None or sensitive_column is None:
            raise AttackInputError(
                "attribute inference needs records_x, records_y and sensitive_column"
            )
        tx = inputs(target, records_x, "records")
        ty = labels(target, records_y, len(tx), "records' labels")
        n_features = int(np.prod(target.input_shape))
        if not 0 <= sensitive_column < n_features:
            raise AttackInputError(f"sensitive_column must lie in 0..{n_features - 1}")
        column = rx.reshape(len(rx), -1)[:, sensitive_column]
        values, counts = np.unique(column, return_counts=True)
        if len(values) > 64:
            raise AttackInputError(
                f"column {sensitive_column} takes {len(values)} values in the reference "
                "data: attribute inference needs a categorical column (at most 64 values)"
            )
        accuracy, baseline = _attribute(
            target, tx, ty, sensitive_column, values, float(values[np.argmax(counts)])
        )
        return InversionResult(
            kind="tabular",
            attribute_accuracy=accuracy,
            baseline_accuracy=baseline,
            advantage=accuracy - baseline,
            queries=target.queries - queries_before,
            seconds=time.perf_counter() - started,
        )
    if kind != "image":
        raise AttackInputError(f"kind must be 'image' or 'tabular', not {kind!r}")
    if not is_white_box(target):
        raise AttackNotApplicableError(
            f"target {target.name!r} is not white-box: image inversion needs its gradients"
        )
    wanted = np.asarray(classes if classes is not None else range(target.n_classes), dtype=np.int64)
    wanted = labels(target, wanted, len(wanted), "classes")
    if max_steps < 1 or not 0 < confidence < 1:
        raise AttackInputError("max_steps must be >= 1 and confidence within (0, 1)")
    torch.manual_seed(seed)
    rec, steps = _reconstruct(
        target,
        wanted,
        rx.mean(axis=0).astype(np.float32),
        max_steps=max_steps,
        learning_rate=learning_rate,
        tv_weight=tv_weight,
        confidence=confidence,
        tolerance=tolerance,
    )
    recognised, judge_accuracy = recognised_by_independent(rec, list(wanted), rx, ry, seed=seed)
    return InversionResult(
        kind="image",
        classes=tuple(int(c) for c in wanted),
        recognised=recognised,
        similarity=_similarity(rec, list(wanted), rx, ry),
        steps=steps,
        reconstructions=rec,
        independent_accuracy=judge_accuracy,
        queries=target.queries - queries_before,
        seconds=time.perf_counter() - started,
    )
