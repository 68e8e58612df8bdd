"""The signals the runtime detectors raise."""

from __future__ import annotations

from enum import StrEnum


class Signal(StrEnum):
    """What a stream or a request looks like: one per kind of attack through the API."""

    EXTRACTION = "extraction"
    ADVERSARIAL = "adversarial"
    PROBING = "probing"
