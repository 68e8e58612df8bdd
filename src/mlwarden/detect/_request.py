"""Per-request scores against a Reference: adversarial score and the stream inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlwarden.detect import _scores as sc
from mlwarden.detect._reference import Reference
from mlwarden.errors import DetectorInputError

# Evidence of one near-identical query against ordinary traffic, for the probing CUSUM:
# near-identical queries are assumed at most 1% of benign traffic (retries), half of a prober's.
NEAR_RATE_BENIGN = 0.01
NEAR_RATE_PROBER = 0.5
NEAR_STEP = float(np.log(NEAR_RATE_PROBER / NEAR_RATE_BENIGN))
FAR_STEP = float(np.log((1 - NEAR_RATE_PROBER) / (1 - NEAR_RATE_BENIGN)))
# A boundary walk: a query both close to an earlier one and close to a decision boundary.
BOUNDARY_P = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestScores:
    adversarial: sc.F64  # Fisher combination of the per-request p-values
    p_distance: sc.F64  # OOD p-value (kNN distance to the reference data)
    p_margin: sc.F64  # low-margin p-value of the model's answer
    predicted: sc.I64
    projected: sc.F64  # standardized and projected queries (stream memory)

    def rows(self, index: slice) -> RequestScores:
        """The scores of some rows (several streams' calls are scored as one batch)."""
        return RequestScores(
            adversarial=self.adversarial[index],
            p_distance=self.p_distance[index],
            p_margin=self.p_margin[index],
            predicted=self.predicted[index],
            projected=self.projected[index],
        )


def check_batch(ref: Reference, x: object, proba: object) -> tuple[sc.F64, sc.F64]:
    """Validate a batch against the reference; bad input -> DetectorInputError."""
    try:
        xa = np.asarray(x, dtype=np.float64)
        pa = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError):
        raise DetectorInputError("detector input is not numeric") from None
    if xa.ndim == 1:
        xa = xa[None, :]
    if pa.ndim == 1:
        pa = pa[None, :]
    if xa.ndim != 2 or xa.shape[1] != ref.n_features or xa.shape[0] < 1:
        raise DetectorInputError(
            f"detector input has shape {xa.shape}, the reference expects (n, {ref.n_features})"
        )
    if pa.shape != (xa.shape[0], ref.n_classes):
        raise DetectorInputError(
            f"model output has shape {pa.shape}, expected ({xa.shape[0]}, {ref.n_classes})"
        )
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(pa))):
        raise DetectorInputError("detector input or model output holds NaN or infinity")
    return xa, pa


def score_requests(
    ref: Reference, x: sc.F64, proba: sc.F64, predict_proba: sc.PredictProba | None
) -> RequestScores:
    """Score a validated batch: one adversarial score per row, and the stream inputs."""
    z = sc.standardize(x, ref.center, ref.inv_scale)
    predicted = np.argmax(proba, axis=1).astype(np.int64)
    nb = sc.neighbours(z, ref.bank, ref.bank_sq, ref.bank_labels, ref.k, predicted)
    tails = ref.tails
    p_distance = sc.upper_p(ref.cal_distance, nb.mean_distance)
    p_margin = sc.lower_p(ref.cal_margin, sc.margin(proba))
    # The adversarial score extrapolates the p-values past the calibration range; the
    # stream detectors keep them capped so that one odd request cannot flag a caller.
    log_p = -np.log(sc.upper_p_tail(ref.cal_distance, tails["cal_distance"], nb.mean_distance))
    log_p -= np.log(sc.upper_p_tail(ref.cal_lid, tails["cal_lid"], nb.lid))
    log_p -= np.log(p_margin)
    # Label consistency with the neighbourhood: the continuous trust score replaced the
    # kNN label vote (format 2); format-1 references were calibrated with the vote.
    # Replaced, not added: a Fisher combination dilutes with every weak term.
    if ref.uses_trust:
        log_p -= np.log(sc.upper_p_tail(ref.cal_trust, tails["cal_trust"], nb.trust))
    else:
        log_p -= np.log(sc.upper_p(ref.cal_disagree, sc.disagreement(nb.labels, proba)))
    if ref.uses_squeezing and predict_proba is not None:
        assert ref.image_shape is not None and ref.value_range is not None
        squeeze = sc.squeeze_score(
            x, proba, predict_proba, ref.image_shape, ref.value_range, ref.squeeze_bits
        )
        log_p -= np.log(sc.upper_p_tail(ref.cal_squeeze, tails["cal_squeeze"], squeeze))
    return RequestScores(
        adversarial=log_p,
        p_distance=p_distance,
        p_margin=p_margin,
        predicted=predicted,
        projected=z @ ref.projection,
    )
