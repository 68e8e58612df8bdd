"""Rules of the update area (filled by the update work)."""

from __future__ import annotations

from mlwarden.taxonomy import Rule

UPDATE_RULES: tuple[Rule, ...] = ()
