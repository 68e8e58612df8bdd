"""The chain on both real stores: appends, reopening, and tampering done directly in SQL.

Every tamper test edits the database the way someone with write access would, then
checks that `verify` names the first broken record and how it was broken.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from mlwarden.audit import GENESIS, BreakKind, ChainHead, link_hash
from mlwarden.errors import AuditEventError, AuditStoreError

from .conftest import Store, event


def fill(store: Store, n: int = 10) -> None:
    log = store.open()
    log.append_many([event(i) for i in range(1, n + 1)])


def test_records_link_from_genesis(store: Store) -> None:
    log = store.open()
    assert log.head() == ChainHead(seq=0, hash=GENESIS)
    first = log.append(event(1))
    more = log.append_many([event(2), event(3)])
    assert [r.seq for r in (first, *more)] == [1, 2, 3]
    assert first.prev_hash == GENESIS
    assert more[0].prev_hash == first.hash and more[1].prev_hash == more[0].hash
    assert first.hash == link_hash(GENESIS, first.event.canonical, 1)
    assert more[1].hash == link_hash(more[0].hash, more[1].event.canonical, 3)
    assert log.head() == ChainHead(seq=3, hash=more[1].hash)
    result = log.verify()
    assert result.intact and result.records == 3 and result.head == log.head()
    assert log.append_many([]) == []


def test_reopening_keeps_the_chain_and_the_log_id(store: Store) -> None:
    log = store.open()
    log.append_many([event(i) for i in range(1, 6)])
    log_id = log.log_id
    log.close()
    with pytest.raises(AuditStoreError, match="is closed"):
        log.append(event(6))
    again = store.open()
    assert again.log_id == log_id
    assert again.append(event(6)).seq == 6
    assert again.verify().intact
    assert [r.event.request_id for r in again.tail(3)] == ["req-4", "req-5", "req-6"]
    assert again.tail(0) == []


def test_tail_returns_the_events_as_written(store: Store) -> None:
    log = store.open()
    written = log.append_many([event(i) for i in range(1, 8)])
    tail = log.tail(3)
    assert tail == written[-3:]
    assert len(log.tail(100)) == 7


def test_the_table_refuses_updates_and_deletes(store: Store) -> None:
    fill(store, 3)
    errors = (sqlite3.IntegrityError, psycopg.errors.RaiseException)
    for sql in ("UPDATE {t} SET event = 'x' WHERE seq = 1", "DELETE FROM {t} WHERE seq = 1"):
        with pytest.raises(errors, match="append-only"):
            store.query(sql)
    assert store.open().verify().intact


def test_changed_event(store: Store) -> None:
    fill(store)
    store.tamper("UPDATE {t} SET event = replace(event, 'alice', 'mallory') WHERE seq = 5")
    broken = store.open().verify()
    assert broken.first_break is not None
    assert (broken.first_break.seq, broken.first_break.kind) == (5, BreakKind.CHANGED)
    assert broken.records == 4 and not broken.intact


def test_changed_event_with_its_hash_recomputed(store: Store) -> None:
    fill(store)
    prev, data = store.query("SELECT prev_hash, event FROM {t} WHERE seq = 5")[0]
    forged = data.replace('"allow"', '"deny"')
    assert forged != data
    store.tamper(
        f"UPDATE {{t}} SET event = '{forged}', hash = '{link_hash(prev, forged.encode(), 5)}' "
        "WHERE seq = 5"
    )
    found = store.open().verify().first_break
    assert found is not None
    assert (found.seq, found.kind) == (5, BreakKind.CHANGED)
    assert "rewritten" in found.message


def test_changed_first_record(store: Store) -> None:
    fill(store, 3)
    store.tamper("UPDATE {t} SET prev_hash = hash WHERE seq = 1")
    found = store.open().verify().first_break
    assert found is not None and found.seq == 1


def test_deleted_record(store: Store) -> None:
    fill(store)
    store.tamper("DELETE FROM {t} WHERE seq = 5")
    found = store.open().verify().first_break
    assert found is not None
    assert (found.seq, found.kind, found.message) == (5, BreakKind.DELETED, "record 5 is missing")


def test_deleted_records_and_the_rest_renumbered(store: Store) -> None:
    fill(store)
    store.tamper("DELETE FROM {t} WHERE seq IN (4, 5)")
    store.renumber("seq > 5", -2)
    result = store.open().verify()
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.kind) == (4, BreakKind.DELETED)
    assert "2 records were deleted" in result.first_break.message
    assert result.records == 3


def test_deleted_first_record_and_renumbered(store: Store) -> None:
    fill(store, 4)
    store.tamper("DELETE FROM {t} WHERE seq = 1")
    store.renumber("seq > 1", -1)
    found = store.open().verify().first_break
    assert found is not None
    assert (found.seq, found.kind) == (1, BreakKind.DELETED)


def test_inserted_record_with_a_valid_hash(store: Store) -> None:
    fill(store)
    prev = store.query("SELECT hash FROM {t} WHERE seq = 4")[0][0]
    forged = event(99).canonical
    store.renumber("seq >= 5", +1)
    store.tamper(
        f"INSERT INTO {{t}} (seq, prev_hash, hash, event) VALUES "
        f"(5, '{prev}', '{link_hash(prev, forged, 5)}', '{forged.decode()}')"
    )
    result = store.open().verify()
    assert result.first_break is not None
    assert (result.first_break.seq, result.first_break.kind) == (5, BreakKind.INSERTED)
    assert result.records == 5  # the forged record itself links correctly


def test_inserted_record_with_a_made_up_hash(store: Store) -> None:
    fill(store)
    prev = store.query("SELECT hash FROM {t} WHERE seq = 4")[0][0]
    store.renumber("seq >= 5", +1)
    store.tamper(
        "INSERT INTO {t} (seq, prev_hash, hash, event) VALUES "
        f"(5, '{prev}', '{'ab' * 32}', '{event(99).canonical.decode()}')"
    )
    found = store.open().verify().first_break
    assert found is not None
    assert (found.seq, found.kind) == (5, BreakKind.INSERTED)


def test_inserted_at_the_end_of_a_gap_free_log_is_a_duplicate(sqlite_store: Store) -> None:
    # Without the primary key (a table rebuilt by hand) two records can share a number.
    fill(sqlite_store, 4)
    sqlite_store.tamper(
        "CREATE TABLE copy AS SELECT * FROM {t}",
        "DROP TABLE {t}",
        "CREATE TABLE {t} (seq INTEGER, prev_hash TEXT, hash TEXT, event TEXT)",
        "INSERT INTO {t} SELECT * FROM copy",
        "INSERT INTO {t} SELECT * FROM copy WHERE seq = 3",
        "DROP TABLE copy",
    )
    found = sqlite_store.open(create=False).verify().first_break
    assert found is not None
    assert (found.seq, found.kind) == (3, BreakKind.INSERTED)


def test_reordered_records(store: Store) -> None:
    fill(store)
    store.tamper(
        "UPDATE {t} SET seq = -1 WHERE seq = 6",
        "UPDATE {t} SET seq = 6 WHERE seq = 7",
        "UPDATE {t} SET seq = 7 WHERE seq = -1",
    )
    found = store.open().verify().first_break
    assert found is not None
    assert (found.seq, found.kind) == (6, BreakKind.REORDERED)
    assert "links to record 7" in found.message


def test_a_garbled_row_is_reported_not_raised(store: Store) -> None:
    fill(store, 5)
    store.tamper("UPDATE {t} SET prev_hash = 'not hex', hash = '' WHERE seq = 3")
    found = store.open().verify().first_break
    assert found is not None and found.seq == 3


def test_tail_of_a_garbled_event_raises_e350(store: Store) -> None:
    fill(store, 3)
    store.tamper("UPDATE {t} SET event = '{not json' WHERE seq = 3")
    with pytest.raises(AuditEventError, match="not JSON"):
        store.open().tail(1)


def test_an_empty_log_is_intact_and_a_missing_one_is_an_error(store: Store) -> None:
    result = store.open().verify()
    assert result.intact and result.records == 0 and result.head.seq == 0
    other = Store(kind=store.kind, url=store.url, table=store.table + "_none")
    with pytest.raises(AuditStoreError, match="no audit log table"):
        other.open(create=False)


def test_escapes_survive_the_store(store: Store) -> None:
    # Backslashes, tabs, quotes and non-ASCII go through COPY (PostgreSQL) and TEXT (SQLite)
    # byte for byte, or the hashes would not match.
    odd = event(1, identity='é\t"\\N\\.\n\x00', detail={"k\\": ["\u2028", "\\\\", "\r\n"]})
    log = store.open()
    log.append(odd)
    assert log.tail(1)[0].event == odd
    assert log.verify().intact
