"""The tamper-evident audit log: every gateway decision, hash-chained, append-only.

>>> from mlwarden.audit import AuditEvent, Decision, open_audit_log, BatchedAuditWriter
>>> log = open_audit_log("sqlite:///audit.db")
>>> log.append(AuditEvent(kind="infer", decision=Decision.DENY, reason="E310", request_id="r1"))
>>> log.verify().intact

Each record is `seq, prev_hash, event, hash` with
`hash = sha256("mlwarden.audit.v1\\0" || prev_hash || canonical(event) || seq)`:
changing, deleting, inserting or reordering any stored record breaks a link that
`verify()` names. A signed checkpoint (`export_checkpoint`) pins the head, so
truncation and a log rebuilt from scratch are detected too.

Backends: SQLite (embedded default, WAL, durable) and PostgreSQL (several replicas
appending concurrently; appends serialised by a table lock). On the gateway's hot
path, wrap the log in a `BatchedAuditWriter`: `submit()` queues, a thread writes
batches; it raises E351/E352 when events cannot be recorded, so the request can
be refused (fail closed).
"""

from __future__ import annotations

from mlwarden.audit._chain import (
    GENESIS,
    AuditRecord,
    BreakKind,
    ChainBreak,
    ChainHead,
    ChainVerification,
    link_hash,
)
from mlwarden.audit._checkpoint import (
    Checkpoint,
    key_id,
    load_private_key,
    load_public_key,
    verify_checkpoint,
)
from mlwarden.audit._config import AuditConfig
from mlwarden.audit._event import MAX_EVENT_BYTES, AuditEvent, Decision, JSONValue, utc_now
from mlwarden.audit._log import AuditLog
from mlwarden.audit._open import open_audit_log
from mlwarden.audit._writer import BatchedAuditWriter, WriterLimits

__all__ = [
    "GENESIS",
    "MAX_EVENT_BYTES",
    "AuditConfig",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "BatchedAuditWriter",
    "BreakKind",
    "ChainBreak",
    "ChainHead",
    "ChainVerification",
    "Checkpoint",
    "Decision",
    "JSONValue",
    "WriterLimits",
    "key_id",
    "link_hash",
    "load_private_key",
    "load_public_key",
    "open_audit_log",
    "utc_now",
    "verify_checkpoint",
]
