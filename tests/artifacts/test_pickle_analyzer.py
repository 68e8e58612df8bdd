"""The symbolic pickle machine against each evasion technique, with harmless payloads.

Every malicious stream calls a harmless command (`true`) or nothing at all; the
streams are analysed, never loaded.
"""

from __future__ import annotations

import base64
import marshal
import os
import pickle
import struct
import subprocess

import pytest
from test_pickle_asm import Asm, analyse, callables, rules

from mlwarden.artifacts._context import Limits


class _System:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


class _Popen:
    def __reduce__(self) -> tuple[object, tuple[list[str]]]:
        return (subprocess.Popen, (["true"],))


def _system_pickle(protocol: int = 4) -> bytes:
    return pickle.dumps(_System(), protocol=protocol)


@pytest.mark.parametrize("protocol", range(6))
def test_reduce_of_os_system_in_every_protocol(protocol: int) -> None:
    result, findings = analyse(pickle.dumps({"a": [_System(), 1]}, protocol=protocol))
    assert result.complete
    assert "PKL001" in rules(findings)
    assert any(name.endswith(".system") for name in callables(findings, "PKL001"))
    assert all("offset" in f.detail for f in findings)


@pytest.mark.parametrize("protocol", range(6))
def test_plain_data_is_clean_in_every_protocol(protocol: int) -> None:
    data = {"w": [1.5, -2, 2**70, "x" * 300, b"\x00" * 300, None, True], "t": (1, 2, 3)}
    result, findings = analyse(pickle.dumps(data, protocol=protocol))
    assert result.complete and findings == []
    assert result.end == len(pickle.dumps(data, protocol=protocol))


def test_subprocess_popen_is_malicious() -> None:
    _, findings = analyse(pickle.dumps(_Popen(), protocol=2))
    assert "subprocess.Popen" in callables(findings, "PKL001")


def test_stack_global_with_names_from_the_memo() -> None:
    data = (
        Asm(4)
        .s("os")
        .raw(b"\x94")  # memo 0
        .s("system")
        .raw(b"\x94")  # memo 1
        .raw(b"00")  # drop both from the stack
        .raw(b"h\x00h\x01\x93")  # BINGET 0, BINGET 1, STACK_GLOBAL
        .tup("true")
        .raw(b"R")
        .done()
    )
    result, findings = analyse(data)
    assert result.complete
    assert "os.system" in callables(findings, "PKL001")


def test_put_after_get_overwrites_the_memo() -> None:
    data = (
        Asm(2)
        .s("collections")
        .raw(b"q\x00")  # memo 0 = "collections"
        .s("os")
        .raw(b"q\x00")  # memo 0 overwritten with "os"
        .raw(b"00h\x00")  # GET 0 -> "os"
        .raw(b"q\x01")  # PUT after GET: memo 1 = "os"
        .s("system")
        .raw(b"\x93")
        .raw(b"0h\x01")
        .s("system")
        .raw(b"\x93")
        .tup("true")
        .raw(b"R")
        .done()
    )
    _, findings = analyse(data)
    assert "os.system" in callables(findings, "PKL001")


def test_inst_opcode() -> None:
    data = b"(S'true'\nios\nsystem\n."
    result, findings = analyse(data)
    assert result.complete
    assert "os.system" in callables(findings, "PKL001")


def test_obj_opcode() -> None:
    data = Asm(1).raw(b"(").glob("os", "system").s("true").raw(b"o").done()
    _, findings = analyse(data)
    assert "os.system" in callables(findings, "PKL001")


@pytest.mark.parametrize("opcode", [b"\x81", b"}\x92"])
def test_newobj_and_newobj_ex(opcode: bytes) -> None:
    data = Asm(4).sglob("subprocess", "Popen").tup("true").raw(opcode).done()
    _, findings = analyse(data)
    assert "subprocess.Popen" in callables(findings, "PKL001")


