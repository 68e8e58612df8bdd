"""local_target loads only through mlwarden.load: signed files in, everything else refused."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.assess import SklearnTarget, TorchTarget, evasion, is_white_box, local_target
from mlwarden.errors import IntegrityError, UntrustedSignerError, UsageError
from mlwarden.signing import sign


def _key(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_signed_sklearn_pipeline_becomes_a_white_box_target(
    tmp_path: Path, digits, digits_logreg
) -> None:
    private, public = _key(tmp_path, "owner")
    model = tmp_path / "model.joblib"
    joblib.dump(digits_logreg, model)
    sign(model, key=private, signature=model.with_name("model.joblib.sig"))
    target = local_target(model, public_key=public, value_range=(0, 16))
    assert isinstance(target, SklearnTarget) and is_white_box(target)
    result = evasion(target, digits.test_x[:50], digits.test_y[:50], epsilons=[0.0])
    assert result.robust_accuracy[0] == float(
        np.mean(digits_logreg.predict(digits.test_x[:50]) == digits.test_y[:50])
    )


def test_unsigned_or_untrusted_model_is_not_loaded(tmp_path: Path, digits_logreg) -> None:
    private, _ = _key(tmp_path, "owner")
    _, stranger = _key(tmp_path, "stranger")
    model = tmp_path / "model.joblib"
    joblib.dump(digits_logreg, model)
    sign(model, key=private, signature=model.with_name("model.joblib.sig"))
    with pytest.raises(UntrustedSignerError):
        local_target(model)
    with pytest.raises(IntegrityError) as info:
        local_target(model, public_key=stranger)
    assert info.value.code.startswith("E2")


def test_torch_weights_need_the_architecture(tmp_path: Path, digits_net) -> None:
    private, public = _key(tmp_path, "owner")
    weights = tmp_path / "net.pt"
    torch.save(digits_net.state_dict(), weights)
    sign(weights, key=private, signature=weights.with_name("net.pt.sig"))
    fresh = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with pytest.raises(UsageError, match="input_shape"):
        local_target(weights, public_key=public, module=fresh)
    target = local_target(
        weights, public_key=public, module=fresh, input_shape=(64,), value_range=(0.0, 1.0)
    )
    assert isinstance(target, TorchTarget) and target.n_classes == 10
