"""ONNX models and TensorFlow SavedModels: protocol buffers, walked by field number.

Both formats are recognised by content: the top-level fields of the head must
walk as valid wire format, every field must belong to the schema with the
right wire type, and the schema's characteristic fields must be present. The
walk descends only into the messages that matter (graphs, nodes, tensors'
external data, function libraries) and skips everything else by position, so
weights are never read. Field numbers follow onnx/onnx.proto3 and
tensorflow/core/protobuf/{saved_model,meta_graph}.proto and
tensorflow/core/framework/{graph,node_def,function}.proto.

The "savedmodel" reader also reads keras_metadata.pb, the file beside a tf.keras
SavedModel that holds each layer's Keras config (a Lambda layer's bytecode too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from mlwarden.artifacts._context import ScanContext
from mlwarden.artifacts._dispatch import HEAD_BYTES, Reader
from mlwarden.artifacts._formats._protowire import (
    LEN,
    VARINT,
    Field,
    WireSource,
    fields,
    wire_name,
)
from mlwarden.artifacts._formats.keras_config import check_keras_config
from mlwarden.errors import LimitExceededError, MalformedInputError

MAX_NESTING = 64
MAX_STRING = 1 << 20

# ---- schemas: field number -> wire type, for the messages sniffing checks ---------

ONNX_MODEL_FIELDS = {
    1: VARINT, 2: LEN, 3: LEN, 4: LEN, 5: VARINT, 6: LEN, 7: LEN, 8: LEN, 14: LEN,
    20: LEN, 25: LEN, 26: LEN,
}  # fmt: skip
ONNX_GRAPH_FIELDS = {
    1: LEN, 2: LEN, 5: LEN, 10: LEN, 11: LEN, 12: LEN, 13: LEN, 14: LEN, 15: LEN, 16: LEN,
}  # fmt: skip
SAVED_MODEL_FIELDS = {1: VARINT, 2: LEN}
META_GRAPH_FIELDS = {1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN, 6: LEN, 7: LEN}
# keras_metadata.pb beside a tf.keras SavedModel (keras/protobuf/saved_metadata.proto).
KERAS_METADATA_FIELDS = {1: LEN}
KERAS_OBJECT_FIELDS = {1: LEN, 2: VARINT, 3: LEN, 4: LEN, 5: LEN}

# Operator domains of the ONNX standard and of ONNX Runtime's built-in kernels.
STANDARD_ONNX_DOMAINS = frozenset(
    {
        "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
        "ai.onnx.preview", "com.microsoft", "com.microsoft.nchwc", "com.ms.internal.nhwc",
        "com.microsoft.experimental",
    }
)  # fmt: skip

# TensorFlow ops that run Python, and ops that touch the host's files. Checkpoint
# ops (SaveV2, RestoreV2, MergeV2Checkpoints, ShardedFilename) sit in every
# SavedModel's saver graph and are not flagged; nor are the legacy Save/Restore
# ops of very old TF1 savers.
TF_PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
TF_HOST_OPS = frozenset(
    {
        "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst",
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
        "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordReader",
        "TFRecordReaderV2", "LMDBReader", "TextLineDataset", "TFRecordDataset",
        "TFRecordDatasetV2", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
        "MatchingFilesDataset", "ExperimentalMatchingFilesDataset", "LMDBDataset",
        "ExperimentalLMDBDataset", "SaveDataset", "SaveDatasetV2", "LoadDataset",
        "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "CreateSummaryFileWriter",
        "CreateSummaryDbWriter", "SqlDataset", "ExperimentalSqlDataset",
    }
)  # fmt: skip

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# ---- sniffing ---------------------------------------------------------------------


def _head_fields(head: bytes, size: int) -> list[Field] | None:
    """The fields of the head; None unless the head walks cleanly (a cut at the end of
    a head shorter than the file is allowed). The last field may claim more bytes than
    the file has: a truncated model is still recognised, and its scan says so."""
    source = WireSource(None, 1 << 62, data=head)
    found: list[Field] = []
    try:
        found.extend(fields(source, 0, len(head), partial=True))
    except MalformedInputError:
        # Only a tag or length cut by the end of the head is forgiven, not garbage.
        if len(head) >= size or not found or len(head) - found[-1].end > 20:
            return None
    return found


def _matches(found: list[Field], schema: dict[int, int]) -> bool:
    return all(schema.get(f.number) == f.wire for f in found)


def sniff_onnx(head: bytes, size: int) -> bool:
    found = _head_fields(head, size)
    if not found or found[0].number != 1 or found[0].wire != VARINT:
        return False
    if not 1 <= found[0].value <= 64 or not _matches(found, ONNX_MODEL_FIELDS):
        return False
    graphs = [f for f in found if f.number == 7]
    if not graphs and not any(f.number == 8 for f in found):
        return False
    return all(_sub_head_ok(head, size, g, ONNX_GRAPH_FIELDS) for g in graphs)


def sniff_saved_model(head: bytes, size: int) -> bool:
    found = _head_fields(head, size)
    if not found or not _matches(found, SAVED_MODEL_FIELDS):
        return False
    metas = [f for f in found if f.number == 2]
    if not metas:
        return False
    return all(_sub_head_ok(head, size, m, META_GRAPH_FIELDS) for m in metas)


def sniff_keras_metadata(head: bytes, size: int) -> bool:
    """keras_metadata.pb: repeated SavedObject whose identifier names a tf.keras loader."""
    found = _head_fields(head, size)
    if not found or not _matches(found, KERAS_METADATA_FIELDS):
        return False
    first = found[0]
    visible = head[first.start : min(first.end, len(head))]
    inner = _head_fields(visible, first.length)
    if not inner or not _matches(inner, KERAS_OBJECT_FIELDS):
        return False
    identifiers = [visible[f.start : f.end] for f in inner if f.number == 4]
    return bool(identifiers) and identifiers[0].startswith(b"_tf_keras_")


def _sub_head_ok(head: bytes, size: int, item: Field, schema: dict[int, int]) -> bool:
    if item.start >= len(head) or item.length == 0:
        return True
    visible = head[item.start : min(item.end, len(head))]
    inner = _head_fields(visible, item.length)
    return bool(inner) and inner is not None and _matches(inner, schema)


# ---- the shared walk --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Message:
    kind: str
    start: int
    end: int
    path: str
    depth: int


@dataclass(slots=True)
class _Walk:
    source: WireSource
    location: str
    ctx: ScanContext
    malformed: str
    stack: list[_Message] = field(default_factory=list)
    steps: int = 0

    def push(self, kind: str, item: Field, parent: _Message, label: str) -> None:
        if item.wire != LEN:
            raise MalformedInputError(
                f"{parent.path}.{label}: expected a message, found a {wire_name(item.wire)} field"
            )
        if parent.depth + 1 > MAX_NESTING:
            raise LimitExceededError(
                f"{parent.path}: messages nested deeper than {MAX_NESTING}", rule_id=self.malformed
            )
        self.stack.append(
            _Message(kind, item.start, item.end, f"{parent.path}.{label}", parent.depth + 1)
        )

    def forward(self, mark: int) -> None:
        """Reverse the children pushed since `mark`, so they pop in file order and
        the source's buffer reads forward instead of re-reading for each one."""
        self.stack[mark:] = self.stack[mark:][::-1]

    def text(self, item: Field, where: str) -> str:
        if item.wire != LEN:
            raise MalformedInputError(f"{where}: expected a string, found {wire_name(item.wire)}")
        if item.length > MAX_STRING:
            raise LimitExceededError(
                f"{where}: string of {item.length} bytes", rule_id=self.malformed
            )
        return self.source.read(item.start, item.length).decode("utf-8", "replace")

    def fields_of(self, message: _Message) -> Iterator[Field]:
        """The message's fields, lazily: a hostile message of millions of fields is
        walked in bounded memory, with the clock checked on the way."""
        for item in fields(self.source, message.start, message.end):
            self.steps += 1
            if self.steps % 65536 == 0:
                self.ctx.check_time()
            yield item


