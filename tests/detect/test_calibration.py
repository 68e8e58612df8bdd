"""The thresholds are calibrated by replaying benign streams: the replay must be the Monitor."""

from __future__ import annotations

import numpy as np
import pytest
from tests.detect.conftest import Fitted

from mlwarden.detect import Monitor, Signal
from mlwarden.detect import _fit as fit_module
from mlwarden.detect._request import score_requests


def test_vectorized_replay_matches_the_monitor(
    fitted: Fitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = fitted.reference
    rows = np.concatenate([fitted.data.x_test[:120], fitted.data.x_test[:3] + 0.001])
    proba = fitted.proba(rows)
    held = score_requests(ref, rows, proba, None)
    monkeypatch.setattr(fit_module, "STREAMS", 1)
    max_ext, max_probe = fit_module._replay(ref, held, np.random.default_rng(5))

    order = np.random.default_rng(5).permutation(len(rows))
    monitor = Monitor(ref)
    state = monitor.new_state()
    highest = dict.fromkeys(Signal, 0.0)
    for i in order:
        seen = monitor.observe(state, rows[i : i + 1], proba[i : i + 1])
        for signal, value in seen.scores.items():
            highest[signal] = max(highest[signal], value)
    assert highest[Signal.PROBING] >= np.log(50)  # the near-copies were seen as such
    assert highest[Signal.EXTRACTION] > 0
    assert max_ext[0] == pytest.approx(highest[Signal.EXTRACTION], rel=1e-3)
    assert max_probe[0] == pytest.approx(highest[Signal.PROBING], rel=1e-3)


def test_thresholds_take_the_quantile_and_floors(fitted: Fitted) -> None:
    ref = fitted.reference
    assert ref.thresholds[Signal.EXTRACTION] >= np.log(100)
    assert ref.thresholds[Signal.PROBING] >= 3 * np.log(50)
