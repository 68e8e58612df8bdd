"""Stable codes and rule ids: unique, documented, mapped."""

from __future__ import annotations

import re
from pathlib import Path

from mlwarden.errors import all_error_classes
from mlwarden.rules import RULES

ROOT = Path(__file__).resolve().parents[1]


def test_error_codes_are_unique_and_well_formed() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"E[1-9]\d\d", code) for code in codes)


def test_rule_ids_unique_and_mapped() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    prefixes = (
        "PKL",
        "TORCH",
        "NPY",
        "JOBLIB",
        "KERAS",
        "TF",
        "ONNX",
        "SAFET",
        "GGUF",
        "ARCH",
        "SCAN",
        "SIG",
        "DEP",
        "DATA",
        "PII",
        "GW",
        "DET",
        "ATK",
        "UPD",
        "FL",
    )
    for rule in RULES:
        assert re.fullmatch(r"[A-Z]+\d{3}", rule.id)
        assert rule.id.startswith(prefixes)
        assert rule.title and rule.help and rule.mitigation.startswith("AML.M")
        assert rule.atlas and all(a.startswith("AML.T") for a in rule.atlas)


def test_readme_documents_every_error_code_and_rule() -> None:
    readme = (ROOT / "README.md").read_text()
    for cls in all_error_classes():
        assert f"`{cls.code}`" in readme, cls.code
    for rule in RULES:
        assert f"`{rule.id}`" in readme, rule.id


def test_core_never_imports_cli_or_gateway_and_never_prints() -> None:
    src = ROOT / "src" / "mlwarden"
    for path in src.rglob("*.py"):
        rel = path.relative_to(src)
        if rel.parts[0] in ("cli", "gateway") or rel.name == "__main__.py":
            continue
        text = path.read_text()
        imports = re.findall(r"^\s*(?:from|import)\s+(mlwarden\.(?:cli|gateway)\b\S*)", text, re.M)
        assert not imports, (rel, imports)
        assert not re.search(r"^\s*print\(", text, re.M), rel
        assert "sys.exit" not in text, rel
        assert "os.environ" not in text, rel
        assert "getenv" not in text, rel


def test_readme_tables_are_up_to_date() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_tables.py"), "--check"], check=False
    )
    assert proc.returncode == 0, "run: .venv/bin/python scripts/readme_tables.py"