def _open(stream: BinaryIO) -> WireSource:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return WireSource(stream, size)


# ---- ONNX -------------------------------------------------------------------------


@dataclass(slots=True)
class _OnnxFacts:
    node_domains: list[tuple[str, str, str]] = field(default_factory=list)
    opset_domains: list[tuple[str, str]] = field(default_factory=list)
    functions: set[tuple[str, str]] = field(default_factory=set)
    function_domains: set[str] = field(default_factory=set)


def scan_onnx(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    source = _open(stream)
    walk = _Walk(source, location, ctx, "ONNX003")
    facts = _OnnxFacts()
    walk.stack.append(_Message("model", 0, source.size, "model", 0))
    while walk.stack:
        message = walk.stack.pop()
        items = walk.fields_of(message)
        handler = _ONNX_HANDLERS.get(message.kind)
        if handler is not None:
            mark = len(walk.stack)
            handler(walk, message, items, facts)
            walk.forward(mark)
    _check_domains(facts, location, ctx)


def _onnx_model(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    counts: dict[int, int] = {}
    for item in items:
        index = counts.get(item.number, 0)
        counts[item.number] = index + 1
        if item.number == 1 and item.wire != VARINT:
            raise MalformedInputError("ModelProto.ir_version is not an integer")
        if item.number == 7:
            walk.push("graph", item, msg, "graph")
        elif item.number == 8:
            walk.push("opset", item, msg, f"opset_import[{index}]")
        elif item.number == 20:
            walk.push("training", item, msg, f"training_info[{index}]")
        elif item.number == 25:
            walk.push("function", item, msg, f"functions[{index}]")


def _onnx_graph(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    counts: dict[int, int] = {}
    kinds = {1: ("node", "node"), 5: ("tensor", "initializer"), 15: ("sparse", "sparse_init")}
    for item in items:
        index = counts.get(item.number, 0)
        counts[item.number] = index + 1
        if item.number in kinds:
            kind, label = kinds[item.number]
            walk.push(kind, item, msg, f"{label}[{index}]")


def _onnx_node(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    op_type, domain = "", ""
    attributes = 0
    for item in items:
        if item.number == 4:
            op_type = walk.text(item, f"{msg.path}.op_type")
        elif item.number == 7:
            domain = walk.text(item, f"{msg.path}.domain")
        elif item.number == 5:
            walk.push("attribute", item, msg, f"attribute[{attributes}]")
            attributes += 1
    facts.node_domains.append((domain, op_type, msg.path))


def _onnx_attribute(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    kinds = {5: "tensor", 10: "tensor", 6: "graph", 11: "graph", 22: "sparse", 23: "sparse"}
    labels = {5: "t", 10: "tensors", 6: "g", 11: "graphs", 22: "sparse_tensor", 23: "sparse"}
    for index, item in enumerate(items):
        if item.number in kinds:
            walk.push(kinds[item.number], item, msg, f"{labels[item.number]}[{index}]")


def _onnx_tensor(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    name = ""
    locations: list[str] = []
    for item in items:
        if item.number == 8:
            name = walk.text(item, f"{msg.path}.name")
        elif item.number == 13:
            entry = _string_entry(walk, item, f"{msg.path}.external_data")
            if entry[0] == "location":
                locations.append(entry[1])
    for target in locations:
        _check_external_location(target, name or msg.path, walk.location, walk.ctx)


def _string_entry(walk: _Walk, item: Field, where: str) -> tuple[str, str]:
    if item.wire != LEN:
        raise MalformedInputError(f"{where}: expected a key/value entry")
    key = value = ""
    for inner in fields(walk.source, item.start, item.end):
        if inner.number == 1:
            key = walk.text(inner, f"{where}.key")
        elif inner.number == 2:
            value = walk.text(inner, f"{where}.value")
    return key, value


def _onnx_sparse(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    for item in items:
        if item.number in (1, 2):
            walk.push("tensor", item, msg, "values" if item.number == 1 else "indices")


def _onnx_training(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    for item in items:
        if item.number in (1, 2):
            walk.push("graph", item, msg, "initialization" if item.number == 1 else "algorithm")


def _onnx_function(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    name, domain = "", ""
    nodes = opsets = 0
    for item in items:
        if item.number == 1:
            name = walk.text(item, f"{msg.path}.name")
        elif item.number == 10:
            domain = walk.text(item, f"{msg.path}.domain")
        elif item.number == 7:
            walk.push("node", item, msg, f"node[{nodes}]")
            nodes += 1
        elif item.number == 9:
            walk.push("opset", item, msg, f"opset_import[{opsets}]")
            opsets += 1
    facts.functions.add((domain, name))
    facts.function_domains.add(domain)


def _onnx_opset(walk: _Walk, msg: _Message, items: Iterable[Field], facts: _OnnxFacts) -> None:
    domain = ""
    for item in items:
        if item.number == 1:
            domain = walk.text(item, f"{msg.path}.domain")
    facts.opset_domains.append((domain, msg.path))


_ONNX_HANDLERS = {
    "model": _onnx_model,
    "graph": _onnx_graph,
    "node": _onnx_node,
    "attribute": _onnx_attribute,
    "tensor": _onnx_tensor,
    "sparse": _onnx_sparse,
    "training": _onnx_training,
    "function": _onnx_function,
    "opset": _onnx_opset,
}


def external_location_problem(target: str) -> str | None:
    """Why an external data location may reach outside the model's folder, or None."""
    if not target:
        return "is empty"
    if "\0" in target:
        return "contains a NUL byte"
    if target.startswith(("/", "\\")):
        return "is an absolute path"
    if re.match(r"^[A-Za-z]:", target):
        return "starts with a drive letter"
    if _URL_SCHEME.match(target):
        return "is a URL"
    if "\\" in target:
        return "uses backslash separators, which Windows reads as folders"
    level = 0
    for part in target.split("/"):
        if part == "..":
            level -= 1
            if level < 0:
                return "climbs out of the model folder with '..'"
        elif part not in ("", "."):
            level += 1
    return None


def _check_external_location(target: str, tensor: str, location: str, ctx: ScanContext) -> None:
    problem = external_location_problem(target)
    if problem is None:
        problem = _symlink_escape(target, location)
    if problem is not None:
        ctx.add(
            "ONNX001",
            f"tensor {tensor!r} external data location {target!r} {problem}",
            location,
            tensor=tensor,
            external_location=target,
        )


def _symlink_escape(target: str, location: str) -> str | None:
    """For a model on disk: does the data file resolve (through links) outside its folder?"""
    if "!" in location or not os.path.isfile(location):
        return None
    folder = os.path.realpath(os.path.dirname(os.path.abspath(location)))
    resolved = os.path.realpath(os.path.join(folder, target))
    if os.path.commonpath([folder, resolved]) != folder:
        return f"resolves through a symbolic link to {resolved}"
    return None


def _check_domains(facts: _OnnxFacts, location: str, ctx: ScanContext) -> None:
    for domain, op_type, path in facts.node_domains:
        if domain in STANDARD_ONNX_DOMAINS or (domain, op_type) in facts.functions:
            continue
        ctx.add(
            "ONNX002",
            f"node {op_type!r} at {path} uses the custom operator domain {domain!r}",
            location,
            domain=domain,
            op_type=op_type,
        )
    for domain, path in facts.opset_domains:
        if domain in STANDARD_ONNX_DOMAINS or domain in facts.function_domains:
            continue
        ctx.add(
            "ONNX002",
            f"{path} imports the custom operator domain {domain!r}",
            location,
            domain=domain,
        )


# ---- SavedModel -------------------------------------------------------------------


def sniff_tensorflow(head: bytes, size: int) -> bool:
    return sniff_saved_model(head, size) or sniff_keras_metadata(head, size)


def scan_tensorflow(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    head = stream.read(HEAD_BYTES)
    if not sniff_saved_model(head, size) and sniff_keras_metadata(head, size):
        scan_keras_metadata(stream, location, ctx)
    else:
        scan_saved_model(stream, location, ctx, depth)


def scan_keras_metadata(stream: BinaryIO, location: str, ctx: ScanContext) -> None:
    """Each tf.keras object's metadata is JSON in the Keras config format."""
    source = _open(stream)
    walk = _Walk(source, location, ctx, "TF003")
    for node in fields(source, 0, source.size):
        if node.number != 1 or node.wire != LEN:
            raise MalformedInputError(f"keras metadata field {node.number} is not a SavedObject")
        ctx.check_time()
        path, metadata = "", None
        for item in fields(source, node.start, node.end):
            if item.number == 3:
                path = walk.text(item, "SavedObject.node_path")
            elif item.number == 5:
                if item.wire != LEN or item.length > ctx.limits.max_header_bytes:
                    raise MalformedInputError("SavedObject.metadata is not a bounded string")
                metadata = source.read(item.start, item.length)
        if metadata:
            check_keras_config(metadata, f"{location}#{path or '?'}", ctx)


def scan_saved_model(stream: BinaryIO, location: str, ctx: ScanContext, depth: int) -> None:
    source = _open(stream)
    walk = _Walk(source, location, ctx, "TF003")
    walk.stack.append(_Message("saved_model", 0, source.size, "saved_model", 0))
    while walk.stack:
        message = walk.stack.pop()
        items: Iterable[Field] = walk.fields_of(message)
        if message.kind == "node":
            items = list(items)  # read twice below; NodeDefs are small
        mark = len(walk.stack)
        counts: dict[int, int] = {}
        for item in items:
            index = counts.get(item.number, 0)
            counts[item.number] = index + 1
            child = _TF_CHILDREN.get((message.kind, item.number))
            if child is not None:
                label = child[1].replace("[]", f"[{index}]")
                walk.push(child[0], item, message, label)
        walk.forward(mark)
        if message.kind == "node":
            _check_tf_node(walk, message, items)


# (parent kind, field number) -> (child kind, label)
_TF_CHILDREN = {
    ("saved_model", 2): ("meta_graph", "meta_graphs[]"),
    ("meta_graph", 2): ("graph", "graph_def"),
    ("graph", 1): ("node", "node[]"),
    ("graph", 2): ("library", "library"),
    ("library", 1): ("function", "function[]"),
    ("function", 3): ("node", "node_def[]"),
}


def _check_tf_node(walk: _Walk, msg: _Message, items: Iterable[Field]) -> None:
    op = name = ""
    attrs: list[Field] = []
    for item in items:
        if item.number == 1:
            name = walk.text(item, f"{msg.path}.name")
        elif item.number == 2:
            op = walk.text(item, f"{msg.path}.op")
        elif item.number == 5:
            attrs.append(item)
    where = f"node {name!r} ({msg.path})"
    if op in TF_PYTHON_OPS:
        walk.ctx.add(
            "TF002", f"{where} is a {op} op: it calls Python", walk.location, op=op, node=name
        )
    elif op in TF_HOST_OPS:
        walk.ctx.add(
            "TF001",
            f"{where} is a {op} op: it reads or writes the host's files",
            walk.location,
            op=op,
            node=name,
        )
    elif op == "PrintV2":
        stream = _string_attr(walk, attrs, "output_stream", msg.path)
        if stream.startswith("file://"):
            walk.ctx.add(
                "TF001",
                f"{where} is a PrintV2 op writing to {stream!r}",
                walk.location,
                op=op,
                node=name,
            )


def _string_attr(walk: _Walk, attrs: list[Field], wanted: str, where: str) -> str:
    """The `s` value of a NodeDef attr map entry (AttrValue field 2), or ''."""
    for entry in attrs:
        key, value_field = "", None
        for inner in fields(walk.source, entry.start, entry.end):
            if inner.number == 1:
                key = walk.text(inner, f"{where}.attr.key")
            elif inner.number == 2 and inner.wire == LEN:
                value_field = inner
        if key != wanted or value_field is None:
            continue
        for inner in fields(walk.source, value_field.start, value_field.end):
            if inner.number == 2:
                return walk.text(inner, f"{where}.attr[{key}]")
    return ""


READERS: tuple[Reader, ...] = (
    Reader(name="onnx", malformed_rule="ONNX003", sniff=sniff_onnx, scan=scan_onnx),
    Reader(name="savedmodel", malformed_rule="TF003", sniff=sniff_tensorflow, scan=scan_tensorflow),
)
