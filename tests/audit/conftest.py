"""Real stores for the audit tests: a SQLite file per test, a PostgreSQL table per test.

PostgreSQL is a throwaway server the tests start once per session (tests/audit/pg_server.py:
initdb + pg_ctl on a free port of 127.0.0.1, database `test`, trust auth), started only
when a PostgreSQL test runs; each test gets its own table (and meta table and trigger
function) and drops them afterwards. `Store.tamper` runs raw SQL with the append-only triggers
removed: what an attacker with write access to the database can do.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.audit import AuditEvent, AuditLog, Decision, open_audit_log

from .pg_server import PostgresServer, postgres_server


def event(i: int, **changes: Any) -> AuditEvent:
    """A plausible gateway decision, numbered by its request id."""
    fields: dict[str, Any] = {
        "kind": "infer",
        "decision": Decision.ALLOW if i % 3 else Decision.DENY,
        "reason": "ok" if i % 3 else "E310",
        "request_id": f"req-{i}",
        "identity": "alice" if i % 2 else "bob",
        "model": "churn",
        "action": "infer",
        "input_sha256": f"{i:064x}",
        "output": {"label": "yes", "top_k": 1} if i % 3 else None,
        "latency_us": 100 + i,
    }
    fields.update(changes)
    return AuditEvent(**fields)


@dataclass
class Store:
    """One audit store: its URL and table, a way to open logs on it, and raw SQL access."""

    kind: str
    url: str
    table: str
    opened: list[AuditLog] = field(default_factory=list)

    def open(self, *, create: bool = True) -> AuditLog:
        log = open_audit_log(self.url, table=self.table, create=create)
        self.opened.append(log)
        return log

    def tamper(self, *statements: str) -> None:
        """Run SQL (with `{t}` for the table) after removing the append-only triggers."""
        t = self.table
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            try:
                conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_update")
                conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_delete")
                for sql in statements:
                    conn.execute(sql.replace("{t}", t))
                conn.commit()
            finally:
                conn.close()
        else:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_change ON {t}")
                conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_truncate ON {t}")
                for sql in statements:
                    conn.execute(sql.replace("{t}", t))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            try:
                return conn.execute(sql.replace("{t}", self.table)).fetchall()
            finally:
                conn.close()
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql.replace("{t}", self.table)).fetchall()

    def renumber(self, where: str, delta: int) -> None:
        """Shift `seq` by `delta` for rows matching `where`, without primary-key clashes."""
        self.tamper(
            f"UPDATE {{t}} SET seq = -seq WHERE {where}",
            f"UPDATE {{t}} SET seq = -seq + ({delta}) WHERE seq < 0",
        )

    def cleanup(self) -> None:
        for log in self.opened:
            log.close()
        if self.kind == "postgres":
            t = self.table
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {t}, {t}_meta")
                conn.execute(f"DROP FUNCTION IF EXISTS {t}_append_only()")


def make_store(kind: str, tmp_path: Path, pg: PostgresServer | None = None) -> Store:
    table = f"audit_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        return Store(kind=kind, url=f"sqlite:///{tmp_path / 'audit.db'}", table=table)
    assert pg is not None
    # The application name tells this test's connections apart in pg_stat_activity.
    return Store(kind=kind, url=f"{pg.url()}?application_name={table}", table=table)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    yield from postgres_server()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    pg = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    made = make_store(request.param, tmp_path, pg)
    yield made
    made.cleanup()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    made = make_store("sqlite", tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
def pg_store(tmp_path: Path, pg_server: PostgresServer) -> Iterator[Store]:
    made = make_store("postgres", tmp_path, pg_server)
    yield made
    made.cleanup()


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path
    key: ec.EllipticCurvePrivateKey


@pytest.fixture
def keys(tmp_path: Path) -> Callable[..., KeyFiles]:
    def make(name: str = "audit", curve: ec.EllipticCurve | None = None) -> KeyFiles:
        key = ec.generate_private_key(curve or ec.SECP256R1())
        private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return KeyFiles(private=private, public=public, key=key)

    return make
