"""Benchmark the data screens (mlwarden.data.screens) against cleanlab and ART.

Datasets are made here from what scikit-learn ships: digits, breast cancer, wine and a
synthetic classification set (make_classification, no built-in label noise).

- Label issues: random flips (to a uniformly chosen other class) of 5%, 10% and 20% of
  the rows. Baselines in the same run: cleanlab's `find_label_issues` over 5-fold
  out-of-fold probabilities of a logistic regression (its documented usage) and of the
  same SVC + k-NN ensemble mlwarden's first pass uses.
- Backdoors: a 70/30 stratified split; in the training part a trigger is planted in 5%
  or 10% of one source class, which is relabeled to a target class. Digits: a 2x2 or
  3x3 patch in the bottom-right corner set to the column maxima; tables: three random
  features set to their column maxima. In-range triggers: 4 pixels or 3 columns set to
  fixed values between each column's 30th and 70th percentiles (inside the normal range
  of every feature). mlwarden is not told the target, the source or the fraction.
  Baselines: ART's SpectralSignatureDefense and ActivationDefence (in bench/.venv-art,
  run by bench/setup_art.sh), told the poison fraction. Attack success:
  an SVC retrained on the cleaned training part; the share of triggered test rows of
  the source class it puts in the target class.
- Outliers, duplicates, leakage, drift: planted cases with a known answer.

Run: `bash bench/setup_art.sh && .venv/bin/python bench/data_screen.py` (from the repo
root; prints Markdown tables). Without bench/.venv-art the ART columns read "n/a".
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
warnings.filterwarnings("ignore")

from mlwarden.data.screens import (  # noqa: E402
    find_backdoors,
    find_drift,
    find_duplicates,
    find_label_issues,
    find_leakage,
    find_outliers,
)

ART_PYTHON = BENCH / ".venv-art" / "bin" / "python"


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification

    return {
        "digits": load_digits(return_X_y=True),
        "breast_cancer": load_breast_cancer(return_X_y=True),
        "wine": load_wine(return_X_y=True),
        "synthetic": make_classification(
            2000, 20, n_informative=10, n_classes=3, flip_y=0.0, random_state=0
        ),
    }


def prf(found, truth) -> tuple[float, float, float]:
    found, truth = {int(r) for r in found}, {int(r) for r in truth}
    hit = len(found & truth)
    p = hit / len(found) if found else (1.0 if not truth else 0.0)
    r = hit / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def fmt(m: tuple[float, float, float]) -> str:
    return f"{m[0]:.3f} / {m[1]:.3f} / **{m[2]:.3f}**"


def flip(y: np.ndarray, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    rows = rng.choice(len(y), round(rate * len(y)), replace=False)
    classes = np.unique(y)
    for row in rows:
        noisy[row] = rng.choice(classes[classes != y[row]])
    return noisy, rows


def bench_labels() -> list[str]:
    from cleanlab.filter import find_label_issues as cleanlab_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlwarden.data.screens.labels import out_of_fold_probabilities

    lines = [
        "| dataset | flips | mlwarden P / R / F1 | s | cleanlab (LR probs) P / R / F1 | s "
        "| cleanlab (SVC+kNN probs) P / R / F1 | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (x, y) in datasets().items():
        for rate in (0.05, 0.10, 0.20):
            noisy, truth = flip(y, rate, seed=1)
            started = time.perf_counter()
            ours = find_label_issues(x, noisy).rows
            ours_s = time.perf_counter() - started
            started = time.perf_counter()
            lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            folds = StratifiedKFold(5, shuffle=True, random_state=0)
            probs = cross_val_predict(lr, x, noisy, cv=folds, method="predict_proba")
            lr_rows = np.flatnonzero(cleanlab_issues(noisy, probs))
            lr_s = time.perf_counter() - started
            started = time.perf_counter()
            codes = np.unique(noisy, return_inverse=True)[1]
            ens = out_of_fold_probabilities(x.astype(float), codes, folds=5)
            ens_rows = np.flatnonzero(cleanlab_issues(codes, ens))
            ens_s = time.perf_counter() - started
            lines.append(
                f"| {name} | {rate:.0%} | {fmt(prf(ours, truth))} | {ours_s:.1f} "
                f"| {fmt(prf(lr_rows, truth))} | {lr_s:.1f} "
                f"| {fmt(prf(ens_rows, truth))} | {ens_s:.1f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    return lines


def trigger_features(name: str, width: int, size: int, rng) -> list[int]:
    if name == "digits":
        return [r * 8 + c for r in range(8 - size, 8) for c in range(8 - size, 8)]
    return sorted(rng.choice(width, 3, replace=False).tolist())


def in_range_trigger(name: str, x: np.ndarray, rng) -> tuple[list[int], np.ndarray]:
    """A few features (4 pixels, 3 table columns) set to fixed values drawn between each
    column's 30th and 70th percentiles: inside the normal range of every feature."""
    low, high = np.quantile(x, 0.3, axis=0), np.quantile(x, 0.7, axis=0)
    usable = np.flatnonzero(high > low)
    feats = sorted(rng.choice(usable, 4 if name == "digits" else 3, replace=False).tolist())
    values = np.array([np.quantile(x[:, f], rng.uniform(0.3, 0.7)) for f in feats])
    return feats, np.round(values) if name == "digits" else values


