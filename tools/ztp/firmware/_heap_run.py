"""One power-up of the board in the heap run: the 32-bit unix MicroPython running ztp_powerup
with the board's heap plus the doubles' credit, its modem UART on a virtual modem's pty, its
flash a host image file, until the firmware logs that the configuration is confirmed.

Contract with the firmware (lib/ztpmain.py): log lines on stdout start "ztp: "; a run passes
when "ztp: configuration confirmed" appears together with every line the path expects, and
nothing failed before: no "MemoryError", no "Traceback", no "provisioning stopped by" (ztpmain
catches any exception of the provisioning, MemoryError included, and carries on), no exit
(machine.reset(), the watchdog, an uncaught exception) and no timeout. The doubles' lines on
stderr start "machine-double: " (credit=, the state before the first modem byte, probes).

Environment given to the run (the doubles read it, firmware/host/machine.py and samd.py):
ZTP_UART_PTY, ZTP_FLASH_IMAGE, ZTP_FLASH_BLOCKS, ZTP_UNIQUE_ID, ZTP_VBAT_MV, ZTP_HEAP_PROBE.

A path that goes on past the confirmation (issue 17: the run right after it, which reports
"confirmed") names the line to stop at (`stop_at`); it must come after the confirmation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CONFIRMED = "ztp: configuration confirmed"
FAILURE_MARKS = ("MemoryError", "Traceback", "provisioning stopped by")
EXIT_RESET = 70  # firmware/host/machine.py _EXIT_RESET
EXIT_WDT = 71
GC_BLOCK = 16
_CREDIT_RE = re.compile(r"machine-double: credit=(\d+)")
_PROBE_RE = re.compile(r"machine-double: probe (\w+) alloc=(\d+)")
_WIRE = "machine-double: wire "  # a pin wired to the modem changed: "rts=1", "resetn=0"
_FIRST_BYTE = "machine-double: before first modem byte:"
_EXC_RE = re.compile(r"^[A-Z]\w*(Error|Exception|Exit|Interrupt)\b")


@dataclass
class RunResult:
    """One power-up. `heap`: the board's heap the run stands for; `heapsize`: what the
    interpreter got (heap + credit); `credit`: the doubles' cost this run measured.
    `ok` with `reason` "" or the failure ("MemoryError", "timeout after 40 s", "exit 71 (WDT
    reset)", "missing 'ztp: result OK'"). `log`: the firmware's "ztp:" lines; `tail`: the
    last lines of all output. `probe`: {"boot": .., "first_call": .., "first_modem_byte":
    .., "max": ..} live heap (probe runs only, doubles' credit included)."""

    heap: int
    heapsize: int
    credit: int = -1
    ok: bool = False
    reason: str = ""
    log: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    first_byte: str = ""
    exit_code: int | None = None
    elapsed_s: float = 0.0
    probe: dict[str, int] = field(default_factory=dict)
    reset_pulses: int = 0  # GSM_RESETN pulses the modem took as a reset during the run
    wires: list[str] = field(default_factory=list)  # "rts=1", "resetn=0", ... in order


def gc_blocks(n: int) -> int:
    """n rounded up to whole 16-byte GC blocks."""
    return -(-n // GC_BLOCK) * GC_BLOCK


def pty_raw_nonblocking(pty: str) -> None:
    """VMIN=0 VTIME=0 on the pty (a read returns what is there, 0 bytes if nothing: the
    double polls it) and both queues flushed (no bytes left from an earlier run)."""
    fd = os.open(pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
        attrs[6][termios.VMIN] = 0
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        termios.tcflush(fd, termios.TCIOFLUSH)
    finally:
        os.close(fd)


async def power_up(micropython: Path, *, image: Path, blocks: int, heapsize: int, pty: str,
                   unique_id: bytes, expect: tuple[str, ...] = (), timeout_s: float = 40.0,
                   probe: bool = False, vbat_mv: int = 3900, heap: int = 0,
                   stop_at_confirmed: bool = True, stop_at: str | None = None,
                   wire: Callable[[str, bool], None] | None = None) -> RunResult:
    """Power the board up once (see the module doc) and wait for the outcome.

    Args:
        micropython: the heap run's binary (build_host()).
        image, blocks: the board's flash file system (make_fs()); changed by the run.
        heapsize: -X heapsize (the board's heap + the credit); heap: the board figure it
            stands for (recorded only).
        pty: the modem's pseudo-terminal (set raw and flushed here).
        expect: log substrings the path needs besides CONFIRMED.
        probe: ZTP_HEAP_PROBE=1 (collects at each machine call: not for the search).
        stop_at: stop at the first line starting with this after the confirmation (not at
            the confirmation); the run fails without it.
        wire: wire(name, high) for each change of a pin wired to the modem ("rts": asserted,
            "resetn": high = modem held in reset), as the double reports it.

    Returns:
        The RunResult; never raises for a failing firmware.
    """
    pty_raw_nonblocking(pty)
    env = {**os.environ, "ZTP_UART_PTY": pty, "ZTP_FLASH_IMAGE": str(image),
           "ZTP_FLASH_BLOCKS": str(blocks), "ZTP_UNIQUE_ID": unique_id.hex(),
           "ZTP_VBAT_MV": str(vbat_mv), "ZTP_HEAP_PROBE": "1" if probe else "0"}
    env.pop("MICROPYPATH", None)
    res = RunResult(heap=heap, heapsize=heapsize)
    tail: collections.deque[str] = collections.deque(maxlen=40)
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(micropython), "-X", f"heapsize={heapsize}", "-m", "ztp_powerup",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    done = asyncio.Event()
    failed: list[str] = []
    seen: set[str] = set()

    def line_in(text: str) -> None:
        tail.append(text)
        if text.startswith("ztp: "):
            res.log.append(text)
        m = _CREDIT_RE.match(text)
        if m:
            res.credit = int(m.group(1))
        m = _PROBE_RE.match(text)
        if m:
            key = m.group(1)
            v = int(m.group(2))
            res.probe[key] = max(v, res.probe.get(key, 0)) if key == "max" else v
        if text.startswith(_FIRST_BYTE):
            res.first_byte = text
        if text.startswith(_WIRE):
            res.wires.append(text[len(_WIRE):])
            if wire is not None:
                name, _, v = text[len(_WIRE):].partition("=")
                wire(name, v == "1")
        for mark in FAILURE_MARKS:
            if mark in text and not failed:
                failed.append(mark)
                done.set()  # cannot pass any more: stop (a traceback gets a moment below)
        for e in expect:
            if e in text:
                seen.add(e)
        if stop_at is not None:
            if text.startswith(stop_at) and any(t.startswith(CONFIRMED) for t in res.log):
                seen.add(stop_at)
                done.set()
        elif text.startswith(CONFIRMED) and stop_at_confirmed:
            done.set()

    async def pump(stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line_in(raw.decode(errors="replace").rstrip("\r\n"))

    readers = asyncio.gather(pump(proc.stdout), pump(proc.stderr))
    waiter = asyncio.ensure_future(proc.wait())
    stopper = asyncio.ensure_future(done.wait())
    try:
        await asyncio.wait({waiter, stopper}, timeout=timeout_s,
                           return_when=asyncio.FIRST_COMPLETED)
        timed_out = not waiter.done() and not stopper.done()
        if failed and not waiter.done():
            # a traceback is still being printed: give it a moment to end on its own
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), 1.0)
    finally:
        stopper.cancel()
        if proc.returncode is None:
            proc.kill()
        res.exit_code = await proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(readers, 5.0)
    res.elapsed_s = round(time.monotonic() - t0, 2)
    res.tail = list(tail)
    confirmed = any(t.startswith(CONFIRMED) for t in res.log)
    if failed:
        res.reason = failed[0]
        if failed[0] == "Traceback":
            # the exception line ends the traceback ("MemoryError: ...", "OSError: 28")
            ends = [t for t in res.tail if _EXC_RE.match(t)]
            if ends:
                res.reason = ends[-1]
        elif failed[0] == "MemoryError":
            lines = [t for t in res.tail if "MemoryError" in t]
            res.reason = lines[0] if lines else failed[0]
    elif confirmed:
        missing = [e for e in (*expect, *((stop_at,) if stop_at else ())) if e not in seen]
        res.reason = f"missing {missing[0]!r}" if missing else ""
    elif timed_out:
        res.reason = f"timeout after {timeout_s:g} s"
    else:
        code = res.exit_code
        what = {EXIT_RESET: "machine.reset()", EXIT_WDT: "WDT reset"}.get(code or 0, "")
        res.reason = f"exit {code}" + (f" ({what})" if what else "") + " before confirmation"
    res.ok = res.reason == ""
    return res
