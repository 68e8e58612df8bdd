"""Batched writes for the gateway's hot path: `submit` queues, a thread writes.

`submit` costs a queue put (well under a microsecond): the request never waits
for the disk or the network. One background thread takes whatever is queued, up to
`max_batch` events, and appends it in one transaction, so the store sees a few
large transactions instead of one per request.

What a crash can lose: the events submitted but not yet committed, at most the
batch being written plus what queued behind it (bounded by `max_pending`). Under
a steady load that is the last few milliseconds of decisions. `flush()` returns
once everything submitted before it is committed; call it where losing nothing
matters (shutdown, before exporting a checkpoint).

Fail closed: when the store cannot be written, the batch is kept and retried
with backoff, and `submit` raises E351 (store down) or E352 (queue full) so the
gateway refuses requests instead of serving them unaudited. `healthy` feeds the
readiness probe.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from mlwarden.audit._event import AuditEvent
from mlwarden.audit._log import AuditLog
from mlwarden.errors import AuditBackpressureError, AuditStoreError, MlwardenError, UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterLimits:
    """How the writer batches and when it pushes back.

    `max_batch`: events per transaction. `max_pending`: events queued before
    `submit` refuses (E352). `retry_initial_s`/`retry_max_s`: backoff while the
    store is failing. `linger_s`: how long the writer waits for more events before
    committing a batch that is not full. When calls arrive one at a time, a commit
    (and its fsync) per event costs more CPU than the whole request; a few
    milliseconds of linger turns them into one commit, at the price of that much
    more to lose in a crash. A flush or close never lingers.

    While it lingers the writer sleeps: a submit does not wake it (that would cost a
    thread switch and a turn of the GIL per request, which on a busy machine stalls the
    event loop), only a flush or close does. So a batch waits the whole linger unless it
    is flushed.
    """

    max_batch: int = 1024
    max_pending: int = 100_000
    retry_initial_s: float = 0.05
    retry_max_s: float = 2.0
    linger_s: float = 0.0

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_pending < self.max_batch:
            raise UsageError("writer limits need max_batch >= 1 and max_pending >= max_batch")
        if not 0.0 <= self.linger_s <= 1.0:
            raise UsageError("writer limits need 0 <= linger_s <= 1 second")


class _Flush:
    """A marker in the queue: set once everything queued before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class BatchedAuditWriter:
    """Queue events for `log` and write them in batches from one background thread.

    The writer does not own the log: `close()` flushes and stops the thread, and
    the caller closes the log afterwards.
    """

    def __init__(self, log: AuditLog, *, limits: WriterLimits | None = None) -> None:
        self._log = log
        self._limits = limits or WriterLimits()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        # Set by flush and close (after queueing their marker) to cut a linger short.
        self._hurry = threading.Event()
        self._closed = False
        self._failure: MlwardenError | None = None
        self._written = 0
        self._lost = 0
        self._thread = threading.Thread(target=self._run, name="mlwarden-audit-writer", daemon=True)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        """False while the last write failed (the writer keeps retrying) or after close."""
        return self._failure is None and not self._closed

    @property
    def last_error(self) -> MlwardenError | None:
        return self._failure

    @property
    def pending(self) -> int:
        """Events (and flush markers) queued and not yet taken by the writer thread."""
        return self._queue.qsize()

    @property
    def written(self) -> int:
        """Events committed by this writer so far."""
        return self._written

    def submit(self, event: AuditEvent) -> None:
        """Queue one event; raise E351/E352 when it could not be recorded (refuse the request)."""
        if self._closed:
            raise AuditStoreError("the audit writer is closed")
        failure = self._failure
        if failure is not None:
            raise AuditStoreError(f"the audit log cannot be written: {failure.message}")
        if self._queue.qsize() >= self._limits.max_pending:
            raise AuditBackpressureError(
                f"{self._limits.max_pending} audit events are waiting to be written",
                hint="the audit store is too slow for this load",
            )
        self._queue.put(event)

    def submit_many(self, events: Sequence[AuditEvent]) -> None:
        for event in events:
            self.submit(event)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event submitted before this call is committed.

        Raises E351 if that did not happen within `timeout` seconds (the store is
        failing: the events stay queued and are retried).
        """
        if not self._thread.is_alive():
            if self._queue.qsize():
                raise AuditStoreError("the audit writer stopped with events still queued")
            return
        lost = self._lost
        marker = _Flush()
        self._queue.put(marker)
        self._hurry.set()
        if not marker.done.wait(timeout):
            reason = f": {self._failure.message}" if self._failure else ""
            raise AuditStoreError(f"audit events were not written within {timeout} s{reason}")
        if self._lost > lost:
            raise AuditStoreError(f"{self._lost - lost} audit events could not be written")

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the thread. Later submits raise E351."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._hurry.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AuditStoreError(
                f"the audit writer did not finish within {timeout} s; "
                f"{self._queue.qsize()} items remain unwritten"
            )
        if self._lost:
            reason = f": {self._failure.message}" if self._failure else ""
            raise AuditStoreError(f"{self._lost} audit events could not be written{reason}")

    def __enter__(self) -> BatchedAuditWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        batch: list[AuditEvent] = []
        markers: list[_Flush] = []
        stop = False
        limit = self._limits.max_batch
        linger = self._limits.linger_s
        while not stop:
            item = self._queue.get()
            lingered = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                elif isinstance(item, AuditEvent):
                    batch.append(item)
                if stop or len(batch) >= limit:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    # Linger once for more events, unless someone waits on a flush.
                    if linger <= 0.0 or markers or not batch or lingered:
                        break
                    lingered = True
                    self._hurry.wait(linger)
                    self._hurry.clear()  # a flush queued its marker first: it is seen below
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
            self._write(batch)
            batch = []
            # Every event queued before these markers is in this batch or an earlier one.
            for marker in markers:
                marker.done.set()
            markers = []

    def _write(self, batch: list[AuditEvent]) -> None:
        """Append `batch`, retrying with backoff until it is committed.

        Once the writer is closed, a failing store is not retried forever (it would
        keep the process from exiting): the batch is counted as lost and `close`
        raises E351 saying so.
        """
        if not batch:
            return
        delay = self._limits.retry_initial_s
        while True:
            try:
                self._log.append_many(batch)
            except MlwardenError as exc:
                self._failure = exc
            except Exception as exc:  # a bug must not kill the thread silently: fail closed
                self._failure = AuditStoreError(f"unexpected error writing the audit log: {exc!r}")
            else:
                self._failure = None
                self._written += len(batch)
                return
            if self._closed:
                self._lost += len(batch)
                return
            time.sleep(delay)
            delay = min(delay * 2, self._limits.retry_max_s)
