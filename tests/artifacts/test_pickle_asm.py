"""A tiny pickle opcode writer for hand-made test streams, and the shared scan helpers.

Streams are only ever *analysed*; nothing here unpickles anything.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._pickle.analyzer import PickleResult, analyze_pickle
from mlwarden.report import Finding


class Asm:
    """Append opcodes; `done()` adds STOP and returns the bytes."""

    def __init__(self, protocol: int = 4) -> None:
        self.out = bytearray(b"\x80" + bytes([protocol]) if protocol >= 2 else b"")

    def raw(self, data: bytes) -> Asm:
        self.out += data
        return self

    def s(self, text: str) -> Asm:
        data = text.encode()
        return self.raw(b"\x8c" + bytes([len(data)]) + data)

    def b(self, data: bytes) -> Asm:
        if len(data) < 256:
            return self.raw(b"C" + bytes([len(data)]) + data)
        return self.raw(b"\x8e" + struct.pack("<Q", len(data)) + data)

    def glob(self, module: str, name: str) -> Asm:
        return self.raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def sglob(self, module: str, name: str) -> Asm:
        return self.s(module).s(name).raw(b"\x93")

    def tup(self, *texts: str) -> Asm:
        self.raw(b"(")
        for text in texts:
            self.s(text)
        return self.raw(b"t")

    def call(self, module: str, name: str, *texts: str) -> Asm:
        return self.glob(module, name).tup(*texts).raw(b"R")

    def done(self) -> bytes:
        return bytes(self.out + b".")


def analyse(
    data: bytes, limits: Limits | None = None, location: str = "t.pkl"
) -> tuple[PickleResult, list[Finding]]:
    ctx = ScanContext(limits=limits or Limits(), root=Path("."))
    result = analyze_pickle(io.BytesIO(data), location, ctx, 0, start=0)
    return result, ctx.findings


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def callables(findings: list[Finding], rule_id: str) -> set[str]:
    return {f.detail.get("callable", "") for f in findings if f.rule_id == rule_id}


def test_asm_writes_what_pickletools_reads() -> None:
    import pickletools

    data = Asm(4).call("collections", "OrderedDict").done()
    names = [op.name for op, _, _ in pickletools.genops(data)]
    assert names == ["PROTO", "GLOBAL", "MARK", "TUPLE", "REDUCE", "STOP"]
