"""A small pickle opcode assembler for hand-written corpus streams.

Scanners that only look at what `pickle.dumps` emits miss streams that no
pickler writes but every unpickler accepts (INST, memo games, dotted names).
This assembler writes such streams opcode by opcode. It only produces bytes.
"""

import struct
from collections.abc import Callable
from typing import Union

Arg = Union[str, bytes, int, float, bool, None, tuple, list, dict, "Expr"]
Expr = Callable[["PickleAsm"], object]


class PickleAsm:
    """Appends opcodes for one pickle protocol; `value()` returns the bytes."""

    def __init__(self, protocol: int = 4, *, header: bool = True) -> None:
        self.protocol = protocol
        self.out = bytearray()
        if protocol >= 2 and header:
            self.out += b"\x80" + bytes([protocol])

    # --- plumbing -------------------------------------------------------------------
    def raw(self, data: bytes) -> "PickleAsm":
        self.out += data
        return self

    def value(self) -> bytes:
        return bytes(self.out)

    def stop(self) -> bytes:
        self.out += b"."
        return self.value()

    def mark(self) -> "PickleAsm":
        return self.raw(b"(")

    def pop(self) -> "PickleAsm":
        return self.raw(b"0")

    # --- constants ------------------------------------------------------------------
    def string(self, text: str) -> "PickleAsm":
        data = text.encode("utf-8")
        if self.protocol == 0:
            return self.raw(b"V" + text.encode("raw_unicode_escape") + b"\n")
        if self.protocol >= 4 and len(data) < 256:
            return self.raw(b"\x8c" + bytes([len(data)]) + data)
        return self.raw(b"X" + struct.pack("<I", len(data)) + data)

    def bytes_(self, data: bytes) -> "PickleAsm":
        if self.protocol < 3:
            raise ValueError("bytes need pickle protocol 3 or later")
        if len(data) < 256:
            return self.raw(b"C" + bytes([len(data)]) + data)
        return self.raw(b"B" + struct.pack("<I", len(data)) + data)

    def int_(self, number: int) -> "PickleAsm":
        if self.protocol == 0:
            return self.raw(b"I%d\n" % number)
        return self.raw(b"J" + struct.pack("<i", number))

    def none(self) -> "PickleAsm":
        return self.raw(b"N")

    def bool_(self, flag: bool) -> "PickleAsm":
        if self.protocol >= 2:
            return self.raw(b"\x88" if flag else b"\x89")
        return self.raw(b"I01\n" if flag else b"I00\n")

    def arg(self, item: Arg) -> "PickleAsm":
        """Push one Python value (or run an expression builder)."""
        if callable(item):
            item(self)
        elif isinstance(item, bool):
            self.bool_(item)
        elif item is None:
            self.none()
        elif isinstance(item, str):
            self.string(item)
        elif isinstance(item, bytes):
            self.bytes_(item)
        elif isinstance(item, int):
            self.int_(item)
        elif isinstance(item, float):
            self.raw(b"G" + struct.pack(">d", item))
        elif isinstance(item, tuple):
            self.tuple_(*item)
        elif isinstance(item, list):
            self.raw(b"(l" if self.protocol == 0 else b"]")
            if item:
                self.mark()
                for element in item:
                    self.arg(element)
                self.raw(b"e")
        elif isinstance(item, dict):
            self.raw(b"(d" if self.protocol == 0 else b"}")
            if item:
                self.mark()
                for key, val in item.items():
                    self.arg(key)
                    self.arg(val)
                self.raw(b"u")
        else:
            raise TypeError(f"cannot assemble {type(item).__name__}")
        return self

    def tuple_(self, *items: Arg) -> "PickleAsm":
        self.mark()
        for item in items:
            self.arg(item)
        return self.raw(b"t")

    # --- imports and calls ----------------------------------------------------------
    def global_(self, module: str, name: str) -> "PickleAsm":
        """GLOBAL opcode: text module and name, any protocol."""
        return self.raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def stack_global(self, module: str, name: str) -> "PickleAsm":
        """STACK_GLOBAL (protocol 4+): names are strings on the stack, dots allowed."""
        self.string(module)
        self.string(name)
        return self.raw(b"\x93")

    def import_(self, module: str, name: str) -> "PickleAsm":
        """The import opcode a real pickler of this protocol would use."""
        if self.protocol >= 4:
            return self.stack_global(module, name)
        return self.global_(module, name)

    def reduce(self) -> "PickleAsm":
        return self.raw(b"R")

    def call(self, module: str, name: str, *args: Arg) -> "PickleAsm":
        """Push module.name(*args)."""
        self.import_(module, name)
        self.tuple_(*args)
        return self.reduce()

    def call_expr(self, func: Expr, *args: Arg) -> "PickleAsm":
        """Push func(*args) where func is itself an expression."""
        func(self)
        self.tuple_(*args)
        return self.reduce()

    def build(self) -> "PickleAsm":
        return self.raw(b"b")

    # --- memo -----------------------------------------------------------------------
    def put(self, index: int) -> "PickleAsm":
        if self.protocol == 0:
            return self.raw(b"p%d\n" % index)
        if index < 256:
            return self.raw(b"q" + bytes([index]))
        return self.raw(b"r" + struct.pack("<I", index))

    def get(self, index: int) -> "PickleAsm":
        if self.protocol == 0:
            return self.raw(b"g%d\n" % index)
        if index < 256:
            return self.raw(b"h" + bytes([index]))
        return self.raw(b"j" + struct.pack("<I", index))

    def memoize(self) -> "PickleAsm":
        return self.raw(b"\x94")


def call(module: str, name: str, *args: Arg) -> Expr:
    """An expression for module.name(*args), to nest inside other calls."""

    def emit(asm: PickleAsm) -> None:
        asm.call(module, name, *args)

    return emit


def imported(module: str, name: str) -> Expr:
    """An expression that pushes module.name without calling it."""

    def emit(asm: PickleAsm) -> None:
        asm.import_(module, name)

    return emit


def call_of(func: Expr, *args: Arg) -> Expr:
    def emit(asm: PickleAsm) -> None:
        asm.call_expr(func, *args)

    return emit


def payload_call(module: str, name: str, *args: Arg, protocol: int = 4) -> bytes:
    """A whole pickle whose load calls module.name(*args)."""
    return PickleAsm(protocol).call(module, name, *args).stop()
