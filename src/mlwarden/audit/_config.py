"""The `audit:` section of mlwarden.yaml (a boundary model: strict, extra="forbid")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mlwarden.audit._writer import WriterLimits


class AuditConfig(BaseModel):
    """Where the gateway's audit log lives and how it batches writes.

    `url`: `sqlite:///PATH` (default, one machine) or `postgresql://...` (several
    replicas). `table`: the log's table name. `max_batch`/`max_pending`/`linger_ms`:
    see `WriterLimits` (the default linger of 2 ms batches the commits of calls that
    arrive one at a time; 0 commits each as soon as the writer sees it).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url: str = Field(default="sqlite:///mlwarden-audit.db", min_length=1)
    table: str = Field(default="audit_log", pattern=r"^[a-z_][a-z0-9_]{0,47}$")
    max_batch: int = Field(default=1024, ge=1, le=100_000)
    max_pending: int = Field(default=100_000, ge=1, le=10_000_000)
    linger_ms: float = Field(default=2.0, ge=0.0, le=1000.0)

    def limits(self) -> WriterLimits:
        return WriterLimits(
            max_batch=self.max_batch,
            max_pending=self.max_pending,
            linger_s=self.linger_ms / 1000.0,
        )
