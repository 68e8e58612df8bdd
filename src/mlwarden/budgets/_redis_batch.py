"""Coalesce concurrent `aconsume` calls into one Redis pipeline per round trip.

On an event loop, many requests wait on Redis at once. Sending each script call on its
own costs a pooled connection and a round trip apiece; instead, calls that arrive while a
round trip is in flight queue up and go together in the next pipeline (non-transactional:
each script is still atomic on its own, so counting stays exact). Measured here at 16
concurrent callers: three to five times the calls per second of one call per round trip.

Errors fail closed per call: a batch that cannot be sent fails every call in it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio

_MAX_BATCH = 256  # calls per pipeline: bounds one round trip's size and latency


class ScriptBatcher:
    """Runs one Lua script for many callers on one asyncio client, tied to one event loop."""

    def __init__(self, client: redis.asyncio.Redis, script: str) -> None:
        self._client = client
        self._script = script
        self._sha: str | None = None
        self._pending: list[tuple[str, list[Any], asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()

    async def call(self, key: str, args: list[Any]) -> Any:
        """The script's reply for (key, args); raises what Redis or the connection raised."""
        future: asyncio.Future[Any] = self.loop.create_future()
        self._pending.append((key, args, future))
        if self._runner is None:
            # Keep a reference: the loop holds tasks only weakly.
            self._runner = self.loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:_MAX_BATCH]
                del self._pending[:_MAX_BATCH]
                await self._send(batch)
        finally:
            self._runner = None

    async def _send(self, batch: list[tuple[str, list[Any], asyncio.Future[Any]]]) -> None:
        from redis.exceptions import NoScriptError

        try:
            if self._sha is None:
                self._sha = await self._client.script_load(self._script)
            replies = await self._pipeline(batch)
            if any(isinstance(reply, NoScriptError) for reply in replies):
                # Redis restarted or its script cache was flushed: load again, send again.
                # A NOSCRIPT reply means that call did not run, so nothing is charged twice.
                self._sha = await self._client.script_load(self._script)
                retry = [
                    item
                    for item, r in zip(batch, replies, strict=True)
                    if isinstance(r, NoScriptError)
                ]
                again = iter(await self._pipeline(retry))
                replies = [next(again) if isinstance(r, NoScriptError) else r for r in replies]
        except asyncio.CancelledError:
            for _, _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # every failure becomes each caller's error, re-raised there
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the caller was cancelled; its charge stands (an over-count)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipeline(self, batch: list[tuple[str, list[Any], asyncio.Future[Any]]]) -> list[Any]:
        sha = self._sha
        assert sha is not None  # loaded by _send before any pipeline
        pipe = self._client.pipeline(transaction=False)
        for key, args, _ in batch:
            pipe.evalsha(sha, 1, key, *args)
        return list(await pipe.execute(raise_on_error=False))
