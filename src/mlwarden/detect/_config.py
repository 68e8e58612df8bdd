"""The `detect` section of `mlwarden.yaml` (boundary model, pydantic, extra=forbid)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DetectorsConfig(BaseModel):
    """The `detect` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
