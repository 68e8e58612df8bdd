"""The `update` section of `mlwarden.yaml` (boundary model, pydantic, extra=forbid)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class UpdateConfig(BaseModel):
    """The `update` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
