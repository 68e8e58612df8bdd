"""`mlwarden update check` end to end on signed files: exit codes, outputs, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from mlwarden.cli import main
from mlwarden.demo import make_demo_key
from mlwarden.signing import manifest, sign


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory, old_lr: Any, flipped_lr: Any, digits: Any
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("update")
    private, public = make_demo_key(folder / "keys")
    paths = {"pub": public}
    for name, model in (("old", old_lr), ("same", old_lr), ("flipped", flipped_lr)):
        path = folder / f"{name}.joblib"
        joblib.dump(model, path)
        sign(path, key=private)
        paths[name] = path
    unsigned = folder / "unsigned.joblib"
    joblib.dump(old_lr, unsigned)
    paths["unsigned"] = unsigned
    canary = folder / "canary"
    canary.mkdir()
    np.savez(canary / "canary.npz", X=digits[1], y=digits[3])
    manifest(canary, key=private)
    paths["canary"] = canary
    bare = folder / "bare"
    bare.mkdir()
    np.savez(bare / "bare.npz", X=digits[1])
    manifest(bare, key=private)
    paths["bare"] = bare
    return paths


def _args(p: dict[str, Path], new: str, *extra: str, canary: str = "canary") -> list[str]:
    return ["update", "check", str(p["old"]), str(p[new]), "--canary", str(p[canary]),
            "--key", str(p["pub"]), *extra]  # fmt: skip


def test_same_model_passes_with_html(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "update.html"
    assert main(_args(signed, "same", "--html", str(page))) == 0
    out = capsys.readouterr().out
    assert "passed: accuracy" in out
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "PASSED" in html and "<script" not in html


def test_poisoned_update_fails_with_json_and_sarif(
    signed: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(signed, "flipped", "--format", "json")) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "update check"
    rules = {f["rule_id"] for r in report["results"] for f in r["findings"]}
    assert {"UPD006", "UPD007"} <= rules
    assert report["update"]["passed"] is False
    assert report["update"]["behaviour"]["class_accuracy_new"]["3"] < 0.7
    assert main(_args(signed, "flipped", "--format", "sarif")) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"UPD006"}


def test_unsigned_update_is_refused_before_loading(
    signed: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(signed, "unsigned", "--format", "json")) == 1
    captured = capsys.readouterr()
    assert "E208" in captured.err
    report = json.loads(captured.out)
    finding = report["results"][0]["findings"][0]
    assert finding["rule_id"] == "UPD001" and finding["detail"]["code"] == "E208"


def test_no_trust_and_wrong_key_are_refused(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["update", "check", str(signed["old"]), str(signed["same"]), "--canary",
            str(signed["canary"])]  # fmt: skip
    assert main(args) == 1
    assert "E203" in capsys.readouterr().err
    _, other = make_demo_key(tmp_path)
    assert main([*args, "--key", str(other)]) == 1
    assert "E20" in capsys.readouterr().err


def test_canary_without_labels_is_exit_2(
    signed: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(signed, "same", canary="bare")) == 2
    err = capsys.readouterr().err
    assert "E181" in err and "no labels" in err
    assert err.count("\n") == 1  # one line, no traceback


def test_policy_section_sets_thresholds(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "mlwarden.yaml"
    policy.write_text(
        "version: 1\nupdate:\n  expect: retrain\n  max_accuracy_drop: 1\n"
        "  max_class_accuracy_drop: 1\n  max_flip_rate: 1\n  max_flips_into_one_class: 1\n"
        "  min_agreement: 0\n  max_confidence_drop: 1\n  trigger_search: false\n"
        "  representation_screen: false\n"
    )
    assert main(_args(signed, "flipped", "--policy", str(policy))) == 0
    policy.write_text("version: 1\nupdate:\n  expect: sometimes\n")
    assert main(_args(signed, "flipped", "--policy", str(policy))) == 2
    assert "E110" in capsys.readouterr().err
    policy.write_text("version: 1\nupdate:\n  old_lean_swing: -0.4\n")
    assert main(_args(signed, "flipped", "--policy", str(policy))) == 2
    err = capsys.readouterr().err
    assert "E110" in err and "old_lean_swing" in err and err.count("\n") == 1


def test_canary_changed_after_signing_is_refused(
    signed: dict[str, Path], tmp_path: Path, digits: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = make_demo_key(tmp_path / "keys")
    canary = tmp_path / "canary.npz"
    np.savez(canary, X=digits[1], y=digits[3])
    sign(canary, key=private)
    args = ["update", "check", str(signed["old"]), str(signed["same"]), "--canary", str(canary),
            "--key", str(signed["pub"]), "--key", str(public)]  # fmt: skip
    assert main(args) == 0  # a canary signed on its own, by a second trusted key
    capsys.readouterr()
    y = digits[3].copy()
    y[:40] = 0
    np.savez(canary, X=digits[1], y=y)
    assert main(args) == 1
    assert "E204" in capsys.readouterr().err
