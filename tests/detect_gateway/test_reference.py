"""The reference is trusted only when signed by a trusted signer and unchanged; bad
reference data and bad fit input are refused with one clear line and a stable code."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.detect_gateway.conftest import Fitted, detect_env
from tests.gateway.support import write_ec_key

from mlwarden.cli import main
from mlwarden.errors import (
    DetectorConfigError,
    MlwardenError,
    PolicyFileError,
    ReferenceMismatchError,
    ReferenceNotTrustedError,
)
from mlwarden.signing import sign


def _copy(fitted: Fitted, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(fitted.reference, folder / "digits.ref"))


def test_unsigned_reference_refuses_to_start(tmp_path: Path, fitted: Fitted) -> None:
    ref = _copy(fitted, tmp_path / "refs")
    env = detect_env(tmp_path / "gw", fitted, responses={}, reference=ref, signature=[])
    with pytest.raises(ReferenceNotTrustedError, match="not signed") as caught:
        env.gateway()
    assert caught.value.code == "E323"


def test_changed_reference_refuses_to_start(tmp_path: Path, fitted: Fitted) -> None:
    ref = _copy(fitted, tmp_path / "refs")
    sig = sign(ref, key=fitted.models.signer_private)
    data = bytearray(ref.read_bytes())
    data[-40] ^= 0xFF
    ref.write_bytes(bytes(data))
    env = detect_env(tmp_path / "gw", fitted, responses={}, reference=ref, signature=[str(sig)])
    with pytest.raises(ReferenceNotTrustedError, match="differs from the signed digest"):
        env.gateway()


def test_reference_signed_by_an_untrusted_key_refuses(tmp_path: Path, fitted: Fitted) -> None:
    ref = _copy(fitted, tmp_path / "refs")
    private, _, _ = write_ec_key(tmp_path, "stranger")
    sig = sign(ref, key=private)
    env = detect_env(tmp_path / "gw", fitted, responses={}, reference=ref, signature=[str(sig)])
    with pytest.raises(ReferenceNotTrustedError, match="does not verify"):
        env.gateway()


def test_signed_garbage_is_refused_as_bad_reference_data(tmp_path: Path, fitted: Fitted) -> None:
    folder = tmp_path / "refs"
    folder.mkdir()
    ref = folder / "digits.ref"
    ref.write_bytes(b"PK\x03\x04 this is not an npz")
    sig = sign(ref, key=fitted.models.signer_private)
    env = detect_env(tmp_path / "gw", fitted, responses={}, reference=ref, signature=[str(sig)])
    with pytest.raises(MlwardenError) as caught:
        env.gateway()
    assert caught.value.code.startswith("E16")
    assert str(ref) in caught.value.message  # names the declared file, not a temp copy
    assert "\n" not in caught.value.one_line()


def test_reference_for_another_input_shape_is_refused(tmp_path: Path, fitted: Fitted) -> None:
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    from mlwarden.detect import fit_reference

    x, y = load_wine(return_X_y=True)
    clf = LogisticRegression(max_iter=2000).fit(x, y)
    folder = tmp_path / "refs"
    folder.mkdir()
    ref = folder / "wine.ref"
    fit_reference(x, y, predict_proba=clf.predict_proba).save(ref)
    sig = sign(ref, key=fitted.models.signer_private)
    env = detect_env(tmp_path / "gw", fitted, responses={}, reference=ref, signature=[str(sig)])
    with pytest.raises(ReferenceMismatchError, match="13 features"):
        env.gateway()


def test_config_errors_name_the_field(tmp_path: Path, fitted: Fitted) -> None:
    from mlwarden.policy import load_policy

    env = detect_env(tmp_path / "gw", fitted, responses={"adversarial": "quarantine"})
    with pytest.raises(PolicyFileError, match="not enabled"):
        load_policy(env.config)
    env = detect_env(tmp_path / "gw2", fitted, responses={"extraction": "explode"})
    with pytest.raises(PolicyFileError, match="responses"):
        load_policy(env.config)
    import json

    env = detect_env(tmp_path / "gw3", fitted, responses={})
    document = json.loads(env.config.read_text())
    document["detectors"]["models"]["nope"] = document["detectors"]["models"].pop("digits")
    env.config.write_text(json.dumps(document))
    with pytest.raises(DetectorConfigError, match="serves no model"):
        env.gateway()


def test_detect_fit_cli(tmp_path: Path, fitted: Fitted, capsys: pytest.CaptureFixture[str]) -> None:
    from mlwarden.detect import load_reference

    models = fitted.models
    data = tmp_path / "train.npz"
    np.savez(data, x=fitted.x_train[:600], y=np.arange(600) % 10)
    out = tmp_path / "digits.ref"
    code = main([
        "detect", "fit", "--model", str(models.folder / "digits.joblib"),
        "--key", str(models.signer_public), "--data", str(data),
        "--image-shape", "8x8", "--value-range", "0:16", "--out", str(out),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    reference = load_reference(out)
    assert reference.n_features == 64 and reference.n_classes == 10
    assert reference.image_shape == (8, 8)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip", "E105"),
        (None, "E105"),  # an npz without 'x'
        ("nan", "E105"),
    ],
)
def test_detect_fit_refuses_bad_data(
    tmp_path: Path,
    fitted: Fitted,
    capsys: pytest.CaptureFixture[str],
    content: bytes | str | None,
    message: str,
) -> None:
    data = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        data.write_bytes(content)
    elif content is None:
        np.savez(data, z=np.zeros(3))
    else:
        x = fitted.x_train[:50].copy()
        x[3, 3] = np.nan
        np.savez(data, x=x)
    models = fitted.models
    code = main([
        "detect", "fit", "--model", str(models.folder / "digits.joblib"),
        "--key", str(models.signer_public), "--data", str(data), "--out", str(tmp_path / "r"),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
