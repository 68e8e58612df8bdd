"""`mlwarden assess` end to end: a signed model file and a live gateway, thresholds to
exit codes, the HTML, JSON and SARIF reports, --compare, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from tests.assess_cli.conftest import Served, write_config

from mlwarden.cli import main
from mlwarden.report import Report

SCHEMA_PATH = Path(__file__).resolve().parents[2] / ".cache" / "sarif-schema-2.1.0.json"
LENIENT = {
    "robust_accuracy": {"epsilon": 0.0, "min": 0.5},
    "membership_auc": {"max": 0.99},
    "membership_tpr_at_1pct_fpr": {"max": 0.99},
    "extraction_fidelity": {"queries": 100, "max": 1.0},
    "inversion_recognised": {"max": 10},
}


def _local(served: Served, config: Path, *extra: str) -> list[str]:
    model = served.models.folder / "digits.joblib"
    return [
        "assess", str(model), "--key", str(served.models.signer_public),
        "--data", str(served.data), "--config", str(config), "--attacks", "evasion,membership",
        *extra,
    ]  # fmt: skip


def _remote(served: Served, config: Path, model: str, *extra: str) -> list[str]:
    return [
        "assess", "--url", f"{served.url}/v2/models/{model}", "--api-key-env", "ASSESS_KEY",
        "--data", str(served.data), "--config", str(config), *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _api_key(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSESS_KEY", served.env.api_keys["batch"])


def test_thresholds_turn_into_exit_codes(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lenient = write_config(tmp_path, LENIENT)
    assert main(_local(served, lenient, "--format", "json")) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verdict"] == "clean"
    evasion = document["assessment"][0]["attacks"]["evasion"]
    # Epsilon 0 changes nothing: robust accuracy is the clean accuracy.
    assert evasion["robust_accuracy"][0] == evasion["clean_accuracy"] > 0.8

    strict = write_config(tmp_path, {"robust_accuracy": {"epsilon": 0.1, "min": 0.99}})
    assert main(_local(served, strict, "--format", "json")) == 1
    document = json.loads(capsys.readouterr().out)
    rules = [f["rule_id"] for r in document["results"] for f in r["findings"]]
    assert "ATK001" in rules
    assert Report.from_dict(document).verdict.value == "suspicious"


def test_remote_html_is_self_contained_with_three_plots(served: Served, tmp_path: Path) -> None:
    config = write_config(tmp_path, LENIENT)
    html = tmp_path / "report.html"
    out = tmp_path / "report.json"
    code = main(
        _remote(
            served, config, "digits-bare", "--html", str(html), "--format", "json", "-o", str(out)
        )
    )
    assert code == 0
    attacks = json.loads(out.read_text())["assessment"][0]["attacks"]
    assert attacks["extraction"]["status"] == "done"
    # An endpoint gives no gradients: inversion is not run (with its reason), not passed.
    assert (attacks["inversion"]["status"], attacks["inversion"]["code"]) == ("not run", "E172")
    page = html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page
    for plot in ("plot-evasion", "plot-roc", "plot-extraction"):
        assert f'<svg id="{plot}"' in page
    assert 'class="series"' in page  # curves were drawn, not empty frames
    assert "PASS" in page


def test_assess_sarif_validates_against_the_official_schema(served: Served, tmp_path: Path) -> None:
    if not SCHEMA_PATH.exists():
        pytest.fail(f"{SCHEMA_PATH} is missing: `make test` fetches the official schema")
    config = write_config(tmp_path, {"robust_accuracy": {"epsilon": 0.1, "min": 0.99}})
    out = tmp_path / "assess.sarif"
    code = main(_local(served, config, "--format", "sarif", "--output", str(out)))
    assert code == 1
    log = json.loads(out.read_text())
    jsonschema.Draft4Validator(json.loads(SCHEMA_PATH.read_text())).validate(log)
    results = log["runs"][0]["results"]
    assert any(r["ruleId"] == "ATK001" for r in results)


def test_compare_shows_what_the_gateway_removed(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, LENIENT)
    html = tmp_path / "compare.html"
    args = [
        "assess", "--compare", f"{served.url}/v2/models/digits-bare",
        f"{served.url}/v2/models/digits", "--api-key-env", "ASSESS_KEY",
        "--data", str(served.data), "--config", str(config), "--format", "json",
        "--attacks", "membership", "--html", str(html),
    ]  # fmt: skip
    assert main(args) == 0
    document = json.loads(capsys.readouterr().out)
    bare, defended = document["assessment"]
    assert (bare["label"], bare["output"]) == ("bare", "scores")
    assert (defended["label"], defended["output"]) == ("defended", "labels")
    auc = {row["figure"]: row for row in document["compare"]}["membership AUC"]
    assert auc["bare"] == bare["attacks"]["membership"]["auc"]
    # Label-only answers leave membership inference near chance.
    assert abs(auc["defended"] - 0.5) < 0.1
    page = html.read_text()
    assert "What the defenses removed" in page and "defended" in page


def test_wrong_credentials_exit_2_with_one_line(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ASSESS_KEY", "mlw_not_a_key")
    assert main(_remote(served, write_config(tmp_path), "digits")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "E177" in err and "401" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("url", "code"),
    [("ftp://127.0.0.1/v2/models/digits", "E176"), ("http://127.0.0.1:9/v2/models/d", "E501")],
)
def test_bad_urls_exit_2(
    served: Served, tmp_path: Path, url: str, code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["assess", "--url", url, "--data", str(served.data)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and code in err


def test_unset_credential_variable_is_a_usage_error(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["assess", "--url", f"{served.url}/v2/models/digits", "--token-env", "NO_SUCH_VAR_X"]
    assert main([*args, "--data", str(served.data)]) == 2
    assert "NO_SUCH_VAR_X" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"members_x": np.zeros((4, 64)), "members_y": np.zeros(4, int)}, "missing array"),
        (
            {
                "members_x": np.zeros((4, 64)),
                "members_y": np.zeros(3, int),
                "nonmembers_x": np.zeros((4, 64)),
                "nonmembers_y": np.zeros(4, int),
            },
            "members_y has shape",
        ),
        (
            {
                "members_x": np.zeros((4, 64)),
                "members_y": np.zeros(4, int),
                "nonmembers_x": np.full((4, 64), np.nan),
                "nonmembers_y": np.zeros(4, int),
            },
            "NaN",
        ),
    ],
)
def test_bad_data_files_exit_2(
    served: Served,
    tmp_path: Path,
    arrays: dict[str, np.ndarray],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    model = served.models.folder / "digits.joblib"
    args = ["assess", str(model), "--key", str(served.models.signer_public), "--data", str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "E175" in err and message in err


def test_not_a_data_file_and_no_target(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    assert main(["assess", "--url", served.url, "--model", "digits", "--data", str(junk)]) == 2
    assert "E175" in capsys.readouterr().err
    assert main(["assess", "--data", str(served.data)]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["assess", "--url", served.url, "--data", str(served.data), "--attacks", "x"]) == 2
    assert "choose from" in capsys.readouterr().err
