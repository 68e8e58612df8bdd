"""`data screen --embed/--model` on bad input: a one-line error with its code, exit 2
(exit 1 for a refused verification), never a traceback, and nothing loaded unverified."""

from __future__ import annotations

import os
import pickle
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.linear_model import LinearRegression

from mlwarden.cli import main
from mlwarden.data import model_embedding
from mlwarden.data._represent import represent
from mlwarden.errors import NoRepresentationError
from mlwarden.signing import sign

_EMBED = """
import sys
import numpy as np
import torch


def raises(x):
    raise ValueError("boom")


def exits(x):
    sys.exit(0)


def complex_out(x):
    return x.astype(complex) * 1j


class _Detached:
    def detach(self):
        return 5


def odd_detach(x):
    return _Detached()


def bf16(x):
    return torch.tensor(x[:, :3], dtype=torch.bfloat16)


def few_rows(x):
    return np.zeros((len(x) - 1, 2))


def three_d(x):
    return np.zeros((len(x), 2, 2))


def objects(x):
    return np.array([object()] * len(x))


not_callable = 5
"""


@pytest.fixture
def wine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    x, y = load_wine(return_X_y=True)
    path = tmp_path / "wine.npz"
    np.savez(path, X=x, y=y)
    (tmp_path / "r2_embed.py").write_text(_EMBED)
    (tmp_path / "r2_exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield ["data", "screen", str(path), "--checks", "labels", "--format", "json"]
    for name in ("r2_embed", "r2_exits_on_import"):
        sys.modules.pop(name, None)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(args)
    err = capsys.readouterr().err
    return status, err


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        ("r2_embed:raises", "E147", "ValueError: boom"),
        ("r2_embed:exits", "E147", "SystemExit"),
        ("r2_exits_on_import:f", "E149", "SystemExit"),
        ("r2_embed:complex_out", "E146", "complex"),
        ("r2_embed:odd_detach", "E146", "not numeric"),
        ("r2_embed:few_rows", "E145", r"shape \(177, 2\)"),
        ("r2_embed:three_d", "E145", r"shape \(178, 2, 2\)"),
        ("r2_embed:objects", "E146", "not numeric"),
        ("r2_embed:not_callable", "E149", "not callable"),
        ("r2_embed:missing", "E149", "has no 'missing'"),
        ("r2_no_such_module:f", "E149", "ModuleNotFoundError"),
        ("r2_embed", "E149", "wants module:function"),
    ],
)
def test_bad_embeddings(
    wine: list[str], capsys: pytest.CaptureFixture[str], spec: str, code: str, message: str
) -> None:
    status, err = _run([*wine, "--embed", spec], capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mlwarden: error: {code}: ")
    assert re.search(message, lines[0]), lines[0]


def test_a_bfloat16_tensor_is_a_representation(wine: list[str]) -> None:
    assert main([*wine, "--embed", "r2_embed:bf16"]) in (0, 1)


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {_Evil.marker}",))

    marker = ""


def _signed(path: Path, private: Path) -> Path:
    sign(path, key=private, signature=path.with_name(path.name + ".sig"))
    return path


def test_models_refused_before_deserialization_or_of_no_use(
    tmp_path: Path,
    wine: list[str],
    keys: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keys
    x, y = load_wine(return_X_y=True)
    _Evil.marker = str(tmp_path / "executed")
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Evil()))
    _signed(evil, private)
    junk = tmp_path / "weights.xyz"
    junk.write_bytes(b"not a model")
    _signed(junk, private)
    regression = tmp_path / "lr.joblib"
    joblib.dump(LinearRegression().fit(x, y), regression)
    _signed(regression, private)
    narrow = tmp_path / "narrow.pt"
    torch.save({"fc.weight": torch.zeros(4, 7), "fc.bias": torch.zeros(4)}, narrow)
    _signed(narrow, private)
    complex_layers = tmp_path / "complex.pt"
    torch.save({"fc.weight": torch.zeros(4, 13, dtype=torch.complex64)}, complex_layers)
    _signed(complex_layers, private)
    unsigned = tmp_path / "unsigned.pt"
    torch.save({"fc.weight": torch.zeros(4, 13)}, unsigned)
    key = ["--model-key", str(public)]
    for model, status, code in (
        (evil, 1, "E205"),
        (junk, 1, "E205"),
        (unsigned, 1, "E208"),
        (regression, 2, "E148"),
        (narrow, 2, "E148"),
        (complex_layers, 2, "E148"),
        (tmp_path / "missing.pt", 2, "E102"),
    ):
        got, err = _run([*wine, "--model", str(model), *key], capsys)
        assert (got, err.count("\n")) == (status, 1), (model.name, err)
        assert err.startswith(f"mlwarden: error: {code}: "), err
    assert not Path(_Evil.marker).exists()
    assert _run([*wine, "--model", str(unsigned)], capsys)[0] == 2  # no key: never loaded


def test_a_bfloat16_state_dict_runs_and_complex_layers_do_not() -> None:
    features = np.random.default_rng(0).normal(size=(20, 5))
    state = {"a.weight": torch.randn(8, 5, dtype=torch.bfloat16), "b.weight": torch.randn(2, 8)}
    assert represent(model_embedding(state), features).shape == (20, 8)
    with pytest.raises(NoRepresentationError, match="complex64"):
        model_embedding({"a.weight": torch.zeros(2, 5, dtype=torch.complex64)})
    with pytest.raises(NoRepresentationError, match="not real numbers"):
        model_embedding({"a.weight": np.array([["x"] * 5] * 2)})


def test_an_npz_of_python_objects_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = load_wine(return_X_y=True)
    path = tmp_path / "objects.npz"
    np.savez(path, X=x.astype(object), y=y)
    status, err = _run(["data", "screen", str(path), "--checks", "labels"], capsys)
    assert status == 2
    assert err.startswith("mlwarden: error: E141: ") and "Python objects" in err


def test_a_representation_is_refused_when_streaming(
    tmp_path: Path, wine: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from mlwarden.data import screen_rows
    from mlwarden.errors import UsageError

    x, y = load_wine(return_X_y=True)
    path = tmp_path / "wine.csv"
    header = ",".join(f"f{i}" for i in range(x.shape[1])) + ",label\n"
    path.write_text(header + "".join(",".join(map(str, [*r, c])) + "\n" for r, c in zip(x, y)))
    args = ["data", "screen", str(path), "--stream", "--checks", "labels"]
    status, err = _run([*args, "--embed", "r2_embed:exits"], capsys)
    assert status == 2 and err.startswith("mlwarden: error: E101: ")
    assert "r2_embed" not in sys.modules  # refused before the user's code was imported
    with pytest.raises(UsageError, match="cannot be used when streaming"):
        screen_rows(path, stream=True, checks=("labels",), embed=lambda f: f)
