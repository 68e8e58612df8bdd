"""A model signed by the `model-signing` package (1.1.1) loads through mlwarden.load.

model-signing runs from its own environment, .venv-interop (built by `make test`):
    python3 -m venv .venv-interop
    .venv-interop/bin/pip install model-signing==1.1.1 pyopenssl
"""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
from loading_support import KeyPair
from safetensors.numpy import save_file
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import mlwarden
from mlwarden import errors

MODEL_SIGNING = Path(__file__).resolve().parents[2] / ".venv-interop" / "bin" / "model_signing"


def model_signing_sign(target: Path, signature: Path, key: KeyPair) -> None:
    if not MODEL_SIGNING.exists():
        pytest.fail(f"{MODEL_SIGNING} is missing: build .venv-interop (make test does this)")
    done = subprocess.run(
        [str(MODEL_SIGNING), "sign", "key", str(target), "--signature", str(signature),
         "--private_key", str(key.private)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_single_file_signed_by_model_signing(tmp_path: Path, trusted: KeyPair) -> None:
    X, y = make_classification(n_samples=60, n_features=4, random_state=2)
    model = LogisticRegression().fit(X, y)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    model_signing_sign(path, tmp_path / "model.pkl.sig", trusted)
    loaded = mlwarden.load(path, public_key=trusted.public)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    path.write_bytes(pickle.dumps(LogisticRegression().fit(X, 1 - y)))
    with pytest.raises(errors.ManifestMismatchError):
        mlwarden.load(path, public_key=trusted.public)


def test_folder_signed_by_model_signing(tmp_path: Path, trusted: KeyPair) -> None:
    folder = tmp_path / "encoder"
    (folder / "weights").mkdir(parents=True)
    arrays = {"w": np.arange(8, dtype=np.float32)}
    save_file(arrays, folder / "weights" / "model.safetensors")
    (folder / "config.json").write_text("{}")
    bundle = tmp_path / "release.sig"
    model_signing_sign(folder, bundle, trusted)
    loaded = mlwarden.load(
        folder / "weights" / "model.safetensors",
        public_key=trusted.public,
        signature=bundle,
        root=folder,
        framework="numpy",
        verify_folder=True,
    )
    np.testing.assert_array_equal(loaded["w"], arrays["w"])
