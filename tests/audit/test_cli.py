"""`mlwarden audit verify|tail|checkpoint` in-process: output, exit codes, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mlwarden.cli import main

from .conftest import KeyFiles, Store, event


def _fill(store: Store, n: int = 5) -> None:
    store.open().append_many([event(i) for i in range(1, n + 1)])


def _db(store: Store) -> list[str]:
    return ["--db", store.url, "--table", store.table]


def test_verify_intact_and_broken(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(store)
    assert main(["audit", "verify", *_db(store)]) == 0
    assert capsys.readouterr().out.startswith("intact: 5 records, head 5 ")
    store.tamper("UPDATE {t} SET event = replace(event, 'churn', 'other') WHERE seq = 3")
    assert main(["audit", "verify", *_db(store)]) == 1
    assert capsys.readouterr().out.startswith("BROKEN at record 3: changed: ")
    assert main(["audit", "verify", *_db(store), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["intact"] is False
    assert report["first_break"]["seq"] == 3 and report["first_break"]["kind"] == "changed"
    assert report["records"] == 2


def test_tail_table_and_json(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(store, 4)
    assert main(["audit", "tail", *_db(store), "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "decision" in out and "req-3" in out and "req-2" not in out
    lines = [line.split() for line in out.splitlines()[1:]]
    assert [line[0] for line in lines] == ["3", "4"]
    assert main(["audit", "tail", *_db(store), "-n", "2", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["event"]["request_id"] for r in records] == ["req-3", "req-4"]
    assert records[1]["prev_hash"] == records[0]["hash"]


def test_tail_does_not_interpret_markup(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_store.open().append(event(1, identity="[bold]eve[/bold]"))
    assert main(["audit", "tail", *_db(sqlite_store)]) == 0
    assert "[bold]eve[/bold]" in capsys.readouterr().out


def test_checkpoint_then_truncation(
    store: Store,
    keys: Callable[..., KeyFiles],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fill(store, 6)
    pair = keys()
    out = tmp_path / "head.json"
    assert (
        main(["audit", "checkpoint", *_db(store), "--key", str(pair.private), "-o", str(out)]) == 0
    )
    assert "checkpoint of record 6 " in capsys.readouterr().out
    pinned = ["--checkpoint", str(out), "--key", str(pair.public)]
    assert main(["audit", "verify", *_db(store), *pinned]) == 0
    assert "reaches checkpoint record 6" in capsys.readouterr().out
    store.tamper("DELETE FROM {t} WHERE seq = 6")
    assert main(["audit", "verify", *_db(store)]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", *_db(store), *pinned]) == 1
    assert "BROKEN at record 6: deleted: " in capsys.readouterr().out
    other = keys("other")
    assert (
        main(["audit", "verify", *_db(store), "--checkpoint", str(out), "--key", str(other.public)])
        == 1
    )
    assert "E354" in capsys.readouterr().err


def test_checkpoint_refuses_a_broken_log(
    sqlite_store: Store,
    keys: Callable[..., KeyFiles],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fill(sqlite_store, 3)
    sqlite_store.tamper("DELETE FROM {t} WHERE seq = 2")
    out = tmp_path / "head.json"
    args = ["audit", "checkpoint", *_db(sqlite_store), "--key", str(keys().private), "-o", str(out)]
    assert main(args) == 1
    assert "BROKEN at record 2: deleted" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["audit", "verify", "--db", "{missing}"], "E102"),
        (["audit", "verify", "--db", "mysql://host/db"], "E101"),
        (["audit", "verify", "--db", "sqlite:///"], "E101"),
        (["audit", "verify", "--db", "{db}", "--table", "Bad-Name"], "E101"),
        (["audit", "verify", "--db", "{db}", "--table", "other"], "E351"),
        (["audit", "verify", "--db", "{db}", "--checkpoint", "{db}"], "E101"),
        (["audit", "verify", "--db", "{db}", "--checkpoint", "{db}", "--key", "{missing}"], "E"),
        (["audit", "tail", "--db", "{db}", "-n", "-1"], "E101"),
        (["audit", "checkpoint", "--db", "{db}", "--key", "{db}", "-o", "x.json"], "E112"),
        (["audit", "verify"], "E101"),
    ],
)
def test_bad_usage_exits_2_with_a_code(
    argv: list[str], code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "audit.db"
    from mlwarden.audit import open_audit_log

    open_audit_log(f"sqlite:///{db}").close()
    args = [a.format(db=db, missing=tmp_path / "missing") for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlwarden: error: {code}")


def test_verify_does_not_create_a_log(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    assert main(["audit", "verify", "--db", str(missing)]) == 2
    assert not missing.exists()


@pytest.mark.parametrize(
    ("tamper", "rule"),
    [
        ("UPDATE {t} SET event = replace(event, 'alice', 'eve') WHERE seq = 3", "GW050"),
        ("DELETE FROM {t} WHERE seq = 3", "GW051"),
    ],
)
def test_verify_sarif_names_the_rule_and_the_record(
    sqlite_store: Store,
    tamper: str,
    rule: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fill(sqlite_store)
    out = tmp_path / "audit.sarif"
    args = ["audit", "verify", *_db(sqlite_store), "--format", "sarif", "-o", str(out)]
    assert main(args) == 0
    assert json.loads(out.read_text())["runs"][0]["results"] == []
    assert "intact: 5 records" in capsys.readouterr().err
    sqlite_store.tamper(tamper)
    assert main(args) == 1
    results = json.loads(out.read_text())["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == [rule]
    assert "#seq=3: record 3: " in results[0]["message"]["text"]
    assert "BROKEN at record 3" in capsys.readouterr().err
