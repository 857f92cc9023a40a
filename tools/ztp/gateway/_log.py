"""Structured logging for the gateway: one JSON object per line, no secrets.

Every record carries ``event`` (a short machine name) and whatever fields the call site passes
with ``extra={"fields": {...}}`` (:func:`log_event` does that). Identities are logged as hex;
PSKs, binders, traffic keys and configuration bodies are never passed to the logger (the call
sites only have access to what they log; see docs/gateway.md). Formatting is stdlib
``logging``, so a deployment may route the ``ztp.gateway`` logger anywhere.

Cost (issue 14): a loaded gateway logs two lines per exchange, and a line through
``logging`` (a LogRecord, the handler chain, ``json`` building an encoder per call, one
unbuffered write) cost about as much as parsing the SIM's request. So: the line is written by
hand for the field types the gateway logs (``str``, ``int``, ``float``, ``bool``, ``None``;
anything else through ``json``), :class:`JsonLinesHandler` writes lines in batches (at most
``flush_interval_s`` late, at once for warnings and errors, and on flush/close, which
``logging.shutdown`` does at exit), and when that handler is the only place a ``ztp.gateway``
record can go (what :func:`~.cli.setup_logging` sets up, no filters), :func:`log_event` hands
it the fields directly, without a LogRecord. The line is the same either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, TextIO

__all__ = ["JsonFormatter", "JsonLinesHandler", "flush_logs", "log_event", "logger"]

logger = logging.getLogger("ztp.gateway")
# One encoder for what the fast path does not spell out itself (lists, dicts, other types).
_encode = json.JSONEncoder(default=str).encode
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
_HEAD_KEYS = frozenset(("ts", "level", "logger", "event"))


def _value(value: object) -> str:
    """``value`` as JSON, as ``json.dumps`` spells it (``", "`` and ``": "`` separators)."""
    kind = type(value)
    if kind is str:
        return _quote(value)  # type: ignore[no-any-return]
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)  # type: ignore[arg-type]
    if kind is float and math.isfinite(value):  # type: ignore[arg-type]
        return float.__repr__(value)  # type: ignore[arg-type]
    return _encode(value)


def json_line(
    created: float,
    levelno: int,
    name: str,
    event: object,
    fields: dict[str, Any] | None,
    exception: str | None = None,
) -> str:
    """``{"ts": ..., "level": ..., "logger": ..., "event": ..., **fields}`` on one line."""
    if fields and not _HEAD_KEYS.isdisjoint(fields):  # a field replaces a head key in place
        level = _LEVEL_NAMES.get(levelno) or logging.getLevelName(levelno).lower()
        out: dict[str, Any] = {
            "ts": round(created, 3), "level": level, "logger": name, "event": event, **fields,
        }  # fmt: skip
        if exception is not None:
            out["exception"] = exception
        if "ts" in fields:
            return _encode(out)  # type: ignore[no-any-return]
        del out["ts"]  # written as every other line writes it: 3 decimals ("1.500", not 1.5)
        return f'{{"ts": {created:.3f}, {_encode(out)[1:]}'
    middle = _MIDDLES.get((levelno, name))
    if middle is None:
        middle = _middle(levelno, name)
    # ts with 3 decimals, correctly rounded as round(created, 3) is (a tie like x.0005 is
    # decided by the float's exact value; int(created * 1000 + 0.5) got some of them wrong)
    parts = ['{"ts": ', f"{created:.3f}", middle, _value(event)]
    if fields:
        for key, value in fields.items():
            parts.append(_KEYS.get(key) or _key(key))
            parts.append(_quote(value) if type(value) is str else _value(value))
    if exception is not None:
        parts += (', "exception": ', _quote(exception))
    parts.append("}")
    return "".join(parts)


# The constant pieces of a line, spelled once: ', "level": "info", "logger": "ztp.gateway",
# "event": ' per level and logger, ', "identity": ' per field name (both sets are small).
_MIDDLES: dict[tuple[int, str], str] = {}
_KEYS: dict[str, str] = {}


def _middle(levelno: int, name: str) -> str:
    level = _LEVEL_NAMES.get(levelno) or logging.getLevelName(levelno).lower()
    middle = f', "level": {_quote(level)}, "logger": {_quote(name)}, "event": '
    if len(_MIDDLES) < 64:
        _MIDDLES[(levelno, name)] = middle
    return middle


def _key(key: str) -> str:
    text = f", {_quote(key)}: "
    if len(_KEYS) < 256:
        _KEYS[key] = text
    return text


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "event": ..., **fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        return json_line(
            record.created,
            record.levelno,
            record.name,
            getattr(record, "event", None) or record.getMessage(),
            fields if isinstance(fields, dict) else None,
            exc,
        )


class JsonLinesHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """JSON lines (:class:`JsonFormatter`) to ``stream``, written in batches.

    A line is written at most ``flush_interval_s`` after it was logged (a timer on the running
    event loop), at once when it is a warning or worse, when ``max_lines`` wait, when it is
    logged outside an event loop, and on :meth:`flush` / :meth:`close` (``logging.shutdown``
    calls both at exit, :func:`flush_logs` too): one write for many lines under load instead
    of one per line, and nothing lost at a clean stop.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        flush_interval_s: float = 0.05,
        max_lines: int = 256,
    ) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self.flush_interval_s = flush_interval_s
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # a flush is due on it
        self._timer_thread = 0  # the thread running that loop

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add_line(self.format(record), record.levelno)
        except Exception:
            self.handleError(record)

    def add_line(self, line: str, levelno: int) -> None:
        """Queue one formatted line (see the class docstring for when it is written)."""
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            if levelno >= logging.WARNING or len(self._lines) >= self.max_lines:
                self.flush()
                return
            timer_loop = self._timer_loop
            if (
                timer_loop is not None
                and self._timer_thread == threading.get_ident()
                and timer_loop.is_running()
            ):
                # a flush is due on the loop running in this thread: the common case, found
                # without get_running_loop() (a getpid system call per line on CPython 3.11)
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop in this thread: nothing would flush it later
                self.flush()
                return
            if self._timer_loop is loop:
                return  # a flush is due already
            if self._timer_loop is not None:  # due on another (maybe closed) loop
                self.flush()
                return
            self._timer_loop = loop
            self._timer_thread = threading.get_ident()
            loop.call_later(self.flush_interval_s, self._flush_due, loop)

    def _flush_due(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._timer_loop is loop:
                self._timer_loop = None
            try:
                self.flush()
            except OSError:  # the stream is gone (a closed pipe): nobody is left to tell
                pass

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._lines = self._lines, []
            self._timer_loop = None
            stream = self.stream
            if stream is None:
                return
            if lines:
                lines.append("")
                stream.write(self.terminator.join(lines))
            if hasattr(stream, "flush"):
                stream.flush()


def flush_logs() -> None:
    """Write what the ``ztp`` loggers' handlers hold (a clean stop calls this)."""
    for name in ("ztp.gateway", "ztp"):
        for handler in logging.getLogger(name).handlers:
            handler.flush()


def _direct_handler(level: int) -> JsonLinesHandler | None:
    """The :class:`JsonLinesHandler` that alone gets a ``ztp.gateway`` record of ``level``,
    when nothing else could see or change it on the way (no handler or filter on
    ``ztp.gateway``, one handler on ``ztp``, which does not propagate), else None."""
    if logger.handlers or logger.filters or not logger.propagate:
        return None
    parent = logger.parent
    if parent is None or parent.name != "ztp" or parent.propagate or parent.filters:
        return None
    handlers = parent.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if (
        type(handler) is not JsonLinesHandler
        or handler.filters
        or type(handler.formatter) is not JsonFormatter
        or level < handler.level
    ):
        return None
    return handler


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` (values must be JSON-able and free of secrets)."""
    if logger.isEnabledFor(level):
        handler = _direct_handler(level)
        if handler is not None:  # the same line, without a LogRecord and the handler chain
            try:
                handler.add_line(json_line(time.time(), level, logger.name, event, fields), level)
                return
            except Exception:  # noqa: S110 - the record path reports it (handleError)
                pass
        # makeRecord + handle is what logger.log does, minus findCaller: walking the stack for
        # a file and line the JSON lines never show was about a third of a line's cost
        record = logger.makeRecord(
            logger.name, level, "(ztp.gateway)", 0, event, (), None,
            extra={"event": event, "fields": fields},
        )  # fmt: skip
        logger.handle(record)
