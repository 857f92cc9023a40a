"""Structured logging for the gateway: one JSON object per line, no secrets.

Every record carries ``event`` (a short machine name) and whatever fields the call site passes
with ``extra={"fields": {...}}``. Identities are logged as hex; PSKs, binders, traffic keys and
configuration bodies are never passed to the logger (the call sites only have access to what
they log; see docs/gateway.md). Formatting is stdlib ``logging``, so a deployment may route the
``ztp.gateway`` logger anywhere.
"""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["JsonFormatter", "log_event", "logger"]

logger = logging.getLogger("ztp.gateway")
# One encoder for all records: json.dumps(default=...) would build a new one per line.
_encode = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "event": ..., **fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = record.exc_info[0].__name__
        return _encode(out)


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` (values must be JSON-able and free of secrets)."""
    if logger.isEnabledFor(level):
        # makeRecord + handle is what logger.log does, minus findCaller: walking the stack for
        # a file and line the JSON lines never show was about a third of a line's cost, and
        # the gateway logs three lines per exchange (issue 14)
        record = logger.makeRecord(
            logger.name, level, "(ztp.gateway)", 0, event, (), None,
            extra={"event": event, "fields": fields},
        )  # fmt: skip
        logger.handle(record)
