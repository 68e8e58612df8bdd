"""Symbolic values on the pickle machine's stack.

Constants stay plain Python values (int, float, str, bytes, None, bool,
tuples and lists of values). What loading would compute is kept as a
description: an imported name, a call, an attribute, a persistent id.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Global:
    """An imported name, fully qualified ("os.system")."""

    name: str
    offset: int


@dataclass(slots=True, eq=False)
class Call:
    """The result of calling `func` (REDUCE, INST, OBJ, NEWOBJ); `state` from BUILD."""

    func: object
    args: object
    offset: int
    state: object = None


@dataclass(slots=True, eq=False)
class Attr:
    """`getattr(obj, name)` evaluated at load time."""

    obj: object
    name: object
    offset: int


@dataclass(slots=True, eq=False)
class Blob:
    """A large bytes or str constant left in the stream: only its place is kept."""

    offset: int
    length: int
    text: bool


@dataclass(slots=True, eq=False)
class Persistent:
    """A persistent id (PyTorch storages): loaders resolve it with persistent_load."""

    pid: object


@dataclass(slots=True, eq=False)
class SymDict:
    """A dict whose keys may be unhashable symbolic values."""

    items: list[tuple[object, object]] = field(default_factory=list)

    def get(self, key: str) -> object:
        for item_key, value in reversed(self.items):
            if item_key == key:
                return value
        return None


@dataclass(slots=True, eq=False)
class SymSet:
    items: list[object] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Opaque:
    """A value the analysis cannot know (out-of-band buffers, extension codes)."""

    what: str


def short(value: object, budget: int = 80) -> str:
    """A bounded description of a value for finding messages."""
    if isinstance(value, Global):
        text = value.name
    elif isinstance(value, Attr):
        text = f"{short(value.obj, budget)}.{value.name}"
    elif isinstance(value, Call):
        text = f"{short(value.func, budget)}(...)"
    elif isinstance(value, Blob):
        text = f"<{value.length} bytes at {value.offset}>"
    else:
        text = repr(value)
    return text if len(text) <= budget else text[: budget - 3] + "..."
