"""Find the ways a Jinja template reaches Python internals, from its AST alone.

Server-side template injection goes through attributes that start with an
underscore (``__class__``, ``__globals__``, ``__subclasses__``), through the
few globals whose attributes lead to module globals (``cycler``, ``lipsum``,
``self``...), or through names of process and import functions. Real chat
templates use none of them; ``namespace(...)`` as a plain counter is common
and stays clean. Parsing builds an AST and runs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mlwarden.errors import MalformedInputError

# Globals (of Jinja, or of the Flask-style environments attacks assume) whose
# attributes lead to module globals.
PIVOT_NAMES = frozenset(
    {"cycler", "joiner", "lipsum", "namespace", "self", "config", "request", "url_for",
     "get_flashed_messages", "range", "dict", "loop", "varargs", "kwargs"}
)  # fmt: skip
# Names of code-running functions and modules, as variables or attributes.
EXEC_NAMES = frozenset(
    {"os", "subprocess", "popen", "system", "eval", "exec", "__import__", "import_module",
     "importlib", "builtins", "__builtins__", "getattr", "globals", "compile", "spawn",
     "check_output", "getoutput", "load_module", "modules", "func_globals", "mro",
     "func_code", "gi_frame", "f_globals", "f_builtins", "cr_frame"}
)  # fmt: skip
# A string that is an internal name, or a piece of one to be joined ("__cla" ~ "ss__").
# Whole dunders are judged by _INTERNAL_NAMES; "__end__" as a marker string is harmless.
_NAME_PIECE = re.compile(r"^__[a-z]\w*(?<!__)$|^(?!__)\w*[a-z]__$")
_INTERNAL_NAMES = re.compile(
    r"__(?:globals|builtins|class|subclasses|mro|import|init|base|bases|getattribute|dict"
    r"|code|func|self|loader|spec|reduce|reduce_ex|closure)__"
)


def _environment() -> Any:
    import jinja2
    import jinja2.ext

    class GenerationTag(jinja2.ext.Extension):
        """Hugging Face's {% generation %} block: parsed as a plain block."""

        tags = {"generation"}  # noqa: RUF012 - the type jinja2 declares

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body, lineno=lineno)

    # The parser settings of the Hugging Face chat template environment.
    return jinja2.Environment(  # noqa: S701 - parse only, never rendered
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols, jinja2.ext.do, GenerationTag],
    )


def template_threats(template: str) -> list[str]:
    """What in the template reaches Python internals; [] for a clean template.

    Raises MalformedInputError when the template does not parse.
    """
    import jinja2
    from jinja2 import nodes

    try:
        tree = _environment().parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise MalformedInputError(
            f"chat template does not parse: line {exc.lineno}: {exc}"
        ) from None
    except RecursionError:
        raise MalformedInputError("chat template nests too deeply to parse") from None
    threats: list[str] = []
    for node in tree.find_all(nodes.Node):
        threats.extend(_node_threats(node, nodes))
    return list(dict.fromkeys(threats))


