"""Extraction and probing streams against a served digits model: mlwarden vs PRADA.

Model: scikit-learn LogisticRegression on 8x8 digits scaled to [0, 1] (75/25 split);
the detector reference is fitted on the training part (`fit_reference`, 1% target).
Every stream is fed one query at a time, as a gateway sees it. Attackers (500
queries each):

- uniform: uniform random queries in [0, 1]^64;
- jacobian: Papernot-style augmentation: 10 natural test samples (one per class),
  then rounds of x + 0.1 * sign(grad of the attacker's substitute model), the
  substitute (a logistic regression) retrained on the answers after each round;
- mixup: convex mixes (lambda in [0.3, 0.7]) of two random test digits;
- photos: 8x8 patches of the two photographs scikit-learn ships (grey, block-averaged,
  scaled to [0, 1]): natural data of another distribution;
- probing: gradient estimation around 5 test digits (each point then 60 queries
  x + 0.01 * u with random unit-variance u).

Benign: 500 users, each sending distinct test digits in random order, lengths drawn
uniformly from 10 to 450 queries. PRADA (bench baseline, `mlwarden.detect._prada`)
runs beside it, its delta calibrated on benign streams of *training* digits to flag at
most 1% of them. For every attacker: the query at which each detector first flagged it,
and the fidelity (agreement with the model on the test set) of a copy trained on its
queries up to that moment (a logistic regression on the model's labels).

Run: `.venv/bin/python bench/detect_streams.py` (from the repository root).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
warnings.filterwarnings("ignore")

from mlwarden.detect import Monitor, Signal, fit_reference  # noqa: E402
from mlwarden.detect._prada import Prada  # noqa: E402
from mlwarden.detect.simulate import digits, simulate_extraction_queries  # noqa: E402

ATTACK_QUERIES = 500
GOAL_QUERIES = 300
BENIGN_USERS = 500
STREAM_SIGNALS = frozenset({Signal.EXTRACTION, Signal.PROBING})


def jacobian_queries(model: object, seeds: np.ndarray, n: int, lam: float = 0.1) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    queried = list(seeds)
    while len(queried) < n:
        x = np.asarray(queried)
        labels = model.predict(x)  # type: ignore[attr-defined]
        substitute = LogisticRegression(max_iter=500).fit(x, labels)
        grad = substitute.coef_[np.searchsorted(substitute.classes_, labels)]
        queried.extend(np.clip(x + lam * np.sign(grad), 0.0, 1.0))
    return np.asarray(queried[:n])


def mixup_queries(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a, b = pool[rng.integers(0, len(pool), n)], pool[rng.integers(0, len(pool), n)]
    lam = rng.uniform(0.3, 0.7, (n, 1))
    out: np.ndarray = lam * a + (1 - lam) * b
    return out


def photo_queries(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = [img.mean(axis=2) / 255.0 for img in load_sample_images().images]
    out = []
    for _ in range(n):
        img = photos[int(rng.integers(0, len(photos)))]
        size = int(rng.integers(16, 64)) // 8 * 8
        r, c = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        patch = img[r : r + size, c : c + size].reshape(8, size // 8, 8, size // 8).mean((1, 3))
        lo, hi = patch.min(), patch.max()
        out.append(((patch - lo) / (hi - lo + 1e-9)).ravel())
    return np.asarray(out)


def probing_queries(pool: np.ndarray, n: int, seed: int, per_point: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        centre = pool[int(rng.integers(0, len(pool)))]
        out.append(centre)
        out.extend(np.clip(centre + 0.01 * rng.standard_normal((per_point, 64)), 0.0, 1.0))
    return np.asarray(out[:n])


def first_flag_mlwarden(monitor: Monitor, model: object, queries: np.ndarray) -> int | None:
    state = monitor.new_state()
    proba = model.predict_proba(queries)  # type: ignore[attr-defined]
    for i in range(len(queries)):
        if monitor.observe(state, queries[i : i + 1], proba[i : i + 1]).flagged & STREAM_SIGNALS:
            return i + 1
    return None


def prada_min_w(model: object, queries: np.ndarray) -> np.ndarray:
    """PRADA's W after each query (1.0 before it has enough distances)."""
    detector = Prada(delta=0.0)
    labels = model.predict(queries)  # type: ignore[attr-defined]
    out = np.ones(len(queries))
    for i in range(len(queries)):
        detector.observe(queries[i], int(labels[i]))
        out[i] = detector.statistic
    return out


