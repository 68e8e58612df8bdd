"""PyTorch state dicts: real modules, a round trip, and agreement with NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from mlwarden.fl import RULES, aggregate, screen


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def _states(count: int) -> list[dict[str, torch.Tensor]]:
    states = []
    for seed in range(count):
        net = _net(seed)
        net.train()
        net(torch.randn(16, 8))  # moves BatchNorm's running stats and its int64 counter
        states.append({k: v.detach().clone() for k, v in net.state_dict().items()})
    return states


def test_state_dict_round_trip_loads_into_the_model() -> None:
    states = _states(7)
    merged = aggregate(states, "median")
    assert list(merged) == list(states[0])
    for name, value in merged.items():
        assert isinstance(value, torch.Tensor)
        assert value.dtype == states[0][name].dtype and value.shape == states[0][name].shape
    assert merged["1.num_batches_tracked"].dtype == torch.int64
    net = _net(0)
    net.load_state_dict(merged)  # strict: every key, every shape
    identical = aggregate([states[0]] * 5, "trimmed_mean", trim=0.2)
    for name, value in identical.items():
        assert torch.equal(value, states[0][name])


def _as_numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in state.items()}


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("clip", [None, "median"])
def test_torch_and_numpy_agree(rule: str, clip: Any) -> None:
    states = _states(9)
    # trim 0.2 of 9 drops one update at each end (the default 0.1 would drop none).
    extra: dict[str, Any] = {"trim": 0.2} if rule == "trimmed_mean" else {}
    from_torch = aggregate(states, rule, clip=clip, **extra)  # type: ignore[arg-type]
    from_numpy = aggregate([_as_numpy(s) for s in states], rule, clip=clip, **extra)  # type: ignore[arg-type]
    for name in from_torch:
        np.testing.assert_allclose(from_torch[name].numpy(), from_numpy[name], rtol=1e-6)


def test_torch_and_numpy_screen_the_same() -> None:
    states = _states(9)
    states[4] = {k: v * 30 if v.is_floating_point() else v for k, v in states[4].items()}
    a = screen(states)
    b = screen([_as_numpy(s) for s in states])
    assert a.quarantined == b.quarantined == ("4",)
    for x, y in zip(a.scores, b.scores, strict=True):
        assert x.score == pytest.approx(y.score)


def test_half_precision_and_gradients_are_handled() -> None:
    states = [
        {"w": torch.full((3,), float(i), dtype=torch.bfloat16, requires_grad=True)}
        for i in range(3)
    ]
    out = aggregate(states, "mean")
    assert out["w"].dtype == torch.bfloat16 and not out["w"].requires_grad
    assert out["w"].tolist() == [1.0, 1.0, 1.0]
