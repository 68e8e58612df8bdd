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
    return found


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
