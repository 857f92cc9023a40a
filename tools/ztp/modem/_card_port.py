"""The modem's side of the SIM: one APDU at a time, with the card's own time.

The host's AT+CSIM / +CGLA, the toolkit's FETCH / TERMINAL RESPONSE / ENVELOPE, the modem's
own reads (EF_ICCID at boot) and SMS-PP downloads all reach the card here, serialized by one
lock; each exchange is followed by the time the card took (its cost model), so the host sees
a SIM as slow as the real one. The card is any object with ``transmit(apdu, now_ms) ->
response data + SW1 SW2`` and optionally ``last_cost_ms`` or ``cost_model.apdu_ms``.

TS 102 221 §11.1.1 SELECT, §11.1.3 READ BINARY, §13.2 EF_ICCID; TS 31.111 §7.1.1 SMS-PP
data download; TS 102 221 §7.3.1.1.4 GET RESPONSE after 61xx.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from ztp.iccid import IccidError, parse_ef_iccid
from ztp.modem._terminal import ToolkitTerminal
from ztp.stk import build_envelope_apdu

__all__ = ["Card", "CardPort"]

log = logging.getLogger(__name__)

# TS 102 221 §11.1.1 SELECT by FID from the current DF (MF after reset), no response data;
# then READ BINARY of the 10 bytes of EF_ICCID (FID 2FE2, §13.2).
_SELECT_EF_ICCID = bytes.fromhex("00A4000C022FE2")
_READ_EF_ICCID = bytes.fromhex("00B000000A")


class Card(Protocol):
    def reset(self) -> bytes: ...

    def transmit(self, apdu: bytes, now_ms: int) -> bytes: ...


class CardPort:
    """Serialized access to the card (an asyncio adapter).

    Args:
        sim: the card.
        toolkit: the terminal core: sees every answer (``card_answer_seen``, for 91xx) and
            says when an SMS-PP download may go (``idle``).
        now_ms: the modem's clock.
        notify: the modem's observer hook ("apdu" events).
        wake: the toolkit loop should look again.
        apply_card_cost: sleep the card's time after each APDU.
    """

    def __init__(
        self,
        sim: Card,
        toolkit: ToolkitTerminal,
        *,
        now_ms: Callable[[], int],
        notify: Callable[..., None],
        wake: Callable[[], None],
        apply_card_cost: bool = True,
    ) -> None:
        self.sim = sim
        self.apply_card_cost = apply_card_cost
        self.lock = asyncio.Lock()  # held for a whole exchange (or a boot's reads)
        self._toolkit = toolkit
        self._now_ms, self._notify, self._wake = now_ms, notify, wake

    def card_time_s(self, apdu: bytes, response: bytes) -> float:
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

    async def exchange(self, apdu: bytes, source: str) -> bytes:
        """One APDU to the card; the caller holds ``lock``."""
        response = self.sim.transmit(apdu, self._now_ms())
        self._notify("apdu", command=apdu, response=response, source=source)
        delay = self.card_time_s(apdu, response)
        if delay > 0:
            await asyncio.sleep(delay)
        self._toolkit.card_answer_seen(response)
        self._wake()
        return response

    async def transmit(self, apdu: bytes, source: str = "host") -> bytes:
        """Send one APDU to the card, serialized with the toolkit's own APDUs."""
        async with self.lock:
            return await self.exchange(apdu, source)

    async def power_up(self, in_reset: Callable[[], bool]) -> tuple[bool, str | None] | None:
        """Reset the card, start the toolkit, read EF_ICCID, all under ``lock``.

        Returns (SIM present, ICCID or None), or None when ``in_reset()`` says the modem went
        back into reset meanwhile (the next release boots).
        """
        async with self.lock:
            if in_reset():
                return None
            try:
                atr = self.sim.reset()
            except Exception as err:  # a card that does not answer reset: no SIM
                log.warning("modem: SIM reset failed: %s", err)
                self._notify("boot", atr=None)
                return False, None
            self._toolkit.start()
            self._notify("boot", atr=atr)
            return True, await self.read_iccid()

    async def read_iccid(self) -> str | None:
        """EF_ICCID as digits (the caller holds ``lock``); None when the card does not give it."""
        resp = await self.exchange(_SELECT_EF_ICCID, "modem")
        if resp[-2:] != b"\x90\x00":
            log.warning("modem: SELECT EF_ICCID answered %s", resp[-2:].hex().upper())
            return None
        resp = await self.exchange(_READ_EF_ICCID, "modem")
        if len(resp) != 12 or resp[-2:] != b"\x90\x00":
            log.warning("modem: READ BINARY EF_ICCID answered %s", resp.hex().upper())
            return None
        try:
            return parse_ef_iccid(resp[:10])
        except IccidError as err:
            log.warning("modem: EF_ICCID unreadable: %s", err)
            return None

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            async with self.lock:
                if self._toolkit.idle():
                    resp = await self.exchange(build_envelope_apdu(envelope), "sms")
                    if len(resp) == 2 and resp[0] == 0x61:  # PoR waiting: GET RESPONSE
                        resp = await self.exchange(bytes([0, 0xC0, 0, 0, resp[1]]), "sms")
                        data = resp[:-2]
                    else:
                        data = b""
                    if len(resp) >= 2 and (resp[-2:] == b"\x90\x00" or resp[-2] == 0x91):
                        return data
                    raise RuntimeError(f"SMS-PP download: card answered SW {resp[-2:].hex()}")
            if loop.time() >= deadline:
                raise TimeoutError("SMS-PP download: the SIM toolkit stayed busy")
            await asyncio.sleep(0.005)


