"""End to end on real training: the demo's rounds, and a torch model trained by clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from mlwarden.audit import open_audit_log
from mlwarden.fl import aggregate, fl_demo, screen


def test_demo_quarantines_the_attackers_and_audits_them(tmp_path: Path) -> None:
    result = fl_demo(tmp_path / ".demo")
    assert result.problems == ()
    assert any("quarantined per round: c00, c01" in line for line in result.lines)
    log = open_audit_log(result.audit_url)
    try:
        assert log.verify().intact
        assert {r.event.identity for r in log.tail(100)} == {"c00", "c01"}
    finally:
        log.close()
    again = fl_demo(tmp_path / ".demo")  # a second run starts a fresh log
    assert again.problems == ()


@pytest.fixture
def one_thread() -> Iterator[None]:
    # Tiny ops: thread hand-offs cost more than they save on a shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
def test_torch_clients_against_a_boosted_backdoor() -> None:
    digits = load_digits()
    x = torch.tensor(digits.data[:1200] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[:1200])
    x_test = torch.tensor(digits.data[1200:] / 16.0, dtype=torch.float32)
    y_test = torch.tensor(digits.target[1200:])
    torch.manual_seed(0)
    global_net = torch.nn.Linear(64, 10)
    clients = np.array_split(np.arange(1200), 10)

    def trigger(batch: torch.Tensor) -> torch.Tensor:
        out = batch.clone()
        out[:, [54, 55, 62, 63]] = 1.0
        return out

    def local(net_state: dict[str, torch.Tensor], idx: np.ndarray, poison: bool) -> dict:
        net = torch.nn.Linear(64, 10)
        net.load_state_dict(net_state)
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        xb, yb = x[idx], y[idx].clone()
        if poison:
            xb = torch.cat([xb, trigger(xb)])
            yb = torch.cat([yb, torch.zeros_like(yb)])
        for _ in range(6):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()
        return {k: v.detach() - net_state[k] for k, v in net.state_dict().items()}

    states = {"mean": global_net.state_dict(), "screened": global_net.state_dict()}
    for rnd in range(4):
        for name, state in states.items():
            deltas = {f"c{i}": local(state, idx, poison=i < 2) for i, idx in enumerate(clients)}
            for attacker in ("c0", "c1"):  # model replacement: boost by n / attackers
                deltas[attacker] = {k: 5.0 * v for k, v in deltas[attacker].items()}
            if name == "screened":
                marks = screen(deltas, round=rnd)
                assert set(marks.quarantined) == {"c0", "c1"}
                deltas = {c: deltas[c] for c in marks.accepted}
            step = aggregate(deltas, "mean")
            states[name] = {k: state[k] + step[k] for k in state}

    def evaluate(state: dict[str, torch.Tensor]) -> tuple[float, float]:
        net = torch.nn.Linear(64, 10)
        net.load_state_dict(state)
        with torch.no_grad():
            acc = (net(x_test).argmax(1) == y_test).float().mean().item()
            others = x_test[y_test != 0]
            backdoor = (net(trigger(others)).argmax(1) == 0).float().mean().item()
        return acc, backdoor

    _, plain_backdoor = evaluate(states["mean"])
    safe_acc, safe_backdoor = evaluate(states["screened"])
    assert plain_backdoor > 0.5  # the attack works against plain averaging
    assert safe_backdoor < 0.1 and safe_acc > 0.85
