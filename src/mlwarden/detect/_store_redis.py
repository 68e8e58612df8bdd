"""Detector state and sanctions in the budgets' Redis server, shared by every replica.

Two hashes under the prefix: `<prefix>:states` (field: the stream's key, value: the
state bytes) and `<prefix>:sanctions` (field: the stream's key, value: the JSON record).
A sanction is written by a Lua script that never replaces a stricter one, and the call
returns only once Redis has it. A Redis that cannot be reached is an E324 refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from mlwarden.detect._store import (
    MAX_STATE_BYTES,
    SANCTIONS,
    DetectorStore,
    SanctionRecord,
    severity,
)
from mlwarden.errors import DetectorStoreError, MissingExtraError, UsageError

_IMPOSE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local rank = {degrade = 0, throttle = 1, quarantine = 2}
  local old = cjson.decode(current)
  if rank[old['sanction']] > tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def _field(identity: str, model: str) -> bytes:
    return orjson.dumps([identity, model])


class RedisDetectorStore(DetectorStore):
    """Stream states and sanctions in Redis (`prefix` defaults beside the budgets')."""

    def __init__(self, url: str, *, prefix: str = "mlwarden:detect", timeout: float = 0.25) -> None:
        try:
            import redis
        except ImportError:
            raise MissingExtraError("redis", "gateway") from None
        try:
            self._client: Any = redis.Redis.from_url(
                url, socket_timeout=max(timeout, 1.0), socket_connect_timeout=max(timeout, 1.0)
            )
        except ValueError as exc:
            raise UsageError(f"budgets.store.url is not a Redis URL: {exc}") from None
        self._states = f"{prefix}:states"
        self._sanctions = f"{prefix}:sanctions"
        self._impose = self._client.register_script(_IMPOSE)
        self._failures: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    def _fail(self, exc: Exception) -> DetectorStoreError:
        return DetectorStoreError(f"detector store (Redis) failed: {type(exc).__name__}")

    def load_state(self, identity: str, model: str) -> bytes | None:
        try:
            blob = self._client.hget(self._states, _field(identity, model))
        except self._failures as exc:
            raise self._fail(exc) from None
        if blob is not None and (not isinstance(blob, bytes) or len(blob) > MAX_STATE_BYTES):
            raise DetectorStoreError("detector store (Redis): a stored state is invalid")
        return blob

    def save_states(self, states: Iterable[tuple[str, str, bytes]]) -> None:
        mapping = {_field(i, m): blob for i, m, blob in states}
        if not mapping:
            return
        try:
            self._client.hset(self._states, mapping=mapping)
        except self._failures as exc:
            raise self._fail(exc) from None

    def impose(self, record: SanctionRecord) -> None:
        value = orjson.dumps(
            {
                "identity": record.identity,
                "model": record.model,
                "sanction": record.sanction,
                "reason": record.reason,
                "since": record.since,
            }
        )
        try:
            self._impose(
                keys=[self._sanctions],
                args=[_field(record.identity, record.model), value, severity(record.sanction)],
            )
        except self._failures as exc:
            raise self._fail(exc) from None

    def release(self, identity: str, model: str) -> int:
        field = _field(identity, model)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.hdel(self._sanctions, field)
            pipe.hdel(self._states, field)
            lifted, _ = pipe.execute()
        except self._failures as exc:
            raise self._fail(exc) from None
        return int(lifted)

    def sanctions(self) -> list[SanctionRecord]:
        try:
            values = self._client.hvals(self._sanctions)
        except self._failures as exc:
            raise self._fail(exc) from None
        records = []
        for value in values:
            try:
                data = orjson.loads(value)
                if data["sanction"] not in SANCTIONS:
                    raise ValueError
                records.append(
                    SanctionRecord(
                        identity=str(data["identity"]),
                        model=str(data["model"]),
                        sanction=data["sanction"],
                        reason=str(data["reason"]),
                        since=float(data["since"]),
                    )
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise DetectorStoreError(
                    "detector store (Redis): a stored sanction is invalid"
                ) from None
        return sorted(records, key=lambda r: (r.identity, r.model))

    def close(self) -> None:
        try:
            self._client.close()
        except self._failures:
            return
