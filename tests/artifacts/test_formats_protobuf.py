"""ONNX and SavedModel readers, and the protocol buffer wire walker beneath them."""

from __future__ import annotations

import base64
import json
import marshal
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from tests.artifacts.counting import scan_counting

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._dispatch import HEAD_BYTES, Reader, run_reader
from mlwarden.artifacts._formats import protobuf
from mlwarden.artifacts._formats._protowire import LEN, VARINT, WireSource, fields
from mlwarden.errors import MalformedInputError
from mlwarden.report import Finding

ONNX, SAVED_MODEL = protobuf.READERS


def scan(reader: Reader, path: Path) -> list[Finding]:
    ctx = ScanContext(limits=Limits(), root=path.parent)
    with path.open("rb") as stream:
        head = stream.read(HEAD_BYTES)
        assert reader.sniff(head, path.stat().st_size)
        run_reader(reader, stream, str(path), ctx, 0)
    return ctx.findings


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


# ---- protobuf encoding for hand-built messages ------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def vi(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | LEN) + varint(len(raw)) + raw


# ---- the wire walker ----------------------------------------------------------------


def test_wire_walker_fields() -> None:
    data = vi(1, 300) + ld(2, "abc") + varint(3 << 3 | 1) + struct.pack("<d", 1.5)
    data += varint(4 << 3 | 5) + struct.pack("<I", 7)
    found = list(fields(WireSource.of_bytes(data), 0, len(data)))
    assert [(f.number, f.wire) for f in found] == [(1, 0), (2, 2), (3, 1), (4, 5)]
    assert found[0].value == 300
    assert data[found[1].start : found[1].end] == b"abc"
    assert found[3].value == 7


@pytest.mark.parametrize(
    "data",
    [
        ld(2, "abc")[:-1],  # length past the end
        b"\x08" + b"\xff" * 11,  # varint longer than 10 bytes
        b"\x0b",  # start-group wire type
        b"\x00\x01",  # field number 0
        b"\x08",  # varint cut off
    ],
)
def test_wire_walker_rejects(data: bytes) -> None:
    with pytest.raises(MalformedInputError):
        list(fields(WireSource.of_bytes(data), 0, len(data)))


# ---- ONNX -------------------------------------------------------------------------


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.norm = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(torch.relu(self.norm(self.conv(x))).flatten(1)), dim=1)


def _branch(name: str, op: str) -> onnx.GraphProto:
    out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, None)
    return helper.make_graph([helper.make_node(op, ["x"], [f"{name}_y"])], name, [], [out])


def helper_model(*, nodes: list[onnx.NodeProto] | None = None, **kwargs: object) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "W")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node(
                "If",
                ["c"],
                ["out"],
                then_branch=_branch("t", "Relu"),
                else_branch=_branch("e", "Neg"),
            ),
            *(nodes or []),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [weight],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    return helper.make_model(graph, opset_imports=opsets, **kwargs)  # type: ignore[arg-type]


def test_torch_export_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    torch.onnx.export(Net().eval(), torch.randn(1, 3, 8, 8), str(path), dynamo=False)
    assert scan(ONNX, path) == []


def test_helper_model_with_subgraphs_is_clean(tmp_path: Path) -> None:
    onnx.save_model(helper_model(), tmp_path / "m.onnx")
    assert scan(ONNX, tmp_path / "m.onnx") == []


def test_external_data_saved_properly_is_clean(tmp_path: Path) -> None:
    onnx.save_model(
        helper_model(),
        tmp_path / "ext.onnx",
        save_as_external_data=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    assert (tmp_path / "ext.onnx.data").exists()
    assert scan(ONNX, tmp_path / "ext.onnx") == []


def _with_location(model: onnx.ModelProto, target: str) -> onnx.ModelProto:
    for tensor in model.graph.initializer:
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        tensor.external_data.add(key="location", value=target)
    return model


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("/etc/passwd", "absolute path"),
        ("../../../etc/passwd", "climbs out"),
        ("weights/../../secret", "climbs out"),
        ("C:/Windows/win.ini", "drive letter"),
        ("..\\..\\secret", "backslash"),
        ("file:///etc/passwd", "URL"),
        ("https://example.invalid/w.bin", "URL"),
        ("\\\\server\\share\\w", "absolute path"),
    ],
)
def test_external_data_escapes_are_onnx001(tmp_path: Path, target: str, why: str) -> None:
    onnx.save_model(_with_location(helper_model(), target), tmp_path / "evil.onnx")
    findings = scan(ONNX, tmp_path / "evil.onnx")
    assert rules(findings) == {"ONNX001"}
    assert why in findings[0].message