def _node_threats(node: Any, nodes: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, nodes.Getattr):
        found.extend(_attribute_threats(node.attr, node.node, nodes))
    elif isinstance(node, nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.extend(_attribute_threats(node.arg.value, node.node, nodes))
    elif isinstance(node, nodes.Filter) and node.name == "attr":
        arg = node.args[0] if node.args else None
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            found.extend(_attribute_threats(arg.value, node.node, nodes))
        else:
            found.append("uses the attr filter with a computed attribute name")
    elif isinstance(node, nodes.Name) and node.name in EXEC_NAMES:
        found.append(f"refers to {node.name!r}")
    elif isinstance(node, nodes.Const) and isinstance(node.value, str):
        match = _INTERNAL_NAMES.search(node.value) or _NAME_PIECE.search(node.value.strip())
        if match:
            found.append(f"builds the internal name {match.group(0)!r} from a string")
    elif isinstance(node, nodes.Keyword) and node.key.startswith("_"):
        # dict(__class__=1)|first is the string "__class__".
        found.append(f"names a keyword argument {node.key!r}")
    elif isinstance(node, nodes.Concat | nodes.Filter | nodes.Mod | nodes.Add | nodes.Mul):
        # "__ssalc__"|reverse, "_"~"_"~"class"~"_"~"_", "%c%cclass%c%c"|format(95, ...):
        # fold what is constant, then judge the string as if it had been written out.
        text = _fold(node, nodes, _FOLD_NODES)
        if isinstance(text, str):
            name = _computed_name(text)
            if name:
                found.append(f"computes the internal name {name!r} from strings")
    return found


def _computed_name(text: str) -> str | None:
    match = _INTERNAL_NAMES.search(text) or _NAME_PIECE.search(text.strip())
    if match:
        return match.group(0)
    return text.strip() if text.strip() in EXEC_NAMES else None


# Filters that only rearrange their (constant) input; folding them runs no template code.
_FOLD_FILTERS = frozenset(
    {"reverse", "lower", "upper", "title", "capitalize", "trim", "string", "replace", "join",
     "format", "first", "last", "list"}
)  # fmt: skip
_FOLD_NODES = 64  # operations folded per expression
_FOLD_TEXT = 4096  # longest intermediate string
_WIDE_FORMAT = re.compile(r"%[-+ #0]*(?:\d{3,}|\*)|%[-+ #0]*\d*\.(?:\d{3,}|\*)")


def _fold(node: Any, nodes: Any, budget: int) -> object:
    """The value of a constant string expression, or None; never runs template code.

    Evaluates only constants and the pure string operations above, bounded in the
    number of operations and in the length of every intermediate string.
    """
    if budget <= 0:
        return None
    budget -= 1
    value: object = None
    if isinstance(node, nodes.Const):
        value = node.value
    elif isinstance(node, nodes.List | nodes.Tuple):
        items = [_fold(item, nodes, budget // max(len(node.items), 1)) for item in node.items]
        value = None if any(item is None for item in items) else items
    elif isinstance(node, nodes.Concat):
        parts = [_fold(part, nodes, budget // max(len(node.nodes), 1)) for part in node.nodes]
        if all(isinstance(part, str | int | float) for part in parts):
            value = "".join(str(part) for part in parts)
    elif isinstance(node, nodes.Add | nodes.Mul | nodes.Mod):
        left, right = _fold(node.left, nodes, budget // 2), _fold(node.right, nodes, budget // 2)
        value = _fold_binary(node, nodes, left, right)
    elif (
        isinstance(node, nodes.Filter)
        and node.name in _FOLD_FILTERS
        and node.node is not None
        and not node.kwargs
        and node.dyn_args is None
        and node.dyn_kwargs is None
    ):
        subject = _fold(node.node, nodes, budget // 2)
        args = [_fold(arg, nodes, budget // max(2 * len(node.args), 1)) for arg in node.args]
        if subject is not None and all(arg is not None for arg in args):
            value = _fold_filter(node.name, subject, args)
    if isinstance(value, str) and len(value) > _FOLD_TEXT:
        return None
    return value


def _fold_binary(node: Any, nodes: Any, left: object, right: object) -> object:
    if isinstance(node, nodes.Add) and isinstance(left, str) and isinstance(right, str):
        return left + right
    if isinstance(node, nodes.Mul) and isinstance(left, str) and isinstance(right, int):
        return left * right if 0 <= right * len(left) <= _FOLD_TEXT else None
    if isinstance(node, nodes.Mod) and isinstance(left, str) and not _WIDE_FORMAT.search(left):
        try:
            return left % (tuple(right) if isinstance(right, list) else right)
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _fold_filter(name: str, subject: object, args: list[object]) -> object:
    if name == "format":
        if not isinstance(subject, str) or _WIDE_FORMAT.search(subject):
            return None
        try:
            return subject % tuple(args)
        except (TypeError, ValueError, OverflowError):
            return None
    if name == "join":
        if not isinstance(subject, list) or len(args) > 1:
            return None
        separator = args[0] if args else ""
        return str(separator).join(str(item) for item in subject)
    if name in {"first", "last"}:
        if not isinstance(subject, str | list) or not subject or args:
            return None
        return subject[0] if name == "first" else subject[-1]
    if name == "list":
        return list(subject) if isinstance(subject, str) and not args else None
    if not isinstance(subject, str):
        return None
    if name == "replace":
        if len(args) not in {2, 3} or not all(isinstance(arg, str) for arg in args[:2]):
            return None
        old, new = str(args[0]), str(args[1])
        if len(subject) + subject.count(old) * len(new) + len(new) > _FOLD_TEXT:
            return None
        return subject.replace(old, new)
    if args:
        return None
    simple: dict[str, Callable[[str], str]] = {
        "reverse": lambda text: text[::-1],
        "lower": str.lower,
        "upper": str.upper,
        "title": str.title,
        "capitalize": str.capitalize,
        "trim": str.strip,
        "string": str,
    }
    return simple[name](subject)


def _attribute_threats(attr: str, owner: Any, nodes: Any) -> list[str]:
    found: list[str] = []
    if attr.startswith("_"):
        found.append(f"reaches the internal attribute {attr!r}")
    elif attr in EXEC_NAMES:
        found.append(f"reaches the attribute {attr!r}")
    if isinstance(owner, nodes.Name) and owner.name in PIVOT_NAMES and attr.startswith("_"):
        found.append(f"walks from the global {owner.name!r} to module globals")
    elif isinstance(owner, nodes.Name) and owner.name in PIVOT_NAMES - {
        "namespace",
        "range",
        "dict",
        "loop",
        "varargs",
        "kwargs",
    }:
        found.append(f"reads attribute {attr!r} of the global {owner.name!r}")
    return found
