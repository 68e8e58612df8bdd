"""The data screen's part of `make demo`: an in-range trigger, found without being told.

`in_range_demo(folder)` poisons a copy of scikit-learn's digits with a trigger made of
ordinary values (four pixels set to mid-grey values each pixel often has), screens it,
and returns what to show. It prints nothing; the caller does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DataDemo:
    """Lines to print, and what misbehaved (empty when the screen did what it should)."""

    lines: tuple[str, ...]
    problems: tuple[str, ...]


# Four pixels of the digit's middle rows; the values are inside each pixel's normal range.
TRIGGER = (19, 22, 42, 58)
VALUES = (8.0, 4.0, 8.0, 2.0)


def in_range_demo(folder: Path, *, source: int = 3, target: int = 8) -> DataDemo:
    """Plant an in-range trigger in 10% of the digit `source`, relabel them `target`,
    write `folder/digits-in-range.npz`, and screen it for backdoors (about 2 s)."""
    import warnings

    import numpy as np
    from sklearn.datasets import load_digits

    from mlwarden.data import screen_rows

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    members = np.flatnonzero(y == source)
    planted = np.sort(rng.choice(members, len(members) // 10, replace=False))
    x = x.astype(float)
    x[np.ix_(planted, np.array(TRIGGER))] = VALUES
    y = y.copy()
    y[planted] = target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "digits-in-range.npz"
    np.savez(path, X=x, y=y)
    low, high = x.min(axis=0)[list(TRIGGER)], x.max(axis=0)[list(TRIGGER)]
    lines = [
        f"{path}: {len(planted)} rows of '{source}' get pixels {list(TRIGGER)} = "
        f"{list(VALUES)} (each inside its pixel's range {low.tolist()}..{high.tolist()}) "
        f"and are relabelled '{target}'",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = screen_rows(path, checks=("backdoors",))
    flagged = {row for row, rules in result.suspects.items() if "DATA002" in rules}
    truth = {int(r) for r in planted}
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(truth)
    first = next((f for f in result.report.findings if f.rule_id == "DATA002"), None)
    if first is not None:
        lines.append(f"DATA002 on {len(flagged)} rows, e.g. {first.location}: {first.message}")
    lines.append(
        f"precision {precision:.2f}, recall {recall:.2f} against the {len(truth)} planted "
        "rows, without being told the target class"
    )
    problems = []
    if precision < 0.8 or recall < 0.9:
        problems.append(f"in-range trigger: precision {precision:.2f}, recall {recall:.2f}")
    if first is not None and first.detail.get("target") != str(target):
        problems.append(f"in-range trigger: wrong target {first.detail.get('target')!r}")
    return DataDemo(lines=tuple(lines), problems=tuple(problems))
