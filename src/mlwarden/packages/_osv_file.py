"""A local advisory database: an OSV export, for offline and air-gapped audits.

Accepted inputs: one OSV record (a JSON object with `id`), a JSON list of
records, an OSV API response (`{"vulns": [...]}`), a directory of such JSON
files, or a zip of them, which is how OSV publishes its bulk export
(``PyPI/all.zip``). The database answers through pip-audit's own
`VulnerabilityService` interface, so the audit runs the same engine whichever
source answers.

OSV records are an open, growing format, so unknown fields are ignored (a
strict schema would reject tomorrow's export); the fields matching depends on
are validated, and an error names the file and the field.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pip_audit._service.interface import (
    Dependency,
    ResolvedDependency,
    ServiceError,
    VulnerabilityResult,
    VulnerabilityService,
)
from pydantic import BaseModel, ConfigDict, ValidationError

from mlwarden.errors import AdvisoryDatabaseError, PathNotFoundError
from mlwarden.packages._advisory import osv_severity

MAX_RECORD_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
MAX_RECORDS = 500_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Package(_Model):
    ecosystem: str
    name: str


class _Range(_Model):
    type: str
    events: list[dict[str, str]] = []


class _Affected(_Model):
    package: _Package | None = None
    ranges: list[_Range] = []
    versions: list[str] = []


class _Record(_Model):
    id: str
    summary: str | None = None
    details: str | None = None
    aliases: list[str] = []
    withdrawn: str | None = None
    affected: list[_Affected] = []


class RatedVulnerabilityResult(VulnerabilityResult):  # type: ignore[misc]
    """pip-audit's result plus the severity the advisory states (pip-audit drops it)."""

    severity: Any = None


def _result(
    record: _Record, raw: dict[str, Any], affected_raw: dict[str, Any], fixed: list[Version]
) -> Any:
    ids = [record.id, *record.aliases]
    ids.sort(key=lambda i: 0 if i.startswith("PYSEC") else 1 if i.startswith("CVE") else 2)
    description = (record.summary or record.details or "N/A").replace("\n", " ")
    result = RatedVulnerabilityResult(ids[0], description, sorted(fixed), set(ids[1:]), None)
    object.__setattr__(result, "severity", osv_severity(raw, affected_raw))
    return result


class LocalOsvService(VulnerabilityService):  # type: ignore[misc]
    """Answers `query` from OSV records held in memory, indexed by package name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: dict[str, list[tuple[_Record, dict[str, Any], dict[str, Any], _Affected]]] = {}
        count = 0
        for where, raw in _records(path):
            count += 1
            if count > MAX_RECORDS:
                raise AdvisoryDatabaseError(f"{path}: more than {MAX_RECORDS} advisories")
            try:
                record = _Record.model_validate(raw)
            except ValidationError as exc:
                error = exc.errors()[0]
                field = ".".join(str(p) for p in error["loc"]) or "(record)"
                raise AdvisoryDatabaseError(
                    f"{where}: invalid OSV record at {field}: {error['msg']}"
                ) from None
            if record.withdrawn is not None:
                continue
            affected_raw = raw.get("affected", [])
            for position, affected in enumerate(record.affected):
                if affected.package is None or affected.package.ecosystem != "PyPI":
                    continue
                key = canonicalize_name(affected.package.name)
                self._index.setdefault(key, []).append(
                    (record, raw, affected_raw[position], affected)
                )

    def query(self, spec: Dependency) -> tuple[Dependency, list[Any]]:
        if spec.is_skipped():
            return spec, []
        assert isinstance(spec, ResolvedDependency)
        version: Version = spec.version
        results: list[Any] = []
        for record, raw, affected_raw, affected in self._index.get(spec.canonical_name, []):
            hit, fixed = _matches(version, affected, record.id)
            if hit:
                results.append(_result(record, raw, affected_raw, fixed))
        return spec, results


def _matches(version: Version, affected: _Affected, record_id: str) -> tuple[bool, list[Version]]:
    """Whether `version` is affected, and the fixed versions the ranges name."""
    fixed: list[Version] = []
    hit = False
    for text in affected.versions:
        try:
            if Version(text) == version:
                hit = True
        except InvalidVersion:
            continue  # listed versions that do not parse cannot be the one we ask about
    for version_range in affected.ranges:
        if version_range.type != "ECOSYSTEM":
            continue  # GIT ranges name commits, not releases
        start: Version | None = None
        for event in version_range.events:
            try:
                if "introduced" in event:
                    start = (
                        Version("0") if event["introduced"] == "0" else Version(event["introduced"])
                    )
                elif "fixed" in event:
                    end = Version(event["fixed"])
                    fixed.append(end)
                    if start is not None and start <= version < end:
                        hit = True
                    start = None
                elif "last_affected" in event:
                    last = Version(event["last_affected"])
                    if start is not None and start <= version <= last:
                        hit = True
                    start = None
            except InvalidVersion:
                # A range we cannot read could include this version: say so, fail closed.
                raise ServiceError(
                    f"advisory {record_id} has a version range that does not parse: {event}"
                ) from None
        if start is not None and version >= start:
            hit = True
    return hit, fixed


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not path.exists():
        raise PathNotFoundError(f"{path}: no such advisory database")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        for file in files:
            yield from _records_in(str(file), _read_limited(file))
        return
    if zipfile.is_zipfile(path):
        yield from _records_in_zip(path)
        return
    yield from _records_in(str(path), _read_limited(path, limit=MAX_TOTAL_BYTES))


def _read_limited(path: Path, *, limit: int = MAX_RECORD_BYTES) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise AdvisoryDatabaseError(f"{path}: {size} bytes is larger than {limit}")
        return path.read_bytes()
    except OSError as exc:
        raise AdvisoryDatabaseError(f"{path}: cannot read: {exc.strerror}") from None


def _records_in_zip(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > MAX_RECORD_BYTES:
                    raise AdvisoryDatabaseError(f"{path}!{info.filename}: record too large")
                total += info.file_size
                if total > MAX_TOTAL_BYTES:
                    raise AdvisoryDatabaseError(f"{path}: more than {MAX_TOTAL_BYTES} bytes")
                with archive.open(info) as member:
                    data = member.read(MAX_RECORD_BYTES + 1)
                yield from _records_in(f"{path}!{info.filename}", data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise AdvisoryDatabaseError(f"{path}: not a readable zip: {exc}") from None


def _records_in(where: str, data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdvisoryDatabaseError(f"{where}: not valid JSON: {exc}") from None
    if document == {}:
        return  # the OSV API's answer when nothing is known
    if isinstance(document, dict) and "vulns" in document and "id" not in document:
        document = document["vulns"]
    items = document if isinstance(document, list) else [document]
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise AdvisoryDatabaseError(f"{where}: item {position} is not an OSV record object")
        yield where, item
