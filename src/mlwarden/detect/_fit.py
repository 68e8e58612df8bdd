"""Fitting a detector Reference and calibrating its thresholds.

The reference rows are split three ways (seeded): a *bank* the requests are
compared with (at most `BANK_SIZE` rows: the kNN is a plain matmul per request),
a *scoring* split whose per-request scores the conformal p-values are taken
against, and a *threshold* split that never touched either. The thresholds:

- adversarial: the (1 - target_false_alarm) quantile of the threshold split's
  per-request scores, so about that share of benign requests is flagged;
- extraction and probing: benign streams are simulated by replaying the threshold
  split in `STREAMS` random orders (each stream up to `STREAM_LENGTH` queries),
  and the threshold is the (1 - target_false_alarm) quantile of each stream's
  *highest* score over its whole length: the share of benign callers ever flagged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from mlwarden.detect import _scores as sc
from mlwarden.detect._reference import Reference
from mlwarden.detect._request import BOUNDARY_P, FAR_STEP, NEAR_STEP, score_requests
from mlwarden.detect._signal import Signal
from mlwarden.errors import ReferenceFitError

BANK_SIZE = 1024
NEIGHBOURS = 16
PROJECTED_DIM = 32
SQUEEZE_BITS = 3
POWER = 0.7
STREAMS = 400
STREAM_LENGTH = 1000
MIN_ROWS = 60
# A query closer to an earlier one than this fraction of the 1% quantile of benign
# nearest-neighbour distances counts as near-identical (probing).
NEAR_FRACTION = 0.5


def fit(
    x: NDArray[np.float64],
    y: NDArray[np.int64] | None,
    *,
    predict_proba: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    image_shape: tuple[int, int] | None,
    value_range: tuple[float, float] | None,
    target_false_alarm: float,
    seed: int,
) -> Reference:
    xa, ya, proba, image_shape, value_range = _check(
        x, y, predict_proba, image_shape, value_range, target_false_alarm
    )
    try:
        # Values so large that their squared distances overflow would calibrate on inf.
        with np.errstate(over="raise"):
            reference = _fit(xa, ya, proba, predict_proba, image_shape, value_range,
                             target_false_alarm, seed)  # fmt: skip
    except FloatingPointError:
        raise ReferenceFitError(
            "reference data values are too large to compare (numeric overflow); rescale them"
        ) from None
    unmeasured = [str(s) for s, v in reference.thresholds.items() if not (np.isfinite(v) and v > 0)]
    if unmeasured:
        # Fail closed: a zero or infinite threshold flags everything or nothing.
        raise ReferenceFitError(
            f"could not calibrate the {', '.join(sorted(unmeasured))} threshold(s) on this data "
            "(constant or degenerate rows?)"
        )
    return reference


def _fit(
    xa: NDArray[np.float64],
    ya: NDArray[np.int64] | None,
    proba: NDArray[np.float64],
    predict_proba: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    image_shape: tuple[int, int] | None,
    value_range: tuple[float, float] | None,
    target_false_alarm: float,
    seed: int,
) -> Reference:
    n, d = xa.shape
    n_classes = proba.shape[1]
    labels = ya if ya is not None else np.argmax(proba, axis=1).astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_bank = min(n // 2, BANK_SIZE)
    rest = order[n_bank:]
    bank_idx, score_idx, thr_idx = order[:n_bank], rest[: len(rest) // 2], rest[len(rest) // 2 :]

    center = xa[bank_idx].mean(axis=0)
    std = xa[bank_idx].std(axis=0)
    positive = std[std > 0]
    # Constant features (an image's border) get a floor scale: noise there is
    # suspicious, but must not be infinitely so.
    floor = 0.1 * float(np.median(positive)) if positive.size else 1.0
    inv_scale = 1.0 / np.maximum(std, floor)
    bank = sc.standardize(xa[bank_idx], center, inv_scale)
    if d <= PROJECTED_DIM:
        projection = np.eye(d)
    else:  # Johnson-Lindenstrauss: distances kept within a few percent, 32 numbers per query
        projection = rng.standard_normal((d, PROJECTED_DIM)) / np.sqrt(PROJECTED_DIM)
    prior = np.bincount(labels, minlength=n_classes).astype(np.float64) + 0.5
    prior /= prior.sum()

    def scores_of(idx: NDArray[np.intp]) -> tuple[sc.Neighbours, NDArray[np.float64]]:
        z = sc.standardize(xa[idx], center, inv_scale)
        bank_sq = np.einsum("ij,ij->i", bank, bank)
        predicted = np.argmax(proba[idx], axis=1).astype(np.int64)
        return sc.neighbours(z, bank, bank_sq, labels[bank_idx], k, predicted), z

    k = min(NEIGHBOURS, n_bank - 1)
    nb, z_score = scores_of(score_idx)
    squeeze = np.empty(0)
    if image_shape is not None and value_range is not None:
        squeeze = sc.squeeze_score(
            xa[score_idx], proba[score_idx], predict_proba, image_shape, value_range, SQUEEZE_BITS
        )
    bank_proj = bank @ projection
    nearest = _nearest_to(bank_proj, z_score @ projection)
    cal_nearest = np.sort(nearest)
    near_distance = NEAR_FRACTION * float(np.quantile(cal_nearest, 0.01))
    provisional = Reference(
        n_features=d,
        n_classes=n_classes,
        k=k,
        image_shape=image_shape,
        value_range=value_range,
        squeeze_bits=SQUEEZE_BITS,
        power=POWER,
        near_distance=near_distance,
        center=center,
        inv_scale=inv_scale,
        bank=bank,
        bank_labels=labels[bank_idx].astype(np.int64),
        projection=projection,
        class_prior=prior,
        cal_distance=np.sort(nb.mean_distance),
        cal_lid=np.sort(nb.lid),
        cal_disagree=np.sort(sc.disagreement(nb.labels, proba[score_idx])),
        cal_squeeze=np.sort(squeeze),
        cal_margin=np.sort(sc.margin(proba[score_idx])),
        cal_trust=np.sort(nb.trust),
        cal_nearest=cal_nearest,
        thresholds=dict.fromkeys(Signal, 1.0),
    )
    held = score_requests(provisional, xa[thr_idx], proba[thr_idx], predict_proba)
    adversarial = float(np.quantile(held.adversarial, 1.0 - target_false_alarm, method="higher"))
    extraction, probing = _stream_thresholds(provisional, held, target_false_alarm, rng)
    return dataclasses.replace(
        provisional,
        thresholds={
            Signal.ADVERSARIAL: adversarial,
            Signal.EXTRACTION: extraction,
            Signal.PROBING: probing,
        },
        fit_info={
            "rows": n,
            "bank_rows": int(n_bank),
            "scoring_rows": len(score_idx),
            "threshold_rows": len(thr_idx),
            "target_false_alarm": target_false_alarm,
            "seed": seed,
            "streams": STREAMS,
            "stream_length": min(len(thr_idx), STREAM_LENGTH),
        },
    )


def _nearest_to(memory: NDArray[np.float64], rows: NDArray[np.float64]) -> NDArray[np.float64]:
    d2 = (
        np.einsum("ij,ij->i", memory, memory)[None, :]
        - 2.0 * rows @ memory.T
        + np.einsum("ij,ij->i", rows, rows)[:, None]
    )
    out: NDArray[np.float64] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def _stream_thresholds(
    ref: Reference, held: object, target: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Replay the held-out rows as benign streams; return the extraction and probing thresholds."""
    max_ext, max_probe = _replay(ref, held, rng)
    q = 1.0 - target
    # Floors: never below the evidence of a few clearly anomalous queries in a row,
    # whatever the calibration sample says (it is finite).
    extraction = max(float(np.quantile(max_ext, q, method="higher")), float(np.log(1.0 / target)))
    probing = max(float(np.quantile(max_probe, q, method="higher")), 3.0 * NEAR_STEP)
    return extraction, probing


