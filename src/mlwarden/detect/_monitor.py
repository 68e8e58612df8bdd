"""The streaming detectors: one Monitor per reference, one StreamState per stream.

Extraction: every query adds evidence from three conformal p-values (how far it
is from the reference data, how close its answer is to a decision boundary, how
close it is to the caller's recent queries), turned into log-likelihood ratios
(`_scores.evidence`) and accumulated by a CUSUM that drifts down for benign
traffic. Beside it a class-coverage test: the log-likelihood ratio of the answers'
class mix (Krichevsky-Trofimov mixture) against the reference class prior. The
extraction score is the CUSUM plus the positive part of that ratio.

Probing: a CUSUM of near-identical queries (repeats, tiny perturbations around one
point for gradient estimation) and boundary walks (near an earlier query and near
a decision boundary).

Adversarial: per request, the Fisher combination of conformal p-values (kNN
distance, local intrinsic dimensionality, the kNN trust score of the answer, low
margin and, for images, feature squeezing); the stream score is the largest of the
batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from mlwarden.detect import _scores as sc
from mlwarden.detect._reference import Reference
from mlwarden.detect._request import (
    BOUNDARY_P,
    FAR_STEP,
    NEAR_STEP,
    RequestScores,
    check_batch,
    score_requests,
)
from mlwarden.detect._signal import Signal
from mlwarden.detect._state import StreamState
from mlwarden.errors import StreamStateError

__all__ = ["Monitor", "Observation", "Signal", "StreamState"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """The detectors' view of a stream after a batch."""

    scores: Mapping[Signal, float]  # current stream scores; >= threshold raises the signal
    flagged: frozenset[Signal]  # the signals past their threshold now
    adversarial: NDArray[np.float64]  # per-request adversarial score of this batch
    queries: int  # queries seen in this stream


class Monitor:
    """Scores streams of queries against one Reference."""

    def __init__(self, reference: Reference, *, window: int = 512) -> None:
        if not 1 <= window <= 65536:
            raise ValueError("window must be between 1 and 65536")
        self.reference = reference
        self.window = window
        self._dim = int(reference.projection.shape[1])
        self._log_prior = [float(v) for v in np.log(np.maximum(reference.class_prior, 1e-12))]

    def new_state(self) -> StreamState:
        return StreamState(n_classes=self.reference.n_classes, window=self.window, dim=self._dim)

    def observe(
        self,
        state: StreamState,
        x: NDArray[np.float64],
        proba: NDArray[np.float64],
        *,
        predict_proba: sc.PredictProba | None = None,
    ) -> Observation:
        """Score a batch, update `state` in place, and return the stream's view."""
        self._check_state(state)
        return self.update(state, self.score(x, proba, predict_proba=predict_proba))

    def score(
        self,
        x: NDArray[np.float64],
        proba: NDArray[np.float64],
        *,
        predict_proba: sc.PredictProba | None = None,
    ) -> RequestScores:
        """Validate and score a batch of requests. No stream state is involved, so the
        calls of many streams are scored in one batch (and one model call for squeezing),
        then each stream's rows go to `update`."""
        xa, pa = check_batch(self.reference, x, proba)
        return score_requests(self.reference, xa, pa, predict_proba)

    def update(self, state: StreamState, req: RequestScores) -> Observation:
        """Add a stream's scored requests (from `score`) to `state`; the stream's view."""
        self._check_state(state)
        ref = self.reference
        nearest = _nearest_previous(state.recent(), req.projected)
        p_near = sc.lower_p(ref.cal_nearest, nearest)
        power = ref.power
        steps = (
            sc.evidence(req.p_distance, power)
            + sc.evidence(req.p_margin, power)
            + sc.evidence(p_near, power)
        )
        near = (nearest <= ref.near_distance) | (
            (p_near <= BOUNDARY_P) & (req.p_margin <= BOUNDARY_P)
        )
        half_k = 0.5 * ref.n_classes
        log_prior = self._log_prior
        # The CUSUMs are sequential: a Python loop, over plain lists (numpy scalar
        # indexing costs several times more per row; the arithmetic is the same).
        counts = state.class_counts.tolist()
        extraction, probing = state.extraction, state.probing
        class_llr, queries = state.class_llr, state.queries
        for step, is_near, c in zip(
            steps.tolist(), near.tolist(), req.predicted.tolist(), strict=True
        ):
            extraction = max(0.0, extraction + step)
            probing = max(0.0, probing + (NEAR_STEP if is_near else FAR_STEP))
            class_llr += math.log((counts[c] + 0.5) / (queries + half_k)) - log_prior[c]
            counts[c] += 1
            queries += 1
        state.extraction, state.probing = extraction, probing
        state.class_llr, state.queries = class_llr, queries
        state.class_counts[:] = counts
        state.push(req.projected)
        scores = {
            Signal.EXTRACTION: state.extraction + max(0.0, state.class_llr),
            Signal.PROBING: state.probing,
            Signal.ADVERSARIAL: float(req.adversarial.max()),
        }
        flagged = frozenset(s for s, v in scores.items() if v >= ref.thresholds[s])
        return Observation(
            scores=MappingProxyType(scores),
            flagged=flagged,
            adversarial=req.adversarial,
            queries=state.queries,
        )

    def _check_state(self, state: StreamState) -> None:
        ref = self.reference
        if (state.n_classes, state.window, state.dim) != (ref.n_classes, self.window, self._dim):
            raise StreamStateError("detector stream state belongs to another reference or window")


def _nearest_previous(
    recent: tuple[NDArray[np.float32], NDArray[np.float32]], rows: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Distance of each row to the nearest earlier query (the stream's memory, then the batch)."""
    memory, memory_sq = recent
    b = rows.shape[0]
    out = np.full(b, np.inf)
    if memory.shape[0]:
        rows32 = rows.astype(np.float32)
        d2 = memory_sq[None, :] - 2.0 * (rows32 @ memory.T)
        out = d2.min(axis=1).astype(np.float64) + np.einsum("ij,ij->i", rows, rows)
    if b > 1:
        diff = rows[:, None, :] - rows[None, :, :]
        within = np.einsum("ijk,ijk->ij", diff, diff)
        order = np.arange(b)
        within[order[:, None] <= order] = np.inf  # the same cells as triu_indices, 5x cheaper
        out = np.minimum(out, within.min(axis=1))
    result: NDArray[np.float64] = np.sqrt(np.maximum(out, 0.0))
    return result
