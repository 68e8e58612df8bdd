"""Evasion: robust accuracy against the size of a bounded perturbation.

White-box (the target hands over a torch module): FGSM and PGD, L-inf or L2, with
exactly the update, clip and projection order of the reference formulation
(Madry et al.; ART's implementation follows it too), so with the same start the
adversarial examples are the same. Written here rather than borrowed because
speed is the point: the whole loop stays in torch, one `autograd.grad` per step,
no numpy round trips, and samples that already fail are still stepped (keeping
the result identical) but the batch is as large as memory allows.

Black-box (scores or labels only): the Square attack (Andriushchenko et al. 2020),
L-inf, a random search over square patches that needs no gradients and follows
the score margin. Labels only: RayS (Chen & Gu 2020), L-inf, a search over sign
directions with a bisection on the radius; it needs nothing but the top label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from mlwarden.assess._target import Target, is_white_box
from mlwarden.assess.attacks._common import inputs, labels, small_model_threads
from mlwarden.errors import AttackInputError, AttackNotApplicableError, TargetOutputError

Norm = Literal["linf", "l2"]
Method = Literal["pgd", "fgsm", "square", "rays"]

__all__ = ["EvasionResult", "adversarial_examples", "evasion"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EvasionResult:
    """Accuracy on adversarial examples for each epsilon (same order)."""

    epsilons: tuple[float, ...]
    robust_accuracy: tuple[float, ...]
    clean_accuracy: float
    method: str
    norm: str
    white_box: bool
    n_samples: int
    queries: int
    seconds: float


def _l2_normalise(grad: torch.Tensor) -> torch.Tensor:
    flat = grad.reshape(len(grad), -1)
    size: torch.Tensor = torch.linalg.norm(flat, ord=2, dim=1, keepdim=True)
    return (flat.abs() * size.where(size == 0, 1 / size)).reshape(grad.shape) * grad.sign()


def _l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    flat = delta.reshape(len(delta), -1)
    size: torch.Tensor = torch.linalg.norm(flat, ord=2, dim=1, keepdim=True)
    # The scale is computed in float64 and the product cast back, as the reference does.
    # (a 1-element tensor, not a 0-dim one, so that torch promotes to float64).
    wide = torch.full((1,), eps, dtype=torch.float64) / size
    scale = size.where(size == 0, torch.minimum(torch.ones(1, dtype=delta.dtype), wide))
    return (flat * scale).reshape(delta.shape).to(delta.dtype)


def _white_box_batch(
    module: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm,
    steps: int,
    step_size: float,
    low: float,
    high: float,
    project: bool,
) -> torch.Tensor:
    """FGSM/PGD steps on one batch, in the reference order: step, clip, project.

    Every operation gives the same float32 result as the reference's (clamp is
    the same as its min/max pair and its sign-times-min projection; for L-inf the
    step is +-step_size, exact, so the fused add changes nothing), in fewer
    kernel launches, which is what costs on small models.
    """
    step = float(np.float32(step_size))
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(module(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            if norm == "linf":
                adv = adv.detach().add_(grad.sign_(), alpha=step)
            else:
                adv = adv.detach() + torch.tensor(step) * _l2_normalise(grad)
            adv.clamp_(low, high)
            if project:
                delta = adv - x
                if norm == "linf":
                    delta.clamp_(-eps, eps)
                else:
                    delta = _l2_project(delta, eps)
                adv = delta.add_(x)
    if not bool(torch.isfinite(adv).all()):
        raise TargetOutputError("the target's gradients are not finite: no attack is possible")
    return adv.detach()


@small_model_threads()
def adversarial_examples(
    target: Target,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    eps: float,
    norm: Norm = "linf",
    method: Literal["pgd", "fgsm"] = "pgd",
    steps: int = 10,
    step_size: float | None = None,
    batch_size: int = 512,
) -> NDArray[np.float32]:
    """White-box FGSM/PGD examples for one epsilon, from the clean inputs (no random start).

    FGSM is one step of size eps without a projection (the clip to the value range
    still applies); PGD takes `steps` steps of `step_size` (default 2.5 * eps /
    steps) and projects on the eps-ball after each.
    """
    if not is_white_box(target):
        raise AttackNotApplicableError(
            f"target {target.name!r} is not white-box: FGSM and PGD need its gradients"
        )
    module = target.torch_module()  # type: ignore[attr-defined]
    low, high = target.value_range
    fgsm = method == "fgsm"
    n_steps = 1 if fgsm else steps
    size = eps if fgsm else (step_size if step_size is not None else 2.5 * eps / steps)
    out = np.empty_like(x)
    charge = getattr(target, "charge", None)
    # Only the input's gradient is wanted: frozen weights keep autograd from
    # recording them (restored afterwards).
    frozen = [p for p in module.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        _batches(module, x, y, out, charge, eps, norm, fgsm, n_steps, size, low, high, batch_size)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return out


def _batches(
    module: torch.nn.Module,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    out: NDArray[np.float32],
    charge: Callable[[int], None] | None,
    eps: float,
    norm: Norm,
    fgsm: bool,
    n_steps: int,
    size: float,
    low: float,
    high: float,
    batch_size: int,
) -> None:
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))
        yb = torch.from_numpy(np.ascontiguousarray(y[i : i + batch_size]))
        if charge is not None:
            charge(len(xb) * n_steps)
        adv = _white_box_batch(
            module,
            xb,
            yb,
            eps=eps,
            norm=norm,
            steps=n_steps,
            step_size=size,
            low=low,
            high=high,
            project=not fgsm,
        )
        out[i : i + batch_size] = adv.numpy()


def _square_linf(
    target: Target,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    eps: float,
    steps: int,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Square attack, L-inf, margin loss; stops per sample once it is misclassified."""
    low, high = target.value_range
    shape = x.shape[1:]
    # Square patches act on the last two axes (an image), else on a flat vector.
    spatial = shape[-2:] if len(shape) >= 2 else (1, shape[0])
    flat_x = x.reshape(len(x), -1, *spatial)
    n, channels, h, w = flat_x.shape

    def margin(batch: NDArray[np.float32], idx: NDArray[np.int64]) -> NDArray[np.float64]:
        scores = target.predict_scores(batch.reshape((len(batch), *shape)))
        yi = y[idx]
        true = scores[np.arange(len(idx)), yi]
        other = scores.copy()
        other[np.arange(len(idx)), yi] = -np.inf
        return np.asarray(true - other.max(axis=1), dtype=np.float64)

    # Start from vertical stripes of +-eps, as the paper does.
    stripes = rng.choice([-eps, eps], size=(n, channels, 1, w)).astype(np.float32)
    adv = np.clip(flat_x + stripes, low, high).astype(np.float32)
    best = margin(adv, np.arange(n))
    p_init = 0.05
    for step in range(steps):
        active = np.flatnonzero(best > 0)
        if active.size == 0:
            break
        p = p_init * (0.5 ** sum(step >= t for t in (10, 50, 200, 500, 1000, 2000, 4000)))
        side = max(1, min(h, w, round(np.sqrt(p * h * w))))
        cand = adv[active].copy()
        for row, i in enumerate(active):
            top = rng.integers(0, h - side + 1)
            left = rng.integers(0, w - side + 1)
            patch = rng.choice([-eps, eps], size=(channels, 1, 1)).astype(np.float32)
            window = flat_x[i, :, top : top + side, left : left + side] + patch
            cand[row, :, top : top + side, left : left + side] = window
        cand = np.clip(cand, low, high).astype(np.float32)
        new = margin(cand, active)
        better = new < best[active]
        adv[active[better]] = cand[better]
        best[active[better]] = new[better]
    return np.asarray(adv.reshape(x.shape), dtype=np.float32)


