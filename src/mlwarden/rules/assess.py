"""Rules of the assess area (filled by the assess work)."""

from __future__ import annotations

from mlwarden.taxonomy import Rule

ATTACK_RULES: tuple[Rule, ...] = ()
