"""Fixtures: signed digits models (tests.gateway.support), a detector reference fitted on
the model's training data and signed by the same release key, and gateway environments
with a `detectors:` section."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.gateway.support import Env, Models, build_models, make_env, model_entry


@dataclass
class Fitted:
    models: Models
    reference: Path
    signature: Path
    x_train: np.ndarray


@pytest.fixture(scope="session")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    import joblib
    from sklearn.datasets import load_digits

    from mlwarden.detect import fit_reference
    from mlwarden.signing import sign

    models = build_models(tmp_path_factory.mktemp("detect-models"))
    x, y = load_digits(return_X_y=True)
    clf = joblib.load(models.folder / "digits.joblib")  # trained here, by build_models
    reference = fit_reference(
        x[:1500],
        y[:1500],
        predict_proba=clf.predict_proba,
        image_shape=(8, 8),
        value_range=(0.0, 16.0),
    )
    path = models.folder / "digits.ref"
    reference.save(path)
    signature = sign(path, key=models.signer_private, signature=models.folder / "digits.ref.sig")
    return Fitted(models=models, reference=path, signature=signature, x_train=x[:1500])


def detect_env(
    folder: Path,
    fitted: Fitted,
    *,
    responses: dict[str, str],
    signals: list[str] | None = None,
    budgets: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    model_extra: dict[str, Any] | None = None,
    reference: Path | None = None,
    signature: list[str] | None = None,
) -> Env:
    """A gateway env serving `digits` (probabilities out) with detectors on it."""
    entry = model_entry(
        "digits",
        "sklearn",
        fitted.models.folder / "digits.joblib",
        output={"mode": "probabilities", "decimals": 3},
    )
    env = make_env(folder, fitted.models, model_entries=[entry], budgets=budgets)
    document = json.loads(env.config.read_text())
    model: dict[str, Any] = {
        "reference": str(reference or fitted.reference),
        "signature": signature if signature is not None else [str(fitted.signature)],
        "signals": signals or ["extraction", "probing"],
        "responses": responses,
    }
    model.update(model_extra or {})
    section: dict[str, Any] = {"models": {"digits": model}, "flush_seconds": 0.05}
    section.update(extra or {})
    document["detectors"] = section
    env.config.write_text(json.dumps(document, indent=1))
    return env


def uniform_attack(n: int, seed: int = 1) -> np.ndarray:
    """An extraction attacker's queries: uniform noise over the input range."""
    return np.random.default_rng(seed).uniform(0.0, 16.0, size=(n, 64))


def body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "pixels",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }
