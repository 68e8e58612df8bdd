"""Alerts POSTed to an operator's webhook: best effort, never on the request path.

A bounded queue feeds one background task; when the queue is full the alert is dropped
and counted (the audit log and the metric still have it: the webhook is a convenience,
not the record). Every outcome (sent, failed, dropped) is counted and handed to
`record`, which the gateway binds to a Prometheus counter so a dead webhook is visible.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from mlwarden.detect._config import WebhookConfig


class WebhookSender:
    """`send(alert)` enqueues; a task started with `start()` posts; `aclose()` drains."""

    def __init__(self, config: WebhookConfig) -> None:
        self._config = config
        self._queue: asyncio.Queue[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self.record: Callable[[str], None] = _ignore
        """Called with "sent", "failed" or "dropped" for every alert."""

    def _count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.record(outcome)

    def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue(maxsize=self._config.queue)
            self._task = asyncio.create_task(self._run())

    def send(self, alert: Mapping[str, Any]) -> None:
        if self._queue is None:
            self._count("dropped")
            return
        try:
            self._queue.put_nowait(orjson.dumps(alert))
        except asyncio.QueueFull:
            self._count("dropped")

    async def _run(self) -> None:
        import httpx

        assert self._queue is not None
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self._config.timeout), follow_redirects=False, trust_env=False
        ) as client:
            while True:
                body = await self._queue.get()
                try:
                    response = await client.post(
                        self._config.url,
                        content=body,
                        headers={"content-type": "application/json"},
                    )
                    self._count("sent" if 200 <= response.status_code < 300 else "failed")
                except httpx.HTTPError:
                    self._count("failed")
                finally:
                    self._queue.task_done()

    async def aclose(self, drain_seconds: float = 2.0) -> None:
        """Give queued alerts a moment to go out, then stop."""
        if self._task is None or self._queue is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_seconds)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


def _ignore(outcome: str) -> None:
    return None
