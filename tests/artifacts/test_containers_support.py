"""Shared helpers for the container tests: building hostile samples, scanning, a recorder.

Malicious samples carry the harmless shell command `true`; they are built with
the standard pickler and never loaded.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mlwarden.artifacts import _dispatch
from mlwarden.artifacts._context import Limits, ScanContext

DANGEROUS_MODULES = frozenset({"os", "posix", "nt", "subprocess", "builtins", "__builtin__"})


class Payload:
    """Pickles as a call of os.system('true')."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def payload_pickle(protocol: int = 2) -> bytes:
    return pickle.dumps({"weights": [1.0, 2.0], "hook": Payload()}, protocol=protocol)


def importable_readers() -> tuple[_dispatch.Reader, ...]:
    """Every reader of the registry."""
    return _dispatch.readers()


def have_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


REAL_ANALYZER = "mlwarden.artifacts._pickle.analyzer"
PICKLE_READER = "mlwarden.artifacts._formats.pickles"


# The default ratio floor (64 MiB) keeps benign sparse tensors quiet; the bomb tests use
# small bombs, so they lower it to 1 MiB.
BOMB_LIMITS = Limits(ratio_floor_bytes=1024 * 1024)


def scan_bytes(data: bytes, name: str = "sample.bin", limits: Limits | None = None) -> ScanContext:
    ctx = ScanContext(limits=limits or BOMB_LIMITS, root=Path("."))
    _dispatch.scan_stream(io.BytesIO(data), name, ctx, 0)
    return ctx


def scan_path(path: Path, limits: Limits | None = None) -> ScanContext:
    ctx = ScanContext(limits=limits or BOMB_LIMITS, root=path.parent)
    with path.open("rb") as stream:
        fmt = _dispatch.scan_stream(stream, str(path), ctx, 0)
    _dispatch.check_claimed_format(str(path), fmt, ctx)
    return ctx


def rule_ids(ctx: ScanContext) -> set[str]:
    return {finding.rule_id for finding in ctx.findings}


@dataclass
class RecordedResult:
    end: int
    complete: bool
    globals: tuple[str, ...]


@dataclass
class RecordingAnalyzer:
    """Stands in for analyze_pickle in plumbing tests: records what it is asked to
    analyse, and flags imports from os/subprocess/builtins as PKL001 by walking
    opcodes with pickletools (which never executes anything)."""

    calls: list[tuple[str, int]] = field(default_factory=list)

    def __call__(
        self,
        stream: BinaryIO,
        location: str,
        ctx: ScanContext,
        depth: int,
        *,
        start: int | None = None,
        limit: int | None = None,
    ) -> RecordedResult:
        position = stream.tell() if start is None else start
        self.calls.append((location, position))
        stream.seek(position)
        names: list[str] = []
        strings: list[str] = []
        try:
            for opcode, arg, _offset in pickletools.genops(stream):
                if isinstance(arg, str):
                    strings.append(arg)
                if opcode.name == "GLOBAL":
                    names.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
        except ValueError:
            ctx.add("PKL003", "pickle does not parse", location)
            return RecordedResult(end=stream.tell(), complete=False, globals=tuple(names))
        for name in names:
            if name.split(".")[0] in DANGEROUS_MODULES:
                ctx.add("PKL001", f"imports {name}", location, callable=name)
        return RecordedResult(end=stream.tell(), complete=True, globals=tuple(names))

    @property
    def locations(self) -> list[str]:
        return [location for location, _ in self.calls]


def install_fixtures(monkeypatch: object, recorder: RecordingAnalyzer | None) -> None:
    """Optionally replace the pickle analyzer with the recording one."""
    import sys
    import types

    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    if recorder is not None:
        module = types.ModuleType(REAL_ANALYZER)
        module.analyze_pickle = recorder  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, REAL_ANALYZER, module)
