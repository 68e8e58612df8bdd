"""The streaming detectors on a real digits model: attackers flagged, ordinary callers not."""

from __future__ import annotations

import numpy as np
import pytest
from tests.detect.conftest import Fitted

from mlwarden.detect import Monitor, Signal, StreamState
from mlwarden.detect.simulate import benign_queries, simulate_extraction_queries
from mlwarden.errors import DetectorInputError, StreamStateError


def _first_flag(
    monitor: Monitor, fitted: Fitted, queries: np.ndarray, signal: Signal
) -> int | None:
    state = monitor.new_state()
    proba = fitted.proba(queries)
    for i in range(len(queries)):
        if signal in monitor.observe(state, queries[i : i + 1], proba[i : i + 1]).flagged:
            return i + 1
    return None


def test_uniform_extraction_is_flagged_fast(fitted: Fitted) -> None:
    at = _first_flag(
        Monitor(fitted.reference), fitted, simulate_extraction_queries(50), Signal.EXTRACTION
    )
    assert at is not None and at <= 10


def test_mixup_extraction_is_flagged_within_300(fitted: Fitted) -> None:
    rng = np.random.default_rng(0)
    pool = fitted.data.x_test
    lam = rng.uniform(0.3, 0.7, (300, 1))
    queries = (
        lam * pool[rng.integers(0, len(pool), 300)]
        + (1 - lam) * pool[rng.integers(0, len(pool), 300)]
    )
    assert _first_flag(Monitor(fitted.reference), fitted, queries, Signal.EXTRACTION) is not None


@pytest.mark.parametrize("seed", range(5))
def test_ordinary_callers_are_not_flagged(fitted: Fitted, seed: int) -> None:
    monitor = Monitor(fitted.reference)
    queries = benign_queries(300, seed=seed, pool=fitted.data.x_test)
    state = monitor.new_state()
    proba = fitted.proba(queries)
    for i in range(len(queries)):
        observation = monitor.observe(state, queries[i : i + 1], proba[i : i + 1])
        assert not observation.flagged & {Signal.EXTRACTION, Signal.PROBING}
    assert observation.queries == 300


def test_gradient_estimation_probing_is_flagged(fitted: Fitted) -> None:
    rng = np.random.default_rng(1)
    centre = fitted.data.x_test[3]
    queries = np.clip(centre + 0.01 * rng.standard_normal((30, 64)), 0.0, 1.0)
    at = _first_flag(Monitor(fitted.reference), fitted, queries, Signal.PROBING)
    assert at is not None and at <= 10


def test_repeated_identical_queries_are_probing(fitted: Fitted) -> None:
    queries = np.repeat(fitted.data.x_test[:1], 10, axis=0)
    assert _first_flag(Monitor(fitted.reference), fitted, queries, Signal.PROBING) is not None


def test_adversarial_requests_score_above_clean_ones(fitted: Fitted) -> None:
    monitor = Monitor(fitted.reference)
    x, y = fitted.data.x_test, fitted.data.y_test
    threshold = fitted.reference.thresholds[Signal.ADVERSARIAL]
    clean = monitor.observe(monitor.new_state(), x, fitted.proba(x), predict_proba=fitted.proba)
    assert (clean.adversarial >= threshold).mean() <= 0.05
    adv = fitted.fgsm(x, y, 0.2)
    attacked = monitor.observe(
        monitor.new_state(), adv, fitted.proba(adv), predict_proba=fitted.proba
    )
    assert (attacked.adversarial >= threshold).mean() >= 0.8
    assert Signal.ADVERSARIAL in attacked.flagged
    assert attacked.scores[Signal.ADVERSARIAL] == attacked.adversarial.max()


def test_state_is_bounded_under_a_long_stream(fitted: Fitted) -> None:
    monitor = Monitor(fitted.reference, window=64)
    state = monitor.new_state()
    queries = simulate_extraction_queries(400, seed=3)
    proba = fitted.proba(queries)
    sizes = []
    for i in range(0, 400, 8):
        monitor.observe(state, queries[i : i + 8], proba[i : i + 8])
        sizes.append(len(state.to_bytes()))
    assert state.queries == 400
    assert sizes[-1] == max(sizes) == sizes[8]  # full after 64 queries, never larger
    assert state.recent()[0].shape == (64, 32)


def test_state_round_trip_continues_the_stream(fitted: Fitted) -> None:
    monitor = Monitor(fitted.reference, window=32)
    queries = benign_queries(80, seed=9, pool=fitted.data.x_test)
    proba = fitted.proba(queries)
    a = monitor.new_state()
    for i in range(60):
        monitor.observe(a, queries[i : i + 1], proba[i : i + 1])
    b = StreamState.from_bytes(a.to_bytes())
    assert b.to_bytes() == a.to_bytes()
    for i in range(60, 80):
        oa = monitor.observe(a, queries[i : i + 1], proba[i : i + 1])
        ob = monitor.observe(b, queries[i : i + 1], proba[i : i + 1])
        assert dict(oa.scores) == dict(ob.scores)


def test_state_of_another_window_is_refused(fitted: Fitted) -> None:
    state = Monitor(fitted.reference, window=16).new_state()
    with pytest.raises(StreamStateError, match="another reference or window"):
        Monitor(fitted.reference, window=32).observe(
            state, fitted.data.x_test[:1], fitted.proba(fitted.data.x_test[:1])
        )


@pytest.mark.parametrize(
    ("x", "proba", "message"),
    [
        (np.zeros((1, 10)), np.full((1, 10), 0.1), "reference expects"),
        (np.zeros((2, 64)), np.full((1, 10), 0.1), "model output has shape"),
        (np.full((1, 64), np.nan), np.full((1, 10), 0.1), "NaN"),
        (np.zeros((1, 64)), np.full((1, 10), np.inf), "NaN"),
        ([["x"] * 64], np.full((1, 10), 0.1), "not numeric"),
    ],
)
def test_bad_request_is_refused(fitted: Fitted, x: object, proba: object, message: str) -> None:
    monitor = Monitor(fitted.reference)
    state = monitor.new_state()
    with pytest.raises(DetectorInputError, match=message) as info:
        monitor.observe(state, x, proba)  # type: ignore[arg-type]
    assert info.value.code == "E162" and info.value.http_status == 400
    assert state.queries == 0  # a refused request leaves the state as it was
