"""Severities of findings and verdicts of checked objects, both ordered."""

from __future__ import annotations

import enum


class Severity(enum.IntEnum):
    """How bad a finding is: info < low < medium < high < critical."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}") from None


class Verdict(enum.Enum):
    """What mlwarden concluded about one object. Unknown is never clean."""

    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"
    ERROR = "error"

    @property
    def rank(self) -> int:
        # An object that could not be checked gates like a suspicious one: fail closed.
        return {"clean": 0, "suspicious": 1, "error": 1, "malicious": 2}[self.value]

    @staticmethod
    def worst(verdicts: list[Verdict]) -> Verdict:
        # Ties keep the first seen: a failed check and a suspicious finding gate alike.
        result = Verdict.CLEAN
        for verdict in verdicts:
            if verdict.rank > result.rank:
                result = verdict
        return result
