"""What every format reader receives: the limits, the findings sink, the clock.

Readers never raise for a decision: they call `ctx.add(...)` with a rule id. They
raise `MalformedInputError` when content does not parse (the dispatcher turns it
into the reader's "malformed" finding) and `LimitExceededError` through
`ctx.charge_*` / `ctx.check_time` when hostile input would make the work
unbounded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlwarden.errors import LimitExceededError
from mlwarden.report import Finding

if TYPE_CHECKING:
    from mlwarden.severity import Severity

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on the work one file may cause. Hitting one is a finding."""

    max_depth: int = 6
    """Containers inside containers (zip in tar in gzip ...)."""
    max_decompressed_bytes: int = 4 * GiB
    """Total bytes decompressed for one top-level file, over every nested member."""
    max_member_bytes: int = 1 * GiB
    """Largest single member that is decompressed to be scanned."""
    max_compression_ratio: float = 250.0
    """Zip-bomb guard: decompressed/compressed, for members that inflate past the floor."""
    ratio_floor_bytes: int = 64 * MiB
    """The ratio guard applies past this output size only. Below it the absolute limits
    bound the work, and benign content compresses absurdly well (a zero-initialised
    tensor of a few MiB deflates about 1000:1): flagging it would cry wolf."""
    max_members: int = 200_000
    max_pickle_bytes: int = 1 * GiB
    max_pickle_opcodes: int = 20_000_000
    max_memo_entries: int = 2_000_000
    max_stack_depth: int = 100_000
    max_header_bytes: int = 256 * MiB
    """Headers and metadata blocks (safetensors JSON, GGUF KV, ONNX protobuf parts)."""
    max_seconds_per_file: float = 120.0


@dataclass(slots=True)
class ScanContext:
    """The state of scanning one top-level file."""

    limits: Limits
    root: Path
    findings: list[Finding] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    decompressed: int = 0
    formats: list[str] = field(default_factory=list)
    # Keys of every finding recorded: hostile archives can yield a finding per member,
    # so collapsing duplicates must not scan the list each time.
    _seen: set[tuple[object, ...]] = field(default_factory=set, repr=False)

    def add(
        self,
        rule_id: str,
        message: str,
        location: str,
        *,
        severity: Severity | None = None,
        **detail: object,
    ) -> None:
        """Record a finding, once: identical findings at one location collapse."""
        finding = Finding(
            rule_id=rule_id,
            message=message,
            location=location,
            severity=severity,
            detail={k: str(v) for k, v in detail.items()},
        )
        key = (rule_id, message, location, finding.severity, *sorted(finding.detail.items()))
        if key not in self._seen:
            self._seen.add(key)
            self.findings.append(finding)

    def check_time(self) -> None:
        if time.monotonic() - self.started > self.limits.max_seconds_per_file:
            raise LimitExceededError(
                f"time limit of {self.limits.max_seconds_per_file:g} s per file reached",
                rule_id="SCAN001",
            )

    def charge_decompressed(self, nbytes: int) -> None:
        """Account for bytes produced by decompression; refuse past the limit."""
        self.decompressed += nbytes
        if self.decompressed > self.limits.max_decompressed_bytes:
            raise LimitExceededError(
                f"more than {self.limits.max_decompressed_bytes} bytes decompressed"
            )


def member_location(parent: str, name: str) -> str:
    """The location of a member inside a container: ``outer.zip!inner/file``."""
    return f"{parent}!{name}"
