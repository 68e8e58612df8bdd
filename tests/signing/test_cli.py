"""`mlwarden sign`, `verify` and `data manifest` in-process: exit codes, reports, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mlwarden.cli import main

from .conftest import KeyPair


def test_sign_and_verify(
    model: Path, keys: Callable[..., KeyPair], capsys: pytest.CaptureFixture[str]
) -> None:
    pair = keys()
    assert main(["sign", str(model), "--key", str(pair.private)]) == 0
    assert f"-> {model.parent / 'bert-tiny.sig'}" in capsys.readouterr().out
    assert main(["verify", str(model), "--key", str(pair.public), "--format", "json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["kind"] == "verify"
    assert report["verdict"] == "clean"
    assert "verified" in captured.err


def test_refusal_exits_1_with_every_finding(
    model: Path, keys: Callable[..., KeyPair], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pair = keys()
    main(["sign", str(model), "--key", str(pair.private)])
    (model / "README.md").unlink()
    (model / "new.txt").write_text("x")
    out = tmp_path / "report.sarif"
    code = main(
        ["verify", str(model), "--key", str(pair.public), "--format", "sarif", "-o", str(out)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("mlwarden: refused: SIG001: ")
    assert "(+1 more)" in err
    sarif = json.loads(out.read_text())
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {"SIG001", "SIG002"}


def test_no_trust_refuses(
    model: Path, keys: Callable[..., KeyPair], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["sign", str(model), "--key", str(keys().private)])
    assert main(["verify", str(model)]) == 1
    assert "trusts nothing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["sign", "{model}", "--key", "{missing}"], "E102"),
        (["sign", "{model}", "--key", "{public}"], "E112"),
        (["verify", "{model}", "--key", "{private}"], "E112"),
        (["verify", "{model}", "--trust", "{missing}"], "E110"),
        (["verify", "{missing}", "--key", "{public}"], "E102"),
        (["sign", "{model}"], "E101"),
        (["verify", "{model}", "--format", "xml"], "E101"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    model: Path,
    keys: Callable[..., KeyPair],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    code: str,
) -> None:
    pair = keys()
    main(["sign", str(model), "--key", str(pair.private)])
    capsys.readouterr()
    values = {
        "model": str(model),
        "missing": str(tmp_path / "missing"),
        "public": str(pair.public),
        "private": str(pair.private),
    }
    assert main([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlwarden: error: {code}: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_symlink_refused_by_sign_cli(
    model: Path, keys: Callable[..., KeyPair], capsys: pytest.CaptureFixture[str]
) -> None:
    (model / "link").symlink_to(model / "config.json")
    assert main(["sign", str(model), "--key", str(keys().private)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlwarden: error: E107: ")
    assert "link" in err


def test_dataset_manifest_of_ten_thousand_files(
    tmp_path: Path, keys: Callable[..., KeyPair], capsys: pytest.CaptureFixture[str]
) -> None:
    pair = keys()
    data = tmp_path / "dataset"
    for shard in range(20):
        folder = data / f"shard-{shard:02d}"
        folder.mkdir(parents=True)
        for index in range(500):
            (folder / f"{index:05d}.jsonl").write_text(f'{{"id": {shard * 500 + index}}}\n')
    assert main(["data", "manifest", str(data), "--key", str(pair.private)]) == 0
    assert main(["verify", str(data), "--key", str(pair.public), "--format", "json"]) == 0
    (data / "shard-07" / "00123.jsonl").write_text('{"id": 9999}\n')  # same size
    capsys.readouterr()
    assert main(["verify", str(data), "--key", str(pair.public), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    findings = report["results"][0]["findings"]
    assert [(f["rule_id"], f["location"].endswith("shard-07/00123.jsonl")) for f in findings] == [
        ("SIG003", True)
    ]


def test_verify_with_policy_and_cache(
    model: Path, keys: Callable[..., KeyPair], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = keys()
    main(["sign", str(model), "--key", str(pair.private)])
    policy = tmp_path / "mlwarden.yaml"
    policy.write_text(
        "version: 1\ntrust:\n  signers:\n    - name: release\n"
        f"      fingerprint: {pair.fingerprint}\n      public_key: keys/signer.pub\n"
    )
    cache = tmp_path / "private" / "cache.json"
    cache.parent.mkdir(mode=0o700)
    argv = ["verify", str(model), "--trust", str(policy), "--cache", str(cache)]
    assert main(argv) == 0
    assert main(argv) == 0
    (model / "weights.bin").write_bytes(b"0")
    assert main(argv) == 1
    assert "SIG005" in capsys.readouterr().err
