"""The shared backend: PostgreSQL (psycopg 3), for several gateway replicas.

Each append transaction first takes `LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE`,
a lock that conflicts with itself but not with readers: appends from every
replica run one after another, each reading the head the previous one wrote, so
the chain never forks; `SELECT`s, `tail` and `verify` are never blocked. Batches
keep the lock's cost per event small: one lock, one head read and one COPY per batch.
A table lock rather than SERIALIZABLE: appends never abort and retry, they wait, so
throughput under contention stays that of one writer instead of collapsing.
A connection the server dropped (restart, failover) is replaced on the next call.

Verification reads from one REPEATABLE READ snapshot through a server-side cursor,
so a log of any length streams in constant memory while appends continue.

Triggers refuse UPDATE, DELETE and TRUNCATE: a guard against mistakes; the table
owner can drop them, which is why `verify` exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlwarden.audit._chain import GENESIS, ChainHead, Row, chain_rows, stored_row
from mlwarden.audit._event import AuditEvent
from mlwarden.audit._log import AuditLog, Snapshot, check_table_name, table_suffix
from mlwarden.errors import AuditStoreError, MissingExtraError

if TYPE_CHECKING:
    import psycopg

_FETCH = 5000
_CONNECT_TIMEOUT_S = 10


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingExtraError("psycopg", "gateway") from None
    return psycopg


class PostgresAuditLog(AuditLog):
    """An audit log in a PostgreSQL table (created with its table unless `create=False`).

    `conninfo` is a libpq connection string or URL (`postgresql://user@host/db`).
    """

    def __init__(self, conninfo: str, *, table: str = "audit_log", create: bool = True) -> None:
        super().__init__()
        self._psycopg = _psycopg()
        self._conninfo = conninfo
        self._table = check_table_name(table)
        try:
            self._conn: psycopg.Connection[tuple[Any, ...]] = self._connect()
        except self._psycopg.Error as exc:
            raise self._store_error("open", exc) from None
        try:
            if create:
                self._create()
            self._log_id = self._read_log_id()
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, self._psycopg.Error):
                raise self._store_error("open", exc) from None
            raise

    @property
    def log_id(self) -> str:
        return self._log_id

    @property
    def url(self) -> str:
        try:
            info = self._psycopg.conninfo.conninfo_to_dict(self._conninfo)
        except self._psycopg.Error:
            return "postgresql"
        host, db = info.get("host", "localhost"), info.get("dbname", "")
        return f"postgresql://{host}/{db}{table_suffix(self._table)}"

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn: psycopg.Connection[tuple[Any, ...]] = self._psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        )
        return conn

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection, reconnected if the server dropped it (a restart, a failover).

        Without this a writer would retry forever on a dead connection after the
        database came back.
        """
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _store_error(self, what: str, exc: BaseException) -> AuditStoreError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return AuditStoreError(f"cannot {what} audit log {self.url}: {detail}")

    def _create(self) -> None:
        t = self._table
        with self._conn.transaction():
            # CREATE ... IF NOT EXISTS races with itself; one lock per table name serialises it.
            self._conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"mlwarden.audit:{t}",)
            )
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (seq BIGINT PRIMARY KEY, "
                "prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event TEXT NOT NULL)"
            )
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t}_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self._conn.execute(
                f"INSERT INTO {t}_meta (key, value) VALUES ('log_id', %s) "  # noqa: S608
                "ON CONFLICT (key) DO NOTHING",
                (str(uuid.uuid4()),),
            )
            self._conn.execute(
                f"CREATE OR REPLACE FUNCTION {t}_append_only() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'the audit log is append-only'; END $$"
            )
            self._conn.execute(
                f"CREATE OR REPLACE TRIGGER {t}_no_change BEFORE UPDATE OR DELETE ON {t} "
                f"FOR EACH ROW EXECUTE FUNCTION {t}_append_only()"
            )
            self._conn.execute(
                f"CREATE OR REPLACE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {t}_append_only()"
            )

    def _read_log_id(self) -> str:
        try:
            row = self._conn.execute(
                f"SELECT value FROM {self._table}_meta WHERE key = 'log_id'"  # noqa: S608
            ).fetchone()
        except self._psycopg.errors.UndefinedTable:
            row = None
        if row is None:
            raise AuditStoreError(f"{self.url}: no audit log table {self._table!r}")
        return str(row[0])

    def _append_rows(self, events: Sequence[AuditEvent]) -> list[Row]:
        t = self._table
        try:
            conn = self._live()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f"LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE")
                row = cur.execute(
                    f"SELECT seq, hash FROM {t} ORDER BY seq DESC LIMIT 1"  # noqa: S608
                ).fetchone()
                head = (
                    ChainHead(seq=0, hash=GENESIS)
                    if row is None
                    else ChainHead(seq=row[0], hash=row[1])
                )
                rows = chain_rows(head, events)
                # COPY: one stream per batch, about half the CPU of executemany's INSERTs.
                with cur.copy(f"COPY {t} (seq, prev_hash, hash, event) FROM STDIN") as copy:
                    for s, p, h, d in rows:
                        copy.write_row((s, p, h, d.decode("ascii")))
        except self._psycopg.Error as exc:
            raise self._store_error("append to", exc) from None
        return rows

    def _head(self) -> ChainHead:
        try:
            row = (
                self._live()
                .execute(
                    f"SELECT seq, hash FROM {self._table} ORDER BY seq DESC LIMIT 1"  # noqa: S608
                )
                .fetchone()
            )
        except self._psycopg.Error as exc:
            raise self._store_error("read", exc) from None
        return ChainHead(seq=0, hash=GENESIS) if row is None else ChainHead(seq=row[0], hash=row[1])

    def _tail_rows(self, n: int) -> list[Row]:
        try:
            rows = (
                self._live()
                .execute(
                    f"SELECT seq, prev_hash, hash, event FROM {self._table} "  # noqa: S608
                    "ORDER BY seq DESC LIMIT %s",
                    (n,),
                )
                .fetchall()
            )
        except self._psycopg.Error as exc:
            raise self._store_error("read", exc) from None
        return [stored_row(r) for r in reversed(rows)]

    @contextmanager
    def _snapshot(self) -> Iterator[Snapshot]:
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self._conninfo, connect_timeout=_CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise self._store_error("read", exc) from None
        try:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

            def rows() -> Iterator[Row]:
                try:
                    with conn.cursor(name="mlwarden_audit_walk") as cursor:
                        cursor.itersize = _FETCH
                        cursor.execute(
                            f"SELECT seq, prev_hash, hash, event FROM {self._table} "  # noqa: S608
                            "ORDER BY seq"
                        )
                        for r in cursor:
                            yield stored_row(r)
                except psycopg.Error as exc:
                    raise self._store_error("read", exc) from None

            def find_hash(digest: str) -> list[int]:
                try:
                    found = conn.execute(
                        f"SELECT seq FROM {self._table} WHERE hash = %s ORDER BY seq",  # noqa: S608
                        (digest,),
                    ).fetchall()
                except psycopg.Error as exc:
                    raise self._store_error("read", exc) from None
                return [int(r[0]) for r in found]

            finder: Callable[[str], list[int]] = find_hash
            yield rows(), finder
        finally:
            conn.close()

    def _close(self) -> None:
        self._conn.close()
