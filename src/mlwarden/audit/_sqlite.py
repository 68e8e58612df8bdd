"""The embedded backend: one SQLite file, in WAL mode, durable across restarts.

Appends run in `BEGIN IMMEDIATE` transactions, which take SQLite's single write
lock before reading the head: two processes sharing the file queue up rather than
both chaining onto the same head. `synchronous=FULL` makes each committed batch
survive a power cut, not only a process crash; batching keeps that cheap.

Triggers refuse UPDATE and DELETE: a guard against mistakes, not against someone
who can write the file (they can drop the triggers). `verify` is the real check.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlwarden.audit._chain import GENESIS, ChainHead, Row, chain_rows, stored_row
from mlwarden.audit._event import AuditEvent
from mlwarden.audit._log import AuditLog, Snapshot, check_table_name, table_suffix
from mlwarden.errors import AuditStoreError, PathNotFoundError

_BUSY_TIMEOUT_S = 30.0
_FETCH = 2000


class SqliteAuditLog(AuditLog):
    """An audit log in a SQLite file (created with its table unless `create=False`)."""

    def __init__(self, path: Path | str, *, table: str = "audit_log", create: bool = True) -> None:
        super().__init__()
        self._path = Path(path)
        self._table = check_table_name(table)
        if not create and not self._path.is_file():
            raise PathNotFoundError(f"audit database {self._path} does not exist")
        try:
            self._conn = self._connect(read_only=not create)
        except sqlite3.Error as exc:
            raise self._store_error("open", exc) from None
        try:
            if create:
                self._create()
            self._log_id = self._read_log_id(self._conn)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._store_error("open", exc) from None
            raise

    @property
    def log_id(self) -> str:
        return self._log_id

    @property
    def url(self) -> str:
        return f"sqlite:///{self._path}{table_suffix(self._table)}"

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        if read_only:
            uri = f"{self._path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False,
                timeout=_BUSY_TIMEOUT_S,
            )  # fmt: skip
        else:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_S
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _create(self) -> None:
        t = self._table
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (seq INTEGER PRIMARY KEY, "
                "prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event TEXT NOT NULL)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t}_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            conn.execute(
                f"INSERT OR IGNORE INTO {t}_meta (key, value) VALUES ('log_id', ?)",  # noqa: S608
                (str(uuid.uuid4()),),
            )
            for op in ("UPDATE", "DELETE"):
                conn.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
                    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _read_log_id(self, conn: sqlite3.Connection) -> str:
        try:
            row = conn.execute(
                f"SELECT value FROM {self._table}_meta WHERE key = 'log_id'"  # noqa: S608
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is None:
            raise AuditStoreError(f"{self._path} holds no audit log table {self._table!r}")
        return str(row[0])

    def _store_error(self, what: str, exc: sqlite3.Error) -> AuditStoreError:
        return AuditStoreError(f"cannot {what} audit log {self.url}: {exc}")

    def _append_rows(self, events: Sequence[AuditEvent]) -> list[Row]:
        t = self._table
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    f"SELECT seq, hash FROM {t} ORDER BY seq DESC LIMIT 1"  # noqa: S608
                ).fetchone()
                head = (
                    ChainHead(seq=0, hash=GENESIS)
                    if row is None
                    else ChainHead(seq=row[0], hash=row[1])
                )
                rows = chain_rows(head, events)
                conn.executemany(
                    f"INSERT INTO {t} (seq, prev_hash, hash, event) VALUES (?, ?, ?, ?)",  # noqa: S608
                    [(s, p, h, d.decode("ascii")) for s, p, h, d in rows],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._store_error("append to", exc) from None
        return rows

    def _head(self) -> ChainHead:
        try:
            row = self._conn.execute(
                f"SELECT seq, hash FROM {self._table} ORDER BY seq DESC LIMIT 1"  # noqa: S608
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._store_error("read", exc) from None
        return ChainHead(seq=0, hash=GENESIS) if row is None else ChainHead(seq=row[0], hash=row[1])

    def _tail_rows(self, n: int) -> list[Row]:
        try:
            rows = self._conn.execute(
                f"SELECT seq, prev_hash, hash, event FROM {self._table} "  # noqa: S608
                "ORDER BY seq DESC LIMIT ?",
                (n,),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._store_error("read", exc) from None
        return [stored_row(r) for r in reversed(rows)]

    @contextmanager
    def _snapshot(self) -> Iterator[Snapshot]:
        # A connection of its own: a long verification must not hold up appends, and
        # one read transaction gives every query the same snapshot (WAL).
        try:
            conn = self._connect(read_only=True)
        except sqlite3.Error as exc:
            raise self._store_error("read", exc) from None
        try:
            conn.execute("BEGIN")

            def rows() -> Iterator[Row]:
                try:
                    cursor = conn.execute(
                        f"SELECT seq, prev_hash, hash, event FROM {self._table} "  # noqa: S608
                        "ORDER BY seq"
                    )
                    while batch := cursor.fetchmany(_FETCH):
                        for r in batch:
                            yield stored_row(r)
                except sqlite3.Error as exc:
                    raise self._store_error("read", exc) from None

            def find_hash(digest: str) -> list[int]:
                try:
                    found = conn.execute(
                        f"SELECT seq FROM {self._table} WHERE hash = ? ORDER BY seq",  # noqa: S608
                        (digest,),
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise self._store_error("read", exc) from None
                return [int(r[0]) for r in found]

            finder: Callable[[str], list[int]] = find_hash
            yield rows(), finder
        finally:
            conn.close()

    def _close(self) -> None:
        self._conn.close()