def test_harmless_relative_locations_are_clean(tmp_path: Path) -> None:
    assert protobuf.external_location_problem("weights/../w.bin") is None
    assert protobuf.external_location_problem("./data/w.bin") is None


def test_external_data_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"\0" * 256)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "w.bin").symlink_to(tmp_path / "outside" / "secret")
    onnx.save_model(_with_location(helper_model(), "w.bin"), model_dir / "m.onnx")
    findings = scan(ONNX, model_dir / "m.onnx")
    assert rules(findings) == {"ONNX001"}
    assert "symbolic link" in findings[0].message


def test_external_data_in_a_subgraph(tmp_path: Path) -> None:
    tensor = numpy_helper.from_array(np.ones(4, dtype=np.float32), "k")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.external_data.add(key="location", value="/proc/self/environ")
    const = helper.make_node("Constant", [], ["k"], value=tensor)
    body = helper.make_graph(
        [const], "body", [], [helper.make_tensor_value_info("k", TensorProto.FLOAT, None)]
    )
    loop = helper.make_node("If", ["c"], ["o"], then_branch=body, else_branch=body)
    onnx.save_model(helper_model(nodes=[loop]), tmp_path / "sub.onnx")
    findings = scan(ONNX, tmp_path / "sub.onnx")
    assert rules(findings) == {"ONNX001"}
    assert "absolute path" in findings[0].message


def test_custom_domain_is_onnx002(tmp_path: Path) -> None:
    custom = helper.make_node("Exec", ["x"], ["z"], domain="evil.ops")
    model = helper_model(nodes=[custom])
    model.opset_import.append(helper.make_opsetid("evil.ops", 1))
    onnx.save_model(model, tmp_path / "custom.onnx")
    findings = scan(ONNX, tmp_path / "custom.onnx")
    assert rules(findings) == {"ONNX002"}
    assert {f.detail["domain"] for f in findings} == {"evil.ops"}
    assert len(findings) == 2  # the node and the opset import


def test_ort_contrib_domain_is_clean(tmp_path: Path) -> None:
    gelu = helper.make_node("Gelu", ["h"], ["g"], domain="com.microsoft")
    model = helper_model(nodes=[gelu])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save_model(model, tmp_path / "ort.onnx")
    assert scan(ONNX, tmp_path / "ort.onnx") == []


