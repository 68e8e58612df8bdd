"""mlwarden's attacks against ART's, same models, data and settings, in one run.

    bash bench/setup_art.sh                      # bench/.venv-art: ART 1.20.1 + torch 2.13.0
    .venv/bin/python bench/assess_vs_art.py      # about 3-6 minutes on 2 cores

This process (mlwarden's .venv) trains the models and writes them with the data to
bench/.work/assess/; ART runs in bench/.venv-art as a subprocess (bench/_art_assess.py)
on exactly those files. Both sides run torch with one thread. Printed: one Markdown
table per attack, medians of `--repeats` runs for the timed evasion attacks.

- evasion: FGSM and PGD (L-inf, L2) on a torch MLP (64-128-10) on digits scaled to
  [0, 1]; no random start, so the adversarial examples must be the same; ART at the
  same batch size and at its default one; and mlwarden's black-box attacks (Square on
  scores, RayS on labels only) beside its PGD;
- membership: an overfit random forest (100 trees, digits): members are its training
  set, non-members held out; ART's attacks are fitted on one half of both and every
  attack is scored on the other half;
- inversion: class reconstructions of the MLP, judged by the same independent k-NN;
- extraction: fidelity of copies against queries (ART's CopycatCNN beside mlwarden's
  strategies), and the closed loop: the same attacks against label-only output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

from mlwarden.assess import (
    SklearnTarget,
    TorchTarget,
    as_label_only,
    evasion,
    extraction,
    inversion,
    membership,
)
from mlwarden.assess.attacks import adversarial_examples, recognised_by_independent

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work" / "assess"
ART_PYTHON = BENCH / ".venv-art" / "bin" / "python"

EVASION = (
    {"name": "FGSM L-inf eps 0.1", "method": "fgsm", "norm": "linf", "art_norm": "inf",
     "eps": 0.1, "steps": 1, "step_size": 0.1},
    {"name": "PGD L-inf eps 0.1, 40 steps", "method": "pgd", "norm": "linf", "art_norm": "inf",
     "eps": 0.1, "steps": 40, "step_size": 0.01},
    {"name": "PGD L2 eps 1.0, 40 steps", "method": "pgd", "norm": "l2", "art_norm": 2,
     "eps": 1.0, "steps": 40, "step_size": 0.1},
)  # fmt: skip


def net() -> torch.nn.Module:
    """The same architecture as bench/_art_assess.py builds."""
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def prepare(work: Path) -> dict[str, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int64)
    third = len(x) // 3
    d = {
        "train_x": x[:third], "train_y": y[:third],
        "eval_x": x[third : 2 * third], "eval_y": y[third : 2 * third],
        "ref_x": x[2 * third :], "ref_y": y[2 * third :],
    }  # fmt: skip
    np.savez(work / "digits.npz", **d)
    torch.manual_seed(0)
    model = net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tx, ty = torch.from_numpy(d["train_x"]), torch.from_numpy(d["train_y"])
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(tx), ty).backward()  # type: ignore[no-untyped-call]
        opt.step()
    torch.save(model.state_dict(), work / "mlp.pt")
    forest = RandomForestClassifier(n_estimators=100, random_state=0)
    forest.fit(d["train_x"], d["train_y"])
    joblib.dump(forest, work / "forest.joblib")
    np.savez(
        work / "membership.npz",
        mx=d["train_x"], my=d["train_y"], nx=d["eval_x"], ny=d["eval_y"],
        rx=d["ref_x"], ry=d["ref_y"],
    )  # fmt: skip
    np.savez(work / "extraction.npz", pool_x=d["ref_x"], test_x=d["eval_x"])
    return d


def load_net(work: Path) -> TorchTarget:
    model = net()
    model.load_state_dict(torch.load(work / "mlp.pt", weights_only=True))
    return TorchTarget(model, input_shape=(64,), value_range=(0.0, 1.0), name="mlp")


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--shadows", type=int, default=32)
    parser.add_argument("--miface-steps", default="500,5000")
    parser.add_argument("--budgets", default="100,250,500")
    args = parser.parse_args()
    torch.set_num_threads(1)
    WORK.mkdir(parents=True, exist_ok=True)
    d = prepare(WORK)
    budgets = [int(b) for b in args.budgets.split(",")]
    cfg = {
        "evasion": list(EVASION),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "art_shadows": 3,
        "miface_steps": [int(s) for s in args.miface_steps.split(",")],
        "budgets": budgets,
        "copycat_epochs": 50,
    }
    (WORK / "config.json").write_text(json.dumps(cfg))
    if not ART_PYTHON.exists():
        sys.exit("bench/.venv-art is missing: run bash bench/setup_art.sh first")
    art_started = time.perf_counter()
    subprocess.run(
        [str(ART_PYTHON), str(BENCH / "_art_assess.py"), str(WORK)], check=True, timeout=3600
    )
    print(f"(ART side: {time.perf_counter() - art_started:.0f} s)", file=sys.stderr)
    art = json.loads((WORK / "art.json").read_text())
    art_arrays = np.load(WORK / "art_adv.npz")
    target = load_net(WORK)
    x, y = d["eval_x"], d["eval_y"]

    rows = []
    for case in EVASION:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            adv = adversarial_examples(
                target, x, y, eps=case["eps"], norm=case["norm"], method=case["method"],
                steps=case["steps"], step_size=case["step_size"], batch_size=args.batch_size,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
        ours = statistics.median(times)
        theirs = art_arrays[f"adv_{case['name']}"]
        acc_ours = float(np.mean(target.predict_labels(adv) == y))
        acc_art = float(np.mean(target.predict_labels(theirs) == y))
        same = float(np.mean(np.all(adv == theirs, axis=1)))
        eq = art[f"evasion/{case['name']}/equal"]
        de = art[f"evasion/{case['name']}/default"]
        rows.append([
            case["name"], f"{acc_ours:.4f}", f"{acc_art:.4f}", f"{same:.1%}",
            f"{float(np.abs(adv - theirs).max()):.1e}", f"{ours:.3f}",
            f"{eq['seconds']:.3f} ({eq['seconds'] / ours:.1f}x)",
            f"{de['seconds']:.3f} ({de['seconds'] / ours:.1f}x, batch {de['batch_size']})",
        ])  # fmt: skip
    table(
        f"Evasion: torch MLP on digits, {len(x)} samples, batch {args.batch_size}, "
        f"median of {args.repeats}",
        ["attack", "robust acc mlwarden", "robust acc ART", "identical rows", "max abs diff",
         "mlwarden s", "ART s (ratio)", "ART default batch s (ratio)"],
        rows,
    )  # fmt: skip

    rows = []
    sub_x, sub_y = x[:100], y[:100]
    for label, tgt, method in (
        ("PGD, white-box", load_net(WORK), "pgd"),
        ("Square, scores only", load_net(WORK), "square"),
        ("RayS, labels only", as_label_only(load_net(WORK)), "rays"),
    ):
        r = evasion(tgt, sub_x, sub_y, epsilons=[0, 0.05, 0.1, 0.2], method=method)
        rows.append([label, *(f"{a:.2f}" for a in r.robust_accuracy), str(r.queries),
                     f"{r.seconds:.1f}"])  # fmt: skip
    table(
        "Evasion without gradients (mlwarden only): the MLP, 100 samples, L-inf",
        ["attack", "eps 0", "eps 0.05", "eps 0.1", "eps 0.2", "queries", "s"],
        rows,
    )

    forest = joblib.load(WORK / "forest.joblib")
    half = len(d["train_x"]) // 2
    mem_args = (d["train_x"][half:], d["train_y"][half:], d["eval_x"][half:], d["eval_y"][half:])
    rows = []
    for name, tgt, method, shadows in (
        ("mlwarden LiRA", SklearnTarget(forest), "lira", args.shadows),
        ("mlwarden LiRA", SklearnTarget(forest), "lira", 16),
        ("mlwarden loss threshold", SklearnTarget(forest), "loss", 0),
        ("mlwarden confidence", SklearnTarget(forest), "confidence", 0),
        ("mlwarden best, labels only", as_label_only(SklearnTarget(forest)), "best", 0),
    ):
        r = membership(
            tgt, *mem_args, reference_x=d["ref_x"], reference_y=d["ref_y"],
            shadows=max(shadows, 2), method=method,
            shadow_model=lambda: RandomForestClassifier(n_estimators=100),
        )  # fmt: skip
        label = f"{name} ({shadows} shadows)" if method == "lira" else name
        rows.append([label, f"{r.auc:.3f}", f"{r.tpr_at_fpr[0.01]:.3f}",
                     f"{r.tpr_at_fpr[0.001]:.3f}", f"{r.seconds:.1f}"])  # fmt: skip
    for key, v in art.items():
        if key.startswith("membership/"):
            rows.append([f"ART {key.split('/', 1)[1]}", f"{v['auc']:.3f}",
                         f"{v['tpr_at_1pct']:.3f}", f"{v['tpr_at_0.1pct']:.3f}",
                         f"{v['seconds']:.1f}"])  # fmt: skip
    table(
        f"Membership: random forest (100 trees) on digits, {len(mem_args[0])} members vs "
        f"{len(mem_args[2])} non-members (held-out halves)",
        ["attack", "AUC", "TPR @ 1% FPR", "TPR @ 0.1% FPR", "s"],
        rows,
    )

    rows = []
    r = inversion(target, reference_x=d["ref_x"], reference_y=d["ref_y"])
    ours_s = r.seconds
    rows.append(["mlwarden", f"{r.recognised_count}/10", f"{np.mean(r.similarity):.2f}",
                 f"max {max(r.steps)}", f"{r.seconds:.2f}"])  # fmt: skip
    from mlwarden.assess.attacks._inversion import _similarity

    for steps in cfg["miface_steps"]:
        rec = art_arrays[f"miface_{steps}"]
        ok, _ = recognised_by_independent(rec, list(range(10)), d["ref_x"], d["ref_y"])
        sim = _similarity(rec, list(range(10)), d["ref_x"], d["ref_y"])
        secs = art[f"inversion/{steps}"]["seconds"]
        rows.append(["ART MIFace", f"{sum(ok)}/10", f"{np.mean(sim):.2f}", str(steps),
                     f"{secs:.2f} (mlwarden takes {ours_s / secs:.1%})"])  # fmt: skip
    table(
        "Inversion: class reconstructions of the MLP, judged by a k-NN on the reference data",
        ["attack", "recognised", "mean corr. with class mean", "steps", "s"],
        rows,
    )

    rows = []
    target_test = target.predict_labels(x)
    for kind in ("labels", "probabilities"):
        for budget in budgets:
            pred = art_arrays[f"copycat_{budget}/{kind}"]
            secs = art[f"extraction/{budget}/{kind}"]["seconds"]
            rows.append([f"ART CopycatCNN ({kind})", str(budget),
                         f"{np.mean(pred == target_test):.3f}", f"{np.mean(pred == y):.3f}",
                         f"{secs:.1f}"])  # fmt: skip
    for tgt in (load_net(WORK), as_label_only(load_net(WORK))):
        res = extraction(tgt, d["ref_x"], test_x=x, test_y=y, budgets=budgets)
        for strategy, curve in res.curves.items():
            for b, f, a in zip(res.budgets, curve.fidelity, curve.accuracy, strict=True):
                who = "mlwarden" + (", labels only" if tgt.output == "labels" else "")
                secs = f"{curve.seconds:.1f} (curve)" if b == budgets[-1] else ""
                rows.append([f"{who} {strategy}", str(b), f"{f:.3f}", f"{a:.3f}", secs])
    table(
        "Extraction: copies of the MLP from queries on held-out digits (pool: reference data)",
        ["attack", "queries", "fidelity", "accuracy", "s"],
        rows,
    )


if __name__ == "__main__":
    main()
