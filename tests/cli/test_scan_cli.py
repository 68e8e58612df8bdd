"""`mlwarden scan`: exit codes, formats, output file, one-line errors."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mlwarden.cli import main


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "name": "m"}, protocol=4))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps([1, _Payload()], protocol=2))
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    return {"clean": clean, "bad": bad, "text": text}


def test_clean_file_exits_0(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(files["clean"])]) == 0
    assert "clean" in capsys.readouterr().out


def test_malicious_file_exits_1(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(files["bad"]), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "malicious"
    assert data["results"][0]["findings"][0]["rule_id"] == "PKL001"


def test_fail_on_threshold(files: dict[str, Path]) -> None:
    assert main(["scan", str(files["bad"]), "--fail-on", "malicious"]) == 1
    assert main(["scan", str(files["clean"]), "--fail-on", "info"]) == 0


def test_nothing_checkable_exits_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(files["text"])]) == 2
    assert "E104" in capsys.readouterr().err


def test_missing_path_exits_2_with_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err
    assert "E102" in err and "Traceback" not in err


def test_bad_option_is_a_one_line_usage_error(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(files["clean"]), "--fail-on", "urgent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlwarden: error: E101") and err.count("\n") == 1
    assert main(["scan"]) == 2
    assert main(["no-such-command"]) == 2


def test_output_file_and_sarif(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    assert (
        main(["scan", str(files["bad"]), str(files["clean"]), "--format", "sarif", "-o", str(out)])
        == 1
    )
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0"
    assert {r["ruleId"] for r in log["runs"][0]["results"]} == {"PKL001"}


def test_unwritable_output_is_an_error(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing-dir" / "r.json"
    assert main(["scan", str(files["clean"]), "-o", str(out)]) == 2
    assert "E111" in capsys.readouterr().err


def test_python_dash_m_and_console_script(files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlwarden", "scan", str(files["bad"]), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "malicious"
    script = Path(sys.executable).parent / "mlwarden"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "mlwarden" in proc.stdout
