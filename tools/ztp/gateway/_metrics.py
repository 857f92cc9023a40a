"""Prometheus metrics of one gateway, in a registry of its own.

Names follow the Prometheus conventions (``_total`` counters, ``_seconds`` histograms).
Labels carry only bounded values (mode, suite, alert name, status, reason), never identities:
an identity label would create one time series per SIM.

Why not prometheus-client's ``Counter``/``Histogram``: each update there takes a lock and a
value object's method (an exchange made seven of them, ~47k instructions, issue 14). Here the
values are plain numbers in our own objects, updated on the event loop only, and a
:class:`_GatewayCollector` turns them into the same metric families when the registry is
scraped (from the metrics server's thread: reading a number is atomic under the GIL; a
histogram's buckets are copied in one step, so its ``+Inf`` bucket always equals its count).
The exposition has the same names, labels and types; the ``_created`` series are gone.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

__all__ = ["GatewayMetrics"]

# Cellular handshakes take seconds; loopback ones milliseconds: cover both.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)


class CounterValue:
    """One counter time series: ``inc()`` adds to a plain number."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class HistogramValue:
    """One histogram time series: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds  # ends with +Inf
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # the first bound >= amount (Prometheus buckets are "less than or equal")
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class _Family:
    """A metric's name, help text and label names, and its time series by label values."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.children: dict[tuple[str, ...], object] = {}

    def _new_child(self) -> object:
        raise NotImplementedError

    def labels(self, *values: str) -> object:
        """The time series of these label values (made on first use)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self._new_child()
        return child


class Counter(_Family):
    """A counter family; without label names it is one series (``inc()`` on the family)."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> None:
        super().__init__(name, documentation, labelnames)
        if not labelnames:
            self._only = self.labels()

    def _new_child(self) -> CounterValue:
        return CounterValue()

    def labels(self, *values: str) -> CounterValue:
        return super().labels(*values)  # type: ignore[return-value]

    def inc(self, amount: float = 1) -> None:
        self._only.inc(amount)

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            family.add_metric(values, child.value)  # type: ignore[attr-defined]
        return family


class Histogram(_Family):
    """A histogram family; without label names it is one series (``observe()`` on it)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...] = (),
        buckets: tuple[float, ...] = _LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self._bounds = (*(float(b) for b in buckets), float("inf"))
        self._le = [floatToGoString(b) for b in self._bounds]
        if not labelnames:
            self._only = self.labels()

    def _new_child(self) -> HistogramValue:
        return HistogramValue(self._bounds)

    def labels(self, *values: str) -> HistogramValue:
        return super().labels(*values)  # type: ignore[return-value]

    def observe(self, amount: float) -> None:
        self._only.observe(amount)

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            counts = list(child.counts)  # type: ignore[attr-defined]
            total_sum = child.sum  # type: ignore[attr-defined]
            cumulative, running = [], 0
            for le, count in zip(self._le, counts, strict=True):
                running += count
                cumulative.append((le, running))
            family.add_metric(values, cumulative, total_sum)
        return family


class Gauge:
    """A gauge read when scraped (``set_function``): nothing to update per connection."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self._read: Callable[[], float] = lambda: 0.0

    def set_function(self, read: Callable[[], float]) -> None:
        self._read = read

    def collect(self) -> Metric:
        return GaugeMetricFamily(self.name, self.documentation, value=float(self._read()))


class _GatewayCollector:
    """Registered once per registry: the gateway's families, as the registry asks for them."""

    def __init__(self, families: list[Counter | Histogram | Gauge]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.collect()

    def describe(self) -> list[Metric]:
        """Names for the registry's duplicate check, without reading any value."""
        return [self._empty(f) for f in self._families]

    @staticmethod
    def _empty(family: Counter | Histogram | Gauge) -> Metric:
        if isinstance(family, Counter):
            return CounterMetricFamily(family.name, family.documentation, labels=family.labelnames)
        if isinstance(family, Histogram):
            return HistogramMetricFamily(
                family.name, family.documentation, labels=family.labelnames
            )
        return GaugeMetricFamily(family.name, family.documentation, labels=())


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.connections = Counter("ztp_gateway_connections", "TCP connections accepted")
        self.connections_rejected = Counter(
            "ztp_gateway_connections_rejected", "TCP connections closed at accept time", ("reason",)
        )
        self.connections_evicted = Counter(
            "ztp_gateway_connections_evicted",
            "unfinished handshakes cut off at the connection cap to make room for a "
            "connection from an address holding fewer",
        )
        self.connections_active = Gauge(
            "ztp_gateway_connections_active", "connections being served"
        )
        self.handshakes = Counter(
            "ztp_gateway_handshakes", "completed TLS handshakes", ("mode", "suite")
        )
        self.handshake_failures = Counter(
            "ztp_gateway_handshake_failures",
            "TLS handshakes that did not complete, by alert (sent or received) or reason",
            ("alert",),
        )
        self.session_failures = Counter(
            "ztp_gateway_session_failures",
            "connections that ended after the handshake without being answered in full, "
            "by alert (sent or received) or reason",
            ("reason",),
        )
        self.handshake_seconds = Histogram(
            "ztp_gateway_handshake_seconds", "first byte to handshake complete"
        )
        self.requests = Counter(
            "ztp_gateway_requests", "requests answered, by HTTP status", ("status",)
        )
        self.request_seconds = Histogram(
            "ztp_gateway_request_seconds", "request complete to response written"
        )
        self.upstream_seconds = Histogram(
            "ztp_gateway_upstream_seconds", "time waiting for the service", ("call",)
        )
        self.rate_limited = Counter(
            "ztp_gateway_rate_limited", "verified requests refused by the per-identity limit"
        )
        self.psk_lookups = Counter(
            "ztp_gateway_psk_lookups",
            "PSK lookups by result (hit, miss, unknown, error)",
            ("result",),
        )
        self.timeouts = Counter(
            "ztp_gateway_timeouts", "connections cut off by a deadline", ("phase",)
        )
        self.registry.register(
            _GatewayCollector(  # type: ignore[arg-type]
                [
                    self.connections,
                    self.connections_rejected,
                    self.connections_evicted,
                    self.connections_active,
                    self.handshakes,
                    self.handshake_failures,
                    self.session_failures,
                    self.handshake_seconds,
                    self.requests,
                    self.request_seconds,
                    self.upstream_seconds,
                    self.rate_limited,
                    self.psk_lookups,
                    self.timeouts,
                ]
            )
        )

    def labelled(self, metric: Counter | Histogram, *values: str) -> CounterValue | HistogramValue:
        """``metric.labels(*values)``: the series of these label values (kept by the family;
        the hot path binds the few it updates per exchange once)."""
        return metric.labels(*values)

    def exposition(self) -> bytes:
        """The text exposition format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
