"""Query streams for demos and tests, on scikit-learn's bundled 8x8 digits (no download).

`benign_queries` replays held-out digits the way an ordinary caller would;
`simulate_extraction_queries` is the classic model-extraction opener: uniform random
inputs over the feature range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

TEST_SHARE = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class Digits:
    """The digits scaled to [0, 1], split into a training and a test part (seeded)."""

    x_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.int64]


def digits(seed: int = 0) -> Digits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = np.asarray(data.data, dtype=np.float64) / 16.0
    y = np.asarray(data.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_SHARE, random_state=seed, stratify=y
    )
    return Digits(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)


def benign_queries(
    n: int, seed: int = 0, *, pool: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """`n` queries of an ordinary caller: distinct held-out samples in random order.

    `pool` defaults to the digits test split; `n` may not exceed its size.
    """
    rows = digits().x_test if pool is None else pool
    if not 0 < n <= rows.shape[0]:
        raise ValueError(f"n must be between 1 and {rows.shape[0]}")
    rng = np.random.default_rng(seed)
    out: NDArray[np.float64] = rows[rng.permutation(rows.shape[0])[:n]]
    return out


def simulate_extraction_queries(
    n: int, seed: int = 0, *, n_features: int = 64, value_range: tuple[float, float] = (0.0, 1.0)
) -> NDArray[np.float64]:
    """`n` uniform random queries over the feature range: a model-extraction attacker's."""
    if n < 1:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    out: NDArray[np.float64] = rng.uniform(value_range[0], value_range[1], size=(n, n_features))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectDemo:
    """The detectors' demo part: lines to print, and what misbehaved (empty: all fine)."""

    lines: tuple[str, ...]
    problems: tuple[str, ...]


def detect_demo(workdir: Path, *, seed: int = 0) -> DetectDemo:
    """Fit a reference for a digits model, save and reload it, then replay two callers.

    An ordinary caller sends 200 test digits; an extraction attacker sends uniform random
    queries. Expected: the attacker is flagged within a few queries, the caller never.
    Writes `workdir/digits.detect.npz`. About 2 s, no network.
    """
    from sklearn.linear_model import LogisticRegression

    from mlwarden.detect._monitor import Monitor
    from mlwarden.detect._reference import fit_reference, load_reference
    from mlwarden.detect._signal import Signal

    data = digits(seed)
    model = LogisticRegression(max_iter=3000).fit(data.x_train, data.y_train)
    reference = fit_reference(
        data.x_train,
        data.y_train,
        predict_proba=model.predict_proba,
        image_shape=(8, 8),
        value_range=(0.0, 1.0),
        seed=seed,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "digits.detect.npz"
    reference.save(path)
    monitor = Monitor(load_reference(path))
    lines = [
        f"detector reference: {path.name} ({path.stat().st_size // 1024} KiB), thresholds "
        + ", ".join(f"{s}={v:.1f}" for s, v in reference.thresholds.items())
    ]
    problems = []
    stream_signals = {Signal.EXTRACTION, Signal.PROBING}
    for who, queries in (
        ("ordinary caller", benign_queries(200, seed, pool=data.x_test)),
        ("extraction attacker", simulate_extraction_queries(200, seed)),
    ):
        state = monitor.new_state()
        proba = model.predict_proba(queries)
        flagged_at: int | None = None
        raised: frozenset[Signal] = frozenset()
        for i in range(len(queries)):
            seen = monitor.observe(state, queries[i : i + 1], proba[i : i + 1])
            if seen.flagged & stream_signals and flagged_at is None:
                flagged_at, raised = i + 1, seen.flagged & stream_signals
        if flagged_at is None:
            lines.append(f"{who}: {len(queries)} queries, not flagged")
        else:
            names = ", ".join(sorted(str(s) for s in raised))
            lines.append(f"{who}: flagged ({names}) at query {flagged_at} of {len(queries)}")
        attacker = who.startswith("extraction")
        if attacker and (flagged_at is None or flagged_at > 50):
            problems.append(
                f"the extraction attacker was not flagged within 50 queries ({flagged_at})"
            )
        if not attacker and flagged_at is not None:
            problems.append(f"the ordinary caller was flagged at query {flagged_at}")
    return DetectDemo(lines=tuple(lines), problems=tuple(problems))
