"""`mlwarden update check` on bad input: one line with a stable code on stderr, exit 2
(exit 1 for a refused signature), never a traceback."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from mlwarden.cli import main
from mlwarden.demo import make_demo_key
from mlwarden.signing import manifest, sign


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("update-bad")
    private, public = make_demo_key(folder / "keys")
    x, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        wide = LogisticRegression(max_iter=50).fit(x, y)
        narrow = LogisticRegression(max_iter=50).fit(x[:, :8], y)
    paths: dict[str, Path] = {"pub": public, "pem": private}
    for name, model in (("old", wide), ("narrow", narrow)):
        paths[name] = folder / f"{name}.joblib"
        joblib.dump(model, paths[name])
        sign(paths[name], key=private)
    paths["torch"] = folder / "linear.pt"
    torch.save({"fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}, paths["torch"])
    sign(paths["torch"], key=private)
    paths["unsigned"] = folder / "unsigned.joblib"
    joblib.dump(wide, paths["unsigned"])
    canaries = {
        "canary": {"X": x[:300], "y": y[:300]},
        "no_labels": {"X": x[:300]},
        "too_wide": {"X": np.hstack([x[:300], x[:300]]), "y": y[:300]},
        "objects": {"X": x[:300].astype(object), "y": y[:300]},
        "few_labels": {"X": x[:300], "y": y[:200]},
        "nan": {"X": np.where(np.arange(300)[:, None] == 7, np.nan, x[:300]), "y": y[:300]},
        "inf": {"X": np.where(x[:300] == 16, np.inf, x[:300]), "y": y[:300]},
    }
    for name, arrays in canaries.items():
        paths[name] = folder / name
        paths[name].mkdir()
        np.savez(paths[name] / "canary.npz", allow_pickle=True, **arrays)
        manifest(paths[name], key=private)
    paths["unsigned_canary"] = folder / "unsigned_canary"
    paths["unsigned_canary"].mkdir()
    np.savez(paths["unsigned_canary"] / "canary.npz", X=x[:300], y=y[:300])
    return paths


CASES = [
    # (old, new, canary, extra args, exit status, code, message)
    ("old", "old", "no_labels", [], 2, "E181", "has no labels"),
    ("old", "old", "too_wide", [], 2, "E184", "reads 64 features; the canary rows have 128"),
    ("old", "old", "objects", [], 2, "E141", "Python objects"),
    ("old", "old", "few_labels", [], 2, "E143", "300 rows of features but 200 labels"),
    ("old", "old", "nan", [], 2, "E184", "64 feature cell(s) are missing"),
    ("old", "old", "inf", [], 2, "E184", "feature cell(s) are missing (empty, NaN or infinite)"),
    ("old", "old", "canary", ["--label", "nope"], 2, "E140", "no array 'nope'"),
    ("old", "narrow", "canary", [], 2, "E184", "new version reads 8 features"),
    ("old", "torch", "canary", [], 2, "E180", "torch model cannot replace a sklearn model"),
    ("old", "unsigned", "canary", [], 1, "E208", "no signature found"),
    ("unsigned", "old", "canary", [], 1, "E208", "no signature found"),
    ("old", "old", "unsigned_canary", [], 1, "E201", "signature file does not exist"),
    ("old", "missing", "canary", [], 2, "E102", "no such file"),
    ("old", "old", "canary", ["--fail-on", "loud"], 2, "E101", "--fail-on"),
]


@pytest.mark.parametrize(("old", "new", "canary", "extra", "status", "code", "message"), CASES)
def test_bad_update_input(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    canary: str,
    extra: list[str],
    status: int,
    code: str,
    message: str,
) -> None:
    new_path = files.get(new, files["old"].with_name(f"{new}.joblib"))
    args = ["update", "check", str(files[old]), str(new_path), "--canary", str(files[canary])]
    assert main([*args, "--key", str(files["pub"]), *extra]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"mlwarden: error: {code}: "), err[0]
    assert re.search(re.escape(message), err[0]), err[0]


@pytest.mark.parametrize(
    ("key", "code"), [("missing.pub", "E102"), ("pem", "E112"), ("garbage.pub", "E112")]
)
def test_bad_keys(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], key: str, code: str
) -> None:
    garbage = files["old"].with_name("garbage.pub")
    garbage.write_text("not a key")
    path = files.get(key, files["old"].with_name(key))
    args = ["update", "check", str(files["old"]), str(files["old"]), "--canary"]
    assert main([*args, str(files["canary"]), "--key", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mlwarden: error: {code}: "), err


def test_reader_errors_name_the_given_canary_not_a_private_copy(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["update", "check", str(files["old"]), str(files["old"])]
    assert main([*args, "--canary", str(files["objects"]), "--key", str(files["pub"])]) == 2
    err = capsys.readouterr().err.strip()
    assert str(files["objects"] / "canary.npz") in err
    assert "mlwarden-canary-" not in err


def test_an_unwritable_html_path_fails_before_any_report(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["update", "check", str(files["old"]), str(files["old"]), "--canary"]
    html = tmp_path / "missing-folder" / "report.html"
    assert main([*args, str(files["canary"]), "--key", str(files["pub"]), "--html", str(html)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mlwarden: error: E"), err
    assert not html.exists()
