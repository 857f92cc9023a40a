"""The demo's stack: ``ztp.stack.Stack`` (service + gateway + virtual modem + virtual SIM on
loopback) plus the device: the firmware's own lib/ driving the modem through pyserial on the
modem's pseudo-terminal.

    async with Stack(StackOptions()) as stack:
        outcome = await stack.provision()      # the firmware's result code, config, transcript
        await stack.stop_gateway(); ...; await stack.start_gateway()

The firmware's AT lines and log lines land in ``stack.events`` with the modem's and the
gateway's (source "device", kinds "at" and "log").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from ztp.sim import ExchangeRecord
from ztp.stack import Event, StackError
from ztp.stack import Stack as _RunningStack

__all__ = ["Outcome", "Stack"]


@dataclass(frozen=True)
class Outcome:
    """One firmware run.

    Attributes:
        code: the firmware's result code (0 applied, 1 unchanged, else provision.E_*).
        name: its name ("OK", "UNCHANGED", "E_REQUEST_FAILED", ...); detail: the reason.
        config: the configuration in force on the device afterwards (config.json), or None.
        exchanges: the TLS connections the SIM made during this run.
        at_sent: every byte the firmware wrote to the modem, in order.
        events: the events of this run.
        elapsed_s: wall time of the run.
    """

    code: int
    name: str
    detail: str
    config: bytes | None
    exchanges: tuple[ExchangeRecord, ...]
    at_sent: bytes
    events: tuple[Event, ...]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.code in (0, 1)


class Stack(_RunningStack):
    """``ztp.stack.Stack`` with the device side: ``provision()`` runs the firmware's lib/ on
    the modem's pty (needs ``with_modem``, the default)."""

    @property
    def config_dir(self) -> Path:
        return self.data_dir / "device"

    async def provision(
        self,
        *,
        config_dir: Path | None = None,
        attempts: int = 3,
        poll_deadline_ms: int = 60_000,
        reg_deadline_ms: int = 30_000,
        baud: int = 115200,
        label: str | None = None,
        poll_first_ms: int | None = None,
        poll_max_ms: int | None = None,
        reports: bool = False,
    ) -> Outcome:
        """Run the firmware's lib/ once against the modem (pyserial on the pty), in a thread.

        ``poll_first_ms``/``poll_max_ms`` override the firmware's status poll schedule (None:
        its default), for the provisioning benchmark. ``reports``: the firmware keeps its
        configuration report (config_dir/report.json) and sends it before the next fetch, as
        the board does; a run carries the report of the run before it.

        Returns the firmware's outcome; never raises for a failed provisioning (``code``
        says it). Raises StackError if the pty cannot be opened.
        """
        import serial

        from ztp.device import SerialUart, load_firmware, run_provisioning

        provision_mod = load_firmware()["provision"]
        cdir = config_dir or self.config_dir
        first = len(self.events)
        n_exchanges = len(self.sim.exchanges)
        sent = bytearray()

        def at_hook(direction: str, line: bytes) -> None:
            self.emit("device", "at", dir=direction, line=bytes(line))

        def on_log(text: str) -> None:
            self.emit("device", "log", text=text)

        def run() -> tuple[int, str]:
            try:
                ser = serial.Serial(self.pty, baudrate=baud, timeout=0.02)
            except serial.SerialException as err:
                raise StackError(f"cannot open {self.pty}: {err}") from err

            class _Recording(SerialUart):
                def write(self, data: bytes | memoryview) -> int:
                    sent.extend(bytes(data))
                    return super().write(data)

            try:
                return run_provisioning(_Recording(ser), self.options.device_id, cdir,
                                        attempts=attempts, poll_deadline_ms=poll_deadline_ms,
                                        reg_deadline_ms=reg_deadline_ms, log=on_log,
                                        at_hook=at_hook, poll_first_ms=poll_first_ms,
                                        poll_max_ms=poll_max_ms, reports=reports)
            finally:
                ser.close()

        self.step(label or f"firmware lib/ provisioning through pyserial on {self.pty}")
        t0 = time.monotonic()
        code, detail = await asyncio.to_thread(run)
        elapsed = time.monotonic() - t0
        cfg_file = cdir / "config.json"
        config = cfg_file.read_bytes() if cfg_file.exists() else None
        name = provision_mod.result_name(code)
        self.emit("stack", "provisioned", code=code, name=name, detail=detail)
        with self._lock:
            events = tuple(self.events[first:])
        return Outcome(code, name, detail, config, tuple(self.sim.exchanges[n_exchanges:]),
                       bytes(sent), events, elapsed)
