"""OSV advisory records written at test time (https://ossf.github.io/osv-schema/)."""

from __future__ import annotations

from typing import Any


def osv_record(
    vuln_id: str,
    package: str,
    *,
    introduced: str = "0",
    fixed: str | None = None,
    last_affected: str | None = None,
    versions: list[str] | None = None,
    severity: list[dict[str, str]] | None = None,
    database_severity: str | None = None,
    aliases: list[str] | None = None,
    withdrawn: str | None = None,
) -> dict[str, Any]:
    """One OSV record (https://ossf.github.io/osv-schema/) for a PyPI package."""
    events: list[dict[str, str]] = [{"introduced": introduced}]
    if fixed is not None:
        events.append({"fixed": fixed})
    if last_affected is not None:
        events.append({"last_affected": last_affected})
    record: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": vuln_id,
        "modified": "2024-01-01T00:00:00Z",
        "summary": f"test advisory for {package}",
        "aliases": aliases or [],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
                "versions": versions or [],
            }
        ],
    }
    if severity is not None:
        record["severity"] = severity
    if database_severity is not None:
        record["database_specific"] = {"severity": database_severity}
    if withdrawn is not None:
        record["withdrawn"] = withdrawn
    return record