def test_build_that_installs_setstate_is_flagged() -> None:
    # BUILD({"__setstate__": os.system}) then BUILD("true"): the second BUILD calls it.
    data = (
        Asm(2)
        .glob("collections", "OrderedDict")
        .raw(b")R")
        .raw(b"}")
        .s("__setstate__")
        .glob("os", "system")
        .raw(b"sb")
        .s("true")
        .raw(b"b")
        .done()
    )
    _, findings = analyse(data)
    assert {"PKL007", "PKL001"} <= rules(findings)


def test_build_on_an_imported_class_is_flagged() -> None:
    data = Asm(2).glob("collections", "OrderedDict").raw(b"}").s("x").s("y").raw(b"sb").done()
    _, findings = analyse(data)
    assert "PKL001" in rules(findings)


def test_getattr_chain_to_globals() -> None:
    data = (
        Asm(2)
        .glob("builtins", "getattr")
        .raw(b"(")
        .glob("builtins", "getattr")
        .raw(b"(")
        .glob("collections", "OrderedDict")
        .s("__init__")
        .raw(b"tR")
        .s("__globals__")
        .raw(b"tR")
        .done()
    )
    _, findings = analyse(data)
    assert "PKL007" in rules(findings)
    assert {"getattr:__globals__", "getattr:__init__"} <= callables(findings, "PKL007")


def test_getattr_of_a_reexported_module_is_an_import() -> None:
    data = (
        Asm(2)
        .glob("builtins", "getattr")
        .raw(b"(")
        .glob("numpy.testing._private.utils", "os")
        .s("system")
        .raw(b"tR")
        .tup("true")
        .raw(b"R")
        .done()
    )
    _, findings = analyse(data)
    assert "numpy.testing._private.utils.os.system" in callables(findings, "PKL001")


def test_getattr_for_a_bound_method_of_a_safe_class_is_not_malicious() -> None:
    # How pickle writes a bound method: getattr(obj, "name") of an allowlisted class.
    stream = b"\x80\x02cbuiltins\ngetattr\n(cbuiltins\nslice\n\x8c\x07indicesq\x00tR."
    result, findings = analyse(stream)
    assert result.complete
    assert "PKL001" not in rules(findings) and "PKL007" not in rules(findings)


def test_attrgetter_on_dunders() -> None:
    data = Asm(2).call("operator", "attrgetter", "__globals__").done()
    _, findings = analyse(data)
    assert "PKL007" in rules(findings)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("numpy.testing._private.utils", "os.system"),
        ("torch.serialization", "os.system"),
        ("numpy.testing._private.utils", "subprocess.check_output"),
        ("sklearn.utils._testing", "Popen"),
    ],
)
def test_dotted_names_through_reexporting_modules(module: str, name: str) -> None:
    data = Asm(4).sglob(module, name).tup("true").raw(b"R").done()
    _, findings = analyse(data)
    assert "PKL001" in rules(findings)


def test_computed_import_name_is_resolved() -> None:
    # STACK_GLOBAL("os", codecs.decode("flfgrz", "rot13")) -> os.system
    data = (
        Asm(4)
        .s("os")
        .sglob("_codecs", "decode")
        .tup("flfgrz", "rot13")
        .raw(b"R")
        .raw(b"\x93")
        .tup("true")
        .raw(b"R")
        .done()
    )
    _, findings = analyse(data)
    assert "os.system" in callables(findings, "PKL001")


def test_nested_pickle_loads_is_followed() -> None:
    inner = _system_pickle()
    data = Asm(4).sglob("pickle", "loads").raw(b"(").b(inner).raw(b"tR").done()
    _, findings = analyse(data)
    assert "PKL004" in rules(findings)
    nested = [f for f in findings if "!nested@" in f.location]
    assert any(f.rule_id == "PKL001" for f in nested)


def test_nested_payload_in_protocol_2_bytes_and_base64() -> None:
    inner = base64.b64encode(_system_pickle()).decode()
    data = (
        Asm(2)
        .glob("_pickle", "loads")
        .raw(b"(")
        .glob("base64", "b64decode")
        .tup(inner)
        .raw(b"R")
        .raw(b"tR")
        .done()
    )
    _, findings = analyse(data)
    assert "PKL004" in rules(findings)
    assert any(f.rule_id == "PKL001" and "!nested@" in f.location for f in findings)


