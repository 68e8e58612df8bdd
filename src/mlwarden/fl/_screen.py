"""Screening one round's client updates against the cohort, and quarantine.

Four features per client, each chosen for an attack it exposes:
- `norm`: the update's L2 norm (boosted scaling, model replacement);
- `cosine_to_aggregate`: cosine distance to the coordinate-wise median of the cohort
  (sign flipping, a backdoor pulling elsewhere);
- `cosine_to_others`: mean cosine distance to every other client (colluding attackers
  agree with each other, but not with the rest);
- `sign_agreement`: the share of coordinates whose sign matches the median's.

Each feature becomes a robust z-score against the cohort, (value - median) / (1.4826
MAD), one-sided in the attacker's direction (large norm, large distances, low sign
agreement): a client is never quarantined for being closer to the cohort than usual.
The client's score is its largest z; past `threshold` it is quarantined. The default is
5, not the usual 3.5 of the modified z-score: the largest of four z-scores, each from a
MAD of few clients, has heavy tails, and 3.5 quarantined 2-3% of honest clients of
cohorts of 10 (5 quarantines under 1% from 12 clients on; tests/fl measure it). Median
and MAD stay meaningful while fewer than half of the clients attack, which is the
assumption of screening.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mlwarden.audit import AuditEvent, AuditLog, BatchedAuditWriter, Decision, JSONValue
from mlwarden.errors import AggregationParameterError
from mlwarden.fl._aggregate import is_integer, is_number
from mlwarden.fl._cohort import Cohort, Matrix, stack
from mlwarden.report import Finding

FEATURES: tuple[str, ...] = ("norm", "cosine_to_aggregate", "cosine_to_others", "sign_agreement")
_FEATURE_RULES = {
    "norm": "FL002",
    "cosine_to_aggregate": "FL003",
    "cosine_to_others": "FL003",
    "sign_agreement": "FL004",
}
_MAD_TO_SIGMA = 1.4826
_MIN_CLIENTS = 3
_TINY = 1e-12
_NORM_FLOOR = 0.01
_BOUNDED_FLOOR = 0.005


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientScore:
    """One client's features, their robust z-scores, and the verdict."""

    client: str
    features: Mapping[str, float]
    z: Mapping[str, float]
    score: float
    quarantined: bool
    reasons: tuple[str, ...]
    """The rule ids of the features past the threshold (FL002-FL004)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Screening:
    """The screening of one round: a score per client, in cohort order, and the verdict."""

    round: int
    threshold: float
    scores: tuple[ClientScore, ...]
    quarantined: tuple[str, ...]
    accepted: tuple[str, ...]

    def findings(self, *, location: str = "federated round") -> tuple[Finding, ...]:
        """FL001 per quarantined client, and the feature rules that put it there."""
        found: list[Finding] = []
        for client in self.scores:
            if not client.quarantined:
                continue
            detail = {"client": client.client, "round": str(self.round)}
            detail.update({f"z_{name}": f"{value:.2f}" for name, value in client.z.items()})
            where = f"{location}!round {self.round}/client {client.client}"
            found.append(
                Finding(
                    rule_id="FL001",
                    message=(
                        f"client {client.client!r} quarantined in round {self.round}: "
                        f"score {client.score:.2f} > {self.threshold:g}"
                    ),
                    location=where,
                    detail=detail,
                )
            )
            for rule_id in client.reasons:
                found.append(
                    Finding(
                        rule_id=rule_id,
                        message=f"client {client.client!r}: {_describe(rule_id, client)}",
                        location=where,
                        detail=detail,
                    )
                )
        return tuple(found)


def screen(
    updates: Cohort,
    *,
    threshold: float = 5.0,
    round: int = 0,
    audit: AuditLog | BatchedAuditWriter | None = None,
    model: str | None = None,
) -> Screening:
    """Score every client update against the cohort and quarantine the outliers.

    With `audit` (an `AuditLog` or a `BatchedAuditWriter`) one event per quarantined
    client is recorded (kind `fl.quarantine`, decision deny, reason `FL001`, the client
    as identity, the round, scores and z-scores in `detail`): written before this returns
    to an `AuditLog`, queued to a writer (flush it to have them committed). When they
    cannot be recorded the audit error (E351/E352) propagates: do not aggregate then.
    """
    if not is_number(threshold) or not np.isfinite(threshold) or threshold <= 0:
        raise AggregationParameterError(f"threshold={threshold!r} is not a positive number")
    if not is_integer(round) or round < 0:
        raise AggregationParameterError(f"round={round!r} is not a non-negative integer")
    # Checked before anything is scored: a log that cannot take the events must fail the
    # round, not surface only once someone is quarantined.
    if audit is not None and not isinstance(audit, AuditLog | BatchedAuditWriter):
        raise AggregationParameterError(
            f"audit={type(audit).__name__} is neither an AuditLog nor a BatchedAuditWriter",
            hint="open one with mlwarden.audit.open_audit_log",
        )
    if model is not None and (not isinstance(model, str) or not model):
        raise AggregationParameterError(f"model={model!r} is not a non-empty string")
    stacked = stack(updates)
    n = stacked.matrix.shape[0]
    if n < _MIN_CLIENTS:
        raise AggregationParameterError(
            f"screening needs at least {_MIN_CLIENTS} clients to compare, got {n}"
        )
    features = _features(stacked.matrix)
    z = {name: _robust_z(name, values) for name, values in features.items()}
    stacked_z = np.stack([z[name] for name in FEATURES], axis=1)
    totals = stacked_z.max(axis=1)
    scores: list[ClientScore] = []
    for i, client in enumerate(stacked.clients):
        flagged = bool(totals[i] > threshold)
        reasons = tuple(
            dict.fromkeys(
                _FEATURE_RULES[name] for name in FEATURES if flagged and z[name][i] > threshold
            )
        )
        scores.append(
            ClientScore(
                client=client,
                features={name: float(features[name][i]) for name in FEATURES},
                z={name: float(z[name][i]) for name in FEATURES},
                score=float(totals[i]),
                quarantined=flagged,
                reasons=reasons,
            )
        )
    result = Screening(
        round=int(round),
        threshold=float(threshold),
        scores=tuple(scores),
        quarantined=tuple(s.client for s in scores if s.quarantined),
        accepted=tuple(s.client for s in scores if not s.quarantined),
    )
    if audit is not None and result.quarantined:
        events = [_event(result, s, model) for s in scores if s.quarantined]
        if isinstance(audit, BatchedAuditWriter):
            audit.submit_many(events)
        else:
            audit.append_many(events)
    return result


def _features(matrix: Matrix) -> dict[str, NDArray[np.float64]]:
    norms = np.linalg.norm(matrix, axis=1)
    unit = matrix / np.maximum(norms, _TINY)[:, None]
    center = np.median(matrix, axis=0)
    center_unit = center / max(float(np.linalg.norm(center)), _TINY)
    cosine_center = unit @ center_unit
    gram = unit @ unit.T
    n = matrix.shape[0]
    cosine_others = (gram.sum(axis=1) - np.diag(gram)) / (n - 1)
    signs = np.sign(center)
    voting = signs != 0
    if voting.any():
        agreement = (np.sign(matrix[:, voting]) == signs[voting]).mean(axis=1)
    else:
        agreement = np.ones(n)
    return {
        "norm": norms,
        "cosine_to_aggregate": 1.0 - cosine_center,
        "cosine_to_others": 1.0 - cosine_others,
        "sign_agreement": np.asarray(agreement, dtype=np.float64),
    }


def _robust_z(name: str, values: NDArray[np.float64]) -> NDArray[np.float64]:
    center = float(np.median(values))
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(values - center)))
    # A cohort of near-identical honest updates has a MAD near zero, and rounding noise
    # would become a huge z: the spread has a floor, relative for the norm, absolute for
    # the bounded features (a cosine or a share of coordinates).
    floor = _NORM_FLOOR * abs(center) if name == "norm" else _BOUNDED_FLOOR
    spread = max(spread, floor, _TINY)
    z = (values - center) / spread
    return np.asarray(-z if name == "sign_agreement" else z, dtype=np.float64)


def _decimal(value: float) -> str:
    # Audit events hold no floats (their text is not canonical): decimals as strings.
    return f"{value:.6g}"


def _event(result: Screening, score: ClientScore, model: str | None) -> AuditEvent:
    detail: dict[str, JSONValue] = {
        "round": result.round,
        "client": score.client,
        "score": _decimal(score.score),
        "threshold": _decimal(result.threshold),
        "features": {name: _decimal(v) for name, v in score.features.items()},
        "z": {name: _decimal(v) for name, v in score.z.items()},
        "rules": list(score.reasons),
    }
    return AuditEvent(
        kind="fl.quarantine",
        decision=Decision.DENY,
        reason="FL001",
        request_id=f"fl-round-{result.round}-{score.client}"[:128],
        identity=score.client[:128],
        model=model,
        action="aggregate",
        detail=detail,
    )


def _describe(rule_id: str, client: ClientScore) -> str:
    f, z = client.features, client.z
    if rule_id == "FL002":
        return f"update norm {f['norm']:.4g} (z {z['norm']:.1f})"
    if rule_id == "FL003":
        return (
            f"cosine distance {f['cosine_to_aggregate']:.3f} to the cohort's median "
            f"(z {z['cosine_to_aggregate']:.1f}), {f['cosine_to_others']:.3f} to the others "
            f"(z {z['cosine_to_others']:.1f})"
        )
    return f"sign agreement {f['sign_agreement']:.3f} with the median (z {z['sign_agreement']:.1f})"
