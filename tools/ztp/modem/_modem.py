"""The virtual SARA-U201 modem: asyncio driver around the AT core and the SIM Toolkit terminal.

Thin adapter (STYLE §2): it owns the card lock, the clock, the sockets of the SIM's BIP channels
and the host transports (a pseudo-terminal and/or TCP); the behaviour lives in ``_at.AtCore``
and ``_terminal.ToolkitTerminal``.

Card access is serialized: the host's AT+CSIM and the toolkit's FETCH / TERMINAL RESPONSE /
ENVELOPE take turns, one APDU at a time, each followed by the SIM's cost-model time.

Hardware lines: the DTE's RTS (``set_rts``) goes to the AT core, which holds its output while
flow control is on and RTS is off; GSM_RESETN (``set_reset_line``) goes to ``ResetLine``
(``_reset``), whose actions this driver carries out (silence, reset, boot). Both may be called
from another thread (the firmware under test runs in one): they are handed to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ztp.iccid import IccidError, parse_ef_iccid
from ztp.modem._at import (
    NEED_DATA,
    AtCore,
    CardCommand,
    CmeError,
    ModemIdentity,
    NetworkConditions,
    RebootRequest,
    Registration,
)
from ztp.modem._habits import Habits
from ztp.modem._network import Network
from ztp.modem._reset import ResetAction, ResetLine, ResetPulse
from ztp.modem._terminal import CloseLink, OpenLink, SendLink, ToolkitTerminal
from ztp.stk import TransportProtocol

__all__ = ["Faults", "LatencyModel", "VirtualModem"]

log = logging.getLogger(__name__)

# TS 102 221 §11.1.1 SELECT by FID from the current DF (MF after reset), no response data;
# then READ BINARY of the 10 bytes of EF_ICCID (FID 2FE2, §13.2).
_SELECT_EF_ICCID = bytes.fromhex("00A4000C022FE2")
_READ_EF_ICCID = bytes.fromhex("00B000000A")


class Card(Protocol):
    def reset(self) -> bytes: ...

    def transmit(self, apdu: bytes, now_ms: int) -> bytes: ...


@dataclass(frozen=True)
class LatencyModel:
    """Time the modem and its network take.

    Args:
        uart_baud: UART bit rate (10 bits per byte, 8N1) pacing bytes both ways; None = no
            pacing. AT+IPR=<rate> (non-zero) overrides it.
        network_rtt_ms: round-trip time added to socket connects and to every send.
        registration_delay_ms: radio on -> registered.
        boot_ms: after power-up / reboot the modem ignores the UART this long.
    """

    uart_baud: int | None = None
    network_rtt_ms: int = 0
    registration_delay_ms: int = 0
    boot_ms: int = 0

    def __post_init__(self) -> None:
        if self.uart_baud is not None and self.uart_baud <= 0:
            raise ValueError("uart_baud must be positive or None")
        if min(self.network_rtt_ms, self.registration_delay_ms, self.boot_ms) < 0:
            raise ValueError("latencies must be >= 0")


@dataclass(frozen=True)
class Faults:
    """Fault knobs (change them live with ``modem.set_faults``).

    Args:
        registration: final network registration: HOME, ROAMING, DENIED or SEARCHING (no
            network). Without a packet registration OPEN CHANNEL fails.
        data_only: the SIM is data-only: +CREG never reaches 1/5, +CGREG does.
        sim_busy_commands: the next N AT+CSIM answer +CME ERROR: 14 (SIM busy).
        uart_drop_rate, uart_garble_rate: probability per byte sent to the host of being
            dropped / replaced by a random byte (seeded by ``seed``).
        unreachable: "host" or "host:port" strings whose connections fail (OPEN CHANNEL gets
            a BIP error), as when a server is down or filtered.
        seed: random seed for the UART faults.
    """

    registration: Registration = Registration.HOME
    data_only: bool = False
    sim_busy_commands: int = 0
    uart_drop_rate: float = 0.0
    uart_garble_rate: float = 0.0
    unreachable: frozenset[str] = frozenset()
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0.0 <= self.uart_drop_rate <= 1.0 and 0.0 <= self.uart_garble_rate <= 1.0):
            raise ValueError("UART fault rates are probabilities (0..1)")
        if self.sim_busy_commands < 0:
            raise ValueError("sim_busy_commands must be >= 0")
        object.__setattr__(self, "unreachable", frozenset(self.unreachable))


class UartLine:
    """Byte-level UART faults (sans-I/O): drop or garble bytes with a seeded RNG."""

    def __init__(self, drop_rate: float, garble_rate: float, rng: random.Random) -> None:
        self.drop_rate = drop_rate
        self.garble_rate = garble_rate
        self._rng = rng
        self.dropped = 0
        self.garbled = 0

    def corrupt(self, data: bytes) -> bytes:
        if not self.drop_rate and not self.garble_rate:
            return data
        out = bytearray()
        for b in data:
            r = self._rng.random()
            if r < self.drop_rate:
                self.dropped += 1
                continue
            if r < self.drop_rate + self.garble_rate:
                self.garbled += 1
                b ^= self._rng.randrange(1, 256)
            out.append(b)
        return bytes(out)


@dataclass
class _Link:
    channel: int
    transport: TransportProtocol
    writer: asyncio.StreamWriter | None = None
    udp: asyncio.DatagramTransport | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    send_queue: asyncio.Queue[tuple[float, bytes]] = field(default_factory=asyncio.Queue)


class _UdpLink(asyncio.DatagramProtocol):
    def __init__(self, modem: VirtualModem, channel: int, generation: int) -> None:
        self._modem, self._channel, self._gen = modem, channel, generation

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self._gen == self._modem._generation:
            self._modem._toolkit.link_data(self._channel, data)
            self._modem._wake.set()

    def error_received(self, exc: Exception) -> None:
        log.info("modem: UDP channel %d: %s", self._channel, exc)


Observer = Callable[[str, dict[str, Any]], None]


class VirtualModem:
    """A SARA-U201 with a SIM, reachable over a pseudo-terminal or TCP.

    Args:
        sim: the card: ``reset() -> ATR``, ``transmit(apdu, now_ms) -> response + SW`` and
            optionally ``cost_model`` (time per APDU, see ``_card_time_s``).
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
        self.sim = sim
        self.habits = habits or Habits()
        self._reset_line = ResetLine(self.habits.min_reset_pulse_ms)
        self._silent = False  # GSM_RESETN high: deaf and silent
        self._loop_thread: int | None = None
        self.network = network or Network()
        self.latency = latency or LatencyModel()
        self.faults = faults or Faults()
        self.identity = identity or ModemIdentity()
        self.greeting = greeting
        self.apply_card_cost = apply_card_cost
        self.observers: list[Observer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._core: AtCore | None = None
        self._toolkit = ToolkitTerminal(bearer_available=self._bearer_up)
        self._uart = UartLine(self.faults.uart_drop_rate, self.faults.uart_garble_rate,
                              random.Random(self.faults.seed))
        self._card_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._host_in: asyncio.Queue[bytes] = asyncio.Queue()
        self._host_out: asyncio.Queue[bytes] = asyncio.Queue()
        self._links: dict[int, _Link] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._generation = 0
        self._booting_until = 0.0
        self._write_fn: Callable[[bytes], Any] | None = None
        self._pty_master: int | None = None
        self._pty_slave: int | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._attached = False
        self.reboots = 0

    # ------------------------------------------------------------------ lifecycle
    def now_ms(self) -> int:
        assert self._loop is not None
        return int((self._loop.time() - self._t0) * 1000)

    async def start(self) -> None:
        """Start the network and power the modem up (idempotent)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._t0 = self._loop.time()
        await self.network.start()
        self._toolkit.dns_servers = (self.network.dns_address,)
        self._core = AtCore(0, identity=self.identity, network=self._conditions(),
                            greeting=self.greeting, habits=self.habits)
        self._core.sim_busy_commands = self.faults.sim_busy_commands
        await self._power_up()
        for coro in (self._host_loop(), self._toolkit_loop(), self._output_loop()):
            self._spawn(coro)

    async def close(self) -> None:
        """Stop everything: transports, links, tasks, the network's DNS server."""
        for server in self._servers:
            server.close()
        for link in list(self._links.values()):
            self._close_link(link)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._pty_master is not None and self._loop is not None:
            self._loop.remove_reader(self._pty_master)
            os.close(self._pty_master)
            self._pty_master = None
        if self._pty_slave is not None:
            os.close(self._pty_slave)
            self._pty_slave = None
        await self.network.close()

    async def __aenter__(self) -> VirtualModem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("modem: task failed", exc_info=task.exception())

    def _conditions(self) -> NetworkConditions:
        return NetworkConditions(
            registration=self.faults.registration,
            registration_delay_ms=self.latency.registration_delay_ms,
            circuit_switched=not self.faults.data_only,
        )

    def _notify(self, kind: str, **info: Any) -> None:
        for fn in self.observers:
            try:
                fn(kind, info)
            except Exception:  # an observer must not break the modem
                log.exception("modem: observer failed")

    async def _power_up(self) -> None:
        """Boot: (re)initialise the card; the AT core was (re)created by the caller."""
        assert self._loop is not None
        self._booting_until = self._loop.time() + self.latency.boot_ms / 1000
        core = self._core
        assert core is not None
        async with self._card_lock:
            if self._reset_line.in_reset:
                return  # GSM_RESETN went high again meanwhile: the next release boots
            try:
                atr = self.sim.reset()
            except Exception as err:  # a card that does not answer reset: no SIM
                log.warning("modem: SIM reset failed: %s", err)
                core.sim_present = False
                self._notify("boot", atr=None)
                return
            core.sim_present = True
            self._toolkit.start()
            self._notify("boot", atr=atr)
            core.iccid = await self._read_iccid()
        self._flush_core()
        self._wake.set()

    async def _read_iccid(self) -> str | None:
        resp = await self._card_exchange(_SELECT_EF_ICCID, "modem")
        if resp[-2:] != b"\x90\x00":
            log.warning("modem: SELECT EF_ICCID answered %s", resp[-2:].hex().upper())
            return None
        resp = await self._card_exchange(_READ_EF_ICCID, "modem")
        if len(resp) != 12 or resp[-2:] != b"\x90\x00":
            log.warning("modem: READ BINARY EF_ICCID answered %s", resp.hex().upper())
            return None
        try:
            return parse_ef_iccid(resp[:10])
        except IccidError as err:
            log.warning("modem: EF_ICCID unreadable: %s", err)
            return None

    async def reboot(self) -> None:
        """Reboot the modem (fault knob, or AT+CFUN=15/16): channels closed, SIM reset,
        settings back to defaults, UART deaf for ``boot_ms``, greeting (if any) sent."""
        log.info("modem: reboot")
        self._go_down()
        await self._boot()

    def _go_down(self) -> None:
        """Everything running stops: SIM Toolkit links, the answer to a pending APDU, input."""
        self._generation += 1
        self._toolkit.stop()
        self._run_toolkit_actions()
        while not self._host_in.empty():
            self._host_in.get_nowait()

    async def _boot(self) -> None:
        self.reboots += 1
        assert self._core is not None
        self._core.reboot(self.now_ms())
        self._core.sim_busy_commands = self.faults.sim_busy_commands
        await self._power_up()

    # ------------------------------------------------------------------ hardware lines
    def _in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args, now_ms)`` on the event loop (``now_ms`` = the time of this call):
        at once from the loop's thread, else thread-safely.

        Raises:
            RuntimeError: the modem was not started.
        """
        if self._loop is None:
            raise RuntimeError("modem not started")
        now_ms = self.now_ms()
        if threading.get_ident() == self._loop_thread:
            fn(*args, now_ms)
        else:
            self._loop.call_soon_threadsafe(fn, *args, now_ms)

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
        self._in_loop(self._apply_rts, asserted)

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
        state lost); released after that it boots as ``reboot()`` does (``boot_ms``, the
        greeting). A shorter pulse is ignored. Callable from any thread.
        """
        self._in_loop(self._apply_reset_line, high)

    def _apply_reset_line(self, high: bool, now_ms: int) -> None:
        actions = self._reset_line.set(high, now_ms)
        self._notify("reset_line", high=high, actions=[a.value for a in actions])
        self._reset_actions(actions)
        self._wake.set()  # the toolkit loop watches the reset deadline

    def _reset_actions(self, actions: list[ResetAction]) -> None:
        for action in actions:
            log.info("modem: GSM_RESETN: %s", action.value)
            if action is ResetAction.HOLD:
                self._silent = True
                self._drop_host_output()
            elif action is ResetAction.RESET:
                self._go_down()
            elif action is ResetAction.RESUME:
                self._silent = False
            elif action is ResetAction.BOOT:
                self._silent = False
                self._spawn(self._boot())

    def _drop_host_output(self) -> None:
        if self._core is not None:
            self._core.data_to_send()
        while not self._host_out.empty():
            self._host_out.get_nowait()
            self._host_out.task_done()

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
        self._uart.drop_rate, self._uart.garble_rate = faults.uart_drop_rate, \
            faults.uart_garble_rate
        if self._core is None:
            return
        if faults.sim_busy_commands != old.sim_busy_commands:
            self._core.sim_busy_commands = faults.sim_busy_commands
        if (faults.registration, faults.data_only) != (old.registration, old.data_only):
            self._core.set_network(self._conditions(), self.now_ms())
            self._check_bearer()
            self._flush_core()
        self._wake.set()

    def update_faults(self, **changes: Any) -> None:
        """``set_faults(replace(self.faults, **changes))``."""
        self.set_faults(replace(self.faults, **changes))

    def inject_uart_bytes(self, data: bytes) -> None:
        """Send raw bytes to the host (line noise, a garbled reply)."""
        self._host_out.put_nowait(data)

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
        if not self._bearer_up() and self._links:
            self._toolkit.drop_all_links()
            self._run_toolkit_actions()

    # ------------------------------------------------------------------ card
    def _card_time_s(self, apdu: bytes, response: bytes) -> float:
        """Seconds the card took for the last exchange: the SIM's own ``last_cost_ms`` when it
        reports one (transfer + crypto), else ``cost_model.apdu_ms(len(apdu), len(resp))``."""
        if not self.apply_card_cost:
            return 0.0
        last = getattr(self.sim, "last_cost_ms", None)
        if isinstance(last, int | float):
            return float(last) / 1000
        model = getattr(self.sim, "cost_model", None)
        if model is None:
            return 0.0
        return float(model.apdu_ms(len(apdu), len(response))) / 1000

    async def _card_exchange(self, apdu: bytes, source: str) -> bytes:
        """One APDU to the card; the caller holds the card lock."""
        response = self.sim.transmit(apdu, self.now_ms())
        self._notify("apdu", command=apdu, response=response, source=source)
        delay = self._card_time_s(apdu, response)
        if delay > 0:
            await asyncio.sleep(delay)
        self._toolkit.card_answer_seen(response)
        self._wake.set()
        return response

    async def transmit(self, apdu: bytes, source: str = "host") -> bytes:
        """Send one APDU to the card, serialized with the toolkit's own APDUs."""
        async with self._card_lock:
            return await self._card_exchange(apdu, source)

    async def sms_pp_download(self, envelope: bytes, timeout_s: float = 30.0) -> bytes:
        """Deliver an SMS-PP DOWNLOAD ENVELOPE (data 'D1 ...', TS 31.111 §7.1.1) to the card.

        Waits, under the card lock, until the toolkit is between commands (no ENVELOPE
        between a FETCH and its TERMINAL RESPONSE), then sends it; '61 xx' is followed by
        GET RESPONSE. Returns the response data (the SMS-DELIVER-REPORT user data: the PoR),
        b"" for none.

        Raises:
            TimeoutError: the toolkit stayed busy for ``timeout_s``.
            RuntimeError: the card answered neither 9000/91xx nor 61xx (the SW is named).
        """
        from ztp.stk import build_envelope_apdu

        assert self._loop is not None, "modem not started"
        deadline = self._loop.time() + timeout_s
        while True:
            async with self._card_lock:
                if self._toolkit.idle():
                    resp = await self._card_exchange(build_envelope_apdu(envelope), "sms")
                    if len(resp) == 2 and resp[0] == 0x61:  # PoR waiting: GET RESPONSE
                        resp = await self._card_exchange(bytes([0, 0xC0, 0, 0, resp[1]]),
                                                         "sms")
                        data = resp[:-2]
                    else:
                        data = b""
                    if len(resp) >= 2 and (resp[-2:] == b"\x90\x00" or resp[-2] == 0x91):
                        return data
                    raise RuntimeError(f"SMS-PP download: card answered SW {resp[-2:].hex()}")
            if self._loop.time() >= deadline:
                raise TimeoutError("SMS-PP download: the SIM toolkit stayed busy")
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ host side (AT)
    def _flush_core(self) -> None:
        if self._core is None:
            return
        data = self._core.data_to_send()
        if data and not self._silent:
            self._host_out.put_nowait(data)

    def _byte_time_s(self) -> float:
        baud = self._core.ipr if self._core is not None and self._core.ipr else \
            self.latency.uart_baud
        return 10.0 / baud if baud else 0.0

    def feed(self, data: bytes) -> None:
        """Bytes from the host (the transports call this)."""
        assert self._loop is not None
        if self._silent:
            log.info("modem: %d bytes while held in reset, ignored", len(data))
            return
        if self._loop.time() < self._booting_until:
            log.info("modem: %d bytes while booting, ignored", len(data))
            return
        self._notify("at_rx", data=data)
        self._host_in.put_nowait(data)

    async def _host_loop(self) -> None:
        while True:
            data = await self._host_in.get()
            pace = self._byte_time_s() * len(data)
            if pace:
                await asyncio.sleep(pace)
            core = self.core
            core.receive_data(data, self.now_ms())
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
                await self._host_out.join()
                await self.reboot()
                return

    async def _output_loop(self) -> None:
        while True:
            data = await self._host_out.get()
            try:
                if self._silent:
                    continue  # held in reset: nothing leaves the UART
                data = self._uart.corrupt(data)
                per_byte = self._byte_time_s()
                step = 64 if per_byte else len(data)
                for i in range(0, len(data), max(step, 1)):
                    chunk = data[i:i + step]
                    if per_byte:
                        await asyncio.sleep(per_byte * len(chunk))
                    self._notify("at_tx", data=chunk)
                    if self._write_fn is not None:
                        await self._write_fn(chunk)
            except OSError as err:
                log.info("modem: host write failed: %s", err)
            finally:
                self._host_out.task_done()

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
            async with self._card_lock:
                apdu = self._toolkit.pending_apdu()
                if apdu is not None:
                    gen = self._generation
                    try:
                        response = await self._card_exchange(apdu, "toolkit")
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _run_toolkit_actions(self) -> None:
        while True:
            action = self._toolkit.next_event()
            if isinstance(action, OpenLink):
                self._spawn(self._open_link(action, self._generation))
            elif isinstance(action, SendLink):
                link = self._links.get(action.channel)
                if link is not None:
                    assert self._loop is not None
                    due = self._loop.time() + self.latency.network_rtt_ms / 1000
                    link.send_queue.put_nowait((due, action.data))
                    self._notify("link", channel=action.channel, event="send",
                                 size=len(action.data))
            elif isinstance(action, CloseLink):
                link = self._links.pop(action.channel, None)
                if link is not None:
                    self._close_link(link)
                    self._notify("link", channel=action.channel, event="close")
            else:
                return

    def _close_link(self, link: _Link) -> None:
        for task in link.tasks:
            task.cancel()
        if link.writer is not None:
            link.writer.close()
        if link.udp is not None:
            link.udp.close()

    def _unreachable(self, host: str, port: int) -> bool:
        return host in self.faults.unreachable or f"{host}:{port}" in self.faults.unreachable

    async def _open_link(self, action: OpenLink, gen: int) -> None:
        host, port = self.network.route(str(action.address), action.port)
        link = _Link(action.channel, action.transport)
        self._notify("link", channel=action.channel, event="open", host=str(action.address),
                     port=action.port, transport=action.transport.name)
        try:
            if self._unreachable(str(action.address), action.port):
                raise ConnectionRefusedError(f"{action.address}:{action.port} unreachable "
                                             f"(fault)")
            if action.transport == TransportProtocol.TCP_CLIENT_REMOTE:
                if self.latency.network_rtt_ms:
                    await asyncio.sleep(self.latency.network_rtt_ms / 1000)  # SYN, SYN-ACK
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                link.writer = writer
                if gen != self._generation:
                    writer.close()
                    return
                link.tasks.append(self._spawn(self._tcp_reader(action.channel, reader, gen)))
            else:
                loop = asyncio.get_running_loop()
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpLink(self, action.channel, gen), remote_addr=(host, port))
                link.udp = udp
                if gen != self._generation:
                    udp.close()
                    return
            link.tasks.append(self._spawn(self._link_sender(link)))
        except (TimeoutError, OSError) as err:
            log.info("modem: channel %d: connect to %s:%d failed: %s", action.channel,
                     action.address, action.port, err)
            self._notify("link", channel=action.channel, event="failed", error=str(err))
            if gen == self._generation:
                self._toolkit.link_failed(action.channel)
                self._wake.set()
            return
        self._links[action.channel] = link
        self._toolkit.link_opened(action.channel)
        self._notify("link", channel=action.channel, event="opened")
        self._wake.set()

    async def _tcp_reader(self, channel: int, reader: asyncio.StreamReader, gen: int) -> None:
        while True:
            try:
                data = await reader.read(4096)
            except OSError:
                data = b""
            if gen != self._generation:
                return
            if not data:
                self._notify("link", channel=channel, event="remote_closed")
                self._toolkit.link_closed(channel)
                self._wake.set()
                return
            self._notify("link", channel=channel, event="receive", size=len(data))
            self._toolkit.link_data(channel, data)
            self._wake.set()

    async def _link_sender(self, link: _Link) -> None:
        assert self._loop is not None
        while True:
            due, data = await link.send_queue.get()
            delay = due - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if link.writer is not None:
                link.writer.write(data)
                with contextlib.suppress(OSError):
                    await link.writer.drain()
            elif link.udp is not None:
                link.udp.sendto(data)

    # ------------------------------------------------------------------ exposure
    async def serve_pty(self) -> str:
        """Expose the UART on a new pseudo-terminal (raw mode); returns the slave path."""
        await self.start()
        assert self._loop is not None
        master, slave = os.openpty()
        tty.setraw(slave)
        flags = fcntl.fcntl(master, fcntl.F_GETFL)
        fcntl.fcntl(master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._pty_master, self._pty_slave = master, slave
        path = os.ttyname(slave)
        loop = self._loop

        def readable() -> None:
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EIO: no process has the slave open (we keep one fd, rare)
                return
            if data:
                self.feed(data)

        loop.add_reader(master, readable)

        def _resolve(fut: asyncio.Future[None]) -> None:
            if not fut.done():
                fut.set_result(None)

        async def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(master, view)
                    view = view[n:]
                except BlockingIOError:
                    fut: asyncio.Future[None] = loop.create_future()
                    loop.add_writer(master, _resolve, fut)
                    try:
                        await fut
                    finally:
                        loop.remove_writer(master)

        self._write_fn = write
        log.info("modem: UART on %s", path)
        return path

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Expose the UART on TCP (one client at a time; a new client takes over).

        Returns the bound (host, port); pyserial opens ``socket://host:port``.
        """
        await self.start()

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async def write(data: bytes) -> None:
                writer.write(data)
                await writer.drain()

            self._write_fn = write
            try:
                while data := await reader.read(4096):
                    self.feed(data)
            except OSError:
                pass
            finally:
                if self._write_fn is write:
                    self._write_fn = None
                writer.close()

        server = await asyncio.start_server(client, host, port)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        log.info("modem: UART on tcp %s:%d", bound[0], bound[1])
        return bound[0], bound[1]
