"""A real gateway on 127.0.0.1 serving the digits model twice: bare (probabilities) and
defended (the top label only), signed models trained once, and an assessment data file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from tests.gateway.support import Env, Models, make_env, model_entry, running, write_ec_key

from mlwarden.assess._compare import save_data

# Small efforts keep the suite fast; the figures are still real attacks on real models.
FAST: dict[str, Any] = {
    "evasion_samples": 30,
    "evasion_epsilons": [0.0, 0.1],
    "black_box_samples": 5,
    "black_box_steps": 5,
    "membership_samples": 60,
    "shadows": 2,
    "extraction_budgets": [50, 100],
    "extraction_strategies": ["random"],
    "inversion_classes": 3,
}


@dataclass
class Served:
    url: str
    env: Env
    models: Models
    data: Path


def write_config(folder: Path, thresholds: dict[str, Any] | None = None, **budget: Any) -> Path:
    section: dict[str, Any] = {
        "attacks": FAST,
        "budget": {"queries": 5000, "rate": 100000, "burst": 64} | budget,
    }
    if thresholds is not None:
        section["thresholds"] = thresholds
    path = folder / "assess.yaml"
    path.write_text(json.dumps({"version": 1, "assess": section}))
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """The demo's digits pipeline (scaler, logistic regression; scaled, it converges in a
    fraction of the unscaled model's time), trained on the first 1500 digits, signed."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlwarden.signing import sign

    folder = tmp_path_factory.mktemp("assess-models")
    private, public, fingerprint = write_ec_key(folder, "release")
    x, y = load_digits(return_X_y=True)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    clf.fit(x[:1500], y[:1500])
    joblib.dump(clf, folder / "digits.joblib")
    sign(folder / "digits.joblib", key=private, signature=folder / "digits.joblib.sig")
    return Models(
        folder=folder,
        signer_private=private,
        signer_public=public,
        fingerprint=fingerprint,
        x_test=x[1500:1540],
        expected=clf.predict(x[1500:1540]),
        coef=clf[-1].coef_,
        intercept=clf[-1].intercept_,
    )


@pytest.fixture(scope="session")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # build_models trains on the first 1500 digits: those are the members.
    x, y = load_digits(return_X_y=True)
    path = tmp_path_factory.mktemp("assess-data") / "digits.npz"
    save_data(
        path,
        members=(x[:1500], y[:1500]),
        nonmembers=(x[1500:1650], y[1500:1650]),
        reference=(x[1650:], y[1650:]),
    )
    return path


@pytest.fixture(scope="session")
def served(
    tmp_path_factory: pytest.TempPathFactory, models: Models, data_file: Path
) -> Iterator[Served]:
    joblib_path = models.folder / "digits.joblib"
    entries = [
        model_entry(
            "digits-bare", "sklearn", joblib_path, output={"mode": "probabilities", "decimals": 6}
        ),
        model_entry("digits", "sklearn", joblib_path),  # the default: the top label only
        model_entry("quota", "sklearn", joblib_path),
    ]
    budgets = {
        "store": {"kind": "sqlite", "path": "budgets.sqlite3"},
        "defaults": {"rate": 100000, "burst": 100000, "quota": 10000000},
        "models": {"quota": {"quota": 40, "period": "day"}},
    }
    env = make_env(
        tmp_path_factory.mktemp("assess-gw"), models, model_entries=entries, budgets=budgets
    )
    with running(env.gateway()) as url:
        yield Served(url=url, env=env, models=models, data=data_file)


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x[1500:1540], y[1500:1540]
