"""The virtual SARA-U201 modem: asyncio driver around the AT core and the SIM Toolkit terminal.

Thin adapter (STYLE §2): it owns the clock, the tasks and the power state, and drains the two
sans-I/O cores (``_at.AtCore``, ``_terminal.ToolkitTerminal``) into its I/O parts: the host's
UART (``_host_link.HostLink``: pty/TCP, pacing, byte faults), the card
(``_card_port.CardPort``: serialized APDUs with the card's time, SMS-PP download) and the
network side of the SIM's BIP channels (``_bearer.BearerSockets``). Fault knobs and the
latency model are ``_faults``.

Hardware lines: the DTE's RTS (``set_rts``) goes to the AT core, which holds its output while
flow control is on and RTS is off; GSM_RESETN (``set_reset_line``) goes to ``ResetLine``
(``_reset``), whose actions this driver carries out (silence, reset, boot). Both may be called
from another thread (the firmware under test runs in one): they are handed to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ztp.modem._at import NEED_DATA, AtCore, CardCommand, RebootRequest
from ztp.modem._at_state import ModemIdentity
from ztp.modem._bearer import BearerSockets
from ztp.modem._card_port import Card, CardPort
from ztp.modem._cme import CmeError
from ztp.modem._faults import Faults, LatencyModel, UartLine, network_conditions
from ztp.modem._habits import Habits
from ztp.modem._host_link import HostLink
from ztp.modem._network import Network
from ztp.modem._reset import ResetAction, ResetLine, ResetPulse
from ztp.modem._runtime import ModemLoop
from ztp.modem._terminal import CloseLink, OpenLink, SendLink, ToolkitTerminal

__all__ = ["VirtualModem"]

log = logging.getLogger(__name__)

Observer = Callable[[str, dict[str, Any]], None]


class VirtualModem:
    """A SARA-U201 with a SIM, reachable over a pseudo-terminal or TCP.

    Args:
        sim: the card: ``reset() -> ATR``, ``transmit(apdu, now_ms) -> response + SW`` and
            optionally ``cost_model`` (time per APDU, see ``CardPort.card_time_s``).
        network: the virtual network (DNS server); started by ``start``.
        latency: see ``LatencyModel``; faults: see ``Faults``.
        identity: IMEI and identification strings; greeting: DS +CSGT text sent after boot.
        apply_card_cost: sleep the SIM's cost-model time after each APDU.
        habits: real-module habits (``Habits``): RTS at start, command pacing, RESET_N
            minimum pulse, UICC access commands and filters.

    Observers (``modem.observers.append(fn)``) get ``fn(kind, info)`` for "at_rx", "at_tx"
    (bytes on the UART), "apdu" (command, response, source "host"/"toolkit"/"modem"), "link"
    (BIP socket events), "boot", "rts" (asserted) and "reset_line" (high, actions).
    """

    def __init__(
        self,
        sim: Card,
        network: Network | None = None,
        latency: LatencyModel | None = None,
        faults: Faults | None = None,
        *,
        identity: ModemIdentity | None = None,
        greeting: str | None = None,
        apply_card_cost: bool = True,
        habits: Habits | None = None,
    ) -> None:
        self.habits = habits or Habits()
        self._reset_line = ResetLine(self.habits.min_reset_pulse_ms)
        self.network = network or Network()
        self.latency = latency or LatencyModel()
        self.faults = faults or Faults()
        self.identity = identity or ModemIdentity()
        self.greeting = greeting
        self.observers: list[Observer] = []
        self._rt = ModemLoop()
        self._core: AtCore | None = None
        self._toolkit = ToolkitTerminal(bearer_available=self._bearer_up)
        self._wake = asyncio.Event()
        self._card = CardPort(sim, self._toolkit, now_ms=self.now_ms, notify=self._notify,
                              wake=self._wake.set, apply_card_cost=apply_card_cost)
        self._uart = UartLine(self.faults.uart_drop_rate, self.faults.uart_garble_rate,
                              random.Random(self.faults.seed))
        self._host = HostLink(self._uart, byte_time_s=self._byte_time_s, clock=self._rt.clock,
                              notify=self._notify)
        self._bearer = BearerSockets(
            self._toolkit, self.network, generation=lambda: self._generation,
            clock=self._rt.clock, rtt_ms=lambda: self.latency.network_rtt_ms,
            refuses=lambda host, port: self.faults.refuses(host, port),
            spawn=self._rt.spawn, wake=self._wake.set, notify=self._notify)
        self._generation = 0
        self.reboots = 0

    @property
    def sim(self) -> Card:
        """The card (``reset``, ``transmit``; see the class docstring)."""
        return self._card.sim

    @property
    def apply_card_cost(self) -> bool:
        return self._card.apply_card_cost

    @apply_card_cost.setter
    def apply_card_cost(self, value: bool) -> None:
        self._card.apply_card_cost = value

    # ------------------------------------------------------------------ lifecycle
    def now_ms(self) -> int:
        """Milliseconds since ``start``."""
        return self._rt.now_ms()

    async def start(self) -> None:
        """Start the network and power the modem up (idempotent)."""
        if self._rt.loop is not None:
            return
        self._rt.bind(asyncio.get_running_loop())
        await self.network.start()
        self._toolkit.dns_servers = (self.network.dns_address,)
        self._core = AtCore(0, identity=self.identity,
                            network=network_conditions(self.faults, self.latency),
                            greeting=self.greeting, habits=self.habits)
        self._core.sim_busy_commands = self.faults.sim_busy_commands
        await self._power_up(self.latency.boot_ms)
        for coro in (self._host_loop(), self._toolkit_loop(), self._host.run()):
            self._rt.spawn(coro)

    async def close(self) -> None:
        """Stop everything: transports, links, tasks, the network's DNS server."""
        self._host.stop_servers()
        self._bearer.close_all()
        await self._rt.cancel_all()
        self._host.close_pty(self._rt.loop)
        await self.network.close()

    async def __aenter__(self) -> VirtualModem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _notify(self, kind: str, **info: Any) -> None:
        for fn in self.observers:
            try:
                fn(kind, info)
            except Exception:  # an observer must not break the modem
                log.exception("modem: observer failed")

    async def _power_up(self, boot_ms: int = 0) -> None:
        """Boot: (re)initialise the card; the AT core was (re)created by the caller.
        The UART is deaf for ``boot_ms`` (``LatencyModel.boot_ms`` at power-up, ``reboot_ms``
        after a reboot)."""
        self._host.deaf_until = self._rt.clock() + boot_ms / 1000
        core = self.core
        card = await self._card.power_up(lambda: self._reset_line.in_reset)
        if card is None:
            return  # GSM_RESETN went high again meanwhile: the next release boots
        core.sim_present = card[0]
        if not core.sim_present:
            return
        core.iccid = card[1]
        self._flush_core()
        self._wake.set()

    async def reboot(self) -> None:
        """Reboot the modem (fault knob, or AT+CFUN=15/16): channels closed, SIM reset,
        settings back to defaults, UART deaf for ``LatencyModel.reboot_ms``, then the SIM busy
        for ``sim_init_ms`` and registration redone from searching, greeting (if any) sent."""
        log.info("modem: reboot")
        self._go_down()
        await self._boot()

    def _go_down(self) -> None:
        """Everything running stops: SIM Toolkit links, the answer to a pending APDU, input."""
        self._generation += 1
        self._toolkit.stop()
        self._run_toolkit_actions()
        self._host.drop_input()

    async def _boot(self) -> None:
        self.reboots += 1
        assert self._core is not None
        now = self.now_ms()
        boot_ms = self.latency.reboot_ms
        core = self._core
        core.reboot(now)
        core.sim_busy_commands = self.faults.sim_busy_commands
        # the radio and the SIM start once the modem has booted (SARA-U2 SIM 1.6.1)
        core.radio_on(now + boot_ms)
        core.sim_ready_at_ms = now + boot_ms + self.latency.sim_init_ms
        await self._power_up(boot_ms)

    # ------------------------------------------------------------------ hardware lines
    @property
    def rts(self) -> bool:
        """The DTE's RTS line as the modem sees it (True: ON)."""
        return self.core.rts

    def set_rts(self, asserted: bool) -> None:
        """The DTE drives RTS ON (True, the LOW level on the SARA's 1.8 V UART) or OFF.

        With flow control on (&K3, the default) the modem holds its output while RTS is
        OFF and sends it when RTS comes ON; AT&K0 makes it send regardless. A pty/TCP host
        has no RTS wire: the line keeps ``Habits.rts_asserted`` until this is called.
        Callable from any thread.
        """
        self._rt.call(self._apply_rts, asserted)

    def _apply_rts(self, asserted: bool, now_ms: int) -> None:
        self._notify("rts", asserted=asserted)
        self.core.set_rts(asserted, now_ms)
        self._flush_core()

    @property
    def reset_pulses(self) -> list[ResetPulse]:
        """Every completed high pulse on GSM_RESETN: start, length, whether it reset."""
        return list(self._reset_line.pulses)

    @property
    def reset_line_high(self) -> bool:
        return self._reset_line.high

    def set_reset_line(self, high: bool) -> None:
        """The MCU drives GSM_RESETN (True: high = the SARA's RESET_N low = held in reset).

        While high the modem is deaf and silent; held ``Habits.min_reset_pulse_ms`` (SARA-U2
        data sheet: 50 ms) it resets (SIM Toolkit links dropped, logical channels and AT
        state lost); released after that it boots as ``reboot()`` does (``reboot_ms``, the
        greeting). A shorter pulse is ignored. Callable from any thread.
        """
        self._rt.call(self._apply_reset_line, high)

    def _apply_reset_line(self, high: bool, now_ms: int) -> None:
        actions = self._reset_line.set(high, now_ms)
        self._notify("reset_line", high=high, actions=[a.value for a in actions])
        self._reset_actions(actions)
        self._wake.set()  # the toolkit loop watches the reset deadline

    def _reset_actions(self, actions: list[ResetAction]) -> None:
        for action in actions:
            log.info("modem: GSM_RESETN: %s", action.value)
            if action is ResetAction.HOLD:
                self._host.silent = True
                self._drop_host_output()
            elif action is ResetAction.RESET:
                self._go_down()
            elif action is ResetAction.RESUME:
                self._host.silent = False
            elif action is ResetAction.BOOT:
                self._host.silent = False
                self._rt.spawn(self._boot())

    def _drop_host_output(self) -> None:
        if self._core is not None:
            self._core.data_to_send()
        self._host.drop_pending()

    def set_habits(self, habits: Habits) -> None:
        """Change the habits now. ``rts_asserted`` only sets the line at start: use
        ``set_rts`` to move it."""
        self.habits = habits
        self._reset_line.min_pulse_ms = habits.min_reset_pulse_ms
        if self._core is not None:
            self._core.set_habits(habits)

    def update_habits(self, **changes: Any) -> None:
        """``set_habits(replace(self.habits, **changes))``."""
        self.set_habits(replace(self.habits, **changes))

    def set_faults(self, faults: Faults) -> None:
        """Change the fault knobs now (registration changes restart the registration)."""
        old, self.faults = self.faults, faults
        self._uart.drop_rate = faults.uart_drop_rate
        self._uart.garble_rate = faults.uart_garble_rate
        if self._core is None:
            return
        if faults.sim_busy_commands != old.sim_busy_commands:
            self._core.sim_busy_commands = faults.sim_busy_commands
        if (faults.registration, faults.data_only) != (old.registration, old.data_only):
            self._core.set_network(network_conditions(faults, self.latency), self.now_ms())
            self._check_bearer()
            self._flush_core()
        self._wake.set()

    def update_faults(self, **changes: Any) -> None:
        """``set_faults(replace(self.faults, **changes))``."""
        self.set_faults(replace(self.faults, **changes))

    def inject_uart_bytes(self, data: bytes) -> None:
        """Send raw bytes to the host (line noise, a garbled reply)."""
        self._host.send(data)

    @property
    def core(self) -> AtCore:
        assert self._core is not None, "modem not started"
        return self._core

    @property
    def toolkit(self) -> ToolkitTerminal:
        return self._toolkit

    def _bearer_up(self) -> bool:
        return self._core is not None and self._core.packet_attached

    def _check_bearer(self) -> None:
        if not self._bearer_up() and self._bearer.open_channels:
            self._toolkit.drop_all_links()
            self._run_toolkit_actions()

    # ------------------------------------------------------------------ card
    async def transmit(self, apdu: bytes, source: str = "host") -> bytes:
        """Send one APDU to the card, serialized with the toolkit's own APDUs."""
        return await self._card.transmit(apdu, source)

    async def sms_pp_download(self, envelope: bytes, timeout_s: float = 30.0) -> bytes:
        """Deliver an SMS-PP DOWNLOAD ENVELOPE to the card: ``CardPort.sms_pp_download``."""
        assert self._rt.loop is not None, "modem not started"
        return await self._card.sms_pp_download(envelope, timeout_s)

    # ------------------------------------------------------------------ host side (AT)
    def _flush_core(self) -> None:
        if self._core is None:
            return
        data = self._core.data_to_send()
        if data and not self._host.silent:
            self._host.send(data)

    def _byte_time_s(self) -> float:
        baud = self._core.ipr if self._core is not None and self._core.ipr else \
            self.latency.uart_baud
        return 10.0 / baud if baud else 0.0

    def feed(self, data: bytes) -> None:
        """Bytes from the host (the transports call this; ignored in reset or booting)."""
        self._host.feed(data)

    async def _host_loop(self) -> None:
        while True:
            data = await self._host.next_input()
            self.core.receive_data(data, self.now_ms())
            await self._run_core()

    async def _run_core(self) -> None:
        core = self.core
        while True:
            gen = self._generation
            event = core.next_event()
            self._flush_core()
            if event is NEED_DATA:
                return
            if isinstance(event, CardCommand):
                try:
                    response = await self.transmit(event.apdu, "host")
                except Exception as err:  # the card crashed: report SIM failure, keep going
                    log.exception("modem: card failed on %s", event.apdu.hex())
                    if gen == self._generation:
                        core.card_failed(CmeError.SIM_FAILURE, self.now_ms())
                    del err
                    continue
                if gen != self._generation:
                    return  # rebooted meanwhile: the answer is lost, as on a real modem
                core.card_answered(response, self.now_ms())
            elif isinstance(event, RebootRequest):
                self._flush_core()
                await self._host.drained()
                await self.reboot()
                return

    # ------------------------------------------------------------------ toolkit side
    async def _toolkit_loop(self) -> None:
        while True:
            now = self.now_ms()
            core = self.core
            self._reset_actions(self._reset_line.handle_timer(now))
            attached = core.packet_attached
            core.handle_timer(now)
            self._flush_core()
            if attached and not core.packet_attached:
                self._check_bearer()
            self._toolkit.handle_timer(now)
            self._run_toolkit_actions()
            async with self._card.lock:
                apdu = self._toolkit.pending_apdu()
                if apdu is not None:
                    gen = self._generation
                    try:
                        response = await self._card.exchange(apdu, "toolkit")
                    except Exception:
                        log.exception("modem: card failed on toolkit APDU %s", apdu.hex())
                        response = b"\x6f\x00"
                    if gen == self._generation:
                        self._toolkit.card_response(response, self.now_ms())
            self._run_toolkit_actions()
            if apdu is not None:
                await asyncio.sleep(0)
                continue
            deadlines = [d for d in (core.timer(), self._toolkit.timer(),
                                     self._reset_line.timer()) if d is not None]
            timeout = max(0.0, (min(deadlines) - self.now_ms()) / 1000) if deadlines else None
            self._wake.clear()
            if self._toolkit.has_pending_apdu():
                continue
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns the finished wait when
            # close() cancels this loop just after a wake (CPython gh-86296), and the loop
            # then sleeps to its next deadline (the applet's 60 s timer) with close() waiting
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _run_toolkit_actions(self) -> None:
        while True:
            action = self._toolkit.next_event()
            if isinstance(action, OpenLink):
                self._rt.spawn(self._bearer.open(action, self._generation))
            elif isinstance(action, SendLink):
                self._bearer.send(action)
            elif isinstance(action, CloseLink):
                self._bearer.close(action.channel)
            else:
                return

    # ------------------------------------------------------------------ exposure
    async def serve_pty(self) -> str:
        """Expose the UART on a new pseudo-terminal (raw mode); returns the slave path."""
        await self.start()
        return self._host.serve_pty()

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Expose the UART on TCP (one client at a time; a new client takes over).

        Returns the bound (host, port); pyserial opens ``socket://host:port``.
        """
        await self.start()
        return await self._host.serve_tcp(host, port)
