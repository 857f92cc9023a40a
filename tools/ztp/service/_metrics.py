"""Prometheus metrics of the configuration service (prometheus-client), in a registry of its
own per app, served at ``GET /metrics`` in the text exposition format.

Names follow the Prometheus conventions (``_total`` counters, ``_seconds`` histograms) and
the gateway's (``ztp.gateway._metrics``). Labels carry only bounded values (the route's
operationId, HTTP status, a result word), never identities, ICCIDs or client ids: one of
those would create a time series per SIM.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["ServiceMetrics"]

# Lookups over loopback take about a millisecond; an import of 100,000 rows tens of seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                    30, 60)

# operationId of a gateway-facing route -> (counter attribute, {HTTP status: result})
_PSK_LOOKUP = "gateway_psks"
_CONFIG_DELIVERY = "device_config"
_RESULTS = {
    _PSK_LOOKUP: {200: "found", 404: "unknown", 403: "refused"},
    _CONFIG_DELIVERY: {200: "delivered", 404: "no_config", 403: "refused", 429: "limited"},
}


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ztp_service_requests", "API requests answered, by operation and HTTP status",
            ["operation", "status"], registry=r)
        self.request_seconds = Histogram(
            "ztp_service_request_seconds", "request received to response ready, by operation",
            ["operation"], buckets=_LATENCY_BUCKETS, registry=r)
        self.psk_lookups = Counter(
            "ztp_service_psk_lookups",
            "gateway PSK lookups (GET /v1/gateway/psks/...) by result (found, unknown, "
            "refused, error)", ["result"], registry=r)
        self.config_deliveries = Counter(
            "ztp_service_config_deliveries",
            "device configuration requests (GET /v1/config/...) by result (delivered, "
            "no_config, refused, limited, error)", ["result"], registry=r)
        # (operation, status) -> the series it updates; bounded: operations x statuses
        self._children: dict[tuple[str, int], tuple[tuple[Any, ...], Any]] = {}

    def observe(self, operation: str, status: int, seconds: float) -> None:
        """Count one answered request of route ``operation`` (an operationId)."""
        children = self._children.get((operation, status))
        if children is None:
            children = self._children[(operation, status)] = self._label(operation, status)
        for counter in children[0]:
            counter.inc()
        children[1].observe(seconds)

    def _label(self, operation: str, status: int) -> tuple[tuple[Any, ...], Any]:
        """The labelled series one (operation, status) updates, looked up once: labels()
        takes a lock and checks its arguments on every call, a few us per request."""
        counters = [self.requests.labels(operation, str(status))]
        results = _RESULTS.get(operation)
        if results is not None:
            result = results.get(status, "error" if status >= 500 else "refused")
            counter = self.psk_lookups if operation == _PSK_LOOKUP else self.config_deliveries
            counters.append(counter.labels(result))
        return tuple(counters), self.request_seconds.labels(operation)

    def exposition(self) -> bytes:
        """The text exposition format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
