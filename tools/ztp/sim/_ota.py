"""OTA on the virtual SIM: SMS-PP data download (ENVELOPE 'D1', 3GPP TS 31.111 §7.1.1) into the
card's OTA security domain (``ztp.ota.OtaSecurityDomain``, ETSI TS 102 225) and the SAFE2
install-PSK applet behind the SAFE2 OTA TAR.

Theory of operation
-------------------
The card keeps one key set (KIc / KID) and one counter for the SAFE2 TAR in its state file
(``CardState.ota``). An ENVELOPE SMS-PP DOWNLOAD goes to ``SimOta.envelope``, which builds the
security domain from the state, runs the packet through the TS 102 225 checks and, when they
pass, the applet. The applet writes the new PSK through ``CardPskStorage``: the new state (PSK,
key version *and* the counter just consumed) goes to the card's ``write_state`` (handed in by
the card's holder, ``VirtualSim``: a temporary file next to the state file, flushed, then
renamed over it), so after a power cut the file holds either the old key or the new one,
whole. The in-memory state changes only after the write. The card itself does no I/O.

Answers (TS 31.111 §7.1.1.1, TS 102 221 §7.3.1.1): the PoR the SPI asks for in the
SMS-DELIVER-REPORT is the ENVELOPE's response data, announced with '61 xx' (fetched with GET
RESPONSE); no PoR -> '90 00'. An ENVELOPE whose TPDU, UDH or packet header cannot be parsed has
no TAR to answer: '6F 00'. A PoR asked for by SMS-SUBMIT would need the proactive command SEND
SHORT MESSAGE, which the modem does not run: it is kept in ``SimOta.outbox`` (tests read it).

Fault knob: ``SimOta.power_cut_after`` = N makes the next PSK write stop after N bytes of the
temporary file, as a power cut would (the rename never happens; the partial temporary file is
left behind); the applet then answers SW 6581 and the old key stays in force.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from ztp.ota import (
    SAFE2_OTA_TAR,
    MinimumSecurityLevel,
    OtaDecodeError,
    OtaKeys,
    OtaSecurityDomain,
    Safe2OtaApplet,
    TarEntry,
    status_name,
)

from ._ota_state import OtaCardKeys
from ._state import CardState, PowerCut

# write_state(new_state, power_cut_after): make ``new_state`` the persistent one, atomically
# (raises PowerCut when the knob is set, leaving the old state in force).
WriteState = Callable[[CardState, int | None], None]

__all__ = ["CardPskStorage", "OtaCardKeys", "SimOta", "SW_OTA_MALFORMED", "memory_only"]

log = logging.getLogger("ztp.sim")

SW_OTA_MALFORMED = 0x6F00  # no TAR to answer to (docs/ota.md: the SIM's choice)


class CardPskStorage:
    """``ztp.ota.PskStorage`` over the card state: atomic writes, counter written with the key.

    Args:
        state: the card state (changed in memory only after the file was replaced).
        counter: returns the counter the security domain holds now (consumed before the
            applet runs), so that the new key and its counter land in the same write.
        power_cut_after: returns the power-cut knob (None: no fault); called once per write.
        write_state: persists the new state atomically (``memory_only`` without a file).
    """

    def __init__(self, state: CardState, counter: Callable[[], int],
                 power_cut_after: Callable[[], int | None], write_state: WriteState) -> None:
        self._state = state
        self._counter = counter
        self._cut = power_cut_after
        self._write_state = write_state

    def read_psk(self) -> tuple[int, bytes]:
        return self._state.psk_version, self._state.psk

    def write_psk(self, key_version: int, psk: bytes) -> None:
        state = self._state
        assert state.ota is not None
        ota = dataclasses.replace(state.ota, counter=self._counter())
        new = dataclasses.replace(state, psk=psk, psk_version=key_version, ota=ota)
        self._write_state(new, self._cut())
        state.psk, state.psk_version, state.ota = psk, key_version, ota
        log.info("SAFE2 OTA: PSK version %d installed", key_version)


class SimOta:
    """The card's OTA receiving entity, fed by ENVELOPE SMS-PP DOWNLOAD."""

    def __init__(self, state: CardState, write_state: WriteState | None = None) -> None:
        self.state = state
        self._write_state = write_state or memory_only
        self.power_cut_after: int | None = None
        self.outbox: list[bytes] = []  # SMS-SUBMIT TPDUs (PoR via SMS-SUBMIT), not sent
        self.last_status: int | None = None  # TS 102 225 status of the last command packet
        self.last_detail = ""

    def _domain(self) -> tuple[OtaSecurityDomain, TarEntry | None]:
        keys = self.state.ota
        if keys is None:
            return OtaSecurityDomain([]), None  # every TAR unknown (status 09)
        entry_box: list[TarEntry] = []

        def cut() -> int | None:
            knob, self.power_cut_after = self.power_cut_after, None
            return knob

        storage = CardPskStorage(self.state, lambda: entry_box[0].counter, cut,
                                 self._write_state)
        entry = TarEntry(
            tar=SAFE2_OTA_TAR,
            keys=OtaKeys(keys.kic, keys.kid, keys.kic_index, keys.kid_index),
            application=Safe2OtaApplet(storage),
            minimum_security_level=MinimumSecurityLevel(),
            counter=keys.counter,
        )
        entry_box.append(entry)
        return OtaSecurityDomain([entry]), entry

    def envelope(self, data: bytes) -> tuple[int, bytes, bool]:
        """Process ENVELOPE data 'D1 ...'. Returns (SW, response data, state changed); data
        non-empty only with SW 9000, meaning '61 xx' on the wire. A changed counter is for the
        card's owner to persist before the answer leaves the card."""
        domain, entry = self._domain()
        try:
            out = domain.process_envelope(data)
        except OtaDecodeError as e:
            log.info("SAFE2 OTA: SMS-PP download refused: %s", e)
            self.last_status, self.last_detail = None, str(e)
            return SW_OTA_MALFORMED, b"", False
        cmd = out.command
        self.last_status, self.last_detail = cmd.status, cmd.detail
        log.info("SAFE2 OTA: TAR %s: %s%s", cmd.tar.hex(), status_name(cmd.status),
                 f" ({cmd.detail})" if cmd.detail else "")
        changed = False
        if cmd.counter_updated and entry is not None and self.state.ota is not None:
            if self.state.ota.counter != entry.counter:
                self.state.ota.counter = entry.counter
                changed = True
        if out.sms_submit is not None:
            self.outbox.append(out.sms_submit)
        return 0x9000, out.envelope_response, changed


def memory_only(new_state: CardState, power_cut_after: int | None) -> None:
    """``write_state`` of a card without a state file: nothing to write, but the power-cut
    knob still fails the write (the old key stays)."""
    if power_cut_after is not None:
        raise PowerCut("simulated power cut (card without a state file)")


def install_ota_keys(state: CardState, kic: bytes, kid: bytes, *, kic_index: int = 1,
                     kid_index: int = 1) -> None:
    """Personalise the card's OTA key set (counter 0)."""
    state.ota = OtaCardKeys(kic=kic, kid=kid, kic_index=kic_index, kid_index=kid_index)
