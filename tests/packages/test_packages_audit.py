"""audit_dependencies: each finding kind with a known answer, files and environments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlwarden.packages import AdvisorySource, ServiceKind, audit_dependencies
from mlwarden.report import Report, Status, Verdict
from mlwarden.severity import Severity

HASH = "--hash=sha256:" + "0" * 64


def _rules(report: Report) -> dict[str, list[str]]:
    return {r.path: [f.rule_id for f in r.findings] for r in report.results}


def _audit(path: Path, advisories: Path, **kwargs: bool) -> Report:
    source = AdvisorySource(kind=ServiceKind.FILE, path=advisories)
    return audit_dependencies(path, advisories=source, **kwargs)


def test_each_finding_kind(tmp_path: Path, advisories: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(
        f"requests==2.19.0 {HASH}\n"  # DEP001
        f"numpy==1.21.6 {HASH}\n"  # DEP001, critical from CVSS
        f"torch==2.13.0 {HASH}\n"  # clean
        "pandas>=2\n"  # DEP002 (no exact version), DEP003, DEP004 (others are hashed)
        "git+https://github.com/org/tool.git@main#egg=tool\n"  # DEP006
        "https://example.com/dl/wheelpkg-1.0-py3-none-any.whl\n"  # DEP005
        "./vendor/localpkg\n"  # DEP008
        f"tourch==1.0 {HASH}\n",  # DEP007
        encoding="utf-8",
    )
    report = _audit(path, advisories)
    rules = _rules(report)
    assert rules == {
        "requests==2.19.0": ["DEP001"],
        "numpy==1.21.6": ["DEP001"],
        "torch==2.13.0": [],
        "pandas>=2": ["DEP002", "DEP003", "DEP004"],
        "tool @ git+https://github.com/org/tool.git@main#egg=tool": [
            "DEP002",
            "DEP004",
            "DEP006",
        ],
        "wheelpkg @ https://example.com/dl/wheelpkg-1.0-py3-none-any.whl": [
            "DEP002",
            "DEP004",
            "DEP005",
        ],
        "./vendor/localpkg": ["DEP002", "DEP004", "DEP008"],
        "tourch==1.0": ["DEP007"],
    }
    by_path = {r.path: r for r in report.results}
    requests_finding = by_path["requests==2.19.0"].findings[0]
    assert requests_finding.location == f"{path}:1"
    assert requests_finding.detail["advisory"] == "PYSEC-2018-28"
    assert requests_finding.detail["fixed_in"] == "2.20.0"
    assert requests_finding.effective_severity is Severity.HIGH
    assert by_path["numpy==1.21.6"].findings[0].effective_severity is Severity.CRITICAL
    assert by_path["torch==2.13.0"].verdict is Verdict.CLEAN
    assert by_path["tourch==1.0"].findings[0].detail["imitates"] == "torch"
    assert report.verdict is Verdict.SUSPICIOUS


def test_hashes_only_required_when_asked_or_when_others_hash(
    tmp_path: Path, advisories: Path
) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("torch==2.13.0\n", encoding="utf-8")
    assert _rules(_audit(path, advisories)) == {"torch==2.13.0": []}
    assert _rules(_audit(path, advisories, require_hashes=True)) == {"torch==2.13.0": ["DEP004"]}
    path.write_text("--require-hashes\ntorch==2.13.0\n", encoding="utf-8")
    assert _rules(_audit(path, advisories)) == {"torch==2.13.0": ["DEP004"]}


def test_not_checked_is_never_clean(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(f"torch==2.13.0 {HASH}\n", encoding="utf-8")
    closed = AdvisorySource(
        kind=ServiceKind.OSV, url="http://127.0.0.1:1/v1/query", timeout=2, cache_dir=tmp_path
    )
    report = audit_dependencies(path, advisories=closed)
    (result,) = report.results
    assert [f.rule_id for f in result.findings] == ["DEP002"]
    assert result.verdict is Verdict.SUSPICIOUS
    assert result.findings[0].effective_severity is Severity.CRITICAL
    assert "unreachable" in result.findings[0].message


def _dist(site: Path, name: str, version: str, direct_url: dict[str, object] | None) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url), encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    _dist(site, "requests", "2.19.0", None)
    _dist(site, "torch", "2.13.0", None)
    _dist(site, "tensorfl0w", "2.0.0", None)
    _dist(
        site,
        "gitpkg",
        "0.1",
        {"url": "https://github.com/org/gitpkg", "vcs_info": {"vcs": "git", "commit_id": "abc"}},
    )
    _dist(site, "devpkg", "0.2", {"url": "file:///src/devpkg", "dir_info": {"editable": True}})
    _dist(site, "urlpkg", "0.3", {"url": "https://example.com/urlpkg-0.3.tar.gz"})
    broken = site / "broken-1.0.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\n", encoding="utf-8")
    return site


def test_environment_audit(site: Path, advisories: Path) -> None:
    source = AdvisorySource(kind=ServiceKind.FILE, path=advisories)
    report = audit_dependencies(search_path=[str(site)], advisories=source)
    rules = {r.path: [f.rule_id for f in r.findings] for r in report.checked}
    assert rules == {
        "devpkg @ file:///src/devpkg": ["DEP002", "DEP008"],
        "gitpkg @ git+https://github.com/org/gitpkg@abc": ["DEP002", "DEP006"],
        "requests==2.19.0": ["DEP001"],
        "tensorfl0w==2.0.0": ["DEP007"],
        "torch==2.13.0": [],
        "urlpkg @ https://example.com/urlpkg-0.3.tar.gz": ["DEP002", "DEP005"],
    }
    failed = [r for r in report.results if r.status is Status.FAILED]
    assert len(failed) == 1 and "broken-1.0.dist-info" in failed[0].path
    assert failed[0].code == "E105"
