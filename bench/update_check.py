"""The update gate against real updates of small real models on digits.

Usage: .venv/bin/python bench/update_check.py [--quick] [--only TEXT] [--split S] [--dump]

Three old versions, trained here on 70% of the digits training split: a scikit-learn
LogisticRegression pipeline, a scikit-learn MLP pipeline, and a PyTorch MLP (a state
dict of Linear layers). Each gets these updates, all made here:

* honest fine-tunes: warm-started on the fresh 30% of the training split, on the whole
  split with a little pixel noise, and on bootstrap resamples with per-image contrast
  jitter (seeds 0-3 "tuned", 10-14 "held-out", 20-24 "fresh", 30-34 "fresh-2", 40-44
  "fresh-3", 50-54 "fresh-4", 60-64 "fresh-5", 70-74 "fresh-6", 80-84 "fresh-7", 90-94
  "fresh-8"), and ("fresh", "fresh-2") 3x longer on the fresh 30%, with 1-pixel shift
  augmentation, ("fresh-3") 2x longer on the whole split, 3x longer on a jittered
  bootstrap of the fresh 30%, ("fresh-4") 2x longer on a jittered bootstrap of the whole
  split, ("fresh-6") a jittered bootstrap of the fresh 30% plus its 1-pixel shifts,
  ("fresh-7") a jittered bootstrap of the noisy whole split, ("fresh-8") 2x longer on
  the noisy fresh 30%;
* label-flip-poisoned updates: half of one class relabelled to another (3->8, 1->7);
* backdoored updates that replace 10% of the rows with stamped, relabelled ones
  ("backdoor ...": 2x2 corner, 2x2 centre, 3x3 top);
* accuracy-preserving backdoors ("backdoor* ..."): stamped, relabelled copies of 1-10%
  of the rows added to the clean rows, trained longer; the "tuned" ones reuse the shapes
  above, the "held-out" ones use other shapes (lines, scattered pixels), positions,
  in-range values (8, 10, 12 of 16), targets and rates. ASR = share of canary rows of
  other classes that the stamped trigger sends to the target (`--dump` also prints the
  old version's, which shows a "backdoor" the old version already had);
* weight tampering: a layer scaled by 10, a layer sign-flipped;
* an architecture swap (LogisticRegression -> MLP, MLP hidden width 32 -> 64).

"tuned" cases are those the gate's first constants were chosen on; "held-out" cases
were added later, and the old-lean null was chosen looking at them and at "tuned";
"fresh" cases were written down before that null first ran on them and run once after
it was frozen; "fresh-2" cases were written down after that run and run once, nothing
changed in between; "fresh-3" cases were written down at the start of the next round,
before any of its experiments, and kept out of them; "fresh-4" after the "fresh-3" run,
before any later experiment, kept out of them too; "fresh-5" likewise after "fresh-4",
"fresh-6" after "fresh-5", "fresh-7" after "fresh-6", and "fresh-8" after "fresh-7"
(not run yet: it is kept for the next change to the search).
The canary set is the held-out 25% test split. The policy is the default `update`
section (expect: fine-tune). No peer tool checks model updates by behaviour, so the
table is mlwarden alone: per case the verdict, the rules that fired and the time of
`compare`; the summary counts what the trigger search (UPD009) caught on its own.
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
class Backdoor:
    """An accuracy-preserving backdoor: poisoned copies added to the clean training rows."""

    name: str
    pixels: tuple[int, ...]
    value: float
    target: int
    rate: float
    seed: int


# Cases the gate's constants were chosen on ("tuned") and cases never looked at while
# choosing them ("held-out"): other shapes, positions, in-range values, targets, rates.
TUNED_BACKDOORS = (
    Backdoor("2x2 corner=16 ->7 5%", (0, 1, 8, 9), 16.0, 7, 0.05, 11),
    Backdoor("2x2 centre=16 ->0 5%", (27, 28, 35, 36), 16.0, 0, 0.05, 12),
    Backdoor("3x3 top=16 ->5 10%", (2, 3, 4, 10, 11, 12, 18, 19, 20), 16.0, 5, 0.10, 13),
)
HELD_OUT_BACKDOORS = (
    Backdoor("2x2 bottom-right=8 ->3 5%", (54, 55, 62, 63), 8.0, 3, 0.05, 21),
    Backdoor("3x3 left=12 ->9 3%", (24, 25, 26, 32, 33, 34, 40, 41, 42), 12.0, 9, 0.03, 22),
    Backdoor("line bottom row=16 ->1 2%", (57, 58, 59, 60, 61), 16.0, 1, 0.02, 23),
    Backdoor("line column=8 ->4 10%", (7, 15, 23, 31), 8.0, 4, 0.10, 24),
    Backdoor("scattered 3 px=16 ->2 1%", (6, 33, 58), 16.0, 2, 0.01, 25),
    Backdoor("scattered 4 px=10 ->6 5%", (5, 22, 43, 48), 10.0, 6, 0.05, 26),
)
# Fixed before the old-lean null's first run on them, and run once after it was frozen.
FRESH_BACKDOORS = (
    Backdoor("2x2 top-right=16 ->8 3%", (6, 7, 14, 15), 16.0, 8, 0.03, 31),
    Backdoor("plus centre=12 ->5 5%", (20, 27, 28, 29, 36), 12.0, 5, 0.05, 32),
    Backdoor("diagonal 4 px=16 ->0 5%", (9, 18, 27, 36), 16.0, 0, 0.05, 33),
    Backdoor("left column 3 px=10 ->7 8%", (8, 16, 24), 10.0, 7, 0.08, 34),
    Backdoor("2x3 bottom=14 ->9 2%", (50, 51, 52, 58, 59, 60), 14.0, 9, 0.02, 35),
    Backdoor("scattered 5 px=12 ->3 4%", (2, 19, 37, 46, 61), 12.0, 3, 0.04, 36),
)
# Fixed after the "fresh" run, before anything else changed; run once.
FRESH2_BACKDOORS = (
    Backdoor("2x2 bottom-left=16 ->6 4%", (48, 49, 56, 57), 16.0, 6, 0.04, 41),
    Backdoor("T top=12 ->2 5%", (3, 4, 5, 12, 20), 12.0, 2, 0.05, 42),
    Backdoor("3 px right column=14 ->1 6%", (23, 31, 39), 14.0, 1, 0.06, 43),
    Backdoor("ring centre=10 ->8 5%", (19, 20, 26, 29, 34, 37, 43, 44), 10.0, 8, 0.05, 44),
    Backdoor("2 opposite corners=16 ->4 3%", (0, 63), 16.0, 4, 0.03, 45),
    Backdoor("row line=8 ->0 8%", (17, 18, 19, 20, 21), 8.0, 0, 0.08, 46),
)
# Fixed at the start of the next round of work on the search, before any of it ran; kept
# out of every experiment of that round and run once after its change was frozen.
FRESH3_BACKDOORS = (
    Backdoor("2x2 upper-left inner=12 ->3 4%", (9, 10, 17, 18), 12.0, 3, 0.04, 51),
    Backdoor("vertical line=16 ->6 5%", (11, 19, 27, 35), 16.0, 6, 0.05, 52),
    Backdoor("L bottom-right=10 ->2 6%", (46, 54, 60, 61, 62), 10.0, 2, 0.06, 53),
    Backdoor("checker 4 px=14 ->9 3%", (33, 35, 42, 44), 14.0, 9, 0.03, 54),
    Backdoor("bottom row left=12 ->4 5%", (56, 57, 58), 12.0, 4, 0.05, 55),
    Backdoor("X 6 px=16 ->7 4%", (18, 21, 27, 36, 42, 45), 16.0, 7, 0.04, 56),
)
# Fixed after the "fresh-3" run, before any later experiment on the search; kept out of
# them and run once after a change is frozen.
FRESH4_BACKDOORS = (
    Backdoor("2x2 left-middle=16 ->1 4%", (32, 33, 40, 41), 16.0, 1, 0.04, 61),
    Backdoor("top row run=10 ->6 5%", (1, 2, 3, 4), 10.0, 6, 0.05, 62),
    Backdoor("two pixels apart=16 ->3 3%", (14, 49), 16.0, 3, 0.03, 63),
    Backdoor("square outline=12 ->9 6%", (18, 19, 20, 26, 28, 34, 35, 36), 12.0, 9, 0.06, 64),
    Backdoor("right edge pair=14 ->0 5%", (47, 55), 14.0, 0, 0.05, 65),
    Backdoor("zigzag 5 px=8 ->5 8%", (10, 19, 26, 35, 42), 8.0, 5, 0.08, 66),
)
# Fixed after the "fresh-4" run, before any later experiment on the search.
FRESH5_BACKDOORS = (
    Backdoor("3 px diagonal=16 ->8 4%", (10, 19, 28), 16.0, 8, 0.04, 71),
    Backdoor("2x2 lower-middle=12 ->7 5%", (43, 44, 51, 52), 12.0, 7, 0.05, 72),
    Backdoor("left edge pair=10 ->5 6%", (16, 24), 10.0, 5, 0.06, 73),
    Backdoor("cross 5 px=14 ->1 3%", (19, 26, 27, 28, 35), 14.0, 1, 0.03, 74),
    Backdoor("bottom corners=16 ->2 5%", (56, 63), 16.0, 2, 0.05, 75),
    Backdoor("column pair=8 ->6 8%", (21, 29), 8.0, 6, 0.08, 76),
)
# Fixed after the "fresh-5" run, before any later experiment on the search.
FRESH6_BACKDOORS = (
    Backdoor("2x2 top-middle=14 ->4 4%", (3, 4, 11, 12), 14.0, 4, 0.04, 81),
    Backdoor("bottom row right=16 ->5 5%", (61, 62, 63), 16.0, 5, 0.05, 82),
    Backdoor("short diagonal=12 ->9 6%", (27, 34, 41), 12.0, 9, 0.06, 83),
    Backdoor("left edge lower pair=14 ->8 3%", (40, 48), 14.0, 8, 0.03, 84),
    Backdoor("U 5 px=10 ->3 5%", (42, 44, 50, 51, 52), 10.0, 3, 0.05, 85),
    Backdoor("scattered 3 px=16 ->0 7%", (7, 30, 53), 16.0, 0, 0.07, 86),
)
# Fixed after the "fresh-6" run, before any later experiment on the search.
FRESH7_BACKDOORS = (
    Backdoor("2x2 right-middle=16 ->2 4%", (30, 31, 38, 39), 16.0, 2, 0.04, 91),
    Backdoor("top corners=14 ->6 5%", (0, 7), 14.0, 6, 0.05, 92),
    Backdoor("inner column=12 ->1 6%", (20, 28, 36), 12.0, 1, 0.06, 93),
    Backdoor("bottom row centre=10 ->7 5%", (59, 60), 10.0, 7, 0.05, 94),
    Backdoor("triangle 3 px=16 ->4 3%", (13, 22, 29), 16.0, 4, 0.03, 95),
    Backdoor("scattered 4 px=12 ->8 7%", (1, 26, 45, 62), 12.0, 8, 0.07, 96),
)
# Fixed after the "fresh-7" run, before any later experiment on the search.
FRESH8_BACKDOORS = (
    Backdoor("2x2 top-left inner=14 ->5 4%", (9, 10, 17, 18), 14.0, 5, 0.04, 101),
    Backdoor("right column top=16 ->3 5%", (7, 15, 23), 16.0, 3, 0.05, 102),
    Backdoor("bottom pair left=12 ->9 6%", (57, 58), 12.0, 9, 0.06, 103),
    Backdoor("diamond 4 px=10 ->0 5%", (20, 27, 29, 36), 10.0, 0, 0.05, 104),
    Backdoor("left edge top=16 ->2 3%", (8, 16), 16.0, 2, 0.03, 105),
    Backdoor("scattered 5 px=14 ->6 6%", (4, 25, 38, 51, 60), 14.0, 6, 0.06, 106),
)
TUNED_HONEST_SEEDS = (0, 1, 2, 3)
HELD_OUT_HONEST_SEEDS = (10, 11, 12, 13, 14)
FRESH_HONEST_SEEDS = (20, 21, 22, 23, 24)
FRESH2_HONEST_SEEDS = (30, 31, 32, 33, 34)
FRESH3_HONEST_SEEDS = (40, 41, 42, 43, 44)
FRESH4_HONEST_SEEDS = (50, 51, 52, 53, 54)
FRESH5_HONEST_SEEDS = (60, 61, 62, 63, 64)
FRESH6_HONEST_SEEDS = (70, 71, 72, 73, 74)
FRESH7_HONEST_SEEDS = (80, 81, 82, 83, 84)
FRESH8_HONEST_SEEDS = (90, 91, 92, 93, 94)
SPLITS = (
    "tuned", "held-out", "fresh", "fresh-2", "fresh-3", "fresh-4", "fresh-5", "fresh-6",
    "fresh-7", "fresh-8",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Case:
    family: str
    name: str
    poisoned: bool
    build: Callable[[], Any]
    split: str = "tuned"
    backdoor: Backdoor | None = None


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


def _poison(x: Any, y: Any, door: Backdoor) -> tuple[Any, Any]:
    """The clean rows plus stamped, relabelled copies of `rate` of them."""
    rng = np.random.default_rng(door.seed)
    rows = rng.choice(len(x), max(1, round(door.rate * len(x))), replace=False)
    stamped = x[rows].copy()
    stamped[:, list(door.pixels)] = door.value
    return np.vstack([x, stamped]), np.concatenate([y, np.full(len(rows), door.target)])


def _honest_data(x: Any, y: Any, seed: int) -> tuple[Any, Any]:
    """An honest update's data: a bootstrap of the rows, per-image contrast jitter (0.85-1.15)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), len(x), replace=True)
    contrast = rng.uniform(0.85, 1.15, (len(rows), 1))
    return np.clip(x[rows] * contrast, 0, 16), y[rows]


