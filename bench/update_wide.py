"""The update gate's trigger search on wide inputs: stamping by rank-k updates against
stamping whole rows, side by side in one run.

Usage: .venv/bin/python bench/update_wide.py [--repeats 3] [--rows 100]

Digits upscaled to 28x28 (784 features, bilinear), so the inputs are images of a
realistic width. Per model (a scikit-learn LogisticRegression pipeline and a
scikit-learn MLP pipeline, 32 hidden units, both behind a StandardScaler), the old
version is trained on 70% of the training split and the new one fine-tuned on the whole
split (warm start). Each repeat runs the search of `update check` (default policy: 4
features, the canary's low, mid and high values, the lean null) twice on the same
stratified canary rows:

- "rows": the models as functions of raw rows (their exact log-softmax): every stamped
  row is copied and run through the whole network, as for any model without an array
  form;
- "rank-k": the models' array forms: the first layer's output moves by the stamped
  features' weight rows only (`_Stamper`).

Printed per model: the median seconds of each, their ratio, and whether the two found
the same shares and patterns (they must). Run time of the whole check is the search
plus well under a second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np

warnings.filterwarnings("ignore")

from scipy.ndimage import zoom  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mlwarden._dense import from_sklearn  # noqa: E402
from mlwarden.update import UpdateConfig, _stratified  # noqa: E402
from mlwarden.update._triggers import search  # noqa: E402


def _wide_digits() -> tuple[Any, ...]:
    d = load_digits()
    images = np.stack([zoom(img, 3.5, order=1) for img in d.images])  # 8x8 -> 28x28
    x = np.clip(images.reshape(len(images), -1), 0, 16)
    return tuple(train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100)
    args = parser.parse_args(argv)
    x_tr, x_te, y_tr, y_te = _wide_digits()
    x_old, _, y_old, _ = train_test_split(x_tr, y_tr, test_size=0.3, random_state=1, stratify=y_tr)
    config = UpdateConfig()
    rows = x_te[_stratified(y_te.astype(np.int64), args.rows)]
    low, high = float(x_te.min()), float(x_te.max())
    options: dict[str, Any] = {
        "classes": 10,
        "values": (low, (low + high) / 2, high),
        "max_features": config.trigger_features,
        "support": (x_te, y_te),
        "max_old_lean": config.max_old_lean,
        "lean_swing": config.old_lean_swing,
    }
    print(
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {x_tr.shape[1]} features, "
        f"{len(rows)} search rows, {args.repeats} repeats"
    )
    heads = {
        "sklearn-lr": lambda: LogisticRegression(max_iter=300, random_state=0),
        "sklearn-mlp": lambda: MLPClassifier((32,), max_iter=200, random_state=0),
    }
    for name, head in heads.items():
        old = make_pipeline(StandardScaler(), head()).fit(x_old, y_old)
        new = make_pipeline(StandardScaler(), head()).fit(x_old, y_old)
        clf = new.steps[-1][1]
        clf.set_params(warm_start=True, max_iter=30)
        clf.fit(new.steps[0][1].transform(x_tr), y_tr)
        old_form, new_form = from_sklearn(old), from_sklearn(new)
        assert old_form is not None and new_form is not None
        timed: dict[str, list[float]] = {"rows": [], "rank-k": []}
        found: dict[str, Any] = {}
        for _ in range(args.repeats):
            for label, pair in (
                ("rows", (new_form.log_proba, old_form.log_proba)),
                ("rank-k", (new_form, old_form)),
            ):
                started = time.perf_counter()
                found[label] = search(pair[0], pair[1], rows, **options)
                timed[label].append(time.perf_counter() - started)
        slow, fast = statistics.median(timed["rows"]), statistics.median(timed["rank-k"])
        same = found["rows"] == found["rank-k"]
        best = max(share for share, _ in found["rank-k"])
        print(
            f"{name:12} rows {slow:7.2f} s   rank-k {fast:6.2f} s   ratio {slow / fast:5.1f}x   "
            f"same shares and patterns: {same}   best share {best:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
