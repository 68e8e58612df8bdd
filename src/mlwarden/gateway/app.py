"""The gateway: a pure ASGI app in front of the models, with every control on every call.

    identify -> find the model -> authorize (Cedar) -> budget -> read and guard the input
    -> predict (local, or upstream) -> minimize the output -> audit -> answer

Pure ASGI rather than a framework on the hot path: routing is a few string comparisons
and each control is the building block's own cached call (verified-token cache, prepared
Cedar policies with a decision cache, the budget store's `aconsume`, the batched audit
writer's queue put). Every decision, allowed or denied, is audited before the answer is
sent; if the audit log cannot take it, the request is refused (E351/E352, 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mlwarden.audit import AuditEvent, BatchedAuditWriter, Decision, JSONValue
from mlwarden.authz import Action, Authorizer, ModelResource
from mlwarden.errors import (
    AccessDeniedError,
    BodyTooLargeError,
    InvalidInferenceRequestError,
    MethodNotAllowedError,
    MlwardenError,
    PolicyFileError,
    RouteNotFoundError,
    UnknownModelError,
)
from mlwarden.gateway._errors import as_mlwarden_error, error_body, error_headers
from mlwarden.gateway._guard import parse_and_check
from mlwarden.gateway._metrics import GatewayMetrics
from mlwarden.gateway._minimize import OutputPolicy
from mlwarden.gateway._models import ServedModel, load_model
from mlwarden.gateway._openapi import build_openapi
from mlwarden.identity import Authenticator, Principal
from mlwarden.serving import GatewayConfig, ModelConfig

if TYPE_CHECKING:
    from mlwarden.audit import AuditLog
    from mlwarden.budgets import BudgetStore
    from mlwarden.detect._responses import DetectorRuntime
    from mlwarden.policy import PolicyFile

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

GATEWAY_RESOURCE = ModelResource(name="mlwarden:gateway")
"""The Cedar resource of `/metrics` (the `admin` action): a name no model can have."""

_LIVE = orjson.dumps({"live": True})
_SERVER = orjson.dumps({"name": "mlwarden", "version": "", "extensions": []})


@dataclass(frozen=True, slots=True)
class _Entry:
    """A served model with what the hot path needs precomputed."""

    config: ModelConfig
    model: ServedModel
    resource: ModelResource
    output: OutputPolicy
    metadata: bytes


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


class Gateway:
    """The ASGI app. Build it with `Gateway.from_policy(policy)` (what `mlwarden serve`
    does) or from parts (tests); close it with `await gateway.aclose()` (the ASGI
    lifespan shutdown does)."""

    def __init__(
        self,
        *,
        config: GatewayConfig,
        authenticator: Authenticator,
        authorizer: Authorizer,
        budgets: BudgetStore,
        audit: BatchedAuditWriter,
        models: dict[str, ServedModel],
        audit_log: AuditLog | None = None,
        api_key_header: str | None = None,
        jwks_refresh_seconds: float | None = None,
        detectors: DetectorRuntime | None = None,
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.budgets = budgets
        self.audit = audit
        self.audit_log = audit_log
        self.metrics = GatewayMetrics()
        self.detectors = detectors
        if detectors is not None:
            detectors.bind(audit.submit, self.metrics.registry)
        self._jwks_refresh = jwks_refresh_seconds
        self._refresher: asyncio.Task[None] | None = None
        self._entries: dict[str, _Entry] = {}
        for model_config in config.models:
            attributes = model_config.attributes
            self._entries[model_config.name] = _Entry(
                config=model_config,
                model=models[model_config.name],
                resource=ModelResource(
                    name=model_config.name,
                    sensitivity=attributes.sensitivity,
                    owner=attributes.owner,
                    tenant=attributes.tenant,
                ),
                output=OutputPolicy(model_config.output),
                metadata=_metadata(model_config),
            )
        self._openapi = orjson.dumps(build_openapi(config, api_key_header=api_key_header))
        self._max_body = config.max_body_bytes
        # Request ids: a random per-process prefix and a counter, unique across replicas
        # without a uuid per request.
        self._id_prefix = secrets.token_hex(6)
        self._ids = itertools.count(1)
        self._pem_cache: dict[str, bytes] = {}
        self._closed = False

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_policy(cls, policy: PolicyFile, *, base_dir: Path | None = None) -> Gateway:
        """Build every control from `mlwarden.yaml`; refuse to start without identity,
        authorization or a `gateway:` section (no identity, no service; no policy, no
        access). Models load through `mlwarden.load` with the policy's trust: a model
        that does not verify stops the start-up."""
        from mlwarden.audit import AuditConfig, open_audit_log
        from mlwarden.budgets import BudgetsConfig, open_store

        base = base_dir or (policy.path.parent if policy.path is not None else Path.cwd())
        if policy.gateway is None:
            raise PolicyFileError("mlwarden.yaml has no 'gateway:' section: nothing to serve")
        if policy.identity is None:
            raise PolicyFileError(
                "the gateway needs an 'identity:' section: no identity, no service"
            )
        if policy.authorization is None:
            raise PolicyFileError(
                "the gateway needs an 'authorization:' section: no policy, no access"
            )
        authenticator = Authenticator(policy.identity, base_dir=base)
        authorizer = Authorizer(policy.authorization, base_dir=base)
        audit_config = policy.audit or AuditConfig()
        log = open_audit_log(_resolve_sqlite(audit_config.url, base), table=audit_config.table)
        models: dict[str, ServedModel] = {}
        budgets: BudgetStore | None = None
        try:
            for model_config in policy.gateway.models:
                models[model_config.name] = load_model(model_config, policy=policy, base_dir=base)
            budgets = open_store(policy.budgets or BudgetsConfig(), base=base)
            detectors = _open_detectors(policy, base)
        except BaseException:
            log.close()
            if budgets is not None:
                budgets.close()
            raise
        writer = BatchedAuditWriter(log, limits=audit_config.limits())
        jwt = policy.identity.jwt
        refresh = max(1.0, jwt.jwks_cache_seconds / 2) if jwt is not None and jwt.jwks_url else None
        return cls(
            config=policy.gateway,
            authenticator=authenticator,
            authorizer=authorizer,
            budgets=budgets,
            audit=writer,
            models=models,
            audit_log=log,
            api_key_header=policy.identity.api_keys.header if policy.identity.api_keys else None,
            jwks_refresh_seconds=refresh,
            detectors=detectors,
        )

    async def aclose(self) -> None:
        """Flush and close the audit writer and log, the budget store, upstream clients."""
        if self._closed:
            return
        self._closed = True
        if self._refresher is not None:
            self._refresher.cancel()
        try:
            for entry in self._entries.values():
                await entry.model.aclose()
            await self.budgets.aclose()
            if self.detectors is not None:
                await self.detectors.aclose()
        finally:
            try:
                await asyncio.to_thread(self.audit.close)
            finally:
                if self.audit_log is not None:
                    self.audit_log.close()

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._jwks_refresh is not None:
                    self._refresher = asyncio.create_task(self._refresh_jwks(self._jwks_refresh))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                except MlwardenError as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": exc.one_line()})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refresh_jwks(self, every: float) -> None:
        """Keep the remote key set fresh so that no request waits for the provider."""
        while True:
            # On failure the authenticator keeps its last good copy and refuses when stale.
            with contextlib.suppress(MlwardenError):
                await asyncio.to_thread(self.authenticator.prefetch)
            await asyncio.sleep(every)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        request_id = f"{self._id_prefix}-{next(self._ids)}"
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/v2/health/live":
            if method != "GET":
                return await self._fail(send, _not_allowed("GET"), request_id)
            return await _respond(send, 200, _LIVE, request_id)
        if path == "/v2/health/ready":
            if method != "GET":
                return await self._fail(send, _not_allowed("GET"), request_id)
            ready = self.audit.healthy and not self._closed
            return await _respond(
                send, 200 if ready else 503, orjson.dumps({"ready": ready}), request_id
            )
        if path == "/openapi.json":
            if method != "GET":
                return await self._fail(send, _not_allowed("GET"), request_id)
            return await _respond(send, 200, self._openapi, request_id)
        if path == "/v2":
            if method != "GET":
                return await self._fail(send, _not_allowed("GET"), request_id)
            return await _respond(send, 200, _SERVER, request_id)
        route = _route(path)
        if route is None:
            return await self._fail(
                send, RouteNotFoundError(f"no endpoint at {path[:100]!r}"), request_id
            )
        endpoint, name, version = route
        want = "POST" if endpoint == "infer" else "GET"
        if method != want:
            return await self._fail(send, _not_allowed(want), request_id)
        await self._controlled(scope, receive, send, endpoint, name, version, request_id, start)

    async def _controlled(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: str,
        name: str | None,
        version: str | None,
        request_id: str,
        start: float,
    ) -> None:
        """Every endpoint that needs an identity; every outcome is audited."""
        principal: Principal | None = None
        entry: _Entry | None = None
        action = (
            Action.ADMIN
            if endpoint == "metrics"
            else (Action.INFER if endpoint == "infer" else Action.READ_METADATA)
        )
        input_sha256: str | None = None
        output_summary: dict[str, JSONValue] | None = None
        detail: dict[str, JSONValue] | None = None
        status = 200
        try:
            principal = self._authenticate(scope)
            if name is None:
                resource = GATEWAY_RESOURCE
            else:
                entry = self._entries.get(name)
                if entry is None or (version is not None and version != entry.config.version):
                    raise UnknownModelError(f"no model {name[:100]!r} is served here")
                resource = entry.resource
            decision = self.authorizer.is_authorized(principal, action, resource)
            if not decision.allowed:
                raise AccessDeniedError(
                    f"{principal.id!r} may not {action.value} "
                    + ("the gateway" if entry is None else f"model {entry.config.name!r}")
                )
            if entry is None:
                body, content_type = self.metrics.render()
                self._record(endpoint, request_id, principal, None, action, start)
                return await _respond(send, 200, body, request_id, content_type.encode())
            if endpoint == "metadata":
                self._record(endpoint, request_id, principal, entry, action, start)
                return await _respond(send, 200, entry.metadata, request_id)
            if endpoint == "ready":
                ready = await entry.model.ready()
                self._record(endpoint, request_id, principal, entry, action, start)
                body = orjson.dumps({"name": entry.config.name, "ready": ready})
                return await _respond(send, 200, body, request_id)
            # Runtime detectors: a quarantined or throttled identity stops here.
            degrade = False
            if self.detectors is not None:
                degrade = (await self.detectors.admit(principal.key, entry.config.name)).degrade
            # infer: budget first, so that probing the guard costs budget too.
            budget = await self.budgets.aconsume(
                principal.key, entry.config.name, roles=principal.roles
            )
            if not budget.allowed:
                raise budget.error(principal.key, entry.config.name)
            if budget.fail_open:
                detail = {"budget": "fail_open"}
            body = await _read_body(scope, receive, self._max_body)
            input_sha256 = hashlib.sha256(body).hexdigest()
            request = parse_and_check(body, entry.config)
            result = await entry.model.apredict(request.arrays)
            mode = entry.output.mode_for(principal.roles)
            if self.detectors is not None:
                await self.detectors.observe_prediction(
                    principal.key, entry.model, request.arrays, result.probabilities, request_id
                )
                if degrade:
                    mode = "label"
            outputs = entry.output.apply(result, mode)
            labels = result.labels
            output_summary = {
                "mode": mode,
                "rows": int(labels.shape[0]),
                "labels": [str(label) for label in labels[:16].tolist()],
            }
            answer = {
                "model_name": entry.config.name,
                "model_version": entry.config.version,
                "id": request.id if request.id is not None else request_id,
                "outputs": outputs,
            }
            self._record(
                endpoint,
                request_id,
                principal,
                entry,
                action,
                start,
                input_sha256=input_sha256,
                output=output_summary,
                detail=detail,
            )
            await _respond(
                send, 200, orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), request_id
            )
        except _Disconnected:
            return
        except BaseException as caught:
            if not isinstance(caught, Exception):
                raise
            error = as_mlwarden_error(caught)
            try:
                self._record(
                    endpoint,
                    request_id,
                    principal,
                    entry or name,
                    action,
                    start,
                    allowed=False,
                    reason=error.code,
                    input_sha256=input_sha256,
                    detail=detail,
                )
            except MlwardenError as audit_error:
                error = audit_error
            status = error.http_status
            await self._fail(send, error, request_id)
        finally:
            model_label = entry.config.name if entry is not None else ""
            self.metrics.observe(endpoint, model_label, status, time.perf_counter() - start)

    def _authenticate(self, scope: Scope) -> Principal:
        authenticator = self.authenticator
        headers = authenticator.headers_from_asgi(scope["headers"])
        if "inference-header-content-length" in headers:
            raise InvalidInferenceRequestError("the binary tensor extension is not supported")
        client = scope.get("client")
        return authenticator.authenticate(
            headers,
            peer_cert_der=self._peer_cert(scope),
            client_addr=client[0] if client else None,
        )

    def _peer_cert(self, scope: Scope) -> bytes | None:
        """The client certificate of the gateway's own TLS (ASGI `tls` extension)."""
        extensions = scope.get("extensions")
        if not extensions:
            return None
        tls = extensions.get("tls")
        chain = tls.get("client_cert_chain") if tls else None
        if not chain:
            return None
        pem: str = chain[0]
        der = self._pem_cache.get(pem)
        if der is None:
            der = ssl.PEM_cert_to_DER_cert(pem)
            if len(self._pem_cache) >= 1024:
                self._pem_cache.clear()
            self._pem_cache[pem] = der
        return der

    def _record(
        self,
        endpoint: str,
        request_id: str,
        principal: Principal | None,
        entry: _Entry | str | None,
        action: Action,
        start: float,
        *,
        allowed: bool = True,
        reason: str = "ok",
        input_sha256: str | None = None,
        output: dict[str, JSONValue] | None = None,
        detail: dict[str, JSONValue] | None = None,
    ) -> None:
        """Audit one decision (raises E351/E352 when it cannot be recorded: fail closed).

        `entry` is the served model, or the requested name when no model has it."""
        event = AuditEvent(
            kind=endpoint,
            decision=Decision.ALLOW if allowed else Decision.DENY,
            reason=reason,
            request_id=request_id,
            identity=principal.key if principal is not None else None,
            model=entry.config.name if isinstance(entry, _Entry) else (entry and entry[:128]),
            action=action.value,
            input_sha256=input_sha256,
            output=output,
            latency_us=int((time.perf_counter() - start) * 1_000_000),
            detail=detail,
        )
        self.audit.submit(event)
        self.metrics.decision(allowed, reason)

    async def _fail(self, send: Send, error: MlwardenError, request_id: str) -> None:
        await _respond(
            send,
            error.http_status,
            error_body(error, request_id),
            request_id,
            extra=error_headers(error),
        )