@small_model_threads()
def _rays_radius(
    target: Target,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    stop: float,
    steps: int,
) -> NDArray[np.float64]:
    """RayS (Chen & Gu 2020): the smallest L-inf radius found at which the label flips.

    Label-only: it searches sign vectors (rays) block by block, coarse to fine, and
    keeps a flip when the label changes at a smaller radius along the new ray (one
    query at the current best radius, then a bisection). All samples move in one
    batch per query round; a sample stops when its radius is at most `stop` or after
    `steps` queries. Samples the target already gets wrong have radius 0; inf means
    no flip was found.
    """
    low, high = target.value_range
    n = len(x)
    flat = x.reshape(n, -1)
    size = flat.shape[1]
    span = float(high - low) if np.isfinite(high - low) else float(np.abs(flat).max() * 2 + 1)
    radius = np.full(n, np.inf)
    radius[target.predict_labels(x) != y] = 0.0
    sign = np.ones((n, size), dtype=np.float32)
    spent = np.zeros(n, dtype=np.int64)

    def flips(
        rows: NDArray[np.int64], ray: NDArray[np.float32], r: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        point = np.clip(flat[rows] + (r[:, None] * ray).astype(np.float32), low, high)
        spent[rows] += 1
        pred = target.predict_labels(point.astype(np.float32).reshape((len(rows), *x.shape[1:])))
        return np.asarray(pred != y[rows], dtype=np.bool_)

    def improve(rows: NDArray[np.int64], ray: NDArray[np.float32]) -> None:
        ceiling = np.minimum(radius[rows], span)
        hit = flips(rows, ray, ceiling)
        rows, ray, hi = rows[hit], ray[hit], ceiling[hit]
        lo = np.zeros(len(rows))
        for _ in range(8):  # bisection to 1/256 of the current radius
            mid = (lo + hi) / 2
            inside = flips(rows, ray, mid)
            hi = np.where(inside, mid, hi)
            lo = np.where(inside, lo, mid)
        better = hi < radius[rows]
        radius[rows[better]] = hi[better]
        sign[rows[better]] = ray[better]

    improve(np.flatnonzero(radius > stop), sign[radius > stop])
    level, block = 0, 0
    while True:
        active = np.flatnonzero((radius > stop) & (spent < steps))
        if active.size == 0:
            break
        width = -(-size // 2**level)
        start, end = block * width, min(size, (block + 1) * width)
        ray = sign[active].copy()
        ray[:, start:end] *= -1
        improve(active, ray)
        block += 1
        if end >= size:
            level, block = (level + 1 if width > 1 else level), 0
    return radius


def evasion(
    target: Target,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    epsilons: Sequence[float],
    norm: Norm = "linf",
    method: Method = "pgd",
    steps: int | None = None,
    step_size: float | None = None,
    batch_size: int = 512,
    seed: int = 0,
) -> EvasionResult:
    """Robust accuracy of `target` on (x, y) for each epsilon.

    White-box targets get FGSM or PGD (`steps` default 10); the others, or
    `method="square"`, the Square attack on scores (L-inf; `steps` default 200
    queries per sample at most, within the target's query budget); label-only
    targets, or `method="rays"`, RayS (L-inf; `steps` default 300 queries per
    sample, one run for all epsilons). An epsilon of 0 makes no change, so its
    robust accuracy is the clean accuracy.
    """
    started = time.perf_counter()
    xs = inputs(target, x, "evasion inputs")
    ys = labels(target, y, len(xs), "evasion labels")
    eps_list = tuple(float(e) for e in epsilons)
    if not eps_list or any(not np.isfinite(e) or e < 0 for e in eps_list):
        raise AttackInputError("epsilons must be a non-empty list of finite values >= 0")
    if norm not in ("linf", "l2"):
        raise AttackInputError(f"norm must be 'linf' or 'l2', not {norm!r}")
    if method not in ("pgd", "fgsm", "square", "rays"):
        raise AttackInputError(f"method must be 'pgd', 'fgsm', 'square' or 'rays', not {method!r}")
    if batch_size < 1 or (steps is not None and steps < 1):
        raise AttackInputError("batch_size and steps must be >= 1")
    queries_before = target.queries
    white = is_white_box(target) and method not in ("square", "rays")
    # Label-only output gives the Square attack's margin nothing to follow: RayS then.
    black = "rays" if method == "rays" or target.output == "labels" else "square"
    if not white and norm != "linf":
        raise AttackNotApplicableError(
            f"target {target.name!r}: the black-box attack supports the L-inf norm only"
        )
    clean_pred = target.predict_labels(xs)
    clean = float(np.mean(clean_pred == ys))
    robust: list[float] = []
    rng = np.random.default_rng(seed)
    radius = None
    if not white and black == "rays" and any(e > 0 for e in eps_list):
        stop = min(e for e in eps_list if e > 0)
        radius = _rays_radius(target, xs, ys, stop=stop, steps=steps or 300)
    for eps in eps_list:
        if eps == 0:
            robust.append(clean)
            continue
        if white:
            adv = adversarial_examples(
                target,
                xs,
                ys,
                eps=eps,
                norm=norm,
                method="fgsm" if method == "fgsm" else "pgd",
                steps=steps or 10,
                step_size=step_size,
                batch_size=batch_size,
            )
        elif radius is not None:
            # Every finite radius was confirmed by a query that flipped the label.
            robust.append(float(np.mean(radius > eps)))
            continue
        else:
            adv = _square_linf(target, xs, ys, eps=eps, steps=steps or 200, rng=rng)
        robust.append(float(np.mean(target.predict_labels(adv) == ys)))
    return EvasionResult(
        epsilons=eps_list,
        robust_accuracy=tuple(robust),
        clean_accuracy=clean,
        method=method if white else black,
        norm=norm,
        white_box=white,
        n_samples=len(xs),
        queries=target.queries - queries_before,
        seconds=time.perf_counter() - started,
    )
