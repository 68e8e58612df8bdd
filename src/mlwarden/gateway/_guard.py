"""The input guard: an Open Inference Protocol v2 request, checked against the model's
declared signature before any model sees it.

Every refusal is an `InputError` with a stable code (E130-E135), so the caller gets a 4xx
naming what is wrong, never a 500. The checks are written out by hand rather than with
pydantic: this is the hot path, and a plain request of one 64-value row costs a few
microseconds here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mlwarden.errors import (
    BatchTooLargeError,
    DatatypeMismatchError,
    InvalidInferenceRequestError,
    ShapeMismatchError,
    ValueOutOfRangeError,
)
from mlwarden.serving import ModelConfig, TensorSpec

# OIP datatype -> (numpy dtype, the numpy kinds of parsed JSON values it accepts).
# JSON numbers without a fraction parse as integers, so float inputs accept kind "i" too;
# booleans are never numbers, and strings are never parsed into numbers.
_DTYPES: dict[str, tuple[np.dtype[Any], str]] = {
    "BOOL": (np.dtype(np.bool_), "b"),
    "UINT8": (np.dtype(np.uint8), "iu"),
    "UINT16": (np.dtype(np.uint16), "iu"),
    "UINT32": (np.dtype(np.uint32), "iu"),
    "UINT64": (np.dtype(np.uint64), "iu"),
    "INT8": (np.dtype(np.int8), "iu"),
    "INT16": (np.dtype(np.int16), "iu"),
    "INT32": (np.dtype(np.int32), "iu"),
    "INT64": (np.dtype(np.int64), "iu"),
    "FP16": (np.dtype(np.float16), "fiu"),
    "FP32": (np.dtype(np.float32), "fiu"),
    "FP64": (np.dtype(np.float64), "fiu"),
    "BYTES": (np.dtype(np.str_), "U"),
}
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})
_MAX_ID = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceInput:
    """A request that passed the guard: one array per declared input, in declared order."""

    id: str | None
    arrays: dict[str, np.ndarray[Any, Any]]
    rows: int


def parse_and_check(body: bytes, model: ModelConfig) -> InferenceInput:
    """Parse `body` (JSON) and check it against `model.inputs`; raise E130-E134."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson also refuses NaN and Infinity literals, which are not JSON.
        raise InvalidInferenceRequestError("the request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise InvalidInferenceRequestError("the request body must be a JSON object")
    unknown = request.keys() - _REQUEST_KEYS
    if unknown:
        raise InvalidInferenceRequestError(f"unknown request field {sorted(unknown)[0]!r}")
    request_id = request.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > _MAX_ID):
        raise InvalidInferenceRequestError(f"'id' must be a string of at most {_MAX_ID} chars")
    for name in ("parameters",):
        if name in request and not isinstance(request[name], dict):
            raise InvalidInferenceRequestError(f"'{name}' must be an object")
    if "outputs" in request and not isinstance(request["outputs"], list):
        raise InvalidInferenceRequestError("'outputs' must be a list")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInferenceRequestError("'inputs' must be a non-empty list")
    specs = model.inputs
    if len(inputs) != len(specs):
        raise InvalidInferenceRequestError(
            f"model {model.name!r} takes {len(specs)} input(s), the request has {len(inputs)}"
        )
    by_name: dict[str, Mapping[str, Any]] = {}
    for item in inputs:
        if not isinstance(item, dict):
            raise InvalidInferenceRequestError("each input must be an object")
        input_name = item.get("name")
        if not isinstance(input_name, str):
            raise InvalidInferenceRequestError("each input needs a string 'name'")
        if input_name in by_name:
            raise InvalidInferenceRequestError(f"input {input_name!r} is given twice")
        by_name[input_name] = item
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    rows = 0
    for spec in specs:
        item = by_name.get(spec.name)
        if item is None:
            raise InvalidInferenceRequestError(f"input {spec.name!r} is missing")
        array = _check_tensor(item, spec, model.max_batch)
        arrays[spec.name] = array
        rows = max(rows, int(array.shape[0]))
    return InferenceInput(id=request_id, arrays=arrays, rows=rows)


def _check_tensor(
    item: Mapping[str, Any], spec: TensorSpec, max_batch: int
) -> np.ndarray[Any, Any]:
    name = spec.name
    unknown = item.keys() - _TENSOR_KEYS
    if unknown:
        raise InvalidInferenceRequestError(f"input {name!r}: unknown field {sorted(unknown)[0]!r}")
    shape = _check_shape(item.get("shape"), spec, max_batch)
    datatype = item.get("datatype")
    if datatype != spec.datatype:
        raise DatatypeMismatchError(
            f"input {name!r}: datatype must be {spec.datatype}, not {_short(datatype)}"
        )
    data = item.get("data")
    if not isinstance(data, list):
        raise InvalidInferenceRequestError(f"input {name!r}: 'data' must be a list")
    dtype, kinds = _DTYPES[spec.datatype]
    try:
        parsed = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise ShapeMismatchError(f"input {name!r}: 'data' is a ragged nested list") from None
    if parsed.size != math.prod(shape):
        raise ShapeMismatchError(
            f"input {name!r}: 'data' holds {parsed.size} values, shape {shape} needs "
            f"{math.prod(shape)}"
        )
    if parsed.dtype.kind not in kinds:
        raise DatatypeMismatchError(f"input {name!r}: values are not all {spec.datatype}")
    if parsed.dtype.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if parsed.min() < info.min or parsed.max() > info.max:
            raise ValueOutOfRangeError(f"input {name!r}: a value does not fit {spec.datatype}")
    # A JSON number too large for FP32/FP16 would become infinity in the cast.
    if (
        dtype.kind == "f"
        and dtype.itemsize < parsed.dtype.itemsize
        and np.abs(parsed).max() > np.finfo(dtype).max
    ):
        raise ValueOutOfRangeError(f"input {name!r}: a value does not fit {spec.datatype}")
    array = parsed.astype(dtype, copy=False).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueOutOfRangeError(f"input {name!r}: NaN or infinity")
    if spec.min is not None and dtype.kind != "U" and array.min() < spec.min:
        raise ValueOutOfRangeError(f"input {name!r}: a value is below the minimum {spec.min}")
    if spec.max is not None and dtype.kind != "U" and array.max() > spec.max:
        raise ValueOutOfRangeError(f"input {name!r}: a value is above the maximum {spec.max}")
    return array


def _check_shape(shape: object, spec: TensorSpec, max_batch: int) -> list[int]:
    name = spec.name
    if (
        not isinstance(shape, list)
        or not shape
        or len(shape) > 8
        or not all(type(d) is int and 0 < d <= 1_000_000_000 for d in shape)
    ):
        raise InvalidInferenceRequestError(
            f"input {name!r}: 'shape' must be a list of 1 to 8 positive integers"
        )
    declared: Sequence[int] = spec.shape
    if len(shape) != len(declared) or any(
        want not in (-1, got) for want, got in zip(declared, shape, strict=True)
    ):
        raise ShapeMismatchError(f"input {name!r}: shape {shape} does not match {declared}")
    if shape[0] > max_batch:
        raise BatchTooLargeError(f"input {name!r}: {shape[0]} rows, the limit is {max_batch}")
    return shape


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
