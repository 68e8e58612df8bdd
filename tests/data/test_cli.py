"""`mlwarden data screen` end to end: exit codes, outputs, and the trusted baseline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlwarden.cli import main
from mlwarden.signing import manifest, verify

# The people fixture's known answers are for the row-local checks; the model-based
# ones have their own known-answer tests.
ROW_LOCAL = ["--checks", "pii,duplicates,leakage"]


def test_screen_reports_json_and_exits_1_on_findings(
    people_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["data", "screen", str(people_csv), "--format", "json", *ROW_LOCAL])
    out, err = capsys.readouterr()
    assert status == 1
    report = json.loads(out)
    assert report["kind"] == "data-screen"
    rules = {f["rule_id"] for r in report["results"] for f in r["findings"]}
    assert {"PII001", "PII003", "DATA004"} <= rules
    assert "8 of 40 rows suspect" in err


def test_screen_exits_0_on_clean_data(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("x,label\n1,0\n2,1\n3,0\n")
    assert main(["data", "screen", str(path), *ROW_LOCAL]) == 0
    # The model-based checks cannot learn a class from one row: a clear error, not a guess.
    assert main(["data", "screen", str(path)]) == 2


def test_fail_on_high_ignores_low_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("x,label\n1,0\n1,0\n3,0\n")
    assert main(["data", "screen", str(path), *ROW_LOCAL]) == 1
    assert main(["data", "screen", str(path), *ROW_LOCAL, "--fail-on", "high"]) == 0


def test_sarif_output_to_file(tmp_path: Path, people_csv: Path) -> None:
    out = tmp_path / "r.sarif"
    main(["data", "screen", str(people_csv), "--format", "sarif", "-o", str(out)])
    sarif = json.loads(out.read_text())
    assert sarif["runs"][0]["results"]


def test_quarantine_and_signed_clean(
    tmp_path: Path, people_csv: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    clean = tmp_path / "clean"
    status = main(
        [
            "data", "screen", str(people_csv), *ROW_LOCAL,
            "--quarantine", str(tmp_path / "q.csv"),
            "--clean", str(clean), "--key", str(private),
        ]
    )  # fmt: skip
    assert status == 1
    assert len((tmp_path / "q.csv").read_text().splitlines()) == 1 + 8
    assert verify(clean, public_key=public).verified
    assert main(["data", "screen", str(clean / "people.csv"), *ROW_LOCAL]) == 0


def test_clean_without_key_is_a_usage_error(
    tmp_path: Path, people_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "screen", str(people_csv), "--clean", str(tmp_path / "c")]) == 2
    assert "E101" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_baseline_must_verify_before_it_is_trusted(
    tmp_path: Path, people_csv: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    shutil.copy(people_csv, baseline / "people.csv")
    manifest(baseline, key=private)
    args = ["data", "screen", str(people_csv), *ROW_LOCAL, "--baseline", str(baseline)]
    assert main([*args, "--baseline-key", str(public), "--fail-on", "critical"]) == 0
    # No key and no trust: nothing is trusted, so the baseline is refused before use.
    assert main(args) == 2
    assert "E101" in capsys.readouterr().err
    # A baseline changed after signing is refused with the integrity code.
    (baseline / "people.csv").write_text((baseline / "people.csv").read_text() + "1,1,1,x,1\n")
    assert main([*args, "--baseline-key", str(public)]) == 1
    assert "E208" in capsys.readouterr().err


def test_stream_workers_and_region_options(
    people_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "data", "screen", str(people_csv), *ROW_LOCAL, "--stream", "--chunk-rows", "9",
            "--workers", "2", "--region", "GB", "--format", "json",
        ]
    )  # fmt: skip
    assert status == 1
    report = json.loads(capsys.readouterr().out)
    assert len(report["results"][0]["findings"]) == 6 + 2
