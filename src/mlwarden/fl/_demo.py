"""The federated part of `mlwarden demo`: rounds with attackers, screened and aggregated.

Ten clients train a softmax regression on their share of the digits data (plain NumPy
gradient steps: no torch needed); two of them attack, one flipping the sign of its
update and one boosting an update trained on shifted labels. Each round is screened
(quarantines go to an audit log in `workdir`) and aggregated three ways: plain
averaging, trimmed mean, and screening followed by averaging. Returns data; never prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mlwarden.audit import open_audit_log
from mlwarden.fl._aggregate import aggregate
from mlwarden.fl._screen import screen

_CLIENTS = 10
_ATTACKERS = {"c00": "sign flip x4", "c01": "shifted labels, boosted x10"}
_ROUNDS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class FlDemoResult:
    """What the demo shows (`lines`) and what did not behave (`problems`, empty if all did)."""

    lines: tuple[str, ...]
    problems: tuple[str, ...]
    audit_url: str


Weights = dict[str, NDArray[np.float64]]


def _split() -> tuple[
    NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]
]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    test = order[:500]
    train = order[500:]
    return x[train], y[train], x[test], y[test]


def _local_delta(
    model: Weights, x: NDArray[np.float64], y: NDArray[np.int64], *, steps: int = 20
) -> Weights:
    w, b = model["w"].copy(), model["b"].copy()
    onehot = np.eye(10)[y]
    for _ in range(steps):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(y)
        w -= 0.5 * (x.T @ grad)
        b -= 0.5 * grad.sum(axis=0)
    return {"w": w - model["w"], "b": b - model["b"]}


def _accuracy(model: Weights, x: NDArray[np.float64], y: NDArray[np.int64]) -> float:
    return float(((x @ model["w"] + model["b"]).argmax(axis=1) == y).mean())


def fl_demo(workdir: Path) -> FlDemoResult:
    """Run the demo in `workdir` (created if needed; its `fl-audit.db` is replaced)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "fl-audit.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    x_train, y_train, x_test, y_test = _split()
    shares = np.array_split(np.arange(len(y_train)), _CLIENTS)
    start: Weights = {"w": np.zeros((64, 10)), "b": np.zeros(10)}
    models = {"mean": start, "trimmed_mean": start, "screen+mean": start}
    caught: list[set[str]] = []
    problems: list[str] = []
    url = f"sqlite:///{db}"
    log = open_audit_log(url)
    try:
        for rnd in range(_ROUNDS):
            for name, model in models.items():
                deltas: dict[str, Weights] = {}
                for i, share in enumerate(shares):
                    client = f"c{i:02d}"
                    labels = y_train[share]
                    if client == "c01":
                        labels = (labels + 1) % 10
                    delta = _local_delta(model, x_train[share], labels)
                    if client == "c00":
                        delta = {k: -4.0 * v for k, v in delta.items()}
                    elif client == "c01":
                        delta = {k: 10.0 * v for k, v in delta.items()}
                    deltas[client] = delta
                if name == "mean":
                    step = aggregate(deltas, "mean")
                elif name == "trimmed_mean":
                    step = aggregate(deltas, "trimmed_mean", trim=0.2)
                else:
                    result = screen(deltas, round=rnd, audit=log, model="digits-softmax")
                    caught.append(set(result.quarantined))
                    step = aggregate({c: deltas[c] for c in result.accepted}, "mean")
                models[name] = {k: model[k] + step[k] for k in model}
        verification = log.verify()
        records = log.head().seq
    finally:
        log.close()
    accuracy = {name: _accuracy(model, x_test, y_test) for name, model in models.items()}
    lines = [
        f"federated: {_CLIENTS} clients, {_ROUNDS} rounds of a softmax regression on digits; "
        f"attackers: " + ", ".join(f"{c} ({how})" for c, how in _ATTACKERS.items()),
        f"  quarantined per round: {', '.join(sorted(caught[-1])) or 'nobody'} "
        f"({sum(len(c) for c in caught)} quarantines in {_ROUNDS} rounds)",
        "  test accuracy: " + ", ".join(f"{n} {a:.1%}" for n, a in accuracy.items()),
        f"  audit log: {records} quarantine events, chain "
        f"{'intact' if verification.intact else 'BROKEN'} ({db.name})",
    ]
    expected = set(_ATTACKERS)
    if any(round_caught != expected for round_caught in caught):
        problems.append(
            f"screening quarantined {[sorted(c) for c in caught]}, not {sorted(expected)}"
        )
    if not verification.intact or records != sum(len(c) for c in caught):
        problems.append("the quarantine audit log does not match the quarantines")
    if accuracy["screen+mean"] < accuracy["mean"] + 0.1 or accuracy["screen+mean"] < 0.85:
        problems.append(f"screened averaging is not clearly better than plain: {accuracy}")
    return FlDemoResult(lines=tuple(lines), problems=tuple(problems), audit_url=url)
