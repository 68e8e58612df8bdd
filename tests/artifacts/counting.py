"""A file that counts the bytes read from it: tests that a reader skips tensor data."""

from __future__ import annotations

import io
from pathlib import Path

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._dispatch import scan_stream
from mlwarden.report import Finding


class CountingFile(io.FileIO):
    bytes_read = 0

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = super().readinto(buffer) or 0
        self.bytes_read += count
        return count

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data or b"")
        return data or b""


def scan_counting(path: Path) -> tuple[list[Finding], int]:
    """Scan the file unbuffered; return its findings and how many bytes were read."""
    ctx = ScanContext(limits=Limits(), root=path.parent)
    with CountingFile(path, "r") as stream:
        scan_stream(stream, str(path), ctx, 0)  # type: ignore[arg-type]
        return ctx.findings, stream.bytes_read
