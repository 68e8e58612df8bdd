"""The update gate against real updates of small real models on digits.

Usage: .venv/bin/python bench/update_check.py [--quick]

Three old versions, trained here on 70% of the digits training split: a scikit-learn
LogisticRegression pipeline, a scikit-learn MLP pipeline, and a PyTorch MLP (a state
dict of Linear layers). Each gets these updates, all made here:

* honest fine-tunes: warm-started on the fresh 30% of the training split, and on the
  whole split with a little pixel noise;
* label-flip-poisoned updates: half of one class relabelled to another (3->8, 1->7);
* backdoored updates: rows stamped with a trigger (2x2 corner, 2x2 centre, 3x3 top)
  relabelled to a target (7, 0, 5);
* weight tampering: a layer scaled by 10, a layer sign-flipped;
* an architecture swap (LogisticRegression -> MLP, MLP hidden width 32 -> 64).

Every poisoned update is warm-started from the old version, the hardest case for the
structural checks (a retrain from scratch moves the weights far more). The canary set
is the held-out 25% test split. The policy is the default `update` section
(expect: fine-tune). No peer tool checks model updates by behaviour, so the table is
mlwarden alone: per case the verdict, the rules that fired and the time of `compare`.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

warnings.filterwarnings("ignore")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mlwarden.update import UpdateConfig, compare  # noqa: E402

TRIGGERS = {
    "corner2x2->7": ((0, 1, 8, 9), 7),
    "centre2x2->0": ((27, 28, 35, 36), 0),
    "top3x3->5": ((2, 3, 4, 10, 11, 12, 18, 19, 20), 5),
}
FLIPS = {"flip3->8": (3, 8), "flip1->7": (1, 7)}


@dataclass(frozen=True, slots=True)
class Case:
    family: str
    name: str
    poisoned: bool
    build: Callable[[], Any]


def _split() -> tuple[Any, ...]:
    d = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        d.data, d.target, test_size=0.25, random_state=0, stratify=d.target
    )
    x_old, x_new, y_old, y_new = train_test_split(
        x_tr, y_tr, test_size=0.3, random_state=1, stratify=y_tr
    )
    return x_tr, y_tr, x_old, y_old, x_new, y_new, x_te, y_te


def _stamp(x: Any, y: Any, pixels: tuple[int, ...], target: int, rate: float = 0.1) -> Any:
    rng = np.random.default_rng(7)
    rows = rng.choice(len(x), int(rate * len(x)), replace=False)
    x, y = x.copy(), y.copy()
    x[np.ix_(rows, np.array(pixels))] = 16.0
    y[rows] = target
    return x, y


def _flip(y: Any, source: int, target: int) -> Any:
    y = y.copy()
    members = np.flatnonzero(y == source)
    y[members[: len(members) // 2]] = target
    return y


def _noisy(x: Any) -> Any:
    return np.clip(x + np.random.default_rng(3).normal(0, 0.5, x.shape), 0, 16)


# --- scikit-learn -------------------------------------------------------------------


def _sk_finetune(old: Pipeline, x: Any, y: Any) -> Pipeline:
    new = copy.deepcopy(old)
    clf = new.steps[-1][1]
    clf.set_params(warm_start=True, max_iter=30)
    clf.fit(new.steps[0][1].transform(x), y)
    return new


def _sk_tamper(old: Pipeline, attr: str, index: int | None, factor: float) -> Pipeline:
    new = copy.deepcopy(old)
    clf = new.steps[-1][1]
    value = getattr(clf, attr)
    if index is None:
        setattr(clf, attr, value * factor)
    else:
        value[index] = value[index] * factor
    return new


def _sk_cases(family: str, old: Pipeline, data: tuple[Any, ...]) -> list[Case]:
    x_tr, y_tr, _, _, x_new, y_new, _, _ = data
    coef, idx = ("coef_", None) if family == "sklearn-lr" else ("coefs_", 0)
    cases = [
        Case(family, "honest: fine-tune on fresh 30%", False,
             lambda: _sk_finetune(old, x_new, y_new)),
        Case(family, "honest: fine-tune, noisy full split", False,
             lambda: _sk_finetune(old, _noisy(x_tr), y_tr)),
    ]  # fmt: skip
    for name, (s, t) in FLIPS.items():
        cases.append(Case(family, f"label {name}", True,
                          lambda s=s, t=t: _sk_finetune(old, x_tr, _flip(y_tr, s, t))))  # fmt: skip
    for name, (pixels, target) in TRIGGERS.items():
        cases.append(Case(family, f"backdoor {name}", True,
                          lambda p=pixels, t=target: _sk_finetune(old, *_stamp(x_tr, y_tr, p, t))))  # fmt: skip  # noqa: E501
    cases.append(Case(family, "tamper: layer x10", True, lambda: _sk_tamper(old, coef, idx, 10.0)))
    cases.append(Case(family, "tamper: sign flip", True, lambda: _sk_tamper(old, coef, idx, -1.0)))
    width = 32 if family == "sklearn-lr" else 64

    def swap() -> Pipeline:
        mlp = MLPClassifier((width,), max_iter=200, random_state=0)
        return make_pipeline(StandardScaler(), mlp).fit(x_tr, y_tr)

    cases.append(Case(family, "architecture swap", True, swap))
    return cases


# --- PyTorch ------------------------------------------------------------------------


def _torch_train(
    state: dict[str, Any] | None, x: Any, y: Any, epochs: int, hidden: int = 32
) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    )
    if state is not None:
        net.load_state_dict(state)
    opt = torch.optim.Adam(net.parameters(), lr=0.01 if state is None else 0.003)
    xt = torch.tensor(x / 16.0, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.int64)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _torch_tamper(old: dict[str, Any], key: str, factor: float) -> dict[str, Any]:
    new = {k: v.clone() for k, v in old.items()}
    new[key] = new[key] * factor
    return new


def _torch_cases(old: dict[str, Any], data: tuple[Any, ...]) -> list[Case]:
    x_tr, y_tr, _, _, x_new, y_new, _, _ = data
    f = "torch-mlp"
    ft = 40
    cases = [
        Case(f, "honest: fine-tune on fresh 30%", False,
             lambda: _torch_train(old, x_new, y_new, ft)),
        Case(f, "honest: fine-tune, noisy full split", False,
             lambda: _torch_train(old, _noisy(x_tr), y_tr, ft)),
    ]  # fmt: skip
    for name, (s, t) in FLIPS.items():
        cases.append(Case(f, f"label {name}", True,
                          lambda s=s, t=t: _torch_train(old, x_tr, _flip(y_tr, s, t), 3 * ft)))  # fmt: skip  # noqa: E501
    for name, (pixels, target) in TRIGGERS.items():
        cases.append(Case(f, f"backdoor {name}", True,
                          lambda p=pixels, t=target: _torch_train(old, *_stamp(x_tr, y_tr, p, t), 3 * ft)))  # fmt: skip  # noqa: E501
    cases.append(Case(f, "tamper: layer x10", True, lambda: _torch_tamper(old, "0.weight", 10.0)))
    cases.append(Case(f, "tamper: sign flip", True, lambda: _torch_tamper(old, "2.weight", -1.0)))
    cases.append(
        Case(f, "architecture swap", True, lambda: _torch_train(None, x_tr, y_tr, 200, 64))
    )
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="LogisticRegression cases only")
    parser.add_argument("--anomaly-index", type=float, default=3.0, help="update.anomaly_index")
    parser.add_argument(
        "--min-trigger-success", type=float, default=0.8, help="update.min_trigger_success"
    )
    args = parser.parse_args(argv)
    data = _split()
    _, _, x_old, y_old, _, _, x_te, y_te = data
    config = UpdateConfig(
        anomaly_index=args.anomaly_index, min_trigger_success=args.min_trigger_success
    )
    print(f"anomaly_index {config.anomaly_index}, min_trigger_success {config.min_trigger_success}")
    old_lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=0)).fit(
        x_old, y_old
    )
    families: list[tuple[Any, list[Case], Any]] = [
        (old_lr, _sk_cases("sklearn-lr", old_lr, data), x_te)
    ]
    if not args.quick:
        old_mlp = make_pipeline(
            StandardScaler(), MLPClassifier((32,), max_iter=200, random_state=0)
        ).fit(x_old, y_old)
        families.append((old_mlp, _sk_cases("sklearn-mlp", old_mlp, data), x_te))
        old_torch = _torch_train(None, x_old, y_old, 200)
        families.append((old_torch, _torch_cases(old_torch, data), x_te / 16.0))
    rows = []
    for old, cases, canary in families:
        for case in cases:
            new = case.build()
            started = time.perf_counter()
            result = compare(old, new, canary, y_te, config=config)
            seconds = time.perf_counter() - started
            rules = sorted({f.rule_id for f in result.report.findings})
            ok = (not result.passed) if case.poisoned else result.passed
            rows.append((case, result, rules, seconds, ok))
    head = f"{'model':12} {'update':38} {'want':7} {'got':8} {'ok':3} {'acc new':>7}"
    print(f"{head} {'time s':>6}  rules")
    for case, result, rules, seconds, ok in rows:
        want = "refuse" if case.poisoned else "pass"
        got = "passed" if result.passed else "refused"
        print(
            f"{case.family:12} {case.name:38} {want:7} {got:8} {'yes' if ok else 'NO':3} "
            f"{result.behaviour.accuracy_new:7.3f} {seconds:6.2f}  {','.join(rules)}"
        )
    poisoned = [r for r in rows if r[0].poisoned]
    honest = [r for r in rows if not r[0].poisoned]
    print(
        f"\npoisoned or tampered refused: {sum(r[4] for r in poisoned)}/{len(poisoned)}; "
        f"honest passed: {sum(r[4] for r in honest)}/{len(honest)}; "
        f"median check time {statistics.median(r[3] for r in rows):.2f} s"
    )
    backdoors = [r for r in poisoned if r[0].name.startswith("backdoor")]
    print(f"backdoors refused: {sum(r[4] for r in backdoors)}/{len(backdoors)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