# --- helpers -------------------------------------------------------------------------------


def _route(path: str) -> tuple[str, str | None, str | None] | None:
    """(endpoint, model name, version) for the controlled endpoints, or None."""
    if path == "/metrics":
        return "metrics", None, None
    if not path.startswith("/v2/models/"):
        return None
    parts = path[11:].split("/")
    name = parts[0]
    if not name:
        return None
    version: str | None = None
    rest = parts[1:]
    if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
        version = rest[1]
        rest = rest[2:]
    if not rest:
        return "metadata", name, version
    if len(rest) == 1 and rest[0] == "ready":
        return "ready", name, version
    if len(rest) == 1 and rest[0] == "infer":
        return "infer", name, version
    return None


def _not_allowed(method: str) -> MethodNotAllowedError:
    return MethodNotAllowedError(f"this endpoint takes {method}", hint=method)


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise InvalidInferenceRequestError("Content-Length is not a number") from None
            if declared > limit:
                raise BodyTooLargeError(f"the body is {declared} bytes, the limit is {limit}")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"the body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    content_type: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _metadata(config: ModelConfig) -> bytes:
    platform = {"sklearn": "scikit-learn", "onnx": "onnxruntime", "torch": "pytorch"}.get(
        config.format, "upstream"
    )
    return orjson.dumps(
        {
            "name": config.name,
            "versions": [config.version],
            "platform": platform,
            "inputs": [
                {"name": spec.name, "datatype": spec.datatype, "shape": spec.shape}
                for spec in config.inputs
            ],
            "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]}],
        }
    )


def _open_detectors(policy: PolicyFile, base: Path) -> DetectorRuntime | None:
    """The runtime detectors of the `detectors:` section (references verified), or None."""
    if policy.detectors is None or not policy.detectors.models:
        return None
    from mlwarden.detect._responses import DetectorRuntime

    return DetectorRuntime.from_policy(policy, base=base)


def _resolve_sqlite(url: str, base: Path) -> str:
    """A relative SQLite audit path starts at the folder of mlwarden.yaml, like the budget
    store's, not at the current directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        path = url.removeprefix(prefix)
        if path and not Path(path).is_absolute():
            return prefix + str(base / path)
    elif "://" not in url and not Path(url).is_absolute():
        return str(base / url)
    return url