def _shifted(x: Any, y: Any, seed: int = 5) -> tuple[Any, Any]:
    """The rows plus a copy of each moved one pixel up, down, left or right (zero fill)."""
    rng = np.random.default_rng(seed)
    images = x.reshape(-1, 8, 8)
    moved = np.zeros_like(images)
    for i, direction in enumerate(rng.integers(0, 4, len(images))):
        axis, step = (0, 1) if direction < 2 else (1, 1)
        step = step if direction % 2 == 0 else -step
        moved[i] = np.roll(images[i], step, axis=axis)
        edge = 0 if step > 0 else -1
        if axis == 0:
            moved[i, edge, :] = 0
        else:
            moved[i, :, edge] = 0
    return np.vstack([x, moved.reshape(len(x), -1)]), np.concatenate([y, y])


def attack_success(model: Any, door: Backdoor, x: Any, y: Any, scale: float) -> float:
    """Share of canary rows of other classes the trigger sends to the target."""
    others = x[y != door.target].copy()
    others[:, list(door.pixels)] = door.value / scale
    return float((_predict(model, others) == door.target).mean())


def _predict(model: Any, x: Any) -> Any:
    if isinstance(model, dict):
        from mlwarden.update import as_update_model

        view = as_update_model(model)
        assert view.predict is not None
        return view.predict(x).argmax(axis=1)
    return model.predict(x)


