"""Federated aggregation under attack: plain averaging against each robust rule.

A small MLP (64-32-10) learns the digits data split evenly among n clients; each round
every client runs local SGD from the global weights and sends its delta; the server
aggregates the deltas with one defence and adds the result. Attackers (the first k
clients) send:

- sign_flip: their honest delta negated and scaled by 4;
- boosted: a delta trained on shifted labels (y -> y + 1 mod 10), boosted by n / k
  (model replacement);
- backdoor: a delta trained with half their samples stamped with a 2x2 trigger in the
  bottom-right corner and labelled 0 (not boosted);
- backdoor_boost: the same, boosted by n / k.

Reported per case: final test accuracy, and backdoor success (the share of test digits
that are not 0 which, with the trigger stamped, are classified 0). All clients train
together as one batched computation (bmm over a client axis), so a run of 30 rounds
takes well under a second.

    .venv/bin/python bench/fl_robust.py --markdown          # 10:10%, 20:20%, 50:30% (minutes)
    .venv/bin/python bench/fl_robust.py --cases 20:0.1,20:0.2,20:0.3 --seeds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from mlwarden.fl import aggregate, screen

TARGET = 0
TRIGGER = (54, 55, 62, 63)  # pixels (6,6) (6,7) (7,6) (7,7) of the 8x8 image
HIDDEN = 32
ATTACKS = ("sign_flip", "boosted", "backdoor", "backdoor_boost")

Deltas = dict[str, dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Defence:
    name: str
    run: Callable[[Deltas, int], dict[str, torch.Tensor]]


def defences(fraction: float) -> list[Defence]:
    """The aggregation rules compared; f and trim assume the true attacker share is known
    as an upper bound (rounded up), as a deployment would configure them."""

    def f_for(n: int) -> int:
        return min(int(np.ceil(fraction * n)), (n - 3) // 2)

    trim = min(max(fraction, 0.1) + 0.05, 0.45)

    def screened(rule: str, **params: object) -> Callable[[Deltas, int], dict[str, torch.Tensor]]:
        def run(deltas: Deltas, rnd: int) -> dict[str, torch.Tensor]:
            result = screen(deltas, round=rnd)
            kept = {c: deltas[c] for c in result.accepted}
            return aggregate(kept, rule, **params)  # type: ignore[arg-type]

        return run

    def screened_krum(deltas: Deltas, rnd: int) -> dict[str, torch.Tensor]:
        kept = {c: deltas[c] for c in screen(deltas, round=rnd).accepted}
        return aggregate(kept, "multi_krum", f=f_for(len(kept)))

    return [
        Defence("mean", lambda d, r: aggregate(d, "mean")),
        Defence("median", lambda d, r: aggregate(d, "median")),
        Defence("trimmed_mean", lambda d, r: aggregate(d, "trimmed_mean", trim=trim)),
        Defence("krum", lambda d, r: aggregate(d, "krum", f=f_for(len(d)))),
        Defence("multi_krum", lambda d, r: aggregate(d, "multi_krum", f=f_for(len(d)))),
        Defence("mean+clip", lambda d, r: aggregate(d, "mean", clip="median")),
        Defence("screen+mean", screened("mean")),
        Defence("screen+mean+clip", screened("mean", clip="median")),
        Defence("screen+multi_krum", screened_krum),
    ]


@dataclass(frozen=True)
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load() -> Data:
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target, test_size=0.3, random_state=0, stratify=digits.target
    )
    return Data(
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr).long(),
        torch.from_numpy(x_te),
        torch.from_numpy(y_te).long(),
    )


def stamp(x: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    out[..., list(TRIGGER)] = 1.0
    return out


def init_model(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "w1": torch.randn(64, HIDDEN, generator=gen) * (2.0 / 64) ** 0.5,
        "b1": torch.zeros(HIDDEN),
        "w2": torch.randn(HIDDEN, 10, generator=gen) * (2.0 / HIDDEN) ** 0.5,
        "b2": torch.zeros(10),
    }


def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Batched over clients when the weights and x have a leading client axis."""
    if p["w1"].dim() == 3:
        h = torch.relu(torch.bmm(x, p["w1"]) + p["b1"][:, None, :])
        return torch.bmm(h, p["w2"]) + p["b2"][:, None, :]
    return torch.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def local_train(
    glob: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch: int,
    lr: float,
    gen: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Every client's local SGD at once: x is (n, s, 64), y is (n, s)."""
    n, s, _ = x.shape
    p = {k: v.expand(n, *v.shape).clone().requires_grad_(True) for k, v in glob.items()}
    for _ in range(epochs):
        order = torch.argsort(torch.rand(n, s, generator=gen), dim=1)
        for start in range(0, s, batch):
            idx = order[:, start : start + batch]
            xb = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[2]))
            yb = torch.gather(y, 1, idx)
            logits = forward(p, xb)
            # Sum of per-client mean losses: each client's gradient is its own.
            loss = (
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, 10), yb.reshape(-1), reduction="sum"
                )
                / idx.shape[1]
            )
            grads = torch.autograd.grad(loss, list(p.values()))
            with torch.no_grad():
                for v, g in zip(p.values(), grads, strict=True):
                    v -= lr * g
    return {k: v.detach() for k, v in p.items()}


