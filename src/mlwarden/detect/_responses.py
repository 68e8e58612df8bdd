"""The runtime detectors inside the gateway: watch each (identity, model) stream, respond
by policy.

    admit(identity, model)               before the model runs: quarantined -> E320,
                                         throttled and over the stricter rate -> E321,
                                         degraded -> the answer is cut to the label
    observe_prediction(identity, ...)    after a prediction: queue (x, full probabilities)

Hot path: the request only appends to a queue (references, no copies). One worker task
takes the queue in batches and, on a thread, scores all the batch's calls to a model at
once (the per-request scores need no stream state; one model call for squeezing), then
adds each stream's rows to its state (numpy and model-call overhead per call dominate at
these sizes: per-stream scoring cost 3-5x more CPU per call). BLAS/OpenMP pools are held
to one thread meanwhile. Then it alerts (audit event, Prometheus counter, webhook) and
applies the configured response; the event loop never waits for the scoring. Stream
states live in process (a bounded LRU) and are written behind to the store in batches;
the store is read only for a stream not in memory. A sanction is stored (off the loop)
before it takes effect, so a caller refused with E320 stays quarantined across a
restart; it takes effect from the caller's next call after the batch that raised it
(milliseconds behind). Releases by `mlwarden admin release` and sanctions imposed by
other replicas reach this process within `refresh_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mlwarden.audit import AuditEvent, Decision, JSONValue
from mlwarden.budgets import BudgetPolicy, Limits, MemoryStore
from mlwarden.detect._config import DetectorsConfig, ModelDetectorsConfig, Response
from mlwarden.detect._store import DetectorStore, Sanction, SanctionRecord, severity
from mlwarden.detect._webhook import WebhookSender
from mlwarden.errors import (
    DetectorConfigError,
    IdentityQuarantinedError,
    IdentityThrottledError,
    MlwardenError,
    ReferenceMismatchError,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from mlwarden.detect import Monitor, Reference, StreamState
    from mlwarden.detect._request import RequestScores
    from mlwarden.policy import PolicyFile
    from mlwarden.serving import ModelConfig

Array = np.ndarray[Any, Any]


class _Output(Protocol):
    @property
    def probabilities(self) -> Array | None: ...


class ServedModel(Protocol):
    """What the detectors need of a served model (the gateway's adapters have it; the
    core does not import the gateway)."""

    @property
    def config(self) -> ModelConfig: ...

    @property
    def local(self) -> bool: ...

    def predict(self, arrays: Mapping[str, Array]) -> _Output: ...


PredictProba = Callable[[Array], Array]
_ORDER: dict[Response, int] = {"alert": 0, "degrade": 1, "throttle": 2, "quarantine": 3}


@dataclass(frozen=True, slots=True)
class Admission:
    """What `admit` decided for a call it let through."""

    degrade: bool = False


_ADMIT = Admission()
_ADMIT_DEGRADED = Admission(degrade=True)


@dataclass(slots=True)
class _ModelDetectors:
    config: ModelDetectorsConfig
    monitor: Monitor
    signals: frozenset[str]
    throttle: MemoryStore


class DetectorRuntime:
    """Detectors of every configured model, their stream states and the sanctions."""

    def __init__(
        self,
        config: DetectorsConfig,
        monitors: Mapping[str, Monitor],
        store: DetectorStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self._clock = clock
        self._models: dict[str, _ModelDetectors] = {}
        for name, model_config in config.models.items():
            throttle = model_config.throttle
            self._models[name] = _ModelDetectors(
                config=model_config,
                monitor=monitors[name],
                signals=frozenset(model_config.signals),
                throttle=MemoryStore(
                    BudgetPolicy.uniform(Limits(rate=throttle.rate, burst=throttle.burst)),
                    clock=clock,
                ),
            )
        self._states: OrderedDict[tuple[str, str], StreamState] = OrderedDict()
        self._dirty: dict[tuple[str, str], StreamState] = {}
        self._alerted: set[tuple[str, str, str]] = set()
        self._sanctions: dict[tuple[str, str], SanctionRecord] = {
            (r.identity, r.model): r for r in store.sanctions()
        }
        self._webhook = WebhookSender(config.webhook) if config.webhook is not None else None
        self._audit: Callable[[AuditEvent], None] | None = None
        self._alerts: Any = None
        self._flush_failures: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._errors: Any = None
        # Calls answered but not yet scored; the worker takes them in batches.
        self._pending: list[_Pending] = []
        self._max_pending = 4096
        self._busy = False
        # Guards the state maps shared by the worker thread and the event loop.
        self._lock = threading.Lock()
        self._pools: Callable[[], contextlib.AbstractContextManager[object]] | None = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._started = False
        self._stopping = False
        self._hurry = False
        self._closed = False

    # --- construction ---------------------------------------------------------------

    @classmethod
    def from_policy(cls, policy: PolicyFile, *, base: Path) -> DetectorRuntime:
        """Verify and load each model's reference (E323 when it does not verify), check it
        fits the served model, and open the store beside the budgets'."""
        from mlwarden.detect import Monitor
        from mlwarden.detect._store import open_detector_store
        from mlwarden.detect._verified import load_verified_reference

        config = policy.detectors
        if config is None:
            raise DetectorConfigError("mlwarden.yaml has no 'detectors:' section")
        served = {m.name: m for m in policy.gateway.models} if policy.gateway else {}
        monitors: dict[str, Monitor] = {}
        for name, model_config in config.models.items():
            served_model = served.get(name)
            if served_model is None:
                raise DetectorConfigError(
                    f"detectors.models.{name}: the gateway serves no model of that name"
                )
            reference = load_verified_reference(
                base / model_config.reference,
                trust=policy.trust,
                signatures=[base / s for s in model_config.signature],
            )
            check_fits(reference, served_model)
            monitors[name] = Monitor(reference, window=model_config.window)
        store = open_detector_store(policy.budgets, base=base)
        try:
            return cls(config, monitors, store)
        except BaseException:
            store.close()
            raise

    def bind(self, audit: Callable[[AuditEvent], None], registry: CollectorRegistry) -> None:
        """Connect the gateway's audit writer and metrics registry."""
        from prometheus_client import Counter

        self._audit = audit
        self._alerts = Counter(
            "mlwarden_detector_alerts",
            "Runtime detector alerts, by model, signal and response.",
            ("model", "signal", "response"),
            registry=registry,
        )
        self._errors = Counter(
            "mlwarden_detector_errors",
            "Streams the detectors could not score, or sanctions the store refused.",
            registry=registry,
        )
        self._flush_failures = Counter(
            "mlwarden_detector_flush_failures",
            "Write-behind flushes of detector state that the store refused.",
            registry=registry,
        )
        if self._webhook is not None:
            webhook = Counter(
                "mlwarden_detector_webhook",
                "Alerts for the operator's webhook, by outcome (sent, failed, dropped).",
                ("outcome",),
                registry=registry,
            )
            self._webhook.record = lambda outcome: webhook.labels(outcome=outcome).inc()

    def watches(self, model: str) -> bool:
        return model in self._models

    # --- the hot path ------------------------------------------------------------------

    async def admit(self, identity: str, model: str) -> Admission:
        """Refuse a quarantined identity (E320) or a throttled one over its rate (E321)."""
        if not self._started:
            self._start()
        record = self._sanctions.get((identity, model))
        if record is None:
            return _ADMIT
        if record.sanction == "quarantine":
            raise _quarantined(identity, model)
        if record.sanction == "throttle":
            detectors = self._models.get(model)
            if detectors is not None:
                decision = detectors.throttle.consume(identity, model)
                if not decision.allowed:
                    raise IdentityThrottledError(
                        f"{identity!r} is throttled on model {model!r} by a runtime detector",
                        retry_after=decision.retry_after,
                    )
            return _ADMIT
        return _ADMIT_DEGRADED

    async def observe_prediction(
        self,
        identity: str,
        served: ServedModel,
        arrays: Mapping[str, Array],
        probabilities: Array | None,
        request_id: str,
    ) -> None:
        """Queue one answered call for its model's detectors (the call's first input and
        the full probabilities); a local model also scores the squeezed variants.

        Scoring runs just behind the answers, in batches on a worker thread: a sanction
        applies from the caller's next call once it is stored. When the queue is full
        the call waits for the worker (backpressure: no observation is ever dropped)."""
        config = served.config
        if probabilities is None or config.name not in self._models:
            return
        if not self._started:
            self._start()
        while len(self._pending) >= self._max_pending:
            self._wake.set()
            await self._drained.wait()
        self._pending.append(
            _Pending(
                identity=identity,
                served=served,
                x=arrays[config.inputs[0].name],
                proba=probabilities,
                request_id=request_id,
            )
        )
        self._wake.set()

    async def settle(self) -> None:
        """Wait until every queued call is scored and its responses applied."""
        if not self._started:
            self._start()
        self._hurry = True
        while self._pending or self._busy:
            self._wake.set()
            self._drained.clear()
            await self._drained.wait()
        self._hurry = False

    # --- the worker: score, respond, write behind, refresh ---------------------------

    def _start(self) -> None:
        self._started = True
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._work()))
        if self._webhook is not None:
            self._webhook.start()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        last_flush = last_refresh = loop.time()
        # A stop flag, not only task.cancel(): Python 3.11's wait_for can swallow a
        # cancellation that coincides with the event being set.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.flush_seconds)
            self._wake.clear()
            if self._pending and not self._hurry and self.config.batch_seconds > 0:
                # Gather: each stream's calls are then scored as one batch.
                await asyncio.sleep(self.config.batch_seconds)
            batch, self._pending = self._pending, []
            self._busy = bool(batch)
            try:
                if batch:
                    results = await asyncio.to_thread(self._score, batch)
                    for result in results:
                        await self._respond(result)
                now = loop.time()
                if now - last_flush >= self.config.flush_seconds:
                    last_flush = now
                    await self.flush()
                if now - last_refresh >= self.config.refresh_seconds:
                    last_refresh = now
                    await self.refresh()
            except Exception:  # the worker must outlive any one failure, or detection stops
                if self._errors is not None:
                    self._errors.inc()
            finally:
                self._busy = False
                if not self._pending:
                    self._drained.set()

    def _score(self, batch: list[_Pending]) -> list[_Raised]:
        """(worker thread) Score the batch, then add each stream's calls to its state;
        what was raised."""
        if self._pools is None:
            self._pools = _one_thread_pools()
        with self._pools():
            return self._score_batch(batch)

    def _score_batch(self, batch: list[_Pending]) -> list[_Raised]:
        groups: dict[tuple[str, str], list[_Pending]] = {}
        for item in batch:
            key = (item.identity, item.served.config.name)
            record = self._sanctions.get(key)
            if record is not None and record.sanction == "quarantine":
                continue  # answered before the quarantine took effect: nothing to add
            groups.setdefault(key, []).append(item)
        by_model: dict[str, list[tuple[str, str]]] = {}
        for key in groups:
            by_model.setdefault(key[1], []).append(key)
        raised: list[_Raised] = []
        for model, keys in by_model.items():
            detectors = self._models[model]
            # The per-request scores need no stream state: the whole batch of a model is
            # scored at once (one model call for squeezing), which costs a fraction of
            # scoring each stream apart (numpy and model-call overhead per call dominate).
            try:
                scored = self._score_rows(detectors, [i for k in keys for i in groups[k]])
            except Exception:  # an odd call: score stream by stream, so it blinds only its own
                scored = None
            offset = 0
            for key in keys:
                items = groups[key]
                n_rows = sum(int(i.x.shape[0]) for i in items)  # a call may hold many rows
                try:
                    if scored is None:
                        requests = self._score_rows(detectors, items)
                    else:
                        requests = scored.rows(slice(offset, offset + n_rows))
                    result = self._update_stream(key, detectors, requests, items[-1].request_id)
                except Exception:  # one stream's failure must not blind the detectors to the rest
                    if self._errors is not None:
                        self._errors.inc()
                    continue
                finally:
                    offset += n_rows
                if result is not None:
                    raised.append(result)
        return raised

    @staticmethod
    def _score_rows(detectors: _ModelDetectors, items: list[_Pending]) -> RequestScores:
        """(worker thread) The per-request scores of some calls to one model."""
        served = items[0].served
        x = np.concatenate([_rows(i.x) for i in items]) if len(items) > 1 else _rows(items[0].x)
        proba = np.concatenate([i.proba for i in items]) if len(items) > 1 else items[0].proba
        predict_proba = (
            _squeezer(served, items[0].x)
            if served.local and "adversarial" in detectors.signals
            else None
        )
        return detectors.monitor.score(
            x, np.asarray(proba, dtype=np.float64), predict_proba=predict_proba
        )

    def _update_stream(
        self,
        key: tuple[str, str],
        detectors: _ModelDetectors,
        requests: RequestScores,
        request_id: str,
    ) -> _Raised | None:
        """(worker thread) Add a stream's scored calls to its state; what it raised."""
        with self._lock:
            state = self._states.get(key)
            if state is not None:
                self._states.move_to_end(key)
        if state is None:
            state = self._load(key, detectors.monitor)
        observation = detectors.monitor.update(state, requests)
        with self._lock:
            self._dirty[key] = state
        flagged = sorted(str(s) for s in observation.flagged if str(s) in detectors.signals)
        if not flagged:
            return None
        return _Raised(
            key=key,
            signals=tuple(flagged),
            scores={str(s): round(float(v), 3) for s, v in observation.scores.items()},
            queries=observation.queries,
            request_id=request_id,
        )

    async def _respond(self, raised: _Raised) -> None:
        """Alert once per stream and signal, and impose the strictest configured sanction
        (stored before it takes effect)."""
        identity, model = raised.key
        detectors = self._models[model]
        response: Response = max(
            (detectors.config.response(s) for s in raised.signals), key=_ORDER.__getitem__
        )
        new = [s for s in raised.signals if (identity, model, s) not in self._alerted]
        current = self._sanctions.get(raised.key)
        escalates = response != "alert" and (
            current is None or severity(_sanction(response)) > severity(current.sanction)
        )
        if not (new or escalates):
            return
        if escalates:
            record = SanctionRecord(
                identity=identity,
                model=model,
                sanction=_sanction(response),
                reason=",".join(raised.signals),
                since=self._clock(),
            )
            try:
                await asyncio.to_thread(self.store.impose, record)
            except MlwardenError:
                # Not stored, so not announced: the next batch of this stream retries.
                if self._errors is not None:
                    self._errors.inc()
                return
            self._sanctions[raised.key] = record
        self._alert(identity, model, raised, response)
        self._alerted.update((identity, model, s) for s in new)

    def _load(self, key: tuple[str, str], monitor: Monitor) -> StreamState:
        """(worker thread) The stream's state from the store, or a fresh one."""
        from mlwarden.detect import StreamState

        blob = self.store.load_state(*key)
        fresh = monitor.new_state()
        state = fresh
        if blob is not None:
            try:
                state = StreamState.from_bytes(blob)
            except MlwardenError:
                state = fresh  # unreadable: counted below, the stream starts over
                if self._errors is not None:
                    self._errors.inc()
            if (state.n_classes, state.window, state.dim) != (
                fresh.n_classes,
                fresh.window,
                fresh.dim,
            ):
                # Written for another reference or window: its evidence does not apply.
                state = fresh
        with self._lock:
            self._states[key] = state
            while len(self._states) > self.config.max_streams:
                old_key, old_state = self._states.popitem(last=False)
                # An evicted stream keeps its evidence: the next flush stores it.
                self._dirty.setdefault(old_key, old_state)
        return state

    def _alert(self, identity: str, model: str, raised: _Raised, response: Response) -> None:
        detail: dict[str, JSONValue] = {
            "signals": list(raised.signals),
            "response": response,
            "queries": raised.queries,
            # Audit details hold no floats (canonical JSON): scores in thousandths.
            "scores_milli": {k: round(v * 1000) for k, v in raised.scores.items()},
        }
        if self._audit is not None:
            self._audit(
                AuditEvent(
                    kind="detect",
                    decision=Decision.DENY if response == "quarantine" else Decision.ALLOW,
                    reason=",".join(raised.signals),
                    request_id=raised.request_id,
                    identity=identity,
                    model=model,
                    action="infer",
                    detail=detail,
                )
            )
        if self._alerts is not None:
            for signal in raised.signals:
                self._alerts.labels(model, signal, response).inc()
        if self._webhook is not None:
            self._webhook.send(
                {
                    "event": "mlwarden.detector.alert",
                    "identity": identity,
                    "model": model,
                    "signals": list(raised.signals),
                    "response": response,
                    "queries": raised.queries,
                    "scores": dict(raised.scores),
                    "request_id": raised.request_id,
                    "time": self._clock(),
                }
            )

    async def flush(self) -> None:
        """Write the changed stream states to the store (one batch, off the loop)."""
        with self._lock:
            if not self._dirty:
                return
            dirty, self._dirty = self._dirty, {}
        try:
            await asyncio.to_thread(self._save, dirty)
        except MlwardenError:
            if self._flush_failures is not None:
                self._flush_failures.inc()
            with self._lock:
                for key, state in dirty.items():  # kept for the next attempt
                    self._dirty.setdefault(key, state)

    def _save(self, dirty: dict[tuple[str, str], StreamState]) -> None:
        self.store.save_states([(i, m, state.to_bytes()) for (i, m), state in dirty.items()])

    async def refresh(self) -> None:
        """Re-read the sanctions: releases by an admin, sanctions from other replicas."""
        records = await asyncio.to_thread(self.store.sanctions)
        fresh = {(r.identity, r.model): r for r in records}
        with self._lock:
            for key in self._sanctions.keys() - fresh.keys():
                # Released: the stream starts over, or its old evidence would re-flag it.
                self._states.pop(key, None)
                self._dirty.pop(key, None)
                self._alerted = {a for a in self._alerted if (a[0], a[1]) != key}
            self._sanctions = fresh

    async def aclose(self) -> None:
        """Score what is queued, stop the worker, flush the last states, close the store."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._started:
                await self.settle()
        finally:
            self._stopping = True
            self._wake.set()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:
                if self._webhook is not None:
                    await self._webhook.aclose()
                await self.flush()
            finally:
                await asyncio.to_thread(self.store.close)

    # --- introspection (tests, demo) ----------------------------------------------------

    @property
    def streams_in_memory(self) -> int:
        return len(self._states)

    @property
    def webhook(self) -> WebhookSender | None:
        return self._webhook

    def sanction_of(self, identity: str, model: str) -> SanctionRecord | None:
        return self._sanctions.get((identity, model))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pending:
    identity: str
    served: ServedModel
    x: Array
    proba: Array
    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Raised:
    key: tuple[str, str]
    signals: tuple[str, ...]
    scores: Mapping[str, float]
    queries: int
    request_id: str


def _rows(x: Array) -> Array:
    return np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)


def _one_thread_pools() -> Callable[[], contextlib.AbstractContextManager[object]]:
    """A context holding the BLAS and OpenMP pools to one thread while the worker scores.

    The worker's matrices are small: a second pool thread gains nothing, then spin-waits
    on the core the event loop needs (measured: it doubled the process CPU per scored
    call). threadpoolctl comes with scikit-learn; without it the pools are left alone."""
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
    except ImportError:
        return contextlib.nullcontext
    controller = ThreadpoolController()  # inspects the loaded libraries once (~2 ms)

    def one_thread() -> contextlib.AbstractContextManager[object]:
        limited: contextlib.AbstractContextManager[object] = controller.limit(limits=1)
        return limited

    return one_thread


def _squeezer(served: ServedModel, like: Array) -> PredictProba:
    """The model's probabilities on (n, features) rows shaped as its input."""
    name, tail, dtype = served.config.inputs[0].name, like.shape[1:], like.dtype

    def predict_proba(z: Array) -> Array:
        output = served.predict({name: z.reshape((z.shape[0], *tail)).astype(dtype, copy=False)})
        if output.probabilities is None:
            raise ValueError("the model gave no probabilities")
        return np.asarray(output.probabilities, dtype=np.float64)

    return predict_proba


def check_fits(reference: Reference, model: ModelConfig) -> None:
    """E325 when the reference was fitted for inputs or classes of another shape."""
    spec = model.inputs[0]
    features = int(np.prod([d for d in spec.shape[1:] if d > 0])) if len(spec.shape) > 1 else 0
    if features and features != reference.n_features:
        raise ReferenceMismatchError(
            f"detectors.models.{model.name}: the reference has {reference.n_features} "
            f"features, the model's input has {features}",
            hint="fit the reference on this model's data with `mlwarden detect fit`",
        )
    if model.classes is not None and len(model.classes) != reference.n_classes:
        raise ReferenceMismatchError(
            f"detectors.models.{model.name}: the reference has {reference.n_classes} "
            f"classes, the model {len(model.classes)}"
        )


def _quarantined(identity: str, model: str) -> IdentityQuarantinedError:
    return IdentityQuarantinedError(
        f"{identity!r} is quarantined on model {model!r} by a runtime detector",
        hint="an administrator lifts it with `mlwarden admin release`",
    )


def _sanction(response: Response) -> Sanction:
    if response == "alert":
        raise ValueError("an alert is not a sanction")
    return response
