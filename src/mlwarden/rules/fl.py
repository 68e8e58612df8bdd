"""Rules of the fl area (filled by the fl work)."""

from __future__ import annotations

from mlwarden.taxonomy import Rule

FL_RULES: tuple[Rule, ...] = ()
