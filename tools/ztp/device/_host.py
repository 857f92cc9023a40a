"""Drive the firmware's own lib/ modules from a PC: a pyserial UART and a wall clock."""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ztp.device._mpy import LIB, TESTS

STUB = TESTS / "stub"


def load_firmware() -> dict[str, types.ModuleType]:
    """Import lib/ (with a `micropython.const` shim when not on MicroPython)."""
    if "micropython" not in sys.modules:
        shim = types.ModuleType("micropython")
        shim.const = lambda x: x  # type: ignore[attr-defined]
        sys.modules["micropython"] = shim
    if str(LIB) not in sys.path:
        sys.path.insert(0, str(LIB))
    import importlib

    return {n: importlib.import_module(n) for n in ("apply", "fs", "modem", "provision")}


class SerialUart:
    """machine.UART-like (any/readinto/write) over a pyserial port or URL."""

    def __init__(self, ser: Any) -> None:
        self.ser = ser
        self._buf = bytearray()

    def any(self) -> int:
        if not self._buf:
            waiting = getattr(self.ser, "in_waiting", 0) or 0
            self._buf += self.ser.read(max(1, waiting))   # blocks up to ser.timeout
        return len(self._buf)

    def readinto(self, buf: bytearray, n: int = -1) -> int:
        if n < 0:
            n = len(buf)
        n = min(n, len(self._buf))
        buf[0:n] = self._buf[0:n]
        del self._buf[0:n]
        return n

    def write(self, data: bytes | memoryview) -> int:
        b = bytes(data)
        self.ser.write(b)
        self.ser.flush()
        return len(b)


class HostClock:
    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def ticks_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000) & 0x3FFFFFFF

    def sleep_ms(self, ms: int) -> None:
        time.sleep(ms / 1000)


def run_provisioning(
    uart: Any,
    device_id: bytes,
    config_dir: Path,
    *,
    poll_deadline_ms: int = 120000,
    reg_deadline_ms: int = 60000,
    attempts: int = 3,
    log: Callable[[str], None] | None = None,
    at_hook: Callable[[str, bytes], None] | None = None,
    clock: Any = None,
    poll_first_ms: int | None = None,
    poll_max_ms: int | None = None,
    reports: bool = False,
) -> tuple[int, str]:
    """One provisioning with the firmware's own modules.

    Args:
        uart: any/readinto/write object (SerialUart, or a test double).
        device_id: raw DeviceID bytes.
        config_dir: where config.json / config.prev / channel state live.
        log: called with each log line; at_hook: called with (">" | "<" | "!", line bytes).
        poll_first_ms, poll_max_ms: the status poll schedule (None: the firmware's default;
            the provisioning benchmark compares schedules).
        reports: keep the device's configuration report in config_dir/report.json and send it
            as SAFE2 telemetry before the next fetch, as the board does (lib/ztpmain.py;
            docs/device-report.md). Off by default: a run then sends no telemetry.
    Returns:
        (result code, detail); code 0 = applied, 1 = unchanged, else provision.E_*.
    """
    fw = load_firmware()
    config_dir.mkdir(parents=True, exist_ok=True)
    files = fw["fs"].OsFs()
    applier = fw["apply"].Applier(files, str(config_dir), log, reports=reports)

    def alarm(effect: str, commit: bool) -> None:
        if effect not in ("On", "Off"):
            raise ValueError(f"effect must be On or Off, got {effect}")
        if commit and log:
            log(f"iot:Alarm -> {effect}")

    def settings(values: dict, commit: bool) -> None:
        # the host's application takes a settings object and reports it (the firmware
        # rejects settings when no settings handler is registered)
        if commit and log:
            log("settings -> " + ", ".join(f"{k}={v!r}" for k, v in sorted(values.items())))

    applier.register("iot:Alarm", alarm)
    applier.settings_handler = settings
    link = fw["modem"].Link(uart, clock or HostClock(), at_hook=at_hook)
    prov = fw["provision"]
    opt = prov.Options(attempts=attempts, poll_deadline_ms=poll_deadline_ms,
                       reg_deadline_ms=reg_deadline_ms, backoff_ms=1000)
    if poll_first_ms is not None:
        opt.poll_first_ms = poll_first_ms
    if poll_max_ms is not None:
        opt.poll_max_ms = poll_max_ms
    import os

    p = prov.Provisioner(link, files, applier, device_id, str(config_dir / "channel"), opt,
                         os.urandom, log)
    code = p.run()
    return code, p.detail
