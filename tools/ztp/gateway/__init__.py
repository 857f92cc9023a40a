"""ztp.gateway: the TLS 1.3 PSK gateway between SIMs and the configuration service.

See docs/gateway.md. The sans-I/O parts (HTTP request reader, request policy, rate limiter,
connection admission, PSK cache, per-connection session) import without the TLS engine; the
session and the asyncio server need ``ztp.tls``.
"""

from __future__ import annotations

from typing import Any

from ._admission import Admitted, ConnectionAdmission, LogThrottle, Refused, address_key
from ._http import NEED_DATA, HttpError, HttpLimits, Request, RequestReader, build_response
from ._limits import RateLimit, RateLimiter
from ._log import JsonFormatter, JsonLinesHandler, flush_logs, log_event
from ._metrics import GatewayMetrics
from ._policy import ForwardRequest, RequestRejected, check_request
from ._psk_cache import PskCache, PskChangeWatcher, PskKey
from ._service import ServiceClient, ServiceError, UpstreamResponse

__all__ = [
    "NEED_DATA",
    "Admitted",
    "EVENT_LOOPS",
    "ConnectionAdmission",
    "ForwardRequest",
    "Gateway",
    "GatewayConfig",
    "GatewayMetrics",
    "GatewaySession",
    "HttpError",
    "HttpLimits",
    "JsonFormatter",
    "JsonLinesHandler",
    "LogThrottle",
    "PskCache",
    "PskChangeWatcher",
    "PskKey",
    "RateLimit",
    "RateLimiter",
    "Refused",
    "Request",
    "RequestReader",
    "RequestRejected",
    "ServiceClient",
    "ServiceError",
    "SessionLimits",
    "UpstreamResponse",
    "address_key",
    "build_response",
    "check_request",
    "event_loop_factory",
    "flush_logs",
    "log_event",
    "run_event_loop",
    "setup_logging",
    "start_metrics_server",
    "wait_for_signal",
]

_LAZY = {
    "Gateway": "._server",
    "GatewayConfig": "._server",
    "GatewaySession": "._session",
    "SessionLimits": "._session",
    # the run-time helpers of the commands that run a gateway (they need click)
    "EVENT_LOOPS": ".cli",
    "event_loop_factory": ".cli",
    "run_event_loop": ".cli",
    "setup_logging": ".cli",
    "start_metrics_server": ".cli",
    "wait_for_signal": ".cli",
}


def __getattr__(name: str) -> Any:
    # The TLS-dependent parts and the command helpers load on first use (PEP 562).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
