"""The `authorization:` section of mlwarden.yaml (pydantic boundary model, extra=forbid)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class AuthorizationConfig(BaseModel):
    """Cedar policy files, how often to look for edits, and the decision cache size.

    `policy_files` may not be empty (an empty list would deny everything, silently); a
    file that is present but holds no policy denies everything, as Cedar does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_files: list[Path] = Field(min_length=1)
    reload_check_seconds: float = Field(default=1.0, ge=0)
    decision_cache_size: int = Field(default=10_000, ge=0)
