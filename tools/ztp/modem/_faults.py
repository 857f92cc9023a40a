"""Fault knobs and the latency model of the virtual modem, and the UART's byte faults.

``LatencyModel`` says how long the UART, the network and the modem's boot take; ``Faults``
what goes wrong (registration outcome, SIM busy, UART bytes lost or garbled, unreachable
servers). ``UartLine`` applies the byte faults (sans-I/O, seeded RNG so a run replays).
``VirtualModem.set_faults`` changes the faults live; the latency is fixed per modem.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ztp.modem._at_state import NetworkConditions, Registration

__all__ = ["Faults", "LatencyModel", "UartLine", "network_conditions"]


@dataclass(frozen=True)
class LatencyModel:
    """Time the modem and its network take.

    Args:
        uart_baud: UART bit rate (10 bits per byte, 8N1) pacing bytes both ways; None = no
            pacing. AT+IPR=<rate> (non-zero) overrides it.
        network_rtt_ms: round-trip time added to socket connects and to every send.
        registration_delay_ms: radio on -> registered.
        boot_ms: after power-up the modem ignores the UART this long (0: the harness powers
            the modem long before the device talks to it).
        reboot_ms: after a reboot or reset (AT+CFUN=15/16, GSM_RESETN, ``reboot()``) the
            modem ignores the UART this long. SARA-U2 system integration manual
            (UBX-13000995) 1.6.1: RESET_N released is a switch-on event, and the module
            answers AT only once its interfaces are configured (the +CSGT greeting text
            "notif[ies] the external application that the module is ready to operate (i.e.
            ready to reply to AT commands)"); the manual gives no fixed time, a few seconds
            on the bench: 5000 ms. Tests set it short.
        sim_init_ms: after that boot, the SIM answers +CME ERROR: 14 (SIM busy) this long
            (27.007 9.2.1; the modem reads the SIM after its reset, AT+CPIN? is "SIM busy"
            until it is done).
    """

    uart_baud: int | None = None
    network_rtt_ms: int = 0
    registration_delay_ms: int = 0
    boot_ms: int = 0
    reboot_ms: int = 5000
    sim_init_ms: int = 1000

    def __post_init__(self) -> None:
        if self.uart_baud is not None and self.uart_baud <= 0:
            raise ValueError("uart_baud must be positive or None")
        if min(self.network_rtt_ms, self.registration_delay_ms, self.boot_ms, self.reboot_ms,
               self.sim_init_ms) < 0:
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

    def refuses(self, host: str, port: int) -> bool:
        """A connection to ``host:port`` fails (``unreachable`` names the host or host:port)."""
        return host in self.unreachable or f"{host}:{port}" in self.unreachable


def network_conditions(faults: Faults, latency: LatencyModel) -> NetworkConditions:
    """What the AT core's radio sees, from the fault knobs and the registration delay."""
    return NetworkConditions(
        registration=faults.registration,
        registration_delay_ms=latency.registration_delay_ms,
        circuit_switched=not faults.data_only,
    )


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
