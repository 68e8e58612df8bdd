"""The worker scores the calls of every stream of a model as one batch, then adds each
stream's rows to its state: the states must be those of scoring each stream apart, and
one malformed call must blind the detectors to its own stream only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from tests.detect_gateway.conftest import Fitted, detect_env

from mlwarden.detect import StreamState
from mlwarden.detect._responses import DetectorRuntime, _squeezer
from mlwarden.policy import load_policy


def _same(a: StreamState, b: StreamState) -> None:
    assert a.queries == b.queries
    assert np.array_equal(a.class_counts, b.class_counts)
    assert np.isclose(a.extraction, b.extraction, rtol=1e-9, atol=1e-9)
    assert np.isclose(a.probing, b.probing, rtol=1e-9, atol=1e-9)
    assert np.isclose(a.class_llr, b.class_llr, rtol=1e-9, atol=1e-9)
    assert np.allclose(a.ring, b.ring, atol=1e-2)  # float16-rounded rows


def test_batch_of_many_streams_scores_as_each_stream_alone(tmp_path: Path, fitted: Fitted) -> None:
    signals = ["extraction", "probing", "adversarial"]
    env = detect_env(tmp_path / "gw", fitted, responses={}, signals=signals)
    policy = load_policy(env.config)
    runtime = DetectorRuntime.from_policy(policy, base=env.folder)
    app = env.gateway()
    served = app._entries["digits"].model  # the loaded, verified model
    x = env.models.x_test
    # Interleaved calls of three streams, some of several rows, and one malformed call.
    calls = [("a", x[0:1]), ("b", x[1:4]), ("a", x[4:6]), ("c", x[6:7]), ("b", x[7:8])]
    calls += [("a", x[8:11]), ("c", x[11:13]), ("b", x[13:14])]
    expected = {}
    monitor = runtime._models["digits"].monitor
    for identity in ("a", "b", "c"):
        rows = np.concatenate([r for i, r in calls if i == identity])
        proba = served.predict({"pixels": rows}).probabilities
        state = monitor.new_state()
        monitor.observe(state, rows, proba, predict_proba=_squeezer(served, rows))
        expected[identity] = state

    async def scenario() -> None:
        try:
            for identity, rows in calls:
                proba = served.predict({"pixels": rows}).probabilities
                await runtime.observe_prediction(identity, served, {"pixels": rows}, proba, "r")
            await runtime.settle()  # one batch
            for identity, state in expected.items():
                _same(runtime._states[(identity, "digits")], state)
            # A malformed call in the next batch: the others' calls are still counted.
            proba = served.predict({"pixels": x[14:15]}).probabilities
            await runtime.observe_prediction("a", served, {"pixels": x[14:15]}, proba, "r")
            odd = x[15:16, :63]  # one feature short: the reference refuses it
            await runtime.observe_prediction("odd", served, {"pixels": odd}, proba, "r")
            await runtime.settle()
            assert runtime._states[("a", "digits")].queries == expected["a"].queries + 1
            assert ("odd", "digits") not in runtime._states
        finally:
            await runtime.aclose()
            await app.aclose()

    asyncio.run(scenario())
