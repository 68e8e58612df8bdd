"""ART's side of bench/assess_vs_art.py (runs in bench/.venv-art only).

Reads the models and data that assess_vs_art.py wrote to bench/.work/assess/, runs
ART's attacks with the settings given in config.json, and writes art.json (timings,
scores) and art_adv.npz (adversarial examples, MIFace reconstructions, the stolen
copies' test predictions). The torch net is rebuilt from its state dict with the same
architecture as in assess_vs_art.py.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch

warnings.filterwarnings("ignore")

from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent  # noqa: E402
from art.attacks.extraction import CopycatCNN  # noqa: E402
from art.attacks.inference.membership_inference import (  # noqa: E402
    MembershipInferenceBlackBox,
    MembershipInferenceBlackBoxRuleBased,
    ShadowModels,
)
from art.attacks.inference.model_inversion import MIFace  # noqa: E402
from art.estimators.classification import PyTorchClassifier, SklearnClassifier  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402


def net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def wrap(module: torch.nn.Module) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(64,),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        optimizer=torch.optim.Adam(module.parameters(), lr=1e-2),
    )


def roc(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    fpr, tpr, _ = roc_curve(truth, scores)
    return {
        "auc": float(roc_auc_score(truth, scores)),
        "tpr_at_1pct": float(tpr[fpr <= 0.01].max()),
        "tpr_at_0.1pct": float(tpr[fpr <= 0.001].max()),
    }


def main() -> None:
    work = Path(sys.argv[1])
    cfg = json.loads((work / "config.json").read_text())
    torch.set_num_threads(1)  # the same as mlwarden's attacks use
    data = np.load(work / "digits.npz")
    model = net()
    model.load_state_dict(torch.load(work / "mlp.pt", weights_only=True))
    model.eval()
    clf = wrap(model)
    x, y = data["eval_x"], data["eval_y"]
    out: dict[str, object] = {}
    arrays: dict[str, np.ndarray] = {}

    for case in cfg["evasion"]:
        for label, batch in (("equal", cfg["batch_size"]), ("default", None)):
            kwargs = {} if batch is None else {"batch_size": batch}
            if case["method"] == "fgsm":
                attack = FastGradientMethod(clf, norm=case["art_norm"], eps=case["eps"], **kwargs)
            else:
                attack = ProjectedGradientDescent(
                    clf,
                    norm=case["art_norm"],
                    eps=case["eps"],
                    eps_step=case["step_size"],
                    max_iter=case["steps"],
                    num_random_init=0,
                    verbose=False,
                    **kwargs,
                )
            times = []
            for _ in range(cfg["repeats"]):
                t0 = time.perf_counter()
                adv = attack.generate(x, y=y)
                times.append(time.perf_counter() - t0)
            out[f"evasion/{case['name']}/{label}"] = {
                "seconds": statistics.median(times),
                "batch_size": attack.batch_size,
            }
            if label == "equal":
                arrays[f"adv_{case['name']}"] = adv

    forest = joblib.load(work / "forest.joblib")
    mem = np.load(work / "membership.npz")
    art_forest = SklearnClassifier(forest)
    half = len(mem["mx"]) // 2
    truth = np.r_[np.ones(len(mem["mx"]) - half), np.zeros(len(mem["nx"]) - half)]
    test_x = np.r_[mem["mx"][half:], mem["nx"][half:]]
    test_y = np.r_[mem["my"][half:], mem["ny"][half:]]
    onehot = np.eye(10)
    for kind in ("rf", "gb", "nn"):
        t0 = time.perf_counter()
        attack = MembershipInferenceBlackBox(art_forest, attack_model_type=kind)
        attack.fit(
            mem["mx"][:half], onehot[mem["my"][:half]], mem["nx"][:half], onehot[mem["ny"][:half]]
        )
        scores = attack.infer(test_x, onehot[test_y], probabilities=True).reshape(len(test_x), -1)
        out[f"membership/black-box {kind}"] = {
            **roc(truth, scores[:, -1]),
            "seconds": time.perf_counter() - t0,
        }
    t0 = time.perf_counter()
    rule = MembershipInferenceBlackBoxRuleBased(art_forest)
    pred = rule.infer(test_x, onehot[test_y]).reshape(-1)
    out["membership/rule-based"] = {**roc(truth, pred), "seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    shadows = ShadowModels(
        # ART clones a fitted template (an unfitted one has no class count).
        SklearnClassifier(RandomForestClassifier(n_estimators=100).fit(mem["rx"], mem["ry"])),
        num_shadow_models=cfg["art_shadows"],
        random_state=0,
    )
    (mx_s, my_s, mp_s), (nx_s, ny_s, np_s) = shadows.generate_shadow_dataset(
        mem["rx"], onehot[mem["ry"]]
    )
    attack = MembershipInferenceBlackBox(art_forest, attack_model_type="rf")
    attack.fit(mx_s, my_s, nx_s, ny_s, mp_s, np_s)
    scores = attack.infer(test_x, onehot[test_y], probabilities=True).reshape(len(test_x), -1)
    out[f"membership/shadow models ({cfg['art_shadows']})"] = {
        **roc(truth, scores[:, -1]),
        "seconds": time.perf_counter() - t0,
    }

    for steps in cfg["miface_steps"]:
        attack = MIFace(clf, max_iter=steps, batch_size=10, verbose=False)
        t0 = time.perf_counter()
        rec = attack.infer(np.zeros((10, 64), dtype=np.float32), y=np.arange(10))
        out[f"inversion/{steps}"] = {"seconds": time.perf_counter() - t0}
        arrays[f"miface_{steps}"] = rec

    ext = np.load(work / "extraction.npz")
    for budget in cfg["budgets"]:
        # ART's default is labels; with probabilities its PyTorchClassifier thief
        # collapses to one class here (both are reported).
        for use_probability in (False, True):
            thief = net()
            torch.manual_seed(0)
            attack = CopycatCNN(
                clf,
                batch_size_fit=64,
                batch_size_query=64,
                nb_epochs=cfg["copycat_epochs"],
                nb_stolen=budget,
                use_probability=use_probability,
            )
            t0 = time.perf_counter()
            stolen = attack.extract(ext["pool_x"][:budget], thieved_classifier=wrap(thief))
            key = f"{budget}/{'probabilities' if use_probability else 'labels'}"
            out[f"extraction/{key}"] = {"seconds": time.perf_counter() - t0}
            arrays[f"copycat_{key}"] = stolen.predict(ext["test_x"]).argmax(axis=1)

    (work / "art.json").write_text(json.dumps(out, indent=1))
    np.savez(work / "art_adv.npz", **arrays)


if __name__ == "__main__":
    main()
