"""Audit events and their canonical JSON: the exact bytes the hash chain covers.

Canonical means one byte string per event, whatever produced it: keys sorted, no
spaces, ASCII only (every other character escaped, so no Unicode normalisation can
change the bytes), and no floats at all. Floats are refused rather than formatted
because their text differs between languages and libraries: a latency is kept in
integer microseconds, a probability as a string. Integers stay within +-2**53 so a
JavaScript or Go verifier reads the same number.

An event is encoded once, when it is built, so a bad event is refused where it is
made (with E350) and never reaches the background writer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias

from mlwarden.errors import AuditEventError

JSONValue: TypeAlias = (
    "str | int | bool | Mapping[str, JSONValue] | list[JSONValue] | tuple[JSONValue, ...] | None"
)
"""What `output` and `detail` may hold: JSON without floats."""

EVENT_VERSION = 1
MAX_EVENT_BYTES = 64 * 1024
"""An event's canonical size limit: an audit record summarises, it does not archive."""

_MAX_DEPTH = 8
_SAFE_INT = 2**53
_FIELDS = frozenset(
    {
        "v",
        "time",
        "kind",
        "decision",
        "reason",
        "request_id",
        "identity",
        "model",
        "action",
        "input_sha256",
        "output",
        "latency_us",
        "detail",
    }
)


class Decision(StrEnum):
    """What the gateway decided about a request."""

    ALLOW = "allow"
    DENY = "deny"


_clock_cache: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The current time as RFC 3339 UTC with microseconds: `2026-01-31T12:00:00.000001Z`.

    The date-and-seconds prefix is formatted once per second (a cheap clock matters
    on the hot path); races between threads only ever reformat the same prefix.
    """
    global _clock_cache  # noqa: PLW0603
    now_us = time.time_ns() // 1000
    seconds, micros = divmod(now_us, 1_000_000)
    cached_second, prefix = _clock_cache
    if cached_second != seconds:
        prefix = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _clock_cache = (seconds, prefix)
    return f"{prefix}{micros:06d}Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One decision: who asked what of which model, what was decided and why.

    `reason` is a stable code: `ok` for an allowed call, the error code (`E310`,
    `E401`, ...) for a denial. `input_sha256` is the hex sha256 of the request body,
    never the body. `output` summarises the answer (label, top-k size), never the
    raw outputs. `latency_us` is in integer microseconds (no floats, see above).
    """

    kind: str
    decision: Decision
    reason: str
    request_id: str
    time: str = field(default_factory=utc_now)
    identity: str | None = None
    model: str | None = None
    action: str | None = None
    input_sha256: str | None = None
    output: Mapping[str, JSONValue] | None = None
    latency_us: int | None = None
    detail: Mapping[str, JSONValue] | None = None
    canonical: bytes = field(init=False, repr=False, compare=False)
    """The canonical JSON of the event (ASCII bytes): what the chain hashes."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "canonical", _encode(self))

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON data (the same content as `canonical`)."""
        data: dict[str, Any] = json.loads(self.canonical)
        return data

    @classmethod
    def from_canonical(cls, data: bytes | str) -> AuditEvent:
        """Rebuild an event from its stored JSON; E350 when it is not an event."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise AuditEventError("stored audit event is not JSON") from None
        if not isinstance(obj, dict) or set(obj) != _FIELDS or obj["v"] != EVENT_VERSION:
            raise AuditEventError("stored audit event does not have the event fields of v1")
        try:
            return cls(
                kind=obj["kind"],
                decision=Decision(obj["decision"]),
                reason=obj["reason"],
                request_id=obj["request_id"],
                time=obj["time"],
                identity=obj["identity"],
                model=obj["model"],
                action=obj["action"],
                input_sha256=obj["input_sha256"],
                output=obj["output"],
                latency_us=obj["latency_us"],
                detail=obj["detail"],
            )
        except ValueError as exc:
            raise AuditEventError(f"stored audit event is not valid: {exc}") from None


def _encode(event: AuditEvent) -> bytes:
    # On the gateway's hot path: plain attribute reads and exact type tests, no loops
    # over getattr, no isinstance against ABCs unless the value is not a dict.
    if not (
        type(event.kind) is str
        and type(event.reason) is str
        and type(event.request_id) is str
        and type(event.time) is str
    ):
        raise AuditEventError("audit event fields kind, reason, request_id, time must be strings")
    decision = event.decision
    if type(decision) is not Decision:
        raise AuditEventError("audit event field 'decision' must be a Decision")
    for value in (event.identity, event.model, event.action, event.input_sha256):
        if value is not None and type(value) is not str:
            raise AuditEventError(
                "audit event fields identity, model, action, input_sha256 must be strings or None"
            )
    latency = event.latency_us
    if latency is not None and (type(latency) is not int or not 0 <= latency < _SAFE_INT):
        raise AuditEventError("audit event field 'latency_us' must be a non-negative int")
    output, detail = event.output, event.detail
    if output is not None:
        _check_mapping(output, "output")
    if detail is not None:
        _check_mapping(detail, "detail")
    data = {
        "v": EVENT_VERSION,
        "time": event.time,
        "kind": event.kind,
        "decision": decision.value,
        "reason": event.reason,
        "request_id": event.request_id,
        "identity": event.identity,
        "model": event.model,
        "action": event.action,
        "input_sha256": event.input_sha256,
        "output": output,
        "latency_us": latency,
        "detail": detail,
    }
    text = _DUMPS(data)
    if len(text) > MAX_EVENT_BYTES:
        raise AuditEventError(
            f"audit event is {len(text)} bytes, more than {MAX_EVENT_BYTES}",
            hint="summarise outputs and details instead of recording them whole",
        )
    return text.encode("ascii")


def _check_mapping(value: object, name: str) -> None:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise AuditEventError(f"audit event field {name!r} must be a mapping or None")
    _check_json(value, name, 0)


def _mapping_default(value: object) -> object:
    # json.dumps handles dict, list and tuple; other Mappings (checked already) become dicts.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value).__name__)  # unreachable after _check_json


# One encoder, built once: json.dumps with options would build a new one per call.
_DUMPS = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_mapping_default
).encode


def _check_json(value: object, path: str, depth: int) -> None:
    """Refuse what has no single JSON text: floats, big ints, non-string keys, deep nesting."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return
    if depth > _MAX_DEPTH:
        raise AuditEventError(f"audit event field {path!r} nests deeper than {_MAX_DEPTH}")
    if kind is int:
        if not -_SAFE_INT < value < _SAFE_INT:  # type: ignore[operator]
            raise AuditEventError(f"audit event field {path!r} holds an integer beyond 2**53")
        return
    if kind is dict or isinstance(value, Mapping):
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise AuditEventError(f"audit event field {path!r} has a key that is not a string")
            _check_json(item, f"{path}.{key}", depth + 1)
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(value):  # type: ignore[arg-type]
            _check_json(item, f"{path}[{index}]", depth + 1)
        return
    if kind is float:
        raise AuditEventError(
            f"audit event field {path!r} holds a float",
            hint="record integers (e.g. microseconds) or strings: floats have no canonical text",
        )
    raise AuditEventError(f"audit event field {path!r} holds a {kind.__name__}, not JSON")
