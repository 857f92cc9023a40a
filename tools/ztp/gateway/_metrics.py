"""Prometheus metrics of one gateway (prometheus-client), in a registry of its own.

Names follow the Prometheus conventions (``_total`` counters, ``_seconds`` histograms).
Labels carry only bounded values (mode, suite, alert name, status, reason), never identities:
an identity label would create one time series per SIM.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]

# Cellular handshakes take seconds; loopback ones milliseconds: cover both.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._children: dict[tuple[int, tuple[str, ...]], Counter | Histogram] = {}
        self.connections = Counter(
            "ztp_gateway_connections", "TCP connections accepted", registry=r
        )
        self.connections_rejected = Counter(
            "ztp_gateway_connections_rejected",
            "TCP connections closed at accept time",
            ["reason"],
            registry=r,
        )
        self.connections_evicted = Counter(
            "ztp_gateway_connections_evicted",
            "unfinished handshakes cut off at the connection cap to make room for a "
            "connection from an address holding fewer",
            registry=r,
        )
        self.connections_active = Gauge(
            "ztp_gateway_connections_active", "connections being served", registry=r
        )
        self.handshakes = Counter(
            "ztp_gateway_handshakes", "completed TLS handshakes", ["mode", "suite"], registry=r
        )
        self.handshake_failures = Counter(
            "ztp_gateway_handshake_failures",
            "TLS handshakes that did not complete, by alert (sent or received) or reason",
            ["alert"],
            registry=r,
        )
        self.session_failures = Counter(
            "ztp_gateway_session_failures",
            "connections that ended after the handshake without being answered in full, "
            "by alert (sent or received) or reason",
            ["reason"],
            registry=r,
        )
        self.handshake_seconds = Histogram(
            "ztp_gateway_handshake_seconds",
            "first byte to handshake complete",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "ztp_gateway_requests", "requests answered, by HTTP status", ["status"], registry=r
        )
        self.request_seconds = Histogram(
            "ztp_gateway_request_seconds",
            "request complete to response written",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "ztp_gateway_upstream_seconds",
            "time waiting for the service",
            ["call"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "ztp_gateway_rate_limited",
            "verified requests refused by the per-identity limit",
            registry=r,
        )
        self.psk_lookups = Counter(
            "ztp_gateway_psk_lookups",
            "PSK lookups by result (hit, miss, unknown, error)",
            ["result"],
            registry=r,
        )
        self.timeouts = Counter(
            "ztp_gateway_timeouts", "connections cut off by a deadline", ["phase"], registry=r
        )

    def labelled(self, metric: Counter | Histogram, *values: str) -> Counter | Histogram:
        """``metric.labels(*values)``, remembered: the hot path updates a handful of label
        sets per exchange, and ``labels()`` validates and locks on every call."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def exposition(self) -> bytes:
        """The text exposition format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
