"""The demo's material: real model files made by the real frameworks.

`make demo` walks the system on embedded defaults: a small scikit-learn model
on the digits data that scikit-learn ships (nothing is downloaded), saved the
ways people save models, beside one harmless malicious pickle whose payload
would only run the shell command `true`. Nothing here loads the malicious file.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.errors import MissingExtraError


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoFile:
    path: Path
    malicious: bool
    what: str


class _HarmlessPayload:
    """Pickles to `os.system("true")`: what a poisoned model would carry."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def make_demo_models(folder: Path) -> list[DemoFile]:
    """Train the demo model and write it in several formats into `folder`."""
    try:
        import joblib
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise MissingExtraError("scikit-learn", "sklearn") from None

    folder.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x_train, _, y_train, _ = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=0))
    model.fit(x_train, y_train)

    files: list[DemoFile] = []
    pickled = folder / "digits-model.pkl"
    pickled.write_bytes(pickle.dumps(model, protocol=5))
    files.append(DemoFile(path=pickled, malicious=False, what="scikit-learn pipeline, pickle"))
    dumped = folder / "digits-model.joblib"
    joblib.dump(model, dumped, compress=3)
    files.append(DemoFile(path=dumped, malicious=False, what="same model, compressed joblib"))
    files.extend(_torch_files(folder, model.named_steps["logisticregression"]))

    poisoned = folder / "digits-model-poisoned.pkl"
    poisoned.write_bytes(pickle.dumps({"model": model, "hook": _HarmlessPayload()}, protocol=4))
    files.append(
        DemoFile(path=poisoned, malicious=True, what="same model plus os.system('true') payload")
    )
    return files


def _torch_files(folder: Path, classifier: Any) -> list[DemoFile]:
    """The linear model's weights as a PyTorch state dict and as safetensors, if installed."""
    try:
        import torch
    except ImportError:
        return []
    coef = torch.tensor(classifier.coef_, dtype=torch.float32)
    intercept = torch.tensor(classifier.intercept_, dtype=torch.float32)
    layer = torch.nn.Linear(coef.shape[1], coef.shape[0])
    with torch.no_grad():
        layer.weight.copy_(coef)
        layer.bias.copy_(intercept)
    files = []
    state_path = folder / "digits-linear.pt"
    torch.save(layer.state_dict(), state_path)
    files.append(DemoFile(path=state_path, malicious=False, what="weights as a PyTorch state dict"))
    try:
        from safetensors.torch import save_file
    except ImportError:
        return files
    st_path = folder / "digits-linear.safetensors"
    save_file(dict(layer.state_dict()), str(st_path))
    files.append(DemoFile(path=st_path, malicious=False, what="weights as safetensors"))
    return files


def make_demo_key(folder: Path) -> tuple[Path, Path]:
    """An EC P-256 signing key for the demo: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / "demo-signer.pem"
    public = folder / "demo-signer.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def make_release(folder: Path, files: list[DemoFile]) -> Path:
    """Copy the benign model files into a release folder, the unit that gets signed."""
    import shutil

    release = folder / "release"
    if release.exists():
        shutil.rmtree(release)
    release.mkdir(parents=True)
    for item in files:
        if not item.malicious:
            shutil.copy2(item.path, release / item.path.name)
    return release


def digits_test_split() -> tuple[Any, Any]:
    """The demo's held-out digits (features, labels), the same split the model was trained on."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    _, x_test, _, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    return x_test, y_test