def test_nested_payload_through_bytesio_and_torch_load() -> None:
    inner = _system_pickle() + b"\x00" * (2 << 20)  # large: stays in the stream as a Blob
    data = (
        Asm(4)
        .sglob("torch", "load")
        .raw(b"(")
        .sglob("io", "BytesIO")
        .raw(b"(")
        .b(inner)
        .raw(b"tR")
        .raw(b"tR")
        .done()
    )
    _, findings = analyse(data)
    assert "PKL004" in rules(findings)
    assert any(f.rule_id == "PKL001" and "!nested@" in f.location for f in findings)


def test_marshal_code_by_value() -> None:
    code = marshal.dumps(compile("1 + 1", "<x>", "eval"))
    data = Asm(4).sglob("marshal", "loads").raw(b"(").b(code).raw(b"tR").done()
    _, findings = analyse(data)
    assert "PKL005" in rules(findings)


def test_types_functiontype_is_code_by_value() -> None:
    data = Asm(4).sglob("types", "FunctionType").raw(b"(NN").raw(b"tR").done()
    _, findings = analyse(data)
    assert "PKL005" in rules(findings)


def test_dill_lambda_is_code_by_value() -> None:
    dill = pytest.importorskip("dill")
    _, findings = analyse(dill.dumps(lambda x: x + 1))
    assert "PKL005" in rules(findings)


def test_cloudpickle_lambda_is_code_by_value() -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    _, findings = analyse(cloudpickle.dumps(lambda x: x + 1))
    assert "PKL005" in rules(findings)


def test_payload_before_an_invalid_opcode_is_kept() -> None:
    data = Asm(4).call("os", "system", "true").raw(b"\xff").done()
    result, findings = analyse(data)
    assert not result.complete
    assert {"PKL001", "PKL003"} <= rules(findings)


def test_payload_after_an_invalid_opcode_is_found_by_resync() -> None:
    data = Asm(4).raw(b"N\xfe").call("posix", "system", "true").done()
    result, findings = analyse(data)
    assert not result.complete
    resynced = [f for f in findings if f.detail.get("resync") == "true"]
    assert {f.detail["callable"] for f in resynced} == {"posix.system"}
    assert all(f.rule_id == "PKL001" for f in resynced)


def test_stack_global_after_garbage_is_found_by_resync() -> None:
    data = Asm(4).raw(b"N\xfe").sglob("subprocess", "run").tup("true").raw(b"R").done()
    _, findings = analyse(data)
    assert "subprocess.run" in callables(findings, "PKL001")


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_stream_is_never_clean(cut: int) -> None:
    data = pickle.dumps({"weights": list(range(50))}, protocol=4)[:-cut]
    result, findings = analyse(data)
    assert not result.complete
    assert "PKL003" in rules(findings)


def test_empty_stream_is_malformed() -> None:
    result, findings = analyse(b"")
    assert not result.complete and "PKL003" in rules(findings)


@pytest.mark.parametrize(
    ("opcode", "arg"), [(b"\x82", b"\x01"), (b"\x83", b"\x01\x00"), (b"\x84", b"\x01\x00\x00\x00")]
)
def test_extension_registry_opcodes(opcode: bytes, arg: bytes) -> None:
    data = Asm(2).raw(opcode + arg).raw(b")R").done()
    _, findings = analyse(data)
    assert "PKL008" in rules(findings)


def test_unsupported_protocol_is_malformed() -> None:
    _, findings = analyse(b"\x80\x09N.")
    assert "PKL003" in rules(findings)


def test_memo_bomb_hits_the_memo_limit() -> None:
    data = Asm(4).raw(b"N" + b"\x94" * 5000).done()
    result, findings = analyse(data, Limits(max_memo_entries=1000))
    assert not result.complete and "PKL006" in rules(findings)


def test_opcode_limit() -> None:
    data = Asm(4).raw(b"]" + b"Na" * 50_000).done()
    result, findings = analyse(data, Limits(max_pickle_opcodes=20_000))
    assert not result.complete and "PKL006" in rules(findings)