def test_model_local_function_is_clean(tmp_path: Path) -> None:
    function = helper.make_function(
        "local.fns",
        "Double",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    call = helper.make_node("Double", ["h"], ["d"], domain="local.fns")
    model = helper_model(nodes=[call], functions=[function])
    model.opset_import.append(helper.make_opsetid("local.fns", 1))
    onnx.save_model(model, tmp_path / "fn.onnx")
    assert scan(ONNX, tmp_path / "fn.onnx") == []
    # A custom op inside the function body is still found.
    function.node.append(helper.make_node("Spawn", ["b"], ["q"], domain="evil.ops"))
    model = helper_model(nodes=[call], functions=[function])
    onnx.save_model(model, tmp_path / "fn2.onnx")
    assert rules(scan(ONNX, tmp_path / "fn2.onnx")) == {"ONNX002"}


def test_big_initializer_is_skipped_not_read(tmp_path: Path) -> None:
    """A 1 GiB raw_data field is passed by position: the scan reads a few bytes."""
    size = 1 << 30
    tensor_head = vi(1, size // 4) + vi(2, TensorProto.FLOAT) + ld(8, "big")
    raw_key = varint(9 << 3 | LEN) + varint(size)
    tensor_len = len(tensor_head) + len(raw_key) + size
    graph_prefix = ld(1, helper.make_node("Relu", ["big"], ["y"]).SerializeToString())
    init_key = varint(5 << 3 | LEN) + varint(tensor_len)
    graph_len = len(graph_prefix) + len(init_key) + tensor_len
    model = vi(1, 8) + varint(7 << 3 | LEN) + varint(graph_len)
    path = tmp_path / "big.onnx"
    with path.open("wb") as stream:
        stream.write(model + graph_prefix + init_key + tensor_head + raw_key)
        stream.truncate(len(model) + graph_len)
    findings, read = scan_counting(path)
    assert findings == []
    assert read < 1 << 20  # raw_data is skipped by position, not read


def test_truncated_model_is_onnx003(tmp_path: Path) -> None:
    onnx.save_model(helper_model(), tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    assert rules(scan(ONNX, tmp_path / "cut.onnx")) == {"ONNX003"}


def test_wrong_wire_type_is_onnx003(tmp_path: Path) -> None:
    path = tmp_path / "w.onnx"
    path.write_bytes(vi(1, 8) + ld(7, ld(1, ld(4, "Relu") + vi(5, 3))))  # node.attribute as an int
    findings = scan(ONNX, path)
    assert rules(findings) == {"ONNX003"}
    assert "expected a message" in findings[0].message


def test_deep_nesting_is_bounded(tmp_path: Path) -> None:
    graph = b""
    for _ in range(100):
        attribute = ld(1, "then_branch") + vi(20, 5) + ld(6, graph)
        graph = ld(1, ld(4, "If") + ld(5, attribute))
    path = tmp_path / "deep.onnx"
    path.write_bytes(vi(1, 8) + ld(7, graph))
    findings = scan(ONNX, path)
    assert rules(findings) == {"ONNX003"}
    assert "nested deeper" in findings[0].message


# ---- SavedModel -------------------------------------------------------------------


def node_def(name: str, op: str, inputs: tuple[str, ...] = (), **attrs: bytes) -> bytes:
    body = ld(1, name) + ld(2, op) + b"".join(ld(3, i) for i in inputs)
    body += b"".join(ld(5, ld(1, key) + ld(2, value)) for key, value in attrs.items())
    return body


def function_def(name: str, nodes: list[bytes]) -> bytes:
    return ld(1, ld(1, name)) + b"".join(ld(3, n) for n in nodes)


def saved_model(nodes: list[bytes], functions: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    library = b"".join(ld(1, f) for f in functions)
    graph = b"".join(ld(1, n) for n in nodes) + ld(2, library) + ld(4, vi(1, 1882))
    meta_info = ld(1, "") + ld(4, "serve") + ld(5, "2.16.1")
    signature = ld(5, ld(1, "serving_default") + ld(2, ld(3, "tensorflow/serving/predict")))
    meta_graph = ld(1, meta_info) + ld(2, graph) + ld(3, ld(1, "saver_filename:0")) + signature
    meta_graph += ld(7, ld(1, ld(1, ld(1, "root"))))
    return vi(1, 1) + ld(2, meta_graph)


TYPE_FLOAT = vi(6, 1)
BENIGN_NODES = [
    node_def("x", "Placeholder", dtype=TYPE_FLOAT),
    node_def("w", "VarHandleOp", shared_name=ld(2, "w")),
    node_def("w/Read", "ReadVariableOp", ("w",), dtype=TYPE_FLOAT),
    node_def("mm", "MatMul", ("x", "w/Read")),
    node_def("call", "StatefulPartitionedCall", ("x", "w"), f=ld(10, ld(1, "__inference_serve"))),
    node_def("saver_filename", "Placeholder"),
    node_def("save/SaveV2", "SaveV2", ("saver_filename",)),
    node_def("save/RestoreV2", "RestoreV2", ("saver_filename",)),
    node_def("save/Merge", "MergeV2Checkpoints"),
    node_def("save/Sharded", "ShardedFilename"),
    node_def("save/Join", "StringJoin"),
    node_def("print", "PrintV2", ("x",), output_stream=ld(2, "stderr")),
]
BENIGN_FUNCTIONS = [
    function_def(
        "__inference_serve",
        [node_def("relu", "Relu", ("x",)), node_def("id", "Identity", ("relu",))],
    )
]


def write(tmp_path: Path, data: bytes, name: str = "saved_model.pb") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_benign_saved_model_is_clean(tmp_path: Path) -> None:
    path = write(tmp_path, saved_model(BENIGN_NODES, BENIGN_FUNCTIONS))
    assert not ONNX.sniff(path.read_bytes()[:HEAD_BYTES], path.stat().st_size)
    assert scan(SAVED_MODEL, path) == []


@pytest.mark.parametrize("op", ["PyFunc", "PyFuncStateless", "EagerPyFunc"])
def test_python_ops_are_tf002(tmp_path: Path, op: str) -> None:
    nodes = [*BENIGN_NODES, node_def("py", op, ("x",), token=ld(2, "pyfunc_0"))]
    findings = scan(SAVED_MODEL, write(tmp_path, saved_model(nodes, BENIGN_FUNCTIONS)))
    assert rules(findings) == {"TF002"}
    assert findings[0].detail["op"] == op


@pytest.mark.parametrize("op", ["ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst"])
def test_host_file_ops_in_functions_are_tf001(tmp_path: Path, op: str) -> None:
    evil = function_def("__inference_evil", [node_def("io", op, ("x",))])
    findings = scan(
        SAVED_MODEL, write(tmp_path, saved_model(BENIGN_NODES, [*BENIGN_FUNCTIONS, evil]))
    )
    assert rules(findings) == {"TF001"}
    assert "graph_def.library.function[1].node_def[0]" in findings[0].message


def test_print_to_file_is_tf001(tmp_path: Path) -> None:
    nodes = [node_def("p", "PrintV2", ("x",), output_stream=ld(2, "file:///tmp/x"))]
    assert rules(scan(SAVED_MODEL, write(tmp_path, saved_model(nodes)))) == {"TF001"}


def test_truncated_saved_model_is_tf003(tmp_path: Path) -> None:
    data = saved_model(BENIGN_NODES, BENIGN_FUNCTIONS)
    assert rules(scan(SAVED_MODEL, write(tmp_path, data[:300]))) == {"TF003"}


# ---- sniffing: both readers claim only their own content ---------------------------


def _others(tmp_path: Path) -> dict[str, bytes]:
    np.save(tmp_path / "a.npy", np.arange(3))
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as archive:
        archive.writestr("a.txt", "hello")
    return {
        "pickle2": pickle.dumps({"a": 1}, protocol=2),
        "pickle0": pickle.dumps([1, "x"], protocol=0),
        "pickle5": pickle.dumps(list(range(100)), protocol=5),
        "npy": (tmp_path / "a.npy").read_bytes(),
        "zip": (tmp_path / "z.zip").read_bytes(),
        "text": b"# README\nsome text about a model\n",
        "json": b'{"architectures": ["LlamaForCausalLM"]}',
        "gguf": b"GGUF\x03\0\0\0" + b"\0" * 16,
        "safetensors": struct.pack("<Q", 2) + b"{}",
        "zeros": b"\0" * 64,
        "random": np.random.default_rng(1).bytes(4096),
    }


def test_sniffers_reject_other_formats(tmp_path: Path) -> None:
    for name, data in _others(tmp_path).items():
        assert not ONNX.sniff(data[:HEAD_BYTES], len(data)), name
        assert not SAVED_MODEL.sniff(data[:HEAD_BYTES], len(data)), name


def test_onnx_not_taken_for_saved_model(tmp_path: Path) -> None:
    onnx.save_model(helper_model(), tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    assert not SAVED_MODEL.sniff(data[:HEAD_BYTES], len(data))


# ---- keras_metadata.pb (tf.keras SavedModel) ---------------------------------------


def keras_metadata(objects: list[tuple[str, str, dict[str, object]]]) -> bytes:
    out = b""
    for index, (path, identifier, metadata) in enumerate(objects):
        body = ld(1, vi(1, 2) + vi(2, 1)) + vi(2, index) + ld(3, path) + ld(4, identifier)
        out += ld(1, body + ld(5, json.dumps(metadata)))
    return out


DENSE = {"name": "dense", "trainable": True, "class_name": "Dense", "config": {"units": 3}}


def test_keras_metadata_is_recognised_and_clean(tmp_path: Path) -> None:
    model = {"class_name": "Sequential", "config": {"layers": [DENSE]}}
    data = keras_metadata(
        [("root", "_tf_keras_sequential", model), ("root.d", "_tf_keras_layer", DENSE)]
    )
    path = write(tmp_path, data, "keras_metadata.pb")
    assert not ONNX.sniff(data[:HEAD_BYTES], len(data))
    assert scan(SAVED_MODEL, path) == []


def test_keras_metadata_lambda_is_keras001(tmp_path: Path) -> None:
    code = base64.b64encode(marshal.dumps(compile("lambda x: x", "<x>", "eval"))).decode()
    lam = {
        "name": "lambda",
        "class_name": "Lambda",
        "config": {"function": [code, None, None], "function_type": "lambda"},
    }
    data = keras_metadata([("root.lambda", "_tf_keras_layer", lam)])
    findings = scan(SAVED_MODEL, write(tmp_path, data, "keras_metadata.pb"))
    assert rules(findings) == {"KERAS001"}
    assert findings[0].location.endswith("keras_metadata.pb#root.lambda")


def test_keras_metadata_needs_a_keras_identifier() -> None:
    data = keras_metadata([("root", "something_else", DENSE)])
    assert not SAVED_MODEL.sniff(data[:HEAD_BYTES], len(data))
