"""A live Open Inference Protocol v2 endpoint as an assessment target.

The attacks reach it as a real caller would: over HTTP(S) with the caller's API key or
bearer token, within a query budget (the shared `TargetBase` refuses a batch before it
is sent) and at a rate (a token bucket: the client sleeps rather than burst). The model's
metadata (`GET /v2/models/{name}`) gives the input tensor's name, datatype and shape;
one probe query tells whether the endpoint reveals scores or labels only (the mlwarden
gateway's output minimization answers with the top label only, and the attacks then run
label-only). Any OIP server works: the mlwarden gateway, KServe, Triton, MLServer.

The standard library's `http.client` is enough for one keep-alive connection and keeps
the assessment free of the gateway's optional dependencies.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
from numpy.typing import NDArray

from mlwarden.assess._target import Output, TargetBase
from mlwarden.errors import (
    EndpointCredentialsError,
    EndpointError,
    EndpointRefusedError,
    TargetOutputError,
    UpstreamResponseError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    UsageError,
)

__all__ = ["Credentials", "RemoteTarget", "TokenBucket", "split_model_url"]

_FLOAT_TYPES = {"FP16", "FP32", "FP64"}
_MAX_ANSWER = 64 * 1024 * 1024
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")
_MAX_RETRY_WAIT = 5.0
"""429s that ask to wait longer than this are a quota, not a rate: waiting will not help."""


class Credentials:
    """What the caller presents: an API key (in `api_key_header`) or a bearer token."""

    __slots__ = ("_api_key", "_token", "api_key_header")

    def __init__(
        self,
        *,
        api_key: str | None = None,
        token: str | None = None,
        api_key_header: str = "x-api-key",
    ) -> None:
        if not _HEADER_NAME.fullmatch(api_key_header):
            raise UsageError(f"{api_key_header[:40]!r} is not an HTTP header name")
        for secret, what in ((api_key, "API key"), (token, "bearer token")):
            # http.client would raise mid-assessment; the message never shows the secret.
            if secret is not None and not _HEADER_VALUE.fullmatch(secret):
                raise UsageError(f"the {what} holds characters an HTTP header cannot carry")
        self._api_key = api_key
        self._token = token
        self.api_key_header = api_key_header

    def __repr__(self) -> str:  # never the secrets
        kind = "api key" if self._api_key else "bearer token" if self._token else "none"
        return f"Credentials({kind})"

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._api_key:
            headers[self.api_key_header] = self._api_key
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        return headers


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take(n)` sleeps until n tokens are there."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst <= 0:
            raise UsageError("the query rate and burst must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self.waited = 0.0
        """Seconds slept so far."""

    def take(self, n: float) -> None:
        if n > self.burst:
            raise UsageError(f"a batch of {n:g} queries exceeds the burst of {self.burst:g}")
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= n:
                self._tokens -= n
                return
            wait = (n - self._tokens) / self.rate
            self.waited += wait
            self._sleep(wait)


def split_model_url(url: str, model: str | None) -> tuple[str, str]:
    """(base URL, model name) from `http://host:port` plus a name, or from a URL that
    names the model itself (`http://host:port/v2/models/digits`)."""
    shown = _redacted(url)
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise EndpointError(
            f"{shown!r} is not an http(s) URL", hint="for example http://127.0.0.1:8080"
        )
    if parts.username is not None or parts.password is not None:
        # Never sent (http.client ignores them) and never echoed into reports: refuse.
        raise EndpointError(
            f"{shown!r}: credentials in the URL are refused",
            hint="pass them with --api-key-env or --token-env",
        )
    path = parts.path.rstrip("/")
    if "/v2/models/" in path:
        path, _, rest = path.partition("/v2/models/")
        named = rest.split("/")[0]
        if model is not None and model != named:
            raise EndpointError(f"the URL names model {named!r} but --model says {model!r}")
        model = named
    if not model:
        raise EndpointError(
            f"no model named for {shown!r}",
            hint="give --model NAME or a URL ending in /v2/models/NAME",
        )
    return f"{parts.scheme}://{parts.netloc}{path}", model


class RemoteTarget(TargetBase):
    """An OIP v2 model endpoint. Build it with `RemoteTarget.connect(...)`."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        n_classes: int,
        input_shape: tuple[int, ...],
        value_range: tuple[float, float],
        input_name: str,
        datatype: str,
        credentials: Credentials,
        max_queries: int | None,
        rate: float,
        burst: int | None = None,
        batch: int = 32,
        timeout: float = 10.0,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            name=f"{base_url}/v2/models/{model}",
            n_classes=n_classes,
            input_shape=input_shape,
            value_range=value_range,
            output="scores",
            max_queries=max_queries,
        )
        if batch < 1:
            raise UsageError("the batch size must be at least 1")
        self.base_url = base_url
        self.model = model
        self.input_name = input_name
        self.datatype = datatype
        self.batch = batch
        self.requests = 0
        """HTTP requests sent (a batch of rows is one request)."""
        self._credentials = credentials
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep
        self.bucket = TokenBucket(rate, float(burst or max(batch, math.ceil(rate))), sleep=sleep)
        self.batch = min(batch, int(self.bucket.burst))
        self._conn: http.client.HTTPConnection | None = None
        self._path = urlsplit(base_url).path + f"/v2/models/{quote(model, safe='')}"
        self._probed = False

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        model: str | None,
        n_classes: int,
        probe: NDArray[np.floating[Any]],
        value_range: tuple[float, float],
        credentials: Credentials | None = None,
        max_queries: int | None = 5000,
        rate: float = 200.0,
        burst: int | None = None,
        batch: int = 32,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RemoteTarget:
        """Read the model's metadata, send one probe row (it counts as a query) and
        return the target with `output` set to what the endpoint reveals."""
        base_url, name = split_model_url(url, model)
        probe_row = np.asarray(probe, dtype=np.float32)
        target = cls(
            base_url=base_url,
            model=name,
            n_classes=n_classes,
            input_shape=tuple(probe_row.shape),
            value_range=value_range,
            input_name="input",
            datatype="FP32",
            credentials=credentials or Credentials(),
            max_queries=max_queries,
            rate=rate,
            burst=burst,
            batch=batch,
            timeout=timeout,
            sleep=sleep,
        )
        try:
            target._read_metadata(probe_row.shape)
            target.output = target._detect_output(probe_row)
        except BaseException:
            target.close()
            raise
        return target

    # --- the Target interface ----------------------------------------------------------

    def _query(self, x: NDArray[np.float32]) -> NDArray[np.generic]:
        parts = [self._infer(x[i : i + self.batch])[0] for i in range(0, len(x), self.batch)]
        if self.output == "labels":
            return np.concatenate([p.reshape(-1) for p in parts]).astype(np.int64)
        return np.concatenate(parts, axis=0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RemoteTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- protocol ----------------------------------------------------------------------

    def _read_metadata(self, shape: tuple[int, ...]) -> None:
        meta = self._request("GET", self._path, None)
        inputs = meta.get("inputs") if isinstance(meta, dict) else None
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise EndpointError(
                f"{self.name}: the model's metadata does not declare exactly one input tensor"
            )
        spec = inputs[0]
        datatype = str(spec.get("datatype", ""))
        if datatype not in _FLOAT_TYPES:
            raise EndpointError(
                f"{self.name}: input datatype {datatype!r} is not one the attacks can send",
                hint="the assessment sends FP16, FP32 or FP64 tensors",
            )
        declared = spec.get("shape")
        if not isinstance(declared, list) or not all(isinstance(d, int) for d in declared):
            raise EndpointError(f"{self.name}: the input's shape {declared!r} is not a list")
        sample = [int(d) for d in declared[1:]]
        if len(sample) != len(shape) or any(
            d not in (-1, s) for d, s in zip(sample, shape, strict=True)
        ):
            raise EndpointError(
                f"{self.name}: the model takes samples of shape {sample}, the data has "
                f"{list(shape)}"
            )
        self.input_name = str(spec.get("name", "input"))
        self.datatype = datatype

    def _detect_output(self, probe: NDArray[np.float32]) -> Output:
        self.charge(1)
        _, kind = self._infer(probe[None])
        self._probed = True
        return kind

    def _infer(self, x: NDArray[np.float32]) -> tuple[NDArray[np.generic], Output]:
        """One request: (scores (n, k) or labels (n,), which of the two)."""
        self.bucket.take(len(x))
        body = {
            "inputs": [
                {
                    "name": self.input_name,
                    "shape": list(x.shape),
                    "datatype": self.datatype,
                    "data": x.astype(np.float64).ravel().tolist(),
                }
            ]
        }
        answer = self._request("POST", self._path + "/infer", json.dumps(body).encode())
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        if not isinstance(outputs, list):
            raise TargetOutputError(f"{self.name}: the answer holds no 'outputs' list")
        tensors = {str(t.get("name")): t for t in outputs if isinstance(t, dict)}
        kind, values = _read_outputs(tensors, len(x), self.n_classes, self.name)
        if self._probed and kind != self.output:
            raise TargetOutputError(
                f"{self.name}: the endpoint answered with {kind} after revealing {self.output}"
            )
        return values, kind

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            parts = urlsplit(self.base_url)
            host, port = parts.hostname or "", parts.port
            if parts.scheme == "https":
                self._conn = http.client.HTTPSConnection(host, port, timeout=self._timeout)
            else:
                self._conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        return self._conn

    def _request(self, method: str, path: str, body: bytes | None) -> Any:
        headers = {"accept": "application/json", **self._credentials.headers()}
        if body is not None:
            headers["content-type"] = "application/json"
        for attempt in range(self._retries + 1):
            status, payload, retry_after = self._send(method, path, body, headers)
            self.requests += 1
            if status == 429 and attempt < self._retries:
                wait = retry_after if retry_after is not None else 1.0
                if wait <= _MAX_RETRY_WAIT:
                    self._sleep(wait)
                    continue
            return self._answer(status, payload, retry_after)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes, float | None]:
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=dict(headers))
            response = conn.getresponse()
            payload = response.read(_MAX_ANSWER + 1)
        except TimeoutError:
            self.close()
            raise UpstreamTimeoutError(
                f"{self.name}: no answer within {self._timeout:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
            raise UpstreamUnavailableError(
                f"{self.base_url} cannot be reached: {reason}",
                hint="check the URL and that the server is running",
            ) from None
        if len(payload) > _MAX_ANSWER:
            self.close()
            raise UpstreamResponseError(f"{self.name}: the answer exceeds {_MAX_ANSWER} bytes")
        if response.getheader("connection", "").lower() == "close":
            self.close()
        retry = response.getheader("retry-after")
        try:
            retry_after = float(retry) if retry is not None else None
        except ValueError:
            retry_after = None
        if retry_after is not None and not 0.0 <= retry_after < math.inf:
            retry_after = None  # negative or NaN: time.sleep would raise on it
        return response.status, payload, retry_after

    def _answer(self, status: int, payload: bytes, retry_after: float | None) -> Any:
        try:
            document = json.loads(payload) if payload else None
        except (ValueError, RecursionError):  # garbage, or nesting deep enough to crash
            document = None
        said = _server_said(document)
        if status == 200:
            if document is None:
                raise UpstreamResponseError(f"{self.name}: the answer is not JSON")
            return document
        if status in (401, 403):
            raise EndpointCredentialsError(
                f"{self.name}: the endpoint refused the credentials (HTTP {status}{said})",
                hint="check --api-key-env / --token-env and the identity's permissions "
                "(infer and read_metadata on the model)",
            )
        if status == 404:
            raise EndpointError(f"{self.name}: no such model at this endpoint (HTTP 404{said})")
        if status == 429:
            raise EndpointRefusedError(
                f"{self.name}: the endpoint refuses further queries (HTTP 429{said}) after "
                f"{self.queries} queries",
                retry_after=retry_after,
                hint="lower assess.budget.rate or raise the identity's budget at the endpoint",
            )
        if 400 <= status < 500:
            raise EndpointError(
                f"{self.name}: the endpoint rejected the request (HTTP {status}{said})"
            )
        raise UpstreamResponseError(f"{self.name}: the endpoint failed (HTTP {status}{said})")


def _redacted(url: str) -> str:
    """`url` fit for a message: no user info, query or fragment (they may hold secrets)."""
    bare = url.partition("#")[0].partition("?")[0]
    head, sep, rest = bare.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{head}{sep}{netloc.rpartition('@')[2]}{slash}{path}"[:200]


def _server_said(document: Any) -> str:
    """`: E401 message` from an mlwarden-style error body, else nothing."""
    if not isinstance(document, dict):
        return ""
    text = " ".join(str(document[k]) for k in ("code", "message", "error") if k in document)
    return f": {_printable(text[:200])}" if text else ""


def _printable(text: str) -> str:
    """A server's words fit for a terminal: no escape sequences, no line breaks."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _read_outputs(
    tensors: Mapping[str, Mapping[str, Any]], n: int, n_classes: int, name: str
) -> tuple[Output, NDArray[np.generic]]:
    """Scores when any output carries per-class scores, else labels."""
    if "top_k_labels" in tensors and "top_k_probabilities" in tensors:
        return "scores", _from_top_k(tensors, n, n_classes, name)
    for tensor in tensors.values():
        shape = tensor.get("shape")
        if str(tensor.get("datatype")) in _FLOAT_TYPES and shape == [n, n_classes]:
            scores = _floats(tensor, name).reshape(n, n_classes)
            if not np.isfinite(scores).all():
                raise TargetOutputError(f"{name}: the scores hold NaN or infinity")
            if scores.min() < 0 or not np.allclose(scores.sum(axis=1), 1.0, atol=0.02):
                scores = _softmax(scores)  # logits
            return "scores", scores
    label = tensors.get("label") or tensors.get("predict") or _single(tensors)
    if label is None:
        raise TargetOutputError(
            f"{name}: no output holds labels or {n_classes} scores per row "
            f"(outputs: {_printable(', '.join(sorted(tensors))[:200])})"
        )
    raw = _array(label, name).reshape(-1)
    if raw.shape != (n,):
        raise TargetOutputError(f"{name}: expected {n} labels, got {raw.shape[0]}")
    return "labels", _as_class_index(raw, n_classes, name)


def _single(tensors: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next(iter(tensors.values())) if len(tensors) == 1 else None


def _array(tensor: Mapping[str, Any], name: str) -> NDArray[np.generic]:
    data = tensor.get("data")
    if not isinstance(data, list):
        raise TargetOutputError(f"{name}: output {tensor.get('name')!r} holds no data list")
    try:
        return np.asarray(data)
    except (ValueError, TypeError):  # ragged nesting
        raise TargetOutputError(f"{name}: output {tensor.get('name')!r} is not an array") from None


def _floats(tensor: Mapping[str, Any], name: str) -> NDArray[np.float64]:
    try:
        return np.asarray(_array(tensor, name), dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise TargetOutputError(
            f"{name}: output {tensor.get('name')!r} holds non-numbers"
        ) from None


def _as_class_index(raw: NDArray[np.generic], n_classes: int, name: str) -> NDArray[np.int64]:
    """Class labels as indices: the assessment's classes are 0..n_classes-1."""
    try:
        labels = np.array([int(str(v)) for v in raw.reshape(-1).tolist()], dtype=np.int64)
    except (ValueError, OverflowError):
        raise TargetOutputError(
            f"{name}: labels such as {_printable(str(raw[0])[:40])!r} are not class indices "
            f"0..{n_classes - 1}"
        ) from None
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise TargetOutputError(f"{name}: a label lies outside 0..{n_classes - 1}")
    return labels


def _from_top_k(
    tensors: Mapping[str, Mapping[str, Any]], n: int, n_classes: int, name: str
) -> NDArray[np.float64]:
    """The k best classes' rounded probabilities; the rest of the mass spread evenly (what
    an attacker can best infer from a top-k answer)."""
    classes = _as_class_index(_array(tensors["top_k_labels"], name).reshape(-1), n_classes, name)
    flat = _floats(tensors["top_k_probabilities"], name).reshape(-1)
    if classes.size != flat.size or classes.size % n:
        raise TargetOutputError(f"{name}: top-k labels and probabilities do not pair up")
    if not np.isfinite(flat).all() or flat.min(initial=0.0) < 0 or flat.max(initial=0.0) > 1:
        raise TargetOutputError(f"{name}: top-k probabilities outside 0..1")
    k = classes.size // n
    classes, probs = classes.reshape(n, k), flat.reshape(n, k)
    rest = np.clip(1.0 - probs.sum(axis=1, keepdims=True), 0.0, 1.0)
    scores = np.repeat(rest / max(n_classes - k, 1), n_classes, axis=1)
    np.put_along_axis(scores, classes, probs, axis=1)
    return scores


def _softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float64)