def fidelity(model: object, queries: np.ndarray, x_test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    labels = model.predict(queries)  # type: ignore[attr-defined]
    target = model.predict(x_test)  # type: ignore[attr-defined]
    if len(set(labels.tolist())) < 2:
        return float((target == labels[0]).mean())
    copy = LogisticRegression(max_iter=1000).fit(queries, labels)
    return float((copy.predict(x_test) == target).mean())


def main() -> int:
    from sklearn.linear_model import LogisticRegression

    data = digits()
    model = LogisticRegression(max_iter=5000).fit(data.x_train, data.y_train)
    started = time.perf_counter()
    ref = fit_reference(data.x_train, data.y_train, predict_proba=model.predict_proba,
                        image_shape=(8, 8), value_range=(0.0, 1.0))  # fmt: skip
    print(f"reference fit: {time.perf_counter() - started:.2f} s; thresholds "
          + ", ".join(f"{s}={v:.2f}" for s, v in ref.thresholds.items()))  # fmt: skip
    monitor = Monitor(ref)
    rng = np.random.default_rng(7)

    # PRADA's delta: at most 1% of benign streams of training digits ever flagged.
    calibration = []
    for u in range(200):
        length = int(np.exp(rng.uniform(np.log(10), np.log(450))))
        rows = data.x_train[rng.permutation(len(data.x_train))[:length]]
        calibration.append(prada_min_w(model, rows).min())
    delta = float(np.quantile(calibration, 0.01))
    print(f"PRADA delta (1% of 200 benign training streams): {delta:.4f}\n")

    seeds = np.asarray([data.x_test[data.y_test == c][0] for c in range(10)])
    attackers: dict[str, Callable[[], np.ndarray]] = {
        "uniform": lambda: simulate_extraction_queries(ATTACK_QUERIES, seed=1),
        "jacobian": lambda: jacobian_queries(model, seeds, ATTACK_QUERIES),
        "mixup": lambda: mixup_queries(data.x_test, ATTACK_QUERIES, seed=2),
        "photos": lambda: photo_queries(ATTACK_QUERIES, seed=3),
        "probing": lambda: probing_queries(data.x_test, ATTACK_QUERIES, seed=4),
    }
    print("| attacker | mlwarden flags at | copy fidelity then | PRADA flags at | "
          "copy fidelity then | fidelity at 300 | fidelity at 500 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    worst = 0
    for name, make in attackers.items():
        queries = make()
        ours = first_flag_mlwarden(monitor, model, queries)
        w = prada_min_w(model, queries)
        below = np.flatnonzero(w < delta)
        theirs = int(below[0]) + 1 if below.size else None
        worst = max(worst, ours if ours is not None else 10**9)

        def cell(at: int | None) -> tuple[str, str]:
            if at is None:
                return "not flagged", "-"
            return str(at), f"{fidelity(model, queries[:at], data.x_test):.3f}"

        o, of = cell(ours)
        p, pf = cell(theirs)
        f300 = fidelity(model, queries[:300], data.x_test)
        f500 = fidelity(model, queries, data.x_test)
        print(f"| {name} | {o} | {of} | {p} | {pf} | {f300:.3f} | {f500:.3f} |")

    flagged_ours = flagged_prada = 0
    lengths = []
    for u in range(BENIGN_USERS):
        length = int(rng.integers(10, 451))
        lengths.append(length)
        rows = data.x_test[rng.permutation(len(data.x_test))[:length]]
        flagged_ours += first_flag_mlwarden(monitor, model, rows) is not None
        flagged_prada += bool(prada_min_w(model, rows).min() < delta)
    ours_rate, prada_rate = flagged_ours / BENIGN_USERS, flagged_prada / BENIGN_USERS
    print(f"\nbenign users ever flagged ({BENIGN_USERS} users, {sum(lengths)} queries, "
          f"median length {statistics.median(lengths):.0f}): mlwarden "
          f"{ours_rate:.1%}, PRADA {prada_rate:.1%}")  # fmt: skip
    print(f"slowest attacker flagged by mlwarden at query {worst if worst < 10**9 else 'never'} "
          f"(goal <= {GOAL_QUERIES}); benign goal <= 1.0%")  # fmt: skip

    # Time per observe() of a single 64-feature request, stream signals only and with
    # feature squeezing (two extra model calls, included).
    state = monitor.new_state()
    x = data.x_test
    proba = model.predict_proba(x)
    for with_model in (False, True):
        times = []
        for i in range(2000):
            row, p = x[i % len(x)][None, :], proba[i % len(x)][None, :]
            t0 = time.perf_counter_ns()
            monitor.observe(
                state, row, p, predict_proba=model.predict_proba if with_model else None
            )
            times.append(time.perf_counter_ns() - t0)
        label = (
            "with feature squeezing (model calls included)" if with_model else "without model calls"
        )
        print(f"observe() p50 {statistics.median(times) / 1000:.0f} us, "
              f"p90 {np.quantile(times, 0.9) / 1000:.0f} us ({label})")  # fmt: skip
    print(f"stream state: {len(state.to_bytes())} bytes after {state.queries} queries (window 512)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
