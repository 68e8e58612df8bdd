"""Keras model configs: find the parts of a config that run code when loaded.

A Keras model file (`.keras` config.json, or the `model_config` attribute of a
legacy `.h5`) is JSON that names every object the loader rebuilds. Three
things in it can run code: a Lambda layer's serialized bytecode, a module the
loader imports to find a class or function, and a Keras function that does
harm when the loader calls it with attacker-chosen arguments (downloading a
file, switching off safe mode). Parsing the JSON runs nothing.
"""

from __future__ import annotations

import json

from mlwarden.artifacts._context import ScanContext
from mlwarden.errors import LimitExceededError, MalformedInputError

MALFORMED = "KERAS003"

# Modules whose objects are Keras' own, or those of its official companion libraries.
_KERAS_MODULES = ("keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras", "tensorflow.keras")
# Registered-name packages of those libraries ("keras_hub>GemmaBackbone").
_KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras"})
# Modules that run commands, touch files or the network, or execute code: a
# config that makes the loader import one of them is an attack, not a custom layer.
DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "builtins",
        "__builtin__",
        "sys",
        "shutil",
        "socket",
        "importlib",
        "runpy",
        "pickle",
        "_pickle",
        "marshal",
        "ctypes",
        "pty",
        "code",
        "codeop",
        "webbrowser",
        "requests",
        "urllib",
        "http",
        "ftplib",
        "telnetlib",
        "smtplib",
        "pathlib",
        "io",
        "tempfile",
        "multiprocessing",
        "asyncio",
        "signal",
        "platform",
        "commands",
        "pip",
        "setuptools",
        "types",
        "functools",
        "operator",
        "dill",
        "cloudpickle",
        "joblib",
        "torch",
        "numpy",
        "tensorflow",
        "zipimport",
    }
)
# Keras callables that harm when a loader calls them with config arguments
# (CVE-2025-1550 turned off safe mode; CVE-2025-8747 used get_file to write files).
DANGEROUS_KERAS_CALLABLES = frozenset(
    {
        "enable_unsafe_deserialization", "get_file", "load_model", "load_weights",
        "set_backend", "set_floatx", "register_keras_serializable", "save_model",
    }
)  # fmt: skip
_DANGEROUS_FUNCTION_NAMES = frozenset(
    {"system", "popen", "exec", "eval", "compile", "__import__", "open", "getattr",
     "import_module", "loads", "load", "run", "call", "check_output", "spawn"}
)  # fmt: skip


def _is_keras_module(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in _KERAS_MODULES)


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def check_keras_config(config: bytes, location: str, ctx: ScanContext) -> None:
    """Record KERAS001/KERAS002 findings for a Keras model config.

    Raises MalformedInputError (KERAS003) when the config is not JSON.
    """
    if len(config) > ctx.limits.max_header_bytes:
        raise LimitExceededError(
            f"Keras config of {len(config)} bytes exceeds the limit of "
            f"{ctx.limits.max_header_bytes}",
            rule_id=MALFORMED,
        )
    try:
        tree = json.loads(config.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f"Keras config is not UTF-8 (byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"Keras config is not valid JSON: {exc}") from None
    if not isinstance(tree, dict):
        raise MalformedInputError("Keras config is not a JSON object")
    _walk(tree, location, ctx)


def _walk(tree: dict[str, object], location: str, ctx: ScanContext) -> None:
    # Iterative: nested models, wrappers and hostile nesting never hit the recursion limit.
    stack: list[tuple[object, str]] = [(tree, "")]
    visited = 0
    handled: set[int] = set()  # __lambda__ objects already reported with their Lambda layer
    while stack:
        node, path = stack.pop()
        visited += 1
        if visited % 10_000 == 0:
            ctx.check_time()
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str):
                _check_object(node, path, location, ctx, handled)
            for key, value in node.items():
                if isinstance(value, dict | list):
                    stack.append((value, f"{path}/{key}"))
        elif isinstance(node, list):
            stack.extend((value, f"{path}/{i}") for i, value in enumerate(node))


