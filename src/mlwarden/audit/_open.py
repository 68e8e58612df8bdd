"""Open a log by URL: `sqlite:///relative.db`, `sqlite:////absolute.db`, `postgresql://...`."""

from __future__ import annotations

from pathlib import Path

from mlwarden.audit._log import AuditLog
from mlwarden.errors import UsageError

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")


def open_audit_log(url: str, *, table: str = "audit_log", create: bool = True) -> AuditLog:
    """Open (and with `create`, create) the audit log at `url`.

    SQLite URLs follow SQLAlchemy: three slashes then the path, so
    `sqlite:///audit.db` is relative and `sqlite:////var/lib/mlwarden/audit.db`
    absolute. A bare path also means SQLite. `create=False` opens an existing log
    only (for `verify` and `tail`: a mistyped path is an error, not a new empty log
    that verifies as intact).
    """
    if url.startswith(_POSTGRES):
        from mlwarden.audit._postgres import PostgresAuditLog

        return PostgresAuditLog(url, table=table, create=create)
    if url.startswith(_SQLITE):
        path = url.removeprefix(_SQLITE)
    elif "://" in url:
        raise UsageError(
            f"audit log URL {url.split('://', maxsplit=1)[0]}:// is not supported",
            hint="use sqlite:///PATH or postgresql://USER@HOST/DB",
        )
    else:
        path = url
    if not path or path.endswith("/") or "?" in path:
        raise UsageError(f"audit log URL {url!r} names no database file")
    from mlwarden.audit._sqlite import SqliteAuditLog

    return SqliteAuditLog(Path(path), table=table, create=create)
