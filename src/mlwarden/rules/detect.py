"""Rules of the detect area (filled by the detect work)."""

from __future__ import annotations

from mlwarden.taxonomy import Rule

DET_RULES: tuple[Rule, ...] = ()