def _check_object(
    obj: dict[str, object], path: str, location: str, ctx: ScanContext, handled: set[int]
) -> None:
    class_name = str(obj["class_name"])
    config = obj.get("config")
    name = _layer_name(obj)
    where = f"{class_name} {name!r} at {path or '/'}" if name else f"{class_name} at {path or '/'}"
    if class_name == "__lambda__" and id(obj) not in handled:
        ctx.add(
            "KERAS001",
            f"serialized Python bytecode ({where}) is turned into a function on load",
            location,
            path=path,
        )
    elif class_name == "Lambda" and isinstance(config, dict):
        _check_lambda(config, where, path, location, ctx)
        handled.update((id(config.get("function")), id(config.get("output_shape"))))
    module = obj.get("module")
    if isinstance(module, str) and module:
        _check_module(
            module, class_name, config=config, where=where, path=path, location=location, ctx=ctx
        )
    registered = obj.get("registered_name")
    if isinstance(registered, str) and registered not in ("", class_name, "function"):
        package = registered.split(">", 1)[0] if ">" in registered else ""
        if package not in _KERAS_PACKAGES:
            ctx.add(
                "KERAS002",
                f"custom registered object {registered!r} ({where}): the loader needs its code",
                location,
                path=path,
                registered_name=registered,
            )
    elif ">" in class_name and class_name.split(">", 1)[0] not in _KERAS_PACKAGES:
        # Keras 2 writes registered custom classes as "Package>Class" in class_name.
        ctx.add(
            "KERAS002",
            f"custom registered object {class_name!r} at {path or '/'}: the loader needs its code",
            location,
            path=path,
        )


def _layer_name(obj: dict[str, object]) -> str:
    config = obj.get("config")
    if isinstance(config, dict) and isinstance(config.get("name"), str):
        return str(config["name"])
    return ""


def _check_lambda(
    config: dict[str, object], where: str, path: str, location: str, ctx: ScanContext
) -> None:
    """Keras 2 stores a lambda as [base64 marshal, defaults, closure] with function_type
    "lambda"; Keras 3 as {"class_name": "__lambda__"} (found by the walk). A named
    function is imported by name when the model loads."""
    for field in ("function", "output_shape"):
        value = config.get(field)
        kind = config.get(f"{field}_type")
        is_code = (
            kind == "lambda"
            or _is_keras_lambda_code(value)
            or (isinstance(value, list) and bool(value) and isinstance(value[0], str))
        )
        if is_code:
            ctx.add(
                "KERAS001",
                f"Lambda layer {where} carries serialized Python bytecode in {field!r}; "
                "it runs when the model is loaded or called",
                location,
                path=path,
            )
        elif field == "function" and value is not None and not _is_keras_lambda_code(value):
            # Keras 2 names the function's module in the layer config, Keras 3 in the function's.
            module = value.get("module") if isinstance(value, dict) else config.get("module")
            target = value if isinstance(value, str) else _function_name(value)
            detail = f" from module {module!r}" if isinstance(module, str) and module else ""
            ctx.add(
                "KERAS002",
                f"Lambda layer {where} calls the named function {target!r}{detail}, which "
                "the loader must import",
                location,
                path=path,
            )
            if isinstance(module, str) and _root(module) in DANGEROUS_MODULES:
                ctx.add(
                    "KERAS001",
                    f"Lambda layer {where} imports {target!r} from the dangerous module "
                    f"{module!r}: code is imported and called when the model runs",
                    location,
                    path=path,
                    module=module,
                )


def _is_keras_lambda_code(value: object) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__lambda__"


def _function_name(value: object) -> str:
    if isinstance(value, dict):
        inner = value.get("config")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return str(inner["name"])
        return str(value.get("class_name", "?"))
    return repr(value)[:80]


def _check_module(
    module: str,
    class_name: str,
    *,
    config: object,
    where: str,
    path: str,
    location: str,
    ctx: ScanContext,
) -> None:
    """The loader imports `module` and looks up `class_name` (or, for functions, the
    name in `config`) in it, then calls it with the config."""
    callee = config if class_name == "function" and isinstance(config, str) else class_name
    if _is_keras_module(module):
        if callee in DANGEROUS_KERAS_CALLABLES or module.endswith((".config", ".file_utils")):
            ctx.add(
                "KERAS001",
                f"config calls {module}.{callee} ({where}) with attacker-chosen arguments "
                "when the model is loaded",
                location,
                path=path,
                module=module,
            )
        return
    if _root(module) in DANGEROUS_MODULES or callee in _DANGEROUS_FUNCTION_NAMES:
        ctx.add(
            "KERAS001",
            f"config makes the loader import {module}.{callee} ({where}): code from a "
            "dangerous module is imported and called when the model is loaded",
            location,
            path=path,
            module=module,
        )
    else:
        ctx.add(
            "KERAS002",
            f"config refers to {module}.{callee} ({where}), outside Keras: the loader "
            "imports that module's code",
            location,
            path=path,
            module=module,
        )