@dataclass(frozen=True)
class Outcome:
    accuracy: float
    backdoor: float
    seconds: float
    quarantined_attackers: int
    quarantined_honest: int


def run_case(
    data: Data,
    *,
    n: int,
    attackers: int,
    attack: str | None,
    defence: Defence,
    rounds: int,
    seed: int,
) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    per = data.x_train.shape[0] // n
    order = torch.randperm(data.x_train.shape[0], generator=gen)[: per * n]
    x = data.x_train[order].reshape(n, per, 64).clone()
    y = data.y_train[order].reshape(n, per).clone()
    boost = n / max(attackers, 1)
    if attack == "boosted":
        y[:attackers] = (y[:attackers] + 1) % 10
    elif attack in ("backdoor", "backdoor_boost"):
        half = per // 2
        x[:attackers, :half] = stamp(x[:attackers, :half])
        y[:attackers, :half] = TARGET
    glob = init_model(seed)
    q_att = q_hon = 0
    started = time.perf_counter()
    for rnd in range(rounds):
        local = local_train(glob, x, y, epochs=2, batch=10, lr=0.1, gen=gen)
        delta = {k: local[k] - glob[k] for k in glob}
        if attack == "sign_flip":
            for value in delta.values():
                value[:attackers] *= -4.0
        elif attack in ("boosted", "backdoor_boost"):
            for value in delta.values():
                value[:attackers] *= boost
        deltas = {f"c{i:02d}": {k: v[i] for k, v in delta.items()} for i in range(n)}
        if defence.name.startswith("screen"):
            marks = screen(deltas, round=rnd)
            q_att += sum(1 for c in marks.quarantined if int(c[1:]) < attackers)
            q_hon += sum(1 for c in marks.quarantined if int(c[1:]) >= attackers)
        step = defence.run(deltas, rnd)
        glob = {k: glob[k] + step[k] for k in glob}
    seconds = time.perf_counter() - started
    with torch.no_grad():
        acc = (forward(glob, data.x_test).argmax(1) == data.y_test).float().mean().item()
        keep = data.y_test != TARGET
        hit = forward(glob, stamp(data.x_test[keep])).argmax(1) == TARGET
        backdoor = hit.float().mean().item()
    return Outcome(acc, backdoor, seconds, q_att, q_hon)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        default="10:0.1,20:0.2,50:0.3",
        help="clients:attacker share pairs (the default spans 10-50 clients, 10-30%%)",
    )
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load()
    started = time.perf_counter()
    rows: list[tuple[str, ...]] = []
    cases: dict[int, list[float]] = {}
    for case in args.cases.split(","):
        clients, share = case.split(":")
        cases.setdefault(int(clients), []).append(float(share))
    for n, fractions in cases.items():
        base: dict[str, float] = {}
        false_alarms = ""
        for defence in defences(0.2):
            outs = [
                run_case(data, n=n, attackers=0, attack=None, defence=defence,
                         rounds=args.rounds, seed=s)
                for s in range(args.seeds)
            ]  # fmt: skip
            base[defence.name] = statistics.median(o.accuracy for o in outs)
            if defence.name == "screen+mean":
                false_alarms = (
                    f"; screening quarantined {sum(o.quarantined_honest for o in outs)} of "
                    f"{n * args.rounds * args.seeds} honest updates"
                )
        honest = base["mean"]
        rows.append((str(n), "0%", "none", "mean", f"{honest:.3f}", "", "", ""))
        for fraction in fractions:
            k = max(1, round(fraction * n))
            for attack in args.attacks.split(","):
                for defence in defences(fraction):
                    outs = [
                        run_case(data, n=n, attackers=k, attack=attack, defence=defence,
                                 rounds=args.rounds, seed=s)
                        for s in range(args.seeds)
                    ]  # fmt: skip
                    acc = statistics.median(o.accuracy for o in outs)
                    bd = statistics.median(o.backdoor for o in outs)
                    quarantine = ""
                    if defence.name.startswith("screen"):
                        qa = sum(o.quarantined_attackers for o in outs)
                        qh = sum(o.quarantined_honest for o in outs)
                        total_a = k * args.rounds * args.seeds
                        total_h = (n - k) * args.rounds * args.seeds
                        quarantine = f"{qa}/{total_a} att, {qh}/{total_h} hon"
                    rows.append(
                        (
                            str(n),
                            f"{k / n:.0%}",
                            attack,
                            defence.name,
                            f"{acc:.3f}",
                            f"{(acc - honest) * 100:+.1f}",
                            f"{bd:.3f}" if attack.startswith("backdoor") else "",
                            quarantine,
                        )
                    )
            print_table(rows, markdown=args.markdown)
            rows = []
        accuracies = ", ".join(f"{d} {a:.3f}" for d, a in base.items())
        print(f"# honest runs of each defence (n={n}): {accuracies}{false_alarms}", flush=True)
    print(f"# total {time.perf_counter() - started:.0f} s, {args.rounds} rounds, "
          f"{args.seeds} seed(s), torch threads 1", flush=True)  # fmt: skip
    return 0


HEADER = ("clients", "attackers", "attack", "defence", "accuracy", "vs honest (pts)",
          "backdoor success", "quarantined (screening)")  # fmt: skip


def print_table(rows: list[tuple[str, ...]], *, markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        for row in rows:
            print("  ".join(f"{c:>12}" for c in row))
    print(flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
