"""The symbolic pickle machine: what would loading this pickle import and call?

The machine walks opcodes (protocols 0 to 5) the way `pickle.Unpickler` does,
with a stack, a metastack and a memo of symbolic values, but never imports or
calls anything. Every imported name is judged by `policy` when it is imported
(an unpickler imports before it calls); calls, attribute walks, BUILD and
nested loaders are judged when they happen. Findings made before a parse error
stay: an unpickler would already have run them.
"""

from __future__ import annotations

import codecs
import io
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO

from mlwarden.artifacts._context import ScanContext, member_location
from mlwarden.artifacts._pickle import joblib_arrays
from mlwarden.artifacts._pickle.evaluate import NO_VALUE, evaluate, evaluate_method
from mlwarden.artifacts._pickle.policy import (
    Judgement,
    Kind,
    canonical,
    is_attribute_walk,
    is_dangerous_attribute,
    judge,
)
from mlwarden.artifacts._pickle.values import (
    Attr,
    Blob,
    Call,
    Global,
    Opaque,
    Persistent,
    SymDict,
    SymSet,
    short,
)
from mlwarden.artifacts._pickle.window import EndOfData, Window
from mlwarden.artifacts._streams import MemberWindow

BIG_CONSTANT = 1 << 20
"""Bytes and str constants larger than this stay in the stream as a Blob."""
MATERIALIZE_LIMIT = 64 << 20
"""Largest protocol-2 text argument read back to evaluate encode(text, "latin1")."""
CHECK_EVERY = 8192
_FAST_MARGIN = 300
_SETITEMS_APPENDS = frozenset({0x75, 0x65})
"""The fast path runs while this many bytes are buffered (any short argument fits)."""
_LEAF_BUILTINS = frozenset({"builtins.getattr", "builtins.type"})
"""Judged by how they are called, not by being imported (bound methods, NoneType)."""
_TORCH_BYTES_LOADER = "torch.storage._load_from_bytes"
"""How `pickle.dumps(tensor)` stores a storage: a torch.save archive as a bytes constant.
Judged at the call: a constant archive analysed clean is data; anything else is PKL004."""
_JUDGED_AT_CALL = _LEAF_BUILTINS | {_TORCH_BYTES_LOADER}
_STRUCT_I = struct.Struct("<i")
_STRUCT_UI = struct.Struct("<I")
_STRUCT_Q = struct.Struct("<Q")
_STRUCT_D = struct.Struct(">d")
_GLOBAL_TEXT = re.compile(rb"[ci]([A-Za-z_][\w.]{0,200})\n([A-Za-z_][\w.]{0,200})\n")
_RESYNC_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class PickleResult:
    end: int
    """Stream offset just after the STOP opcode, or where the analysis stopped."""
    complete: bool
    """True when a STOP was reached with no parse error."""
    globals: tuple[str, ...]
    """Fully qualified names the pickle imports ("module.qualname")."""


class _Broken(Exception):
    """The stream does not parse here (an unpickler would raise)."""


class _Limit(Exception):
    """A PKL006 limit was reached."""


@lru_cache(maxsize=4096)
def _judge(full: str, *, attribute_walk: bool = False) -> Judgement:
    return judge(full, attribute_walk=attribute_walk)


def analyze_pickle(
    stream: BinaryIO,
    location: str,
    ctx: ScanContext,
    depth: int,
    *,
    start: int | None = None,
    limit: int | None = None,
) -> PickleResult:
    """Analyse ONE pickle starting at `start` (default: the current position).

    Reads at most `limit` bytes (and never more than the max_pickle_bytes limit);
    records findings in ctx (PKL00x). Content problems never raise: a parse error
    is a PKL003 finding and complete=False.
    """
    begin = stream.tell() if start is None else start
    max_bytes = ctx.limits.max_pickle_bytes
    bound_is_limit = limit is None or limit > max_bytes
    span = max_bytes if bound_is_limit else (limit or 0)
    window = Window(stream, begin, begin + span, bound_is_limit=bound_is_limit)
    machine = _Machine(window, stream, location, ctx, depth)
    return machine.run()


