"""`mlwarden deps` and `mlwarden bom`: exit codes, formats, output files, one-line errors."""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path

import pytest

from mlwarden.cli import main

HASH = "--hash=sha256:" + "0" * 64


def _requirements(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_clean_requirements_exit_0(
    tmp_path: Path, advisories: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _requirements(tmp_path, f"torch==2.13.0 {HASH}\nrequests==2.32.3 {HASH}\n")
    assert main(["deps", str(path), "--advisories", str(advisories)]) == 0
    assert "2 checked" in capsys.readouterr().out


def test_vulnerable_requirement_exit_1_json(
    tmp_path: Path, advisories: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _requirements(tmp_path, "requests==2.19.0\n")
    code = main(["deps", str(path), "--advisories", str(advisories), "--format", "json"])
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "deps"
    (finding,) = data["results"][0]["findings"]
    assert finding["rule_id"] == "DEP001"
    assert finding["threat"] == "vulnerable-packages"
    assert finding["mitigation"] == "AML.M0016 Vulnerability Scanning"


def test_fail_on_severity_and_sarif_output(tmp_path: Path, advisories: Path) -> None:
    path = _requirements(tmp_path, "numpy>=1.26\n")  # DEP002 (critical) and DEP003 (medium)
    out = tmp_path / "deps.sarif"
    args = ["deps", str(path), "--advisories", str(advisories), "--format", "sarif"]
    assert main([*args, "--fail-on", "critical", "--output", str(out)]) == 1
    sarif = json.loads(out.read_text(encoding="utf-8"))
    rule_ids = {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert rule_ids == {"DEP002", "DEP003"}


def test_unreachable_service_fails_closed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = _requirements(tmp_path, f"torch==2.13.0 {HASH}\n")
    args = ["deps", str(path), "--service", "osv", "--osv-url", f"http://127.0.0.1:{port}/q"]
    assert main([*args, "--timeout", "2", "--fail-on", "critical"]) == 1
    out = capsys.readouterr().out
    assert "DEP002" in out and "not checked" in out and "clean" not in out.split("inputs:")[0]


def test_environment_from_site_packages(
    tmp_path: Path, advisories: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = tmp_path / "site" / "numpyy-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: numpyy\nVersion: 1.0\n")
    args = ["deps", "--site-packages", str(tmp_path / "site"), "--advisories", str(advisories)]
    assert main(args) == 1
    assert "DEP007" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["deps"], "E101", "give a requirements file"),
        (["deps", "REQ", "--environment"], "E101", "give a requirements file"),
        (["deps", "MISSING"], "E102", "no such file"),
        (["deps", "BAD"], "E120", "requirements.txt:2: not a valid requirement"),
        (["deps", "REQ", "--advisories", "BADDB"], "E121", "not valid JSON"),
        (["deps", "REQ", "--osv-url", "http://127.0.0.1:1/"], "E101", "--osv-url needs"),
        (["bom"], "E101", "nothing to list"),
        (["bom", "MISSING"], "E102", "no such file"),
        (["bom", "--requirements", "BAD"], "E120", "requirements.txt:2"),
        (["bom", "--trust", "BADPOLICY", "REQ"], "E110", ""),
    ],
)
def test_bad_input_is_one_line_with_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: str,
    message: str,
) -> None:
    good = _requirements(tmp_path, "torch==2.13.0\n")
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = bad_dir / "requirements.txt"
    bad.write_text("numpy==1.26\ntorch==\n", encoding="utf-8")
    bad_db = tmp_path / "osv.json"
    bad_db.write_text("{oops", encoding="utf-8")
    bad_policy = tmp_path / "mlwarden.yaml"
    bad_policy.write_text("version: 1\nunknown_section: {}\n", encoding="utf-8")
    names = {
        "REQ": str(good),
        "BAD": str(bad),
        "MISSING": str(tmp_path / "missing.txt"),
        "BADDB": str(bad_db),
        "BADPOLICY": str(bad_policy),
    }
    assert main([names.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{code}: " in err and message in err


def test_bom_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))
    out = tmp_path / "bom.json"
    assert main(["bom", str(model), "--output", str(out)]) == 0
    assert capsys.readouterr().out == ""
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["bomFormat"] == "CycloneDX"
    assert document["components"][0]["type"] == "machine-learning-model"


def test_bom_to_stdout_with_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bom", "--environment"]) == 0
    document = json.loads(capsys.readouterr().out)
    purls = {c.get("purl", "") for c in document["components"]}
    assert any(p.startswith("pkg:pypi/click@") for p in purls)


def test_bom_trust_policy_verified_and_empty_policy_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from mlwarden.signing import sign

    key = ec.generate_private_key(ec.SECP384R1())
    private = tmp_path / "release.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = tmp_path / "release.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"w": [2.0]}, protocol=4))
    sign(model, key=private)
    policy = tmp_path / "mlwarden.yaml"
    policy.write_text(
        "version: 1\ntrust:\n  signers:\n    - name: release\n"
        f"      fingerprint: {hashlib.sha256(spki).hexdigest()}\n"
        "      public_key: release.pub\n",
        encoding="utf-8",
    )

    def status(policy_path: Path) -> str:
        assert main(["bom", str(model), "--trust", str(policy_path)]) == 0
        (component,) = json.loads(capsys.readouterr().out)["components"]
        props = {p["name"]: p["value"] for p in component["properties"]}
        return props["mlwarden:signature.status"]

    assert status(policy) == "verified"
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: 1\n", encoding="utf-8")
    assert status(empty) == "refused"


def test_deps_sarif_validates_against_the_official_schema(
    tmp_path: Path, advisories: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import jsonschema

    schema_path = Path(__file__).resolve().parents[2] / ".cache" / "sarif-schema-2.1.0.json"
    if not schema_path.exists():
        pytest.fail(f"{schema_path} is missing: `make test` fetches the official schema")
    path = _requirements(
        tmp_path,
        "requests==2.19.0\nnumpy>=1.26\ngit+https://github.com/org/tool.git#egg=tool\n",
    )
    main(["deps", str(path), "--advisories", str(advisories), "--format", "sarif"])
    log = json.loads(capsys.readouterr().out)
    jsonschema.Draft4Validator(json.loads(schema_path.read_text())).validate(log)
    messages = [r["message"]["text"] for r in log["runs"][0]["results"]]
    assert any("requirements.txt:1" in m and "PYSEC-2018-28" in m for m in messages)