def _replay(
    ref: Reference, held: object, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each replayed benign stream's highest extraction and probing scores.

    Mirrors Monitor.observe query by query, vectorized across streams.
    """
    from mlwarden.detect._request import RequestScores

    assert isinstance(held, RequestScores)
    pool = held.projected.shape[0]
    length = min(pool, STREAM_LENGTH)
    # Queries are remembered in float16 by the stream state: replay them the same way.
    proj = held.projected.astype(np.float16).astype(np.float64)
    sq = np.einsum("ij,ij->i", proj, proj)
    pair = np.sqrt(np.maximum(sq[:, None] - 2.0 * held.projected @ proj.T + sq[None, :], 0.0))
    static = sc.evidence(held.p_distance, ref.power) + sc.evidence(held.p_margin, ref.power)
    orders = np.stack([rng.permutation(pool)[:length] for _ in range(STREAMS)])
    ext = np.zeros(STREAMS)
    probe = np.zeros(STREAMS)
    cls = np.zeros(STREAMS)
    counts = np.zeros((STREAMS, ref.n_classes))
    max_ext = np.zeros(STREAMS)
    max_probe = np.zeros(STREAMS)
    log_prior = np.log(np.maximum(ref.class_prior, 1e-12))
    rows = np.arange(STREAMS)
    window = 512
    for t in range(length):
        current = orders[:, t]
        if t == 0:
            nearest = np.full(STREAMS, np.inf)
        else:
            earlier = orders[:, max(0, t - window) : t]
            nearest = pair[current[:, None], earlier].min(axis=1)
        p_near = sc.lower_p(ref.cal_nearest, nearest)
        ext = np.maximum(0.0, ext + static[current] + sc.evidence(p_near, ref.power))
        near = (nearest <= ref.near_distance) | (
            (p_near <= BOUNDARY_P) & (held.p_margin[current] <= BOUNDARY_P)
        )
        probe = np.maximum(0.0, probe + np.where(near, NEAR_STEP, FAR_STEP))
        c = held.predicted[current]
        cls += np.log((counts[rows, c] + 0.5) / (t + 0.5 * ref.n_classes)) - log_prior[c]
        counts[rows, c] += 1
        max_ext = np.maximum(max_ext, ext + np.maximum(cls, 0.0))
        max_probe = np.maximum(max_probe, probe)
    return max_ext, max_probe


def _check(
    x: object,
    y: object,
    predict_proba: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    image_shape: tuple[int, int] | None,
    value_range: tuple[float, float] | None,
    target: float,
) -> tuple[
    NDArray[np.float64],
    NDArray[np.int64] | None,
    NDArray[np.float64],
    tuple[int, int] | None,
    tuple[float, float] | None,
]:
    try:
        xa = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ReferenceFitError("reference data is not numeric") from None
    if xa.ndim != 2 or xa.shape[1] < 1:
        raise ReferenceFitError(f"reference data must be a 2-D array, got shape {xa.shape}")
    if xa.shape[0] < MIN_ROWS:
        raise ReferenceFitError(
            f"reference data has {xa.shape[0]} rows; the detectors need at least {MIN_ROWS}"
        )
    if not np.all(np.isfinite(xa)):
        raise ReferenceFitError("reference data holds NaN or infinity")
    if not 0.0 < target < 0.5:
        raise ReferenceFitError(f"target_false_alarm must be in (0, 0.5), got {target}")
    try:
        proba = np.asarray(predict_proba(xa), dtype=np.float64)
    except (ValueError, TypeError) as exc:  # scikit-learn's word for "not this input"
        raise ReferenceFitError(f"the model refused the reference data: {exc}"[:300]) from None
    if proba.ndim != 2 or proba.shape[0] != xa.shape[0] or proba.shape[1] < 2:
        raise ReferenceFitError(
            f"predict_proba returned shape {proba.shape}, expected ({xa.shape[0]}, classes >= 2)"
        )
    if not np.all(np.isfinite(proba)):
        raise ReferenceFitError("predict_proba returned NaN or infinity")
    ya: NDArray[np.int64] | None = None
    if y is not None:
        yr = np.asarray(y)
        if yr.shape != (xa.shape[0],) or yr.dtype.kind not in "iu":
            raise ReferenceFitError("labels must be integers, one per reference row")
        if yr.min() < 0 or yr.max() >= proba.shape[1]:
            raise ReferenceFitError(
                f"labels must be class indices 0..{proba.shape[1] - 1} of the model's output"
            )
        ya = yr.astype(np.int64)
    if image_shape is not None:
        if len(image_shape) != 2 or image_shape[0] < 2 or image_shape[1] < 2:
            raise ReferenceFitError(f"image_shape must be (height, width), got {image_shape}")
        if image_shape[0] * image_shape[1] != xa.shape[1]:
            raise ReferenceFitError(
                f"image_shape {image_shape} does not match {xa.shape[1]} features"
            )
        if value_range is None:
            value_range = (float(xa.min()), float(xa.max()))
    if value_range is not None:
        lo, hi = float(value_range[0]), float(value_range[1])
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ReferenceFitError(
                f"value_range must be (low, high) with low < high, got {value_range}"
            )
        value_range = (lo, hi)
        if xa.min() < lo or xa.max() > hi:
            # Squeezing quantizes within the range: data outside it would calibrate nonsense.
            raise ReferenceFitError(
                f"reference data spans {xa.min():g}..{xa.max():g}, "
                f"outside value_range {lo:g}..{hi:g}"
            )
    shape = (int(image_shape[0]), int(image_shape[1])) if image_shape is not None else None
    return xa, ya, proba, shape, value_range
