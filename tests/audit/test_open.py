"""Opening logs by URL, the `audit:` config section, and a crash in the middle of writing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlwarden.audit import AuditConfig, open_audit_log
from mlwarden.errors import PathNotFoundError, UsageError

from .conftest import Store, event

_CRASHER = """
import sys
from mlwarden.audit import open_audit_log, BatchedAuditWriter, AuditEvent, Decision
url, table = sys.argv[1], sys.argv[2]
log = open_audit_log(url, table=table)
writer = BatchedAuditWriter(log)
def ev(i):
    return AuditEvent(kind="infer", decision=Decision.ALLOW, reason="ok", request_id=str(i))
for i in range(1000):
    writer.submit(ev(i))
writer.flush()
print("flushed", flush=True)
i = 1000
while True:  # keeps the writer busy until the parent kills this process
    writer.submit(ev(i))
    i += 1
    if i % 5000 == 0:
        writer.flush()
"""


def test_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_audit_log("sqlite:///relative.db") as log:
        log.append(event(1))
    assert (tmp_path / "relative.db").is_file()
    absolute = tmp_path / "sub" / "absolute.db"
    absolute.parent.mkdir()
    with open_audit_log(f"sqlite:///{absolute}") as log:  # sqlite:////tmp/...: absolute
        assert log.url == f"sqlite:///{absolute}"
    with open_audit_log(str(absolute), table="other", create=True) as log:
        assert log.url == f"sqlite:///{absolute}?table=other"
    with pytest.raises(PathNotFoundError):
        open_audit_log("sqlite:///missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    for bad in ("sqlite:///", "sqlite:///dir/", "sqlite:///a.db?mode=ro", "redis://x"):
        with pytest.raises(UsageError):
            open_audit_log(bad)


def test_postgres_url_aliases(pg_store: Store) -> None:
    store = pg_store
    store.open()
    alias = store.url.replace("postgresql://", "postgres://", 1)
    with open_audit_log(alias, table=store.table, create=False) as log:
        assert log.log_id == store.open().log_id
        assert log.url == f"postgresql://127.0.0.1/test?table={store.table}"


def test_config_section() -> None:
    config = AuditConfig.model_validate({"url": "postgresql://db/audit", "max_batch": 256})
    assert config.limits().max_batch == 256 and config.table == "audit_log"
    assert AuditConfig().url == "sqlite:///mlwarden-audit.db"
    for bad in ({"unknown": 1}, {"table": "Bad-Name"}, {"max_batch": 0}, {"max_batch": "9"}):
        with pytest.raises(ValidationError):
            AuditConfig.model_validate(bad)


def test_a_crash_while_writing_keeps_the_chain(store: Store) -> None:
    store.open()
    src = Path(__file__).resolve().parents[2] / "src"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHER, store.url, store.table],
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"flushed"
        time.sleep(0.5)  # let batches be mid-write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    log = store.open()
    result = log.verify()
    assert result.intact
    assert result.records >= 1000  # everything flushed survived; at most a batch was lost
    assert log.append(event(1)).seq == result.records + 1  # and appending goes on
    assert log.verify().intact