def attack_success(x_train, y_train, x_test, y_test, feats, source, target, values) -> float:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from sklearn.svm import SVC

    model = make_pipeline(MinMaxScaler(), SVC(C=10.0)).fit(x_train, y_train)
    triggered = x_test[y_test == source].copy()
    triggered[:, feats] = values
    return float((model.predict(triggered) == target).mean())


def bench_backdoors() -> list[str]:
    from sklearn.model_selection import train_test_split

    cases = []
    sets = datasets()
    # size: the patch's side (digits) or 3 features at their maxima (tables); 0: an
    # in-range trigger (see in_range_trigger).
    plan = [
        ("digits", 2, 0.05, 1, 7),
        ("digits", 2, 0.10, 1, 7),
        ("digits", 2, 0.10, 3, 8),
        ("digits", 2, 0.10, 0, 6),
        ("digits", 2, 0.10, 5, 9),
        ("digits", 3, 0.05, 3, 8),
        ("digits", 3, 0.10, 1, 7),
        ("digits", 3, 0.10, 5, 9),
        ("breast_cancer", 3, 0.05, 1, 0),
        ("breast_cancer", 3, 0.10, 1, 0),
        ("wine", 3, 0.10, 0, 1),
        ("synthetic", 3, 0.05, 0, 2),
        ("synthetic", 3, 0.10, 0, 2),
        ("digits", 0, 0.05, 1, 7),
        ("digits", 0, 0.10, 3, 8),
        ("digits", 0, 0.10, 0, 6),
        ("digits", 0, 0.10, 5, 9),
        ("breast_cancer", 0, 0.05, 1, 0),
        ("breast_cancer", 0, 0.10, 0, 1),
        ("synthetic", 0, 0.05, 0, 2),
        ("synthetic", 0, 0.10, 0, 2),
        ("synthetic", 0, 0.10, 1, 0),
    ]
    work = Path(tempfile.mkdtemp(prefix="data-screen-"))
    for i, (name, size, rate, source, target) in enumerate(plan):
        x, y = sets[name]
        x = x.astype(float)
        rng = np.random.default_rng(i)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=i)
        if size:
            feats = trigger_features(name, x.shape[1], size, rng)
            top = x_tr.max(axis=0)[feats]
        else:
            feats, top = in_range_trigger(name, x_tr, rng)
        members = np.flatnonzero(y_tr == source)
        poisoned = rng.choice(members, max(1, round(rate * len(members))), replace=False)
        x_p, y_p = x_tr.copy(), y_tr.copy()
        x_p[np.ix_(poisoned, feats)] = top
        y_p[poisoned] = target
        path = work / f"case{i}.npz"
        np.savez(path, x=x_p, y=y_p, fraction=rate)
        clean_asr = attack_success(x_tr, y_tr, x_te, y_te, feats, source, target, top)
        cases.append(
            (
                name,
                size,
                rate,
                source,
                target,
                x_p,
                y_p,
                x_te,
                y_te,
                feats,
                top,
                poisoned,
                path,
                clean_asr,
            )
        )
    art: dict[str, dict] = {}
    if ART_PYTHON.exists():
        run = subprocess.run(
            [str(ART_PYTHON), str(BENCH / "_art_defences.py"), *[str(c[-2]) for c in cases]],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        for line in run.stdout.splitlines():
            if line.startswith("{"):
                item = json.loads(line)
                art[item["case"]] = item
    lines = [
        "| data | trigger | poisoned | mlwarden P / R / F1 | target found | s | ASR unpoisoned "
        "| ASR none "
        "| ASR mlwarden | ART spectral P / R / F1 | ASR spectral | ART activation P / R / F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (
        name,
        size,
        rate,
        source,
        target,
        x_p,
        y_p,
        x_te,
        y_te,
        feats,
        top,
        poisoned,
        path,
        clean_asr,
    ) in cases:
        started = time.perf_counter()
        result = find_backdoors(x_p, y_p)
        took = time.perf_counter() - started
        ours = result.rows
        keep = np.setdiff1d(np.arange(len(y_p)), ours)
        asr_none = attack_success(x_p, y_p, x_te, y_te, feats, source, target, top)
        asr_ours = attack_success(x_p[keep], y_p[keep], x_te, y_te, feats, source, target, top)
        item = art.get(str(path))
        if item:
            spec = item["spectral"]
            keep_s = np.setdiff1d(np.arange(len(y_p)), spec)
            asr_spec = attack_success(
                x_p[keep_s], y_p[keep_s], x_te, y_te, feats, source, target, top
            )
            spec_txt, asr_spec_txt = fmt(prf(spec, poisoned)), f"{asr_spec:.2f}"
            act_txt = fmt(prf(item["activation"], poisoned))
        else:
            spec_txt = asr_spec_txt = act_txt = "n/a"
        if not size:
            trig = f"in-range, {len(feats)} features"
        elif name == "digits":
            trig = f"{size}x{size} patch"
        else:
            trig = f"{len(feats)} features at max"
        lines.append(
            f"| {name} {source}->{target} | {trig} | {len(poisoned)} ({rate:.0%} of class) "
            f"| {fmt(prf(ours, poisoned))} | {result.target == target} | {took:.2f} "
            f"| {clean_asr:.2f} | {asr_none:.2f} | {asr_ours:.2f} "
            f"| {spec_txt} | {asr_spec_txt} | {act_txt} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def bench_others() -> list[str]:
    x, _y = datasets()["breast_cancer"]
    rng = np.random.default_rng(7)
    x = x[rng.permutation(len(x))].astype(float)
    lines = ["| screen | planted | P / R / F1 | s |", "|---|---|---|---|"]
    # Injected points: 2% of rows replaced by points 4 standard deviations out.
    xo = x.copy()
    injected = rng.choice(len(x), 11, replace=False)
    xo[injected] = x.mean(0) + rng.choice([-1, 1], (11, x.shape[1])) * 4 * x.std(0)
    started = time.perf_counter()
    rows = find_outliers(xo).rows
    lines.append(
        f"| outliers | 11 injected rows | {fmt(prf(rows, injected))} "
        f"| {time.perf_counter() - started:.2f} |"
    )
    # Duplicates: 20 exact copies and 20 copies with 0.1% noise.
    exact = rng.choice(len(x), 20, replace=False)
    near = rng.choice(len(x), 20, replace=False)
    noisy = x[near] * (1 + rng.normal(0, 0.001, (20, x.shape[1])))
    xd = np.vstack([x, x[exact], noisy])
    truth = np.arange(len(x), len(x) + 40)
    started = time.perf_counter()
    rows = find_duplicates(xd, radius=0.05).rows
    lines.append(
        f"| duplicates | 20 exact + 20 near copies | {fmt(prf(rows, truth))} "
        f"| {time.perf_counter() - started:.2f} |"
    )
    # Leakage: 15 test rows copied into training, 15 more with 0.1% noise.
    train, test = x[:400], x[400:]
    copied = rng.choice(len(test), 30, replace=False)
    extra = test[copied].copy()
    extra[15:] *= 1 + rng.normal(0, 0.001, (15, x.shape[1]))
    started = time.perf_counter()
    rows = find_leakage(np.vstack([train, extra]), test, radius=0.05).rows
    lines.append(
        f"| leakage | 15 exact + 15 near test rows in train | "
        f"{fmt(prf(rows, np.arange(400, 430)))} | {time.perf_counter() - started:.2f} |"
    )
    # Drift: 3 of 30 features shifted by half a standard deviation.
    base, cur = x[:280].copy(), x[280:].copy()
    cur[:, [2, 11, 20]] += 0.5 * x[:, [2, 11, 20]].std(0)
    started = time.perf_counter()
    drifted = [f.feature for f in find_drift(base, cur).features]
    lines.append(
        f"| drift | 3 of 30 features shifted 0.5 sd | {fmt(prf(drifted, [2, 11, 20]))} "
        f"| {time.perf_counter() - started:.2f} |"
    )
    return lines


def main() -> None:
    only = sys.argv[1:]
    for title, part in (
        ("Label issues", bench_labels),
        ("Backdoors", bench_backdoors),
        ("Other screens", bench_others),
    ):
        if only and part.__name__ not in only:
            continue
        print(f"\n### {title}\n")
        print("\n".join(part()), flush=True)


if __name__ == "__main__":
    main()