class _Machine:
    """One pickle's stack machine. `run` is the opcode loop."""

    def __init__(
        self, window: Window, stream: BinaryIO, location: str, ctx: ScanContext, depth: int
    ) -> None:
        self.w = window
        self.stream = stream
        self.location = location
        self.ctx = ctx
        self.depth = depth
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.globals: list[str] = []
        self.reported: set[tuple[str, str]] = set()
        self.deferred: dict[str, int] = {}
        self.op_offset = window.offset
        self.proto = 0

    # --- findings ----------------------------------------------------------------------

    def report(self, rule_id: str, message: str, subject: str) -> None:
        key = (rule_id, subject)
        if key in self.reported:
            return
        self.reported.add(key)
        self.ctx.add(rule_id, message, self.location, callable=subject, offset=self.op_offset)

    def import_name(self, full: str, *, attribute_walk: bool = False) -> Global:
        """Judge an imported name when it is imported, as an unpickler would import it.

        `attribute_walk`: the name was reached through attributes (a dotted name, getattr).
        """
        if full not in self.globals:
            self.globals.append(full)
        if full in _JUDGED_AT_CALL:
            self.deferred.setdefault(full, self.op_offset)
        else:
            self.judge_name(full, "imports", attribute_walk=attribute_walk)
        return Global(name=full, offset=self.op_offset)

    def import_pair(self, module: str, name: str) -> Global:
        """GLOBAL, STACK_GLOBAL and INST: `module` is imported, `name` looked up in it."""
        return self.import_name(canonical(module, name), attribute_walk=is_attribute_walk(name))

    def judge_name(self, full: str, verb: str, *, attribute_walk: bool = False) -> Judgement:
        verdict = _judge(full, attribute_walk=attribute_walk)
        if verdict.kind is not Kind.SAFE:
            self.report(verdict.rule_id, f"pickle {verb} {full} ({verdict.reason})", full)
        return verdict

    # --- the opcode loop ---------------------------------------------------------------

    def run(self) -> PickleResult:
        w = self.w
        try:
            self.loop()
        except _Broken as exc:
            return self.broken(str(exc))
        except EndOfData as exc:
            if exc.bound:
                self.ctx.add(
                    "PKL006",
                    f"pickle longer than the analysis limit of {self.w.stop - self.w.start} bytes",
                    self.location,
                    offset=exc.offset,
                )
                return self.finish(complete=False, end=exc.offset)
            return self.broken(f"stream ends inside the pickle at offset {exc.offset}", exc.offset)
        except _Limit as exc:
            self.ctx.add("PKL006", str(exc), self.location, offset=self.op_offset)
            return self.finish(complete=False, end=w.offset)
        except (
            ValueError,
            IndexError,
            KeyError,
            TypeError,
            OverflowError,
            struct.error,
            UnicodeError,
        ) as exc:
            return self.broken(f"{type(exc).__name__}: {exc}")
        except RecursionError:
            self.ctx.add("PKL006", "pickle nests too deeply", self.location, offset=self.op_offset)
            return self.finish(complete=False, end=w.offset)
        return self.finish(complete=True, end=w.offset)

    def finish(self, *, complete: bool, end: int) -> PickleResult:
        for name, offset in self.deferred.items():
            # Imported but never called in a way the machine could judge.
            self.op_offset = offset
            rule_id = "PKL002" if name in _LEAF_BUILTINS else _judge(name).rule_id
            self.report(rule_id, f"pickle imports {name} without a judged use", name)
        return PickleResult(end=end, complete=complete, globals=tuple(self.globals))

    def broken(self, message: str, at: int | None = None) -> PickleResult:
        offset = self.op_offset if at is None else at
        self.ctx.add("PKL003", f"pickle does not parse: {message}", self.location, offset=offset)
        end = max(self.w.offset, offset)
        self.resync(end)
        return self.finish(complete=False, end=end)

    def loop(self) -> None:
        """The opcode loop: a fast path for the frequent opcodes while the buffer is full."""
        w = self.w
        memo = self.memo
        max_ops = self.ctx.limits.max_pickle_opcodes
        ops = 0
        while True:
            if not w.fill(_FAST_MARGIN):
                # Near the end of the data: one opcode at a time, with bounds checks.
                self.op_offset = w.offset
                ops += 1
                if self.step(w.byte()):
                    return
                continue
            buf = w.buf
            pos = w.pos
            base = w.base
            last = len(buf) - _FAST_MARGIN
            stack = self.stack
            try:
                while pos <= last:
                    # op_offset is only set before code that may report (the slow paths).
                    op = buf[pos]
                    ops += 1
                    if not ops & (CHECK_EVERY - 1):
                        w.pos = pos
                        self.op_offset = base + pos
                        self.check_limits(ops, max_ops)
                    if op == 0x71:  # BINPUT
                        memo[buf[pos + 1]] = stack[-1]
                        pos += 2
                    elif op == 0x68:  # BINGET
                        stack.append(memo[buf[pos + 1]])
                        pos += 2
                    elif op == 0x94:  # MEMOIZE
                        memo[len(memo)] = stack[-1]
                        pos += 1
                    elif op == 0x28:  # MARK
                        self.metastack.append(stack)
                        stack = self.stack = []
                        pos += 1
                    elif op == 0x4B:  # BININT1
                        stack.append(buf[pos + 1])
                        pos += 2
                    elif op == 0x8C:  # SHORT_BINUNICODE
                        end = pos + 2 + buf[pos + 1]
                        stack.append(buf[pos + 2 : end].decode("utf-8", "surrogatepass"))
                        pos = end
                    elif op == 0x4A:  # BININT
                        stack.append(_STRUCT_I.unpack_from(buf, pos + 1)[0])
                        pos += 5
                    elif op == 0x4D:  # BININT2
                        stack.append(buf[pos + 1] | buf[pos + 2] << 8)
                        pos += 3
                    elif op == 0x47:  # BINFLOAT
                        stack.append(_STRUCT_D.unpack_from(buf, pos + 1)[0])
                        pos += 9
                    elif op == 0x4E:  # NONE
                        stack.append(None)
                        pos += 1
                    elif op == 0x61:  # APPEND
                        value = stack.pop()
                        target = stack[-1]
                        if type(target) is list:
                            target.append(value)
                        else:
                            self.op_offset = base + pos
                            self.append_to(target, [value])
                        pos += 1
                    elif op == 0x86:  # TUPLE2
                        second = stack.pop()
                        stack[-1] = (stack[-1], second)
                        pos += 1
                    elif op == 0x7D:  # EMPTY_DICT
                        stack.append(SymDict())
                        pos += 1
                    elif op == 0x5D:  # EMPTY_LIST
                        stack.append([])
                        pos += 1
                    elif op in _SETITEMS_APPENDS:
                        items = stack
                        stack = self.stack = self.metastack.pop()
                        target = stack[-1]
                        if op == 0x65:
                            if type(target) is list:
                                target.extend(items)
                            else:
                                self.op_offset = base + pos
                                self.append_to(target, items)
                        elif type(target) is SymDict and not len(items) & 1:
                            target.items.extend(zip(items[::2], items[1::2], strict=True))
                        else:
                            self.op_offset = base + pos
                            self.set_items(target, items)
                        pos += 1
                    elif op == 0x73:  # SETITEM
                        value = stack.pop()
                        key = stack.pop()
                        target = stack[-1]
                        if type(target) is SymDict:
                            target.items.append((key, value))
                        else:
                            self.op_offset = base + pos
                            self.set_items(target, [key, value])
                        pos += 1
                    elif op == 0x85:  # TUPLE1
                        stack[-1] = (stack[-1],)
                        pos += 1
                    elif op == 0x95:  # FRAME
                        pos += 9
                    else:
                        self.op_offset = base + pos
                        w.pos = pos + 1
                        if self.step(op):
                            return
                        buf = w.buf
                        pos = w.pos
                        base = w.base
                        last = len(buf) - _FAST_MARGIN
                        stack = self.stack
            except Exception:
                self.op_offset = base + pos  # where the opcode that failed starts
                raise
            w.pos = pos

    def step(self, op: int) -> bool:
        """Run one opcode (already read); True at STOP."""
        w = self.w
        stack = self.stack
        if op == 0x71:  # BINPUT
            self.put(w.byte())
        elif op == 0x68:  # BINGET
            stack.append(self.get(w.byte()))
        elif op == 0x94:  # MEMOIZE
            self.put(len(self.memo))
        elif op == 0x28:  # MARK
            self.metastack.append(stack)
            self.stack = []
        elif op == 0x4B:  # BININT1
            stack.append(w.byte())
        elif op == 0x4A:  # BININT
            stack.append(_STRUCT_I.unpack(w.take(4))[0])
        elif op == 0x4D:  # BININT2
            stack.append(int.from_bytes(w.take(2), "little"))
        elif op == 0x8C:  # SHORT_BINUNICODE
            stack.append(w.take(w.byte()).decode("utf-8", "surrogatepass"))
        elif op == 0x58:  # BINUNICODE
            stack.append(self.constant(_STRUCT_UI.unpack(w.take(4))[0], text=True))
        elif op == 0x8D:  # BINUNICODE8
            stack.append(self.constant(_STRUCT_Q.unpack(w.take(8))[0], text=True))
        elif op == 0x47:  # BINFLOAT
            stack.append(_STRUCT_D.unpack(w.take(8))[0])
        elif op == 0x4E:  # NONE
            stack.append(None)
        elif op == 0x88:  # NEWTRUE
            stack.append(True)
        elif op == 0x89:  # NEWFALSE
            stack.append(False)
        elif op == 0x5D:  # EMPTY_LIST
            stack.append([])
        elif op == 0x29:  # EMPTY_TUPLE
            stack.append(())
        elif op == 0x7D:  # EMPTY_DICT
            stack.append(SymDict())
        elif op == 0x61:  # APPEND
            value = self.pop()
            self.append_to(self.top(), [value])
        elif op == 0x65:  # APPENDS
            items = self.pop_mark()
            self.append_to(self.top(), items)
        elif op == 0x73:  # SETITEM
            value = self.pop()
            key = self.pop()
            self.set_items(self.top(), [key, value])
        elif op == 0x75:  # SETITEMS
            items = self.pop_mark()
            self.set_items(self.top(), items)
        elif op == 0x85:  # TUPLE1
            stack.append((self.pop(),))
        elif op == 0x86:  # TUPLE2
            second = self.pop()
            stack.append((self.pop(), second))
        elif op == 0x87:  # TUPLE3
            third = self.pop()
            second = self.pop()
            self.stack.append((self.pop(), second, third))
        elif op == 0x74:  # TUPLE
            items = self.pop_mark()
            self.stack.append(tuple(items))
        elif op == 0x52:  # REDUCE
            args = self.pop()
            func = self.pop()
            self.stack.append(self.call(func, args))
        elif op == 0x62:  # BUILD
            state = self.pop()
            self.build(self.top(), state)
        elif op == 0x81:  # NEWOBJ
            args = self.pop()
            cls = self.pop()
            self.stack.append(self.instantiate(cls, args))
        elif op == 0x92:  # NEWOBJ_EX
            kwargs = self.pop()
            args = self.pop()
            cls = self.pop()
            self.stack.append(self.instantiate(cls, (args, kwargs)))
        elif op == 0x93:  # STACK_GLOBAL
            name = self.pop()
            module = self.pop()
            stack.append(self.stack_global(module, name))
        elif op == 0x63:  # GLOBAL
            module_text = w.line().decode("utf-8", "replace")
            name_text = w.line().decode("utf-8", "replace")
            stack.append(self.import_pair(module_text, name_text))
        elif op == 0x2E:  # STOP
            if not self.stack or self.metastack:
                raise _Broken("STOP with an empty stack or an open MARK")
            return True
        elif op == 0x95:  # FRAME
            w.take(8)
        elif op == 0x80:  # PROTO
            self.proto = w.byte()
            if self.proto > 5:
                raise _Broken(f"unsupported pickle protocol {self.proto}")
        elif op in _OTHER:
            _OTHER[op](self)
        else:
            raise _Broken(f"unknown opcode 0x{op:02x}")
        return False

    def check_limits(self, ops: int, max_ops: int) -> None:
        self.ctx.check_time()
        limits = self.ctx.limits
        if ops > max_ops:
            raise _Limit(f"pickle has more than {max_ops} opcodes")
        if len(self.memo) > limits.max_memo_entries:
            raise _Limit(f"pickle memo exceeds {limits.max_memo_entries} entries")
        depth = len(self.stack) + len(self.metastack)
        if depth > limits.max_stack_depth:
            raise _Limit(f"pickle stack deeper than {limits.max_stack_depth}")

    # --- stack helpers -----------------------------------------------------------------

    def pop(self) -> object:
        if not self.stack:
            raise _Broken("stack underflow")
        return self.stack.pop()

    def top(self) -> object:
        if not self.stack:
            raise _Broken("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[object]:
        if not self.metastack:
            raise _Broken("no MARK on the stack")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def put(self, index: int) -> None:
        if len(self.memo) >= self.ctx.limits.max_memo_entries and index not in self.memo:
            raise _Limit(f"pickle memo exceeds {self.ctx.limits.max_memo_entries} entries")
        self.memo[index] = self.top()

    def get(self, index: int) -> object:
        if index not in self.memo:
            raise _Broken(f"memo key {index} not found")
        return self.memo[index]

    def constant(self, length: int, *, text: bool) -> object:
        if length > BIG_CONSTANT:
            blob = Blob(offset=self.w.offset, length=length, text=text)
            self.w.skip(length)
            return blob
        data = self.w.take(length)
        return data.decode("utf-8", "surrogatepass") if text else data

    # --- containers --------------------------------------------------------------------

    def append_to(self, target: object, items: list[object]) -> None:
        if isinstance(target, list):
            target.extend(items)
        elif isinstance(target, Call):
            # list subclasses and objects with append/extend methods: data for the object.
            self.watch_state(target, items)
        else:
            raise _Broken(f"APPEND to {short(target)}")

    def set_items(self, target: object, items: list[object]) -> None:
        if len(items) % 2:
            raise _Broken("SETITEMS with an odd number of items")
        pairs = list(zip(items[::2], items[1::2], strict=True))
        if isinstance(target, SymDict):
            target.items.extend(pairs)
        elif isinstance(target, Call):
            self.watch_state(target, items)
        else:
            raise _Broken(f"SETITEM on {short(target)}")

    def watch_state(self, target: Call, items: list[object]) -> None:
        """Content handed to an object's own methods (append, __setitem__): judge its class."""
        del items  # the values themselves were judged when they were built
        if isinstance(target.func, Attr | Call):
            self.report("PKL002", "pickle fills an object of a computed class", short(target))

    # --- imports -----------------------------------------------------------------------

    def stack_global(self, module: object, name: object) -> Global:
        if isinstance(module, str) and isinstance(name, str):
            return self.import_pair(module, name)
        described = f"{short(module)}.{short(name)}"
        self.report(
            "PKL001",
            f"pickle imports a name computed at load time: {described}",
            described,
        )
        return Global(name=described, offset=self.op_offset)

    # --- calls -------------------------------------------------------------------------

    def instantiate(self, cls: object, args: object) -> object:
        if not isinstance(cls, Global):
            self.report("PKL002", f"pickle instantiates a computed class {short(cls)}", short(cls))
        elif cls.name == "builtins.type":
            self.report("PKL001", "pickle creates a new class with type()", cls.name)
            self.deferred.pop(cls.name, None)
        elif cls.name == "builtins.getattr":
            self.report("PKL002", "pickle instantiates getattr", cls.name)
            self.deferred.pop(cls.name, None)
        return Call(func=cls, args=args, offset=self.op_offset)

    def call(self, func: object, args: object) -> object:
        """REDUCE: evaluate what is pure, judge what is not, follow nested payloads."""
        arg_tuple = args if isinstance(args, tuple) else ()
        if not isinstance(args, tuple):
            self.report(
                "PKL002", f"pickle calls {short(func)} with computed arguments", short(func)
            )
        if isinstance(func, Global):
            return self.call_global(func, arg_tuple, args)
        if isinstance(func, Attr):
            if isinstance(func.name, str):
                value = evaluate_method(func.obj, func.name, arg_tuple)
                if value is not NO_VALUE:
                    return value
            self.report("PKL002", f"pickle calls the attribute {short(func)}", short(func))
        elif isinstance(func, Call):
            inner = func.func
            if (
                isinstance(inner, Global)
                and inner.name == "functools.partial"
                and isinstance(func.args, tuple)
                and func.args
            ):
                # partial(f, *a)(*b) is f(*a, *b): judge the wrapped call itself.
                return self.call(func.args[0], (*func.args[1:], *arg_tuple))
            self.report("PKL002", f"pickle calls the result of {short(func)}", short(func))
        elif not isinstance(func, Opaque):
            raise _Broken(f"REDUCE on a non-callable {short(func)}")
        return Call(func=func, args=args, offset=self.op_offset)

    def call_global(self, func: Global, arg_tuple: tuple[object, ...], args: object) -> object:
        name = func.name
        if name == "builtins.getattr":
            self.deferred.pop(name, None)
            return self.getattr(arg_tuple)
        if name == "builtins.type":
            self.deferred.pop(name, None)
            if len(arg_tuple) != 1:
                self.report("PKL001", "pickle creates a new class with type()", name)
            return Call(func=func, args=args, offset=self.op_offset)
        if name in {"_codecs.encode", "codecs.encode"} and arg_tuple:
            # Protocol 2 writes bytes as encode(text, "latin1"): read a large text back.
            arg_tuple = (self.materialize(arg_tuple[0]), *arg_tuple[1:])
        if name == _TORCH_BYTES_LOADER:
            self.deferred.pop(name, None)
            self.load_torch_bytes(arg_tuple)
            return Call(func=func, args=args, offset=self.op_offset)
        verdict = _judge(name)
        if verdict.rule_id in {"PKL004", "PKL005"} or name == "copyreg._reconstructor":
            self.call_loader(name, verdict, arg_tuple)
        if name in {"operator.attrgetter", "_operator.attrgetter"}:
            self.check_attribute_names(arg_tuple)
        value = evaluate(name, arg_tuple)
        if value is not NO_VALUE:
            return value
        return Call(func=func, args=args, offset=self.op_offset)

    def getattr(self, args: tuple[object, ...]) -> object:
        if len(args) not in {2, 3}:
            self.report("PKL002", "pickle calls getattr with unusual arguments", "builtins.getattr")
            return Opaque(what="getattr")
        target, attr = args[0], args[1]
        if not isinstance(attr, str):
            self.report(
                "PKL001",
                f"pickle reads an attribute whose name is computed: {short(attr)}",
                "builtins.getattr",
            )
            return Attr(obj=target, name=attr, offset=self.op_offset)
        if is_dangerous_attribute(attr):
            self.report(
                "PKL007",
                f"pickle reads the attribute {attr} of {short(target)}",
                f"getattr:{attr}",
            )
        if isinstance(target, Global):
            # getattr(module_or_class, "name") imports that name as surely as GLOBAL would.
            return self.import_name(f"{target.name}.{attr}", attribute_walk=True)
        if isinstance(target, str | bytes) and hasattr(target, attr):
            return Attr(obj=target, name=attr, offset=self.op_offset)
        if not is_dangerous_attribute(attr):
            self.report(
                "PKL002",
                f"pickle reads the attribute {attr} of {short(target)}",
                f"getattr:{attr}",
            )
        return Attr(obj=target, name=attr, offset=self.op_offset)

    def check_attribute_names(self, args: tuple[object, ...]) -> None:
        for arg in args:
            text = arg if isinstance(arg, str) else ""
            if not isinstance(arg, str) or any(is_dangerous_attribute(p) for p in text.split(".")):
                self.report(
                    "PKL007",
                    f"pickle builds an attribute getter for {short(arg)}",
                    "operator.attrgetter",
                )

    def call_loader(self, name: str, verdict: Judgement, args: tuple[object, ...]) -> None:
        """Payload bytes handed to a deserializer: analyse them as a pickle too."""
        if name == "copyreg._reconstructor":
            # _reconstructor(cls, base, state) calls base.__new__ / base.__init__(state).
            for arg in args[:2]:
                if not isinstance(arg, Global):
                    self.report("PKL002", "copyreg._reconstructor with a computed class", name)
            return
        if verdict.rule_id == "PKL005":
            return
        self.report("PKL004", f"pickle hands a payload to the loader {name}", f"{name}:call")
        for payload in _payloads(args):
            self.analyze_nested(payload)

    def materialize(self, value: object) -> object:
        """A text Blob's string, when it is small enough to hold; else the Blob."""
        if not isinstance(value, Blob) or not value.text or value.length > MATERIALIZE_LIMIT:
            return value
        self.stream.seek(value.offset)
        data = self.stream.read(value.length)
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return value

    def load_torch_bytes(self, args: tuple[object, ...]) -> None:
        """_load_from_bytes(archive): clean only for one constant archive analysed clean."""
        name = _TORCH_BYTES_LOADER
        payload = args[0] if len(args) == 1 else None
        if isinstance(payload, bytes | Blob) and not (isinstance(payload, Blob) and payload.text):
            before = len(self.ctx.findings)
            if self.analyze_nested(payload) and len(self.ctx.findings) == before:
                return
        self.report("PKL004", f"pickle hands a payload to the loader {name}", name)

    def analyze_nested(self, payload: bytes | Blob) -> bool:
        """Scan a payload as the loader would read it; True when it was read to its end."""
        location = f"{self.location}!nested@{self.op_offset}"
        if self.depth + 1 > self.ctx.limits.max_depth:
            self.ctx.add(
                "PKL006",
                "nested payloads deeper than the depth limit",
                location,
                offset=self.op_offset,
            )
            return False
        if isinstance(payload, Blob):
            self.stream.seek(payload.offset)
            head = self.stream.read(6)
            inner: BinaryIO = io.BufferedReader(
                MemberWindow(self.stream, payload.offset, payload.length)
            )
        else:
            head = payload[:6]
            inner = io.BytesIO(payload)
        if head[:2] == b"PK" or head == b"\x93NUMPY":
            from mlwarden.artifacts._dispatch import scan_member

            return scan_member(inner, location, self.ctx, self.depth) is not None
        return analyze_pickle(inner, location, self.ctx, self.depth + 1, start=0).complete

    # --- BUILD ---------------------------------------------------------------------------

    def build(self, target: object, state: object) -> None:
        if isinstance(target, Global):
            self.report(
                "PKL001",
                f"pickle sets attributes of the imported {target.name} with BUILD",
                f"BUILD:{target.name}",
            )
        for key in _state_keys(state):
            if is_dangerous_attribute(key):
                self.report(
                    "PKL007",
                    f"pickle sets the attribute {key} of {short(target)} with BUILD",
                    f"BUILD:{key}",
                )
        if isinstance(target, Call):
            target.state = state
            if isinstance(target.func, Global) and target.func.name in joblib_arrays.WRAPPERS:
                self.after_joblib_wrapper(target)

    def after_joblib_wrapper(self, wrapper: Call) -> None:
        """joblib writes the array right after its wrapper: skip raw data, analyse objects."""
        layout = joblib_arrays.layout(wrapper)
        if layout is None:
            if isinstance(wrapper.func, Global) and wrapper.func.name.endswith("NumpyArrayWrapper"):
                raise _Broken("joblib array wrapper without a readable shape and dtype")
            return
        if layout.has_objects:
            start = self.w.offset
            result = analyze_pickle(
                self.stream,
                member_location(self.location, f"array@{start}"),
                self.ctx,
                self.depth + 1,
                start=start,
            )
            if not result.complete:
                raise _Limit("joblib object array could not be analysed to its end")
            self.w.seek(result.end)
            return
        start = self.w.offset
        padding = self.w.byte() if layout.aligned else 0
        self.w.skip(padding)
        self.w.skip(layout.nbytes)
        if not layout.aligned or padding >= joblib_arrays.ALIGNMENT:
            # joblib's padding byte (< 16) stops a plain pickle.load at the array; without
            # it, pickle.load would read the array bytes as opcodes: look for imports there.
            report_raw_imports(self.stream, start, self.w.offset, self.location, self.ctx)

    # --- resynchronisation ---------------------------------------------------------------

    def resync(self, offset: int) -> None:
        """After a parse error, look ahead for imports a lenient loader could still reach."""
        report_raw_imports(self.stream, offset, self.w.stop, self.location, self.ctx)


# --- opcodes off the hot path ---------------------------------------------------------


def _op_int(m: _Machine) -> None:
    text = m.w.line()
    if text in {b"00", b"01"}:
        m.stack.append(text == b"01")
    else:
        m.stack.append(_parse_int(text))


def _parse_int(text: bytes) -> object:
    digits = text.rstrip(b"L")
    if len(digits) > 4000:
        return Opaque(what="long integer")
    return int(digits)


def _op_long(m: _Machine) -> None:
    m.stack.append(_parse_int(m.w.line()))


def _op_long_n(m: _Machine, size: int) -> None:
    raw = m.w.take(size)
    length = int.from_bytes(raw, "little", signed=True)
    if length < 0:
        raise _Broken("LONG4 with a negative length")
    if length > 1024:
        m.w.skip(length)
        m.stack.append(Opaque(what="long integer"))
    else:
        m.stack.append(int.from_bytes(m.w.take(length), "little", signed=True))


def _op_string(m: _Machine) -> None:
    start = m.w.offset
    text = m.w.text()
    if isinstance(text, tuple):
        m.stack.append(Blob(offset=start, length=text[1], text=True))
        return
    if len(text) < 2 or text[0] != text[-1] or text[:1] not in {b"'", b'"'}:
        raise _Broken("STRING argument is not quoted")
    m.stack.append(codecs.escape_decode(text[1:-1])[0].decode("latin-1"))


def _op_binstring(m: _Machine, size: int, *, text: bool, signed: bool = False) -> None:
    raw = m.w.take(size)
    length = int.from_bytes(raw, "little", signed=signed)
    if length < 0:
        raise _Broken("string with a negative length")
    value = m.constant(length, text=False)
    if text and isinstance(value, bytes):
        # Protocol 0-2 str: decoded with the loader's encoding (ASCII or latin-1 usually).
        m.stack.append(value.decode("latin-1"))
    else:
        m.stack.append(value)


def _op_unicode(m: _Machine) -> None:
    start = m.w.offset
    text = m.w.text()
    if isinstance(text, tuple):
        m.stack.append(Blob(offset=start, length=text[1], text=True))
    else:
        m.stack.append(text.decode("raw_unicode_escape"))


def _op_float(m: _Machine) -> None:
    m.stack.append(float(m.w.line()))


def _op_get(m: _Machine) -> None:
    m.stack.append(m.get(int(m.w.line())))


def _op_put(m: _Machine) -> None:
    m.put(int(m.w.line()))


def _op_long_binget(m: _Machine) -> None:
    m.stack.append(m.get(_STRUCT_UI.unpack(m.w.take(4))[0]))


def _op_long_binput(m: _Machine) -> None:
    m.put(_STRUCT_UI.unpack(m.w.take(4))[0])


def _op_list(m: _Machine) -> None:
    items = m.pop_mark()
    m.stack.append(items)


def _op_dict(m: _Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise _Broken("DICT with an odd number of items")
    m.stack.append(SymDict(items=[(items[i], items[i + 1]) for i in range(0, len(items), 2)]))


def _op_empty_set(m: _Machine) -> None:
    m.stack.append(SymSet())


def _op_additems(m: _Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    if isinstance(target, SymSet):
        target.items.extend(items)
    elif isinstance(target, Call):
        m.watch_state(target, items)
    else:
        raise _Broken(f"ADDITEMS on {short(target)}")


def _op_frozenset(m: _Machine) -> None:
    items = m.pop_mark()
    m.stack.append(SymSet(items=items))


def _op_pop(m: _Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


def _op_pop_mark(m: _Machine) -> None:
    m.pop_mark()


def _op_dup(m: _Machine) -> None:
    m.stack.append(m.top())


def _op_inst(m: _Machine) -> None:
    module = m.w.line().decode("utf-8", "replace")
    name = m.w.line().decode("utf-8", "replace")
    cls = m.import_pair(module, name)
    args = tuple(m.pop_mark())
    m.stack.append(m.instantiate(cls, args))


def _op_obj(m: _Machine) -> None:
    items = m.pop_mark()
    if not items:
        raise _Broken("OBJ without a class")
    m.stack.append(m.instantiate(items[0], tuple(items[1:])))


def _op_ext(m: _Machine, size: int) -> None:
    code = int.from_bytes(m.w.take(size), "little", signed=size == 4)
    m.report(
        "PKL008",
        f"pickle imports extension code {code} from the copyreg registry",
        f"EXT:{code}",
    )
    m.stack.append(Opaque(what=f"extension {code}"))


def _op_persid(m: _Machine) -> None:
    m.stack.append(Persistent(pid=m.w.line().decode("ascii", "replace")))


def _op_binpersid(m: _Machine) -> None:
    m.stack.append(Persistent(pid=m.pop()))


def _op_bytes(m: _Machine, size: int) -> None:
    length = int.from_bytes(m.w.take(size), "little")
    m.stack.append(m.constant(length, text=False))


def _op_next_buffer(m: _Machine) -> None:
    m.stack.append(Opaque(what="out-of-band buffer"))


def _op_readonly_buffer(m: _Machine) -> None:
    m.top()


_OTHER = {
    0x49: _op_int,  # INT
    0x4C: _op_long,  # LONG
    0x8A: lambda m: _op_long_n(m, 1),  # LONG1
    0x8B: lambda m: _op_long_n(m, 4),  # LONG4
    0x53: _op_string,  # STRING
    0x54: lambda m: _op_binstring(m, 4, text=True, signed=True),  # BINSTRING
    0x55: lambda m: _op_binstring(m, 1, text=True),  # SHORT_BINSTRING
    0x42: lambda m: _op_bytes(m, 4),  # BINBYTES
    0x43: lambda m: _op_bytes(m, 1),  # SHORT_BINBYTES
    0x8E: lambda m: _op_bytes(m, 8),  # BINBYTES8
    0x96: lambda m: _op_bytes(m, 8),  # BYTEARRAY8
    0x97: _op_next_buffer,  # NEXT_BUFFER
    0x98: _op_readonly_buffer,  # READONLY_BUFFER
    0x56: _op_unicode,  # UNICODE
    0x46: _op_float,  # FLOAT
    0x6C: _op_list,  # LIST
    0x64: _op_dict,  # DICT
    0x8F: _op_empty_set,  # EMPTY_SET
    0x90: _op_additems,  # ADDITEMS
    0x91: _op_frozenset,  # FROZENSET
    0x30: _op_pop,  # POP
    0x31: _op_pop_mark,  # POP_MARK
    0x32: _op_dup,  # DUP
    0x67: _op_get,  # GET
    0x70: _op_put,  # PUT
    0x6A: _op_long_binget,  # LONG_BINGET
    0x72: _op_long_binput,  # LONG_BINPUT
    0x82: lambda m: _op_ext(m, 1),  # EXT1
    0x83: lambda m: _op_ext(m, 2),  # EXT2
    0x84: lambda m: _op_ext(m, 4),  # EXT4
    0x69: _op_inst,  # INST
    0x6F: _op_obj,  # OBJ
    0x50: _op_persid,  # PERSID
    0x51: _op_binpersid,  # BINPERSID
}
KNOWN_OPCODES = frozenset(_OTHER) | frozenset(
    b"qh\x94(KJM\x8cX\x8dGN\x88\x89])}aesu\x85\x86\x87tRb\x81\x92\x93c.\x95\x80"
)


# --- helpers ----------------------------------------------------------------------------


def report_raw_imports(
    stream: BinaryIO, start: int, stop: int, location: str, ctx: ScanContext
) -> None:
    """Report dangerous import patterns in bytes that are not parsed as opcodes.

    Used after a parse error (an unpickler that tolerates it, or a payload placed
    behind deliberate garbage) and on bytes after a file's last pickle.
    """
    position = start
    reported: set[str] = set()
    while position < stop:
        stream.seek(position)
        chunk = stream.read(min(_RESYNC_CHUNK + 1024, stop - position))
        if not chunk:
            return
        for full, at in _imports_in(chunk):
            verdict = _judge(full)
            if verdict.kind is Kind.DANGEROUS and full not in reported:
                reported.add(full)
                ctx.add(
                    verdict.rule_id,
                    f"bytes that are not parsed as opcodes import {full}",
                    location,
                    callable=full,
                    offset=position + at,
                    resync="true",
                )
        if len(chunk) <= _RESYNC_CHUNK:
            return
        position += _RESYNC_CHUNK
        ctx.check_time()


def _state_keys(state: object) -> list[str]:
    """Attribute names a BUILD state sets: a dict, or (dict, slot dict)."""
    keys: list[str] = []
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, SymDict):
            keys.extend(key for key, _ in part.items if isinstance(key, str))
    return keys


def _payloads(args: object, budget: int = 64) -> list[bytes | Blob]:
    """Bytes constants reachable from a loader's arguments (through BytesIO and the like)."""
    found: list[bytes | Blob] = []
    todo: list[object] = [args]
    seen: set[int] = set()
    while todo and budget > 0:
        value = todo.pop()
        budget -= 1
        if id(value) in seen:
            continue
        seen.add(id(value))
        if (isinstance(value, bytes) and value) or (isinstance(value, Blob) and not value.text):
            found.append(value)
        elif isinstance(value, tuple | list):
            todo.extend(value)
        elif isinstance(value, Call):
            todo.append(value.args)
        elif isinstance(value, SymDict):
            todo.extend(v for _, v in value.items)
    return found


def _imports_in(chunk: bytes) -> list[tuple[str, int]]:
    """GLOBAL/INST and STACK_GLOBAL name pairs that appear in raw bytes."""
    found: list[tuple[str, int]] = []
    for match in _GLOBAL_TEXT.finditer(chunk):
        module = match.group(1).decode("ascii")
        name = match.group(2).decode("ascii")
        found.append((canonical(module, name), match.start()))
    index = chunk.find(b"\x93")
    while index >= 0:
        pair = _strings_before(chunk, index)
        if pair is not None:
            found.append((canonical(*pair), index))
        index = chunk.find(b"\x93", index + 1)
    return found


def _memo_skip(chunk: bytes, at: int) -> int:
    if at < len(chunk) and chunk[at] == 0x94:
        return at + 1
    if at + 1 < len(chunk) and chunk[at] == 0x71:
        return at + 2
    if at + 4 < len(chunk) and chunk[at] == 0x72:
        return at + 5
    return at


def _strings_before(chunk: bytes, end: int) -> tuple[str, str] | None:
    """Two SHORT_BINUNICODE strings (each maybe memoised) ending right at `end`."""
    low = max(0, end - 530)
    start = chunk.find(b"\x8c", low, end)
    while start >= 0:
        first = _short_string(chunk, start)
        if first is not None:
            text1, after1 = first
            second_at = _memo_skip(chunk, after1)
            second = _short_string(chunk, second_at) if second_at < end else None
            if second is not None:
                text2, after2 = second
                if _memo_skip(chunk, after2) == end:
                    return text1, text2
        start = chunk.find(b"\x8c", start + 1, end)
    return None


def _short_string(chunk: bytes, at: int) -> tuple[str, int] | None:
    if at + 1 >= len(chunk) or chunk[at] != 0x8C:
        return None
    length = chunk[at + 1]
    end = at + 2 + length
    if end > len(chunk) or length == 0:
        return None
    try:
        return chunk[at + 2 : end].decode("ascii"), end
    except UnicodeDecodeError:
        return None