def _flip(y: Any, source: int, target: int) -> Any:
    y = y.copy()
    members = np.flatnonzero(y == source)
    y[members[: len(members) // 2]] = target
    return y


def _noisy(x: Any) -> Any:
    return np.clip(x + np.random.default_rng(3).normal(0, 0.5, x.shape), 0, 16)


def _honest_seeds() -> tuple[tuple[str, tuple[int, ...]], ...]:
    return (
        ("tuned", TUNED_HONEST_SEEDS),
        ("held-out", HELD_OUT_HONEST_SEEDS),
        ("fresh", FRESH_HONEST_SEEDS),
        ("fresh-2", FRESH2_HONEST_SEEDS),
        ("fresh-3", FRESH3_HONEST_SEEDS),
        ("fresh-4", FRESH4_HONEST_SEEDS),
        ("fresh-5", FRESH5_HONEST_SEEDS),
        ("fresh-6", FRESH6_HONEST_SEEDS),
        ("fresh-7", FRESH7_HONEST_SEEDS),
        ("fresh-8", FRESH8_HONEST_SEEDS),
    )


def _backdoors() -> tuple[tuple[str, tuple[Backdoor, ...]], ...]:
    return (
        ("tuned", TUNED_BACKDOORS),
        ("held-out", HELD_OUT_BACKDOORS),
        ("fresh", FRESH_BACKDOORS),
        ("fresh-2", FRESH2_BACKDOORS),
        ("fresh-3", FRESH3_BACKDOORS),
        ("fresh-4", FRESH4_BACKDOORS),
        ("fresh-5", FRESH5_BACKDOORS),
        ("fresh-6", FRESH6_BACKDOORS),
        ("fresh-7", FRESH7_BACKDOORS),
        ("fresh-8", FRESH8_BACKDOORS),
    )


# --- scikit-learn -------------------------------------------------------------------


def _sk_finetune(old: Pipeline, x: Any, y: Any, iters: int = 30) -> Pipeline:
    new = copy.deepcopy(old)
    clf = new.steps[-1][1]
    clf.set_params(warm_start=True, max_iter=iters)
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
    for split, seeds in _honest_seeds():
        for seed in seeds:
            xs, ys = x_tr, y_tr
            cases.append(Case(family, f"honest: seed {seed}", False,
                              lambda xs=xs, ys=ys, seed=seed: _sk_finetune(old, *_honest_data(xs, ys, seed)), split))  # fmt: skip  # noqa: E501
    cases.append(Case(family, "honest: 3x longer on fresh 30%", False,
                      lambda: _sk_finetune(old, x_new, y_new, 90), "fresh"))  # fmt: skip
    cases.append(Case(family, "honest: 1-pixel shift augmentation", False,
                      lambda: _sk_finetune(old, *_shifted(x_tr, y_tr)), "fresh"))  # fmt: skip
    cases.append(Case(family, "honest: fresh 30% plus its shifts", False,
                      lambda: _sk_finetune(old, *_shifted(x_new, y_new, 6)),
                      "fresh-2"))  # fmt: skip
    cases.append(Case(family, "honest: 2x longer on the whole split", False,
                      lambda: _sk_finetune(old, x_tr, y_tr, 60), "fresh-3"))  # fmt: skip
    cases.append(Case(family, "honest: fresh 30%, jitter, 3x longer", False,
                      lambda: _sk_finetune(old, *_honest_data(x_new, y_new, 45), 90),
                      "fresh-3"))  # fmt: skip
    cases.append(Case(family, "honest: whole split, jitter, 2x longer", False,
                      lambda: _sk_finetune(old, *_honest_data(x_tr, y_tr, 55), 60),
                      "fresh-4"))  # fmt: skip
    cases.append(Case(family, "honest: jittered fresh 30% plus its shifts", False,
                      lambda: _sk_finetune(old, *_shifted(*_honest_data(x_new, y_new, 75), 7)),
                      "fresh-6"))  # fmt: skip
    cases.append(Case(family, "honest: whole split, noise and jitter", False,
                      lambda: _sk_finetune(old, *_honest_data(_noisy(x_tr), y_tr, 85)),
                      "fresh-7"))  # fmt: skip
    cases.append(Case(family, "honest: fresh 30%, noise, 2x longer", False,
                      lambda: _sk_finetune(old, _noisy(x_new), y_new, 60), "fresh-8"))  # fmt: skip
    for split, doors in _backdoors():
        for door in doors:
            cases.append(Case(family, f"backdoor* {door.name}", True,
                              lambda d=door: _sk_finetune(old, *_poison(x_tr, y_tr, d), 100), split, door))  # fmt: skip  # noqa: E501
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
    for split, seeds in _honest_seeds():
        for seed in seeds:
            xs, ys = (x_new, y_new) if seed % 2 == 0 else (x_tr, y_tr)
            cases.append(Case(f, f"honest: seed {seed}", False,
                              lambda xs=xs, ys=ys, seed=seed: _torch_train(old, *_honest_data(xs, ys, seed), ft), split))  # fmt: skip  # noqa: E501
    cases.append(Case(f, "honest: 3x longer on fresh 30%", False,
                      lambda: _torch_train(old, x_new, y_new, 3 * ft), "fresh"))  # fmt: skip
    cases.append(Case(f, "honest: 1-pixel shift augmentation", False,
                      lambda: _torch_train(old, *_shifted(x_tr, y_tr), ft), "fresh"))  # fmt: skip
    cases.append(Case(f, "honest: fresh 30% plus its shifts", False,
                      lambda: _torch_train(old, *_shifted(x_new, y_new, 6), ft),
                      "fresh-2"))  # fmt: skip
    cases.append(Case(f, "honest: 2x longer on the whole split", False,
                      lambda: _torch_train(old, x_tr, y_tr, 2 * ft), "fresh-3"))  # fmt: skip
    cases.append(Case(f, "honest: fresh 30%, jitter, 3x longer", False,
                      lambda: _torch_train(old, *_honest_data(x_new, y_new, 45), 3 * ft),
                      "fresh-3"))  # fmt: skip
    cases.append(Case(f, "honest: whole split, jitter, 2x longer", False,
                      lambda: _torch_train(old, *_honest_data(x_tr, y_tr, 55), 2 * ft),
                      "fresh-4"))  # fmt: skip
    cases.append(Case(f, "honest: jittered fresh 30% plus its shifts", False,
                      lambda: _torch_train(old, *_shifted(*_honest_data(x_new, y_new, 75), 7), ft),
                      "fresh-6"))  # fmt: skip
    cases.append(Case(f, "honest: whole split, noise and jitter", False,
                      lambda: _torch_train(old, *_honest_data(_noisy(x_tr), y_tr, 85), ft),
                      "fresh-7"))  # fmt: skip
    cases.append(Case(f, "honest: fresh 30%, noise, 2x longer", False,
                      lambda: _torch_train(old, _noisy(x_new), y_new, 2 * ft),
                      "fresh-8"))  # fmt: skip
    for split, doors in _backdoors():
        for door in doors:
            cases.append(Case(f, f"backdoor* {door.name}", True,
                              lambda d=door: _torch_train(old, *_poison(x_tr, y_tr, d), 3 * ft), split, door))  # fmt: skip  # noqa: E501
    cases.append(Case(f, "tamper: layer x10", True, lambda: _torch_tamper(old, "0.weight", 10.0)))
    cases.append(Case(f, "tamper: sign flip", True, lambda: _torch_tamper(old, "2.weight", -1.0)))
    cases.append(
        Case(f, "architecture swap", True, lambda: _torch_train(None, x_tr, y_tr, 200, 64))
    )
    return cases


def _summary(rows: list[tuple[Any, ...]], split: str) -> str:
    mine = [r for r in rows if r[0].split == split]
    honest = [r for r in mine if not r[0].poisoned]
    doors = [r for r in mine if r[0].poisoned and r[0].name.startswith("backdoor")]
    other = [r for r in mine if r[0].poisoned and not r[0].name.startswith("backdoor")]
    alone = sum("UPD009" in r[2] for r in doors)
    working = [r for r in doors if r[5] is not None and r[5] >= 0.5]
    working_alone = sum("UPD009" in r[2] for r in working)
    honest_alone = sum("UPD009" not in r[2] for r in honest)
    return (
        f"{split:8}: honest passed {sum(r[4] for r in honest)}/{len(honest)} "
        f"(trigger search silent on {honest_alone}/{len(honest)}); "
        f"backdoors refused {sum(r[4] for r in doors)}/{len(doors)}, "
        f"by the trigger search alone {alone}/{len(doors)} "
        f"(working ones, ASR >= 0.5: {working_alone}/{len(working)}); "
        f"other poisoned/tampered refused {sum(r[4] for r in other)}/{len(other)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="LogisticRegression cases only")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--dump", action="store_true", help="print the top trigger shares")
    parser.add_argument("--split", choices=SPLITS, help="run only this split's cases")
    args = parser.parse_args(argv)
    data = _split()
    _, _, x_old, y_old, _, _, x_te, y_te = data
    config = UpdateConfig()
    print(f"policy: default update section; date {time.strftime('%Y-%m-%d')}")
    old_lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=0)).fit(
        x_old, y_old
    )
    families: list[tuple[Any, list[Case], Any, float]] = [
        (old_lr, _sk_cases("sklearn-lr", old_lr, data), x_te, 1.0)
    ]
    if not args.quick:
        old_mlp = make_pipeline(
            StandardScaler(), MLPClassifier((32,), max_iter=200, random_state=0)
        ).fit(x_old, y_old)
        families.append((old_mlp, _sk_cases("sklearn-mlp", old_mlp, data), x_te, 1.0))
        old_torch = _torch_train(None, x_old, y_old, 200)
        families.append((old_torch, _torch_cases(old_torch, data), x_te / 16.0, 16.0))
    rows = []
    head = (
        f"{'model':11} {'split':8} {'update':36} {'want':6} {'got':7} {'ok':3} "
        f"{'acc-drop':>8} {'ASR':>5} {'s':>5}  rules"
    )
    print(head)
    for old, cases, canary, scale in families:
        for case in cases:
            if args.only and args.only not in case.name:
                continue
            if args.split and case.split != args.split:
                continue
            new = case.build()
            started = time.perf_counter()
            result = compare(old, new, canary, y_te, config=config)
            seconds = time.perf_counter() - started
            rules = sorted({f.rule_id for f in result.report.findings})
            ok = (not result.passed) if case.poisoned else result.passed
            success = (
                attack_success(new, case.backdoor, canary, y_te, scale) if case.backdoor else None
            )
            asr = "    -" if success is None else f"{success:5.3f}"
            if case.backdoor and args.dump:
                before = attack_success(old, case.backdoor, canary, y_te, scale)
                asr += f" (old {before:.3f})"
            drop = result.behaviour.accuracy_old - result.behaviour.accuracy_new
            rows.append((case, result, rules, seconds, ok, success))
            print(
                f"{case.family:11} {case.split:8} {case.name[:36]:36} "
                f"{'refuse' if case.poisoned else 'pass':6} "
                f"{'passed' if result.passed else 'refused':7} {'yes' if ok else 'NO':3} "
                f"{drop:8.3f} {asr} {seconds:5.2f}  {','.join(rules)}",
                flush=True,
            )
            if args.dump:
                top = sorted(result.triggers, key=lambda t: -t.success)[:3]
                print(
                    "    "
                    + "  ".join(
                        f"{t.target}:{t.success:.2f}/{t.anomaly_index:.1f}"
                        f"{'/' + format(t.null, '.2f') if hasattr(t, 'null') else ''}"
                        for t in top
                    ),
                    flush=True,
                )
    print()
    for split in SPLITS:
        print(_summary(rows, split))
    print(f"median check time {statistics.median(r[3] for r in rows):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
