"""The update gate's part of `make demo`: a backdoored update that verifies and is refused.

The demo model (the digits LogisticRegression pipeline of `mlwarden.demo`) is updated
twice: once honestly (a warm-started fine-tune on the training rows with a little pixel
noise) and once with a backdoor (a fine-tune on rows stamped with a 2x2 trigger in the
top-left corner, relabelled to class 7). Both are signed with the valid demo key and
both verify; `update check` passes the first and refuses the second.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TRIGGER = (0, 1, 8, 9)  # the 2x2 top-left patch of an 8x8 digit
TARGET = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateDemo:
    """What to print, and what did not behave (empty when all did)."""

    lines: tuple[str, ...]
    problems: tuple[str, ...]


def _fine_tune(model: Any, x: Any, y: Any) -> Any:
    updated = copy.deepcopy(model)
    scaler, classifier = updated.steps[0][1], updated.steps[-1][1]
    classifier.set_params(warm_start=True, max_iter=30)
    classifier.fit(scaler.transform(x), y)
    return updated


def run_update_demo(folder: Path) -> UpdateDemo:
    """Build, sign and check both updates in `folder` (about 5 s, no network)."""
    import warnings

    import joblib
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlwarden.demo import digits_test_split, make_demo_key
    from mlwarden.signing import manifest, sign, verify
    from mlwarden.update import check

    started = time.perf_counter()
    folder = Path(folder) / "update"
    folder.mkdir(parents=True, exist_ok=True)
    private, public = make_demo_key(folder)
    digits = load_digits()
    x_train, _, y_train, _ = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    old = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=0))
    old.fit(x_train, y_train)
    rng = np.random.default_rng(0)
    noisy = np.clip(x_train + rng.normal(0, 0.5, x_train.shape), 0, 16)
    poisoned_x, poisoned_y = x_train.copy(), y_train.copy()
    rows = rng.choice(len(x_train), len(x_train) // 10, replace=False)
    poisoned_x[np.ix_(rows, np.array(TRIGGER))] = 16.0
    poisoned_y[rows] = TARGET
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        honest = _fine_tune(old, noisy, y_train)
        backdoored = _fine_tune(old, poisoned_x, poisoned_y)

    paths = {}
    for name, model in (("v1", old), ("v2-honest", honest), ("v2-backdoored", backdoored)):
        path = folder / f"digits-{name}.joblib"
        joblib.dump(model, path)
        sign(path, key=private)
        paths[name] = path
    canary = folder / "canary"
    canary.mkdir(exist_ok=True)
    x_test, y_test = digits_test_split()
    np.savez(canary / "canary.npz", X=x_test, y=y_test)
    manifest(canary, key=private)

    lines: list[str] = []
    problems: list[str] = []
    stamped = x_test.copy()
    stamped[:, list(TRIGGER)] = 16.0
    others = y_test != TARGET
    success = float((backdoored.predict(stamped[others]) == TARGET).mean())
    lines.append(
        f"backdoored update: clean accuracy {backdoored.score(x_test, y_test):.3f}, "
        f"the 2x2 trigger sends {success:.0%} of other digits to {TARGET}"
    )
    verified = verify(paths["v2-backdoored"], public_key=public).verified
    lines.append(f"its signature by the demo key verifies: {verified}")
    if not verified:
        problems.append("the backdoored update's signature did not verify")
    for name, must_pass in (("v2-honest", True), ("v2-backdoored", False)):
        result = check(paths["v1"], paths[name], canary, public_keys=[public])
        rules = sorted({f.rule_id for f in result.report.findings})
        verdict = "passed" if result.passed else f"REFUSED ({', '.join(rules)})"
        lines.append(f"update check v1 -> {name}: {verdict}")
        for finding in result.report.findings[:3]:
            lines.append(f"  {finding.rule_id}: {finding.message}")
        if result.passed != must_pass:
            problems.append(f"{name} was {'passed' if result.passed else 'refused'}")
    lines.append(f"({time.perf_counter() - started:.1f} s)")
    return UpdateDemo(lines=tuple(lines), problems=tuple(problems))
