"""Known vulnerabilities: a local OSV export, an OSV server on 127.0.0.1, and no server at all.

The online path runs pip-audit's real OsvService against a real HTTP server on
127.0.0.1 that speaks the OSV query protocol; "unreachable" is a real refused
connection to a closed local port. Nothing here needs the internet.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from osv_records import osv_record

from mlwarden.errors import AdvisoryDatabaseError, PathNotFoundError
from mlwarden.packages import AdvisorySource, Dependency, ServiceKind
from mlwarden.packages._advisory import cvss3_base_score
from mlwarden.packages._model import Origin
from mlwarden.packages._vulns import check_vulnerabilities
from mlwarden.severity import Severity


def _dep(name: str, version: str | None, origin: Origin = Origin.INDEX) -> Dependency:
    return Dependency(
        name=name,
        canonical=name.lower(),
        version=version,
        specifier=f"=={version}" if version else ">=1",
        location=f"test:{name}",
        origin=origin,
        url="https://example.com/x.whl" if origin is not Origin.INDEX else None,
    )


def _file_source(path: Path) -> AdvisorySource:
    return AdvisorySource(kind=ServiceKind.FILE, path=path)


def test_local_export_matches_ranges_and_rates_severity(advisories: Path) -> None:
    deps = [_dep("requests", "2.19.0"), _dep("requests", "2.20.0"), _dep("numpy", "1.21.6")]
    deps.append(_dep("numpy", "0.9"))  # below "introduced"
    deps.append(_dep("torch", "2.13.0"))  # only a withdrawn advisory
    outcomes = check_vulnerabilities(deps, _file_source(advisories))
    assert all(o.not_checked is None for o in outcomes)
    vulnerable = outcomes[0].advisories
    assert [a.id for a in vulnerable] == ["PYSEC-2018-28"]
    assert vulnerable[0].fixed_in == ("2.20.0",)
    assert "CVE-2018-18074" in vulnerable[0].aliases
    assert vulnerable[0].severity is Severity.HIGH  # database_specific "HIGH"
    assert outcomes[1].advisories == ()  # the fixed version
    assert [a.severity for a in outcomes[2].advisories] == [Severity.CRITICAL]  # CVSS 9.8
    assert outcomes[3].advisories == ()
    assert outcomes[4].advisories == ()


def test_last_affected_and_explicit_versions(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    record = osv_record("X-1", "lightgbm", introduced="3.0", last_affected="3.3.5")
    record["affected"][0]["versions"] = ["2.0.1"]
    path.write_text(json.dumps(record), encoding="utf-8")
    versions = ["2.0.1", "2.0.2", "3.0", "3.3.5", "3.3.6"]
    outcomes = check_vulnerabilities([_dep("lightgbm", v) for v in versions], _file_source(path))
    assert [bool(o.advisories) for o in outcomes] == [True, False, True, True, False]


def test_directory_and_zip_exports(tmp_path: Path) -> None:
    folder = tmp_path / "PyPI"
    folder.mkdir()
    (folder / "PYSEC-1.json").write_text(
        json.dumps(osv_record("PYSEC-1", "keras", fixed="3.9.0")), encoding="utf-8"
    )
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(folder / "PYSEC-1.json", "PYSEC-1.json")
    for source in (folder, archive):
        (outcome,) = check_vulnerabilities([_dep("keras", "3.0.0")], _file_source(source))
        assert [a.id for a in outcome.advisories] == ["PYSEC-1"]


def test_unreadable_range_is_not_checked_rather_than_clean(tmp_path: Path) -> None:
    path = tmp_path / "bad-range.json"
    path.write_text(
        json.dumps(osv_record("X-2", "xgboost", introduced="not a version", fixed="2.0")),
        encoding="utf-8",
    )
    (outcome,) = check_vulnerabilities([_dep("xgboost", "1.7.0")], _file_source(path))
    assert outcome.not_checked is not None and "X-2" in outcome.not_checked


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('[{"id": 5}]', r"invalid OSV record at id"),
        ('[{"id": "X", "affected": [{"package": {"name": "a"}}]}]', r"affected\.0\.package"),
        ("[1]", "item 0 is not an OSV record"),
    ],
)
def test_malformed_export_is_an_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "osv.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AdvisoryDatabaseError, match=message) as caught:
        check_vulnerabilities([_dep("numpy", "1.0")], _file_source(path))
    assert caught.value.code == "E121" and str(path) in caught.value.message


def test_missing_export(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError):
        check_vulnerabilities([_dep("numpy", "1.0")], _file_source(tmp_path / "none.json"))


def test_unpinned_and_off_index_dependencies_are_not_checked(advisories: Path) -> None:
    deps = [_dep("requests", None), _dep("tool", None, Origin.VCS), _dep("x", None, Origin.PATH)]
    outcomes = check_vulnerabilities(deps, _file_source(advisories))
    assert [o.advisories for o in outcomes] == [(), (), ()]
    reasons = [o.not_checked or "" for o in outcomes]
    assert "no exact version" in reasons[0]
    assert "VCS" in reasons[1] and "local path" in reasons[2]


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
        ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", None),
        ("CVSS:3.1/AV:X", None),
    ],
)
def test_cvss3_base_scores(vector: str, score: float | None) -> None:
    assert cvss3_base_score(vector) == score


# --- pip-audit's OsvService against a real server on 127.0.0.1 ---------------------


class _OsvHandler(BaseHTTPRequestHandler):
    """Answers POST /v1/query as api.osv.dev does, from a fixed table."""

    table: ClassVar[dict[tuple[str, str], list[dict[str, Any]]]] = {}
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        query = json.loads(self.rfile.read(length))
        key = (query["package"]["name"], query["version"])
        vulns = self.table.get(key, [])
        body = json.dumps({"vulns": vulns} if vulns else {}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def osv_server() -> Iterator[tuple[str, type[_OsvHandler]]]:
    handler = type("Handler", (_OsvHandler,), {"table": {}, "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query", handler
    finally:
        server.shutdown()
        server.server_close()


def _osv_source(url: str, tmp_path: Path) -> AdvisorySource:
    return AdvisorySource(kind=ServiceKind.OSV, url=url, timeout=5, cache_dir=tmp_path / "cache")


def test_osv_service_reports_vulnerabilities(
    osv_server: tuple[str, type[_OsvHandler]], tmp_path: Path
) -> None:
    url, handler = osv_server
    record = osv_record("PYSEC-2018-28", "requests", fixed="2.20.0")
    handler.table[("requests", "2.19.0")] = [record]
    deps = [_dep("requests", "2.19.0"), _dep("requests", "2.32.3")]
    outcomes = check_vulnerabilities(deps, _osv_source(url, tmp_path))
    assert [a.id for a in outcomes[0].advisories] == ["PYSEC-2018-28"]
    assert outcomes[0].advisories[0].fixed_in == ("2.20.0",)
    assert outcomes[0].advisories[0].severity is None  # the online answer carries no rating
    assert outcomes[1].not_checked is None and outcomes[1].advisories == ()


def test_osv_service_error_is_not_checked(
    osv_server: tuple[str, type[_OsvHandler]], tmp_path: Path
) -> None:
    url, handler = osv_server
    handler.status = 503
    (outcome,) = check_vulnerabilities([_dep("numpy", "1.26.4")], _osv_source(url, tmp_path))
    assert outcome.advisories == ()
    assert outcome.not_checked is not None and "failed" in outcome.not_checked


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_service_marks_every_dependency_not_checked(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1/query"
    deps = [_dep("numpy", "1.26.4"), _dep("torch", "2.13.0"), _dep("onnx", "1.16.0")]
    outcomes = check_vulnerabilities(deps, _osv_source(url, tmp_path))
    assert all(o.advisories == () for o in outcomes)
    for outcome in outcomes:
        assert outcome.not_checked is not None
        assert "unreachable" in outcome.not_checked and "127.0.0.1" in outcome.not_checked


@pytest.mark.skipif(
    os.environ.get("MLWARDEN_ONLINE_TESTS") != "1",
    reason="asks pypi.org; opt in with MLWARDEN_ONLINE_TESTS=1",
)
def test_real_pypi_service_never_reports_a_known_vulnerable_version_clean(tmp_path: Path) -> None:
    # requests 2.19.0 is affected by CVE-2018-18074 (PYSEC-2018-28). Depending on what the
    # network lets through, PyPI names it, or the dependency is "not checked": never clean.
    source = AdvisorySource(kind=ServiceKind.PYPI, timeout=20, cache_dir=tmp_path / "cache")
    (outcome,) = check_vulnerabilities([_dep("requests", "2.19.0")], source)
    if outcome.not_checked is None:
        ids = {a.id for a in outcome.advisories} | {
            x for a in outcome.advisories for x in a.aliases
        }
        assert "CVE-2018-18074" in ids
    else:
        assert outcome.advisories == ()
