"""ztp.gateway._log: the JSON lines (same text as json.dumps) and their batched writes."""

import asyncio
import io
import json
import logging
import sys

import pytest
from ztp.gateway import JsonFormatter, JsonLinesHandler, flush_logs, log_event, setup_logging
from ztp.gateway._log import _direct_handler, json_line

FIELDS = {
    "identity": "98440552908136983\u00e9\"\\\n",
    "n": 3,
    "big": 10**30,
    "f": 0.25,
    "nan": float("nan"),
    "yes": True,
    "no": False,
    "none": None,
    "ids": ["a", "b"],
    "nested": {"k": [1, None]},
    "raw": b"\x00",  # not JSON: str(), as default=str did
}


def _reference(record: logging.LogRecord, fields: dict) -> str:
    """The line as the formatter wrote it before issue 14 (json with default=str)."""
    out = {
        "ts": round(record.created, 3),
        "level": record.levelname.lower(),
        "logger": record.name,
        "event": record.event,  # type: ignore[attr-defined]
    }
    out.update(fields)
    return json.dumps(out, default=str)


@pytest.mark.parametrize(
    "fields", [FIELDS, {}, {"ts": "x", "extra": 1}, {"event": "override"}, {"logger": None}]
)
def test_formatter_writes_what_json_dumps_writes(fields):
    record = logging.getLogger("ztp.gateway").makeRecord(
        "ztp.gateway", logging.WARNING, "(x)", 0, "some_event", (), None,
        extra={"event": "some_event", "fields": fields},
    )  # fmt: skip
    line = JsonFormatter().format(record)
    reference = _reference(record, fields)
    assert "\n" not in line
    if "ts" in fields:
        assert line == reference
        return
    # the same text, but ts with exactly 3 decimals (1.5 -> "1.500")
    ts = json.loads(line)["ts"]
    assert ts == round(record.created, 3)
    head = '{"ts": '
    assert line.startswith(head + f"{ts:.3f}, ")
    assert line[len(head) + len(f"{ts:.3f}") :] == reference[len(head) + len(repr(ts)) :]


def test_exception_name_and_plain_records():
    log = logging.getLogger("ztp.gateway")
    try:
        raise KeyError("secret-looking text")
    except KeyError:
        exc_info = sys.exc_info()
    record = log.makeRecord("ztp.gateway", logging.ERROR, "(x)", 0, "failed", (), exc_info)
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "failed" and line["exception"] == "KeyError"
    assert "secret-looking" not in JsonFormatter().format(record)
    plain = log.makeRecord("ztp.gateway", 25, "(x)", 0, "a %s", ("b",), None)
    assert json.loads(JsonFormatter().format(plain))["level"] == "level 25"
    assert json.loads(JsonFormatter().format(plain))["event"] == "a b"


def test_json_line_matches_the_formatter():
    assert json_line(12.34567, logging.INFO, "ztp.gateway", "e", {"a": 1}) == (
        '{"ts": 12.346, "level": "info", "logger": "ztp.gateway", "event": "e", "a": 1}'
    )
    assert json_line(1796697070.9996, logging.DEBUG, "x", None, None).startswith(
        '{"ts": 1796697071.000, "level": "debug", "logger": "x", "event": null'
    )


@pytest.fixture
def gateway_logs():
    """setup_logging as `ztp gateway` does, into a StringIO; restores the ztp logger."""
    root = logging.getLogger("ztp")
    saved = (root.handlers[:], root.level, root.propagate)
    setup_logging("info")
    handler = root.handlers[0]
    assert isinstance(handler, JsonLinesHandler)
    handler.setStream(io.StringIO())
    try:
        yield handler
    finally:
        root.handlers[:], root.level, root.propagate = saved


def only(handler: JsonLinesHandler) -> io.StringIO:
    """pytest hangs its capture handlers on non-propagating loggers (``ztp``) for the test's
    call: take them off, so the ``ztp`` logger is what ``ztp gateway`` runs with."""
    logging.getLogger("ztp").handlers[:] = [handler]
    assert _direct_handler(logging.INFO) is handler
    return handler.stream


def test_batched_in_a_loop_at_once_for_warnings_and_outside_a_loop(gateway_logs):
    out = only(gateway_logs)

    async def main():
        log_event(logging.INFO, "first", n=1)
        log_event(logging.DEBUG, "hidden")
        log_event(logging.INFO, "second", n=2)
        assert out.getvalue() == ""  # due within flush_interval_s, not written yet
        log_event(logging.WARNING, "bad", n=3)  # a warning writes all that waits, in order
        assert [json.loads(x)["event"] for x in out.getvalue().splitlines()] == [
            "first",
            "second",
            "bad",
        ]
        gateway_logs.flush_interval_s = 0.0
        log_event(logging.INFO, "third")
        for _ in range(3):
            await asyncio.sleep(0)  # the loop runs the due flush
        assert out.getvalue().splitlines()[-1].endswith('"event": "third"}')

    asyncio.run(main())
    log_event(logging.INFO, "no_loop")  # nothing would flush it later: written at once
    assert out.getvalue().splitlines()[-1].endswith('"event": "no_loop"}')


def test_nothing_lost_when_the_loop_ends_first(gateway_logs):
    out = only(gateway_logs)

    async def log_one(name):
        log_event(logging.INFO, name)

    asyncio.run(log_one("a"))  # the loop closed with the flush still due
    assert out.getvalue() == ""
    flush_logs()  # what a clean stop (and logging.shutdown at exit) does
    assert [json.loads(x)["event"] for x in out.getvalue().splitlines()] == ["a"]
    asyncio.run(log_one("b"))
    asyncio.run(log_one("c"))  # a line on another loop writes the stranded one (and itself)
    assert [json.loads(x)["event"] for x in out.getvalue().splitlines()] == ["a", "b", "c"]

    async def many():
        for i in range(gateway_logs.max_lines):
            log_event(logging.INFO, "n", i=i)

    asyncio.run(many())  # a full batch is written without waiting for the timer
    assert len(out.getvalue().splitlines()) == 3 + gateway_logs.max_lines


def test_record_path_when_something_else_listens(gateway_logs):
    """A filter (or another handler) on the way gets real LogRecords; the line is the same."""
    out = only(gateway_logs)
    seen = []
    log = logging.getLogger("ztp.gateway")

    def keep(record):
        seen.append(record)
        return True

    log.addFilter(keep)
    try:
        log_event(logging.INFO, "via_record", identity="98")
    finally:
        log.removeFilter(keep)
    log_event(logging.INFO, "direct", identity="98")
    assert [r.event for r in seen] == ["via_record"]
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["event"], x["identity"], x["level"]) for x in lines] == [
        ("via_record", "98", "info"),
        ("direct", "98", "info"),
    ]
    assert lines[0].keys() == lines[1].keys()


def test_setup_logging_again_writes_what_the_old_handler_held(gateway_logs):
    out = only(gateway_logs)

    async def main():
        log_event(logging.INFO, "pending")
        setup_logging("info")

    try:
        asyncio.run(main())
    finally:
        logging.getLogger("ztp").handlers[0].flush()
    assert out.getvalue().splitlines()[0].endswith('"event": "pending"}')
