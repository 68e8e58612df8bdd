"""Fixtures of the package tests: a small OSV export written at test time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from osv_records import osv_record


@pytest.fixture
def advisories(tmp_path: Path) -> Path:
    """A small OSV export: requests < 2.20.0 (CVE-2018-18074-like) and a critical numpy one."""
    path = tmp_path / "osv.json"
    records = [
        osv_record(
            "PYSEC-2018-28",
            "requests",
            fixed="2.20.0",
            aliases=["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
            database_severity="HIGH",
        ),
        osv_record(
            "GHSA-test-numpy",
            "NumPy",
            introduced="1.0",
            fixed="1.22.0",
            severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        ),
        osv_record("PYSEC-old-withdrawn", "torch", withdrawn="2024-02-01T00:00:00Z"),
    ]
    path.write_text(json.dumps(records), encoding="utf-8")
    return path
