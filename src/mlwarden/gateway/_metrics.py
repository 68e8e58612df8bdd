"""Prometheus metrics of one gateway, in a registry of its own (so that two gateways in
one process, as in tests, never share counters). `/metrics` is itself protected: the
`admin` action on the resource `Mlwarden::Model::"mlwarden:gateway"`.

Label values come only from configuration (model names) and stable codes, never from the
request, so a caller cannot grow the number of series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class GatewayMetrics:
    """Requests by endpoint, model and status; decisions by code; latency histograms."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        self._requests: Counter = Counter(
            "mlwarden_gateway_requests",
            "Requests answered, by endpoint, model and HTTP status.",
            ("endpoint", "model", "status"),
            registry=self.registry,
        )
        self._decisions: Counter = Counter(
            "mlwarden_gateway_decisions",
            "Audited decisions, by outcome and reason code (ok or the error code).",
            ("decision", "reason"),
            registry=self.registry,
        )
        self._latency: Histogram = Histogram(
            "mlwarden_gateway_request_seconds",
            "Time from request to response, by endpoint.",
            ("endpoint",),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, ...], object] = {}

    def observe(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        key = (endpoint, model, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._requests.labels(*key)
        child.inc()  # type: ignore[attr-defined]
        hkey = ("latency", endpoint)
        histogram = self._children.get(hkey)
        if histogram is None:
            histogram = self._children[hkey] = self._latency.labels(endpoint)
        histogram.observe(seconds)  # type: ignore[attr-defined]

    def decision(self, allowed: bool, reason: str) -> None:
        key = ("decision", "allow" if allowed else "deny", reason)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._decisions.labels(key[1], reason)
        child.inc()  # type: ignore[attr-defined]

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
