"""Screening in representation space: a verified model's, or a function the user names."""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from mlwarden.cli import main
from mlwarden.data import import_embedding, model_embedding, screen_rows
from mlwarden.data._represent import represent
from mlwarden.errors import (
    EmbeddingFailedError,
    EmbeddingShapeError,
    EmbeddingValueError,
    EmbedSpecError,
    NoRepresentationError,
)
from mlwarden.signing import sign

from .screens._poison import flip_labels


def test_sklearn_mlp_gives_its_hidden_layer() -> None:
    x, y = load_wine(return_X_y=True)
    model = make_pipeline(MinMaxScaler(), MLPClassifier((16,), max_iter=300, random_state=0))
    model.fit(x, y)
    out = represent(model_embedding(model), x.astype(float))
    mlp = model[-1]
    expected = np.maximum(model[0].transform(x) @ mlp.coefs_[0] + mlp.intercepts_[0], 0)
    assert out.shape == (len(x), 16)
    np.testing.assert_allclose(out, expected)


def test_torch_state_dict_runs_as_the_mlp_it_describes() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(13, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5), torch.nn.ReLU()
    )
    head = torch.nn.Linear(5, 3)
    state = {**net.state_dict(), "4.weight": head.weight, "4.bias": head.bias}
    x = np.random.default_rng(0).normal(size=(7, 13))
    out = represent(model_embedding(state), x)
    with torch.no_grad():
        expected = net(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_other_estimators_give_probabilities() -> None:
    x, y = load_wine(return_X_y=True)
    model = make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    out = represent(model_embedding(model), x.astype(float))
    np.testing.assert_allclose(out, model.predict_proba(x))


@pytest.mark.parametrize(
    ("embed", "error"),
    [
        (lambda x: x[:-1], EmbeddingShapeError),
        (lambda x: np.zeros((len(x), 0)), EmbeddingShapeError),
        (lambda x: np.full(x.shape, np.nan), EmbeddingValueError),
        (lambda x: [["a"] * x.shape[1]] * len(x), EmbeddingValueError),
        (lambda x: 1 / 0, EmbeddingFailedError),
    ],
)
def test_bad_representations_are_refused(embed, error) -> None:
    with pytest.raises(error) as raised:
        represent(embed, np.ones((5, 3)))
    assert raised.value.code in {"E145", "E146", "E147"}


def test_models_without_a_representation_are_refused() -> None:
    with pytest.raises(NoRepresentationError):
        model_embedding(object())
    with pytest.raises(NoRepresentationError):
        model_embedding({"conv.weight": np.ones((4, 3, 3, 3)), "conv.bias": np.ones(4)})
    with pytest.raises(NoRepresentationError):  # layers that do not chain
        model_embedding({"a.weight": np.ones((4, 3)), "b.weight": np.ones((2, 5))})
    embed = model_embedding({"a.weight": np.ones((4, 3)), "b.weight": np.ones((2, 4))})
    with pytest.raises(NoRepresentationError):  # the model takes 3 features, not 2
        represent(embed, np.ones((5, 2)))


@pytest.mark.parametrize(
    "spec", ["nocolon", "no_such_module_xyz:f", "json:no_such", "json:__doc__"]
)
def test_bad_embed_specs_are_refused(spec: str) -> None:
    with pytest.raises(EmbedSpecError):
        import_embedding(spec)


def _noisy_wine(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_wine(return_X_y=True)
    noisy, flipped = flip_labels(y, 0.10)
    path = tmp_path / "wine.npz"
    np.savez(path, X=x, y=noisy)
    return path, x, y, flipped


def test_screen_rows_runs_the_label_screen_in_the_embedding(tmp_path: Path) -> None:
    path, x, _y, flipped = _noisy_wine(tmp_path)
    # A representation that hides the classes (every row maps to noise) cannot tell the
    # flips from the rest; one that keeps them (the features, rescaled) finds them.
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(x), 8))
    hidden = screen_rows(path, checks=("labels",), embed=lambda f: noise)
    kept = screen_rows(path, checks=("labels",), embed=lambda f: (f - x.min(0)) / np.ptp(x, 0))
    found = {r for r, rules in kept.suspects.items() if "DATA001" in rules}
    lost = {r for r, rules in hidden.suspects.items() if "DATA001" in rules}
    truth = set(flipped.tolist())
    assert len(found & truth) >= 0.9 * len(truth)
    assert len(found - truth) <= 0.1 * len(found)
    assert len(lost & truth) < 0.5 * len(lost)


def test_cli_model_is_loaded_only_when_verified(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    path, x, y, flipped = _noisy_wine(tmp_path)
    model = make_pipeline(MinMaxScaler(), MLPClassifier((32,), max_iter=300, random_state=0))
    model.fit(x, y)
    file = tmp_path / "mlp.joblib"
    joblib.dump(model, file)
    args = ["data", "screen", str(path), "--checks", "labels", "--format", "json"]
    # Unsigned: refused (E208) before a byte is deserialized; no key, no trust: refused.
    assert main([*args, "--model", str(file), "--model-key", str(public)]) == 1
    refused = capsys.readouterr()
    assert "E208" in refused.err
    assert refused.out == ""
    assert main([*args, "--model", str(file)]) == 2
    capsys.readouterr()
    sign(file, key=private, signature=file.with_name("mlp.joblib.sig"))
    assert main([*args, "--model", str(file), "--model-key", str(public)]) == 1
    out = capsys.readouterr().out
    assert '"DATA001"' in out
    assert out.count('"DATA001"') >= 0.9 * len(flipped)


def test_cli_embed_runs_the_named_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _x, _y, _flipped = _noisy_wine(tmp_path)
    (tmp_path / "my_embed.py").write_text(
        "import numpy as np\n\n"
        "def scaled(x):\n    return x / x.max(axis=0)\n\n"
        "def wrong(x):\n    return np.ones((3, 2))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["data", "screen", str(path), "--checks", "labels", "--format", "json"]
    assert main([*args, "--embed", "my_embed:scaled"]) == 1
    assert main([*args, "--embed", "my_embed:wrong"]) == 2
    assert "E145" in capsys.readouterr().err
    assert main([*args, "--embed", "my_embed:missing"]) == 2
    assert main([*args, "--embed", "my_embed:scaled", "--model", str(path)]) == 2
    sys.modules.pop("my_embed", None)


def test_backdoor_screen_runs_in_the_embedding(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    from .screens._poison import corner, plant_patch

    x, y = load_digits(return_X_y=True)
    xp, yp, poisoned = plant_patch(x, y, features=corner(2), source=1, target=7, rate=0.10)
    path = tmp_path / "digits.npz"
    np.savez(path, X=xp, y=yp)
    # The representation reverses the pixel order: the trigger is found on the
    # representation's dimensions, and named as such.
    result = screen_rows(path, checks=("backdoors",), embed=lambda f: f[:, ::-1] / 16.0)
    flagged = {r for r, rules in result.suspects.items() if "DATA002" in rules}
    assert flagged == set(poisoned.tolist())
    finding = next(f for f in result.report.findings if f.rule_id == "DATA002")
    assert set(finding.detail["trigger"].split(",")) <= {f"dim{63 - c}" for c in corner(2)}
