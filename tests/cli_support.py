"""Helpers shared by the CLI bad-input tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


class Marker:
    """Unpickling this creates a file: its absence proves nothing was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (Path.touch, (self.path,))


def one_line_error(capsys: pytest.CaptureFixture[str], code: str) -> str:
    """The single `mlwarden: error: CODE: ...` line on stderr (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("mlwarden: error:")]
    assert len(lines) == 1 and f"error: {code}:" in lines[0], err
    return lines[0]