def test_stack_depth_limit() -> None:
    data = Asm(4).raw(b"(" * 60_000).done()
    result, findings = analyse(data, Limits(max_stack_depth=10_000))
    assert not result.complete and "PKL006" in rules(findings)


def test_byte_limit() -> None:
    data = pickle.dumps(list(range(100_000)), protocol=4)
    result, findings = analyse(data, Limits(max_pickle_bytes=1000))
    assert not result.complete and "PKL006" in rules(findings)


def test_self_referencing_memo_does_not_expand() -> None:
    # A list appended to itself many times: references, not copies.
    data = Asm(4).raw(b"]\x94" + b"h\x00h\x00a0" * 20_000 + b"h\x00").done()
    result, findings = analyse(data)
    assert result.complete and findings == []


def test_long_integer_argument_is_bounded() -> None:
    data = b"L" + b"9" * 50_000 + b"L\n."
    result, findings = analyse(data)
    assert result.complete and findings == []
    big = b"\x80\x02\x8b" + struct.pack("<i", 200_000) + b"\x01" * 200_000 + b"."
    result, findings = analyse(big)
    assert result.complete and findings == []


def test_unknown_global_is_suspicious() -> None:
    _, findings = analyse(Asm(2).call("mypackage.models", "Custom").done())
    assert rules(findings) == {"PKL002"}


def test_partial_of_getattr_is_judged_as_the_wrapped_call() -> None:
    data = (
        Asm(2)
        .glob("functools", "partial")
        .raw(b"(")
        .glob("builtins", "getattr")
        .glob("collections", "OrderedDict")
        .raw(b"tR")
        .tup("__init__")
        .raw(b"R")
        .done()
    )
    _, findings = analyse(data)
    assert "getattr:__init__" in callables(findings, "PKL007")


def test_mutated_pickles_never_raise() -> None:
    # A small seeded fuzz: every mutation ends as findings, never as an exception.
    import random

    seeds = [
        pickle.dumps(obj, protocol=protocol)
        for protocol in range(6)
        for obj in ({"a": [1, 2.5, "x", b"y"], "b": (None, True)}, [_System(), {1, 2}])
    ]
    rng = random.Random(7)
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            if not data:
                break
            at = rng.randrange(len(data))
            if rng.random() < 0.6:
                data[at] = rng.randrange(256)
            else:
                del data[at : at + rng.randint(1, 6)]
        result, findings = analyse(bytes(data))
        assert result.complete or "PKL003" in rules(findings) or "PKL006" in rules(findings)


@pytest.mark.parametrize(
    ("module", "name", "rule_id"),
    [
        # joblib.logger.PrintTime(logfile) creates and overwrites the file it is given.
        ("sklearn.utils.parallel", "joblib.PrintTime", "PKL001"),
        ("torch.nn.modules._functions", "dist.logging.FileHandler", "PKL001"),
        # A CamelCase name reached by a walk is not a scikit-learn class.
        ("sklearn.utils.parallel", "joblib.Logger", "PKL002"),
        ("sklearn.utils._metadata_requests", "inspect.BlockFinder", "PKL002"),
    ],
)
@pytest.mark.parametrize("stack_global", [True, False])
def test_dotted_names_leaving_a_framework_module(
    module: str, name: str, rule_id: str, stack_global: bool
) -> None:
    asm = Asm(4)
    asm = asm.sglob(module, name) if stack_global else asm.glob(module, name)
    _, findings = analyse(asm.tup("/nonexistent/marker").raw(b"R").done())
    assert f"{module}.{name}" in callables(findings, rule_id)


def test_getattr_walks_do_not_reach_the_class_naming_rule() -> None:
    # getattr(getattr(sklearn.utils, "parallel"), "Logger")(): each step is a walk.
    data = (
        Asm(4)
        .glob("builtins", "getattr")
        .raw(b"(")
        .glob("builtins", "getattr")
        .raw(b"(")
        .glob("sklearn", "utils")
        .s("parallel")
        .raw(b"tR")
        .s("Logger")
        .raw(b"tR")
        .tup()
        .raw(b"R")
        .done()
    )
    _, findings = analyse(data)
    assert "sklearn.utils.parallel.Logger" in callables(findings, "PKL002")
