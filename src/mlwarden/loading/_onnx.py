"""ONNX files: parsed from the verified bytes; external data only from verified files.

`onnx.load_from_string` never follows external data references, so the model
proto is parsed from the verified buffer alone. A tensor stored outside the
model (``data_location = EXTERNAL``) is filled in here, from a file that must be
in the same signed manifest as the model, read once and matched to its signed
digest like the model itself; the reference is then removed, so neither onnx nor
onnxruntime ever opens a path. A single file signed on its own cannot vouch for
external files, so such a model is refused.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from mlwarden.errors import MissingExtraError, NotVerifiedError, UnsafeResourceNameError
from mlwarden.loading._pickle_restricted import malformed

ResourceReader = Callable[[str], bytes]
"""Reads a named resource of the signed manifest, verified against its digest."""


def load_onnx(
    data: bytes,
    location: str,
    *,
    name: str,
    read_resource: ResourceReader | None,
    as_session: bool,
) -> Any:
    """A ModelProto, or an onnxruntime InferenceSession when `as_session`."""
    try:
        import onnx
        from onnx.external_data_helper import ExternalDataInfo, uses_external_data
    except ImportError:
        raise MissingExtraError("onnx", "onnx") from None
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf DecodeError and friends
        raise malformed(location, "the ONNX model", exc) from None

    external = [t for t in _all_tensors(model) if uses_external_data(t)]
    if external:
        if read_resource is None:
            raise NotVerifiedError(
                f"{location}: the model keeps tensors in external files, and a file signed on "
                "its own does not cover them",
                hint="sign the model's folder and load the model file from it",
            )
        cache: dict[str, bytes] = {}
        for tensor in external:
            _inline(tensor, ExternalDataInfo(tensor), name, location, read_resource, cache)
        data = model.SerializeToString()
    if not as_session:
        return model
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError("onnxruntime", "onnx") from None
    try:
        return onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise malformed(location, "the ONNX model", exc) from None


def _all_tensors(model: Any) -> list[Any]:
    """Every TensorProto in the model: initializers and attribute tensors, in subgraphs too."""
    found: list[Any] = []

    def graph(g: Any) -> None:
        found.extend(g.initializer)
        found.extend(s.values for s in g.sparse_initializer)
        found.extend(s.indices for s in g.sparse_initializer)
        for node in g.node:
            nodes(node)

    def nodes(node: Any) -> None:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                found.append(attribute.t)
            found.extend(attribute.tensors)
            if attribute.HasField("sparse_tensor"):
                found.extend((attribute.sparse_tensor.values, attribute.sparse_tensor.indices))
            if attribute.HasField("g"):
                graph(attribute.g)
            for sub in attribute.graphs:
                graph(sub)

    graph(model.graph)
    for function in model.functions:
        for node in function.node:
            nodes(node)
    return found


def _inline(
    tensor: Any,
    info: Any,
    model_name: str,
    location: str,
    read_resource: ResourceReader,
    cache: dict[str, bytes],
) -> None:
    from mlwarden.artifacts._formats.protobuf import external_location_problem

    target = str(info.location)
    problem = external_location_problem(target)
    if problem is not None:
        raise UnsafeResourceNameError(
            f"{location}: tensor {tensor.name!r} external data location {target!r} {problem}"
        )
    resource = posixpath.normpath(posixpath.join(posixpath.dirname(model_name), target))
    if resource not in cache:
        cache[resource] = read_resource(resource)
    blob = cache[resource]
    offset = int(info.offset or 0)
    length = len(blob) - offset if info.length is None else int(info.length)
    if offset < 0 or length < 0 or offset + length > len(blob):
        raise malformed(
            location,
            "the ONNX model",
            ValueError(
                f"tensor {tensor.name!r} reads bytes {offset}..{offset + length} "
                f"of {resource!r}, which holds {len(blob)}"
            ),
        )
    from onnx import TensorProto

    tensor.raw_data = blob[offset : offset + length]
    tensor.data_location = TensorProto.DEFAULT
    del tensor.external_data[:]
