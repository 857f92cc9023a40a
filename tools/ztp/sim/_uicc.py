"""The virtual UICC: ISO/IEC 7816-4 / ETSI TS 102 221 v15 card with the SAFE2 applet.

Sans-I/O: ``transmit(apdu, now_ms)`` takes one command APDU and returns a ``CardAnswer``:
response data + SW1 SW2, exactly as a T=0 card answers through AT+CSIM, and whether the card
state changed (the owner, ``VirtualSim``, writes the state file before it releases the
response). Nothing runs between APDUs; the applet's network job (``_job.py``) advances only
when the terminal sends TERMINAL RESPONSE or ENVELOPE (``_toolkit.py``). The SAFE2
instructions are ``_applet.py``; this module is the card: channels, files, dispatch.

What the card implements:
- Basic channel 0 and logical channels 1..``logical_channels`` (MANAGE CHANNEL, §11.1.17),
  each with its own selection (MF, EF_ICCID or the SAFE2 ADF) and its own GET RESPONSE buffer.
- SELECT by AID (P1 04: P2 0C no data, 00 FCI, 04 FCP -> 61xx) and by FID / path (MF 3F00,
  EF_ICCID 2FE2), READ BINARY (also by SFI 02), GET RESPONSE, STATUS.
- CAT (§10.1.1-4): TERMINAL PROFILE, FETCH, TERMINAL RESPONSE, ENVELOPE; SW1 '91' whenever a
  proactive command is waiting (TS 102 221 §10.2.1.1), also after GET RESPONSE.
- SAFE2 applet (SAFE2-PROTOCOL.md): DA 02 C0 DeviceID, DA 02 C1 telemetry, CA 00 request,
  CC 02 status (61 04), CA 01 read (61 xx).

SW choices where cards differ (docs/sim.md has the table): unknown INS 6D00, unknown CLA
6E00, CLA/INS class mismatch 6E00, SAFE2 INS without SAFE2 selected 6D00, command on a channel
that is not open 6881, no free channel 6A81, nothing to GET RESPONSE / FETCH 6985, wrong Le
6Cxx, wrong Lc 6700.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ztp import stk
from ztp.stk import SmsPpDownload, StkDecodeError, TimerExpiration

from ._apdu import (
    INS_ENVELOPE,
    INS_FETCH,
    INS_GET_RESPONSE,
    INS_MANAGE_CHANNEL,
    INS_READ_BINARY,
    INS_SAFE2_GET,
    INS_SAFE2_PUT,
    INS_SAFE2_STATUS,
    INS_SELECT,
    INS_STATUS,
    INS_TERMINAL_PROFILE,
    INS_TERMINAL_RESPONSE,
    MAX_CHANNEL,
    SW1_PROACTIVE,
    SW1_RESPONSE_AVAILABLE,
    SW1_WRONG_LE,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_FILE_NOT_FOUND,
    SW_FUNCTION_NOT_SUPPORTED,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_LOGICAL_CHANNEL_NOT_SUPPORTED,
    SW_NO_CURRENT_EF,
    SW_OK,
    SW_TOOLKIT_BUSY,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    ApduFormatError,
    Command,
    parse_command,
    sw_bytes,
)
from ._applet import Safe2Applet
from ._bip import TIMER_DNS
from ._ota import SimOta, WriteState
from ._request import RetryPolicy
from ._state import CardState

__all__ = ["AID_SAFE2", "ATR", "CardAnswer", "Uicc"]

log = logging.getLogger("ztp.sim")

AID_SAFE2: Final = bytes([0xF0]) + b"podgsafe2" + bytes([0x01, 0x01])
FID_MF: Final = 0x3F00
FID_EF_ICCID: Final = 0x2FE2  # TS 102 221 §13.2
SFI_EF_ICCID: Final = 0x02

_ISO_INS: Final = frozenset(
    {
        INS_MANAGE_CHANNEL,
        INS_SELECT,
        INS_READ_BINARY,
        INS_GET_RESPONSE,
        INS_SAFE2_PUT,
        INS_SAFE2_GET,
        INS_SAFE2_STATUS,
    }
)
_CAT_INS: Final = frozenset(
    {INS_TERMINAL_PROFILE, INS_FETCH, INS_TERMINAL_RESPONSE, INS_ENVELOPE, INS_STATUS}
)


def _atr() -> bytes:
    """ATR (ISO/IEC 7816-3 §8): direct convention, TA1 95 (F=512, D=16 offered by PPS),
    T=0 then T=15 with TA 'C7' (clock stop, classes A/B/C), UICC historical bytes, TCK."""
    historical = bytes.fromhex("8031E073FE211B")
    body = bytes([0x90 | len(historical), 0x95, 0x80, 0x1F, 0xC7]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return bytes([0x3B]) + body + bytes([tck])


ATR: Final = _atr()


@dataclass
class _Channel:
    """Selection state of one logical channel (TS 102 221 §8.4)."""

    app: bool = False  # the SAFE2 ADF is selected
    ef: int | None = None  # current EF under the MF
    response: bytes = b""  # data waiting for GET RESPONSE


@dataclass(frozen=True)
class CardAnswer:
    """What the card gives back for one APDU.

    ``response`` is data + SW1 SW2. ``state_changed``: the persistent ``CardState`` changed
    (EEPROM on a real card); the owner must write it before releasing ``response``.
    """

    response: bytes
    state_changed: bool


class Uicc:
    """A SIM with the SAFE2 applet, answering APDUs as a real card does (sans-I/O core).

    Args:
        state: the card's persistent state (``CardState``), changed in memory only.
        rng: ``rng(n) -> n random bytes`` (TLS randoms, DNS ids).
        retry: the applet's retry policy.
        logical_channels: channels 1..N besides the basic channel (at most 19).
        write_state: the holder's atomic write of a new state, for the OTA PSK install
            (``_ota.py``; default: memory only).
    """

    def __init__(
        self,
        state: CardState,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        retry: RetryPolicy | None = None,
        logical_channels: int = 7,
        write_state: WriteState | None = None,
    ) -> None:
        if not 1 <= logical_channels <= MAX_CHANNEL:
            raise ValueError(f"logical_channels must be 1..{MAX_CHANNEL}")
        self.state = state
        self._max_channel = logical_channels
        self.applet = Safe2Applet(state, rng=rng, retry=retry or RetryPolicy())
        # SMS-PP data download -> OTA security domain (_ota.py); a PSK install is written
        # through ``write_state`` before it takes effect
        self.ota = SimOta(state, write_state)
        self._channels: dict[int, _Channel] = {}
        self._profile: bytes | None = None

    def power_on(self) -> CardAnswer:
        """Cold/warm reset (also the first power-on): channels closed, toolkit session and
        any running request end (the applet reports ``000F`` / INTERRUPTED for it; so does a
        state file left BUSY by a power loss). The answer is the ATR."""
        self._channels = {0: _Channel()}
        self._profile = None
        self.applet.power_on()
        return CardAnswer(ATR, self._take_changed())

    @property
    def terminal_profile(self) -> bytes | None:
        return self._profile

    @property
    def proactive_pending(self) -> int:
        """Length of the proactive command the card would announce with 91xx, or 0."""
        return self.applet.toolkit.proactive_pending

    def transmit(self, apdu: bytes, now_ms: int) -> CardAnswer:
        """Process one command APDU (``now_ms`` is unused: a card has no clock).

        Never raises for bad input: every malformed or unsupported APDU gets its status word.
        """
        self.state.counters.apdus += 1
        try:
            cmd = parse_command(bytes(apdu))
        except ApduFormatError as e:
            resp = sw_bytes(e.sw)
        else:
            resp = self._dispatch(cmd)
        if resp[-2:] == sw_bytes(SW_OK) and self.proactive_pending:
            # TS 102 221 §10.2.1.1: '91 XX' normal ending, XX bytes of proactive command.
            resp = resp[:-2] + bytes([SW1_PROACTIVE, self.proactive_pending])
        return CardAnswer(resp, self._take_changed())

    def _take_changed(self) -> bool:
        changed, self.applet.changed = self.applet.changed, False
        return changed

    # ---------------------------------------------------------------- card internals

    def _dispatch(self, cmd: Command) -> bytes:
        if cmd.channel > self._max_channel or cmd.channel not in self._channels:
            return sw_bytes(SW_LOGICAL_CHANNEL_NOT_SUPPORTED)
        ch = self._channels[cmd.channel]
        if cmd.proprietary:
            if cmd.ins not in _CAT_INS:
                return sw_bytes(
                    SW_CLA_NOT_SUPPORTED if cmd.ins in _ISO_INS else SW_INS_NOT_SUPPORTED
                )
            ch.response = b""
            if cmd.ins == INS_TERMINAL_PROFILE:
                return self._terminal_profile(cmd)
            if cmd.ins == INS_FETCH:
                return self._fetch(cmd)
            if cmd.ins == INS_TERMINAL_RESPONSE:
                return self._terminal_response(cmd)
            if cmd.ins == INS_ENVELOPE:
                return self._envelope(cmd)
            return self._status(ch, cmd)
        if cmd.ins not in _ISO_INS:
            return sw_bytes(SW_CLA_NOT_SUPPORTED if cmd.ins in _CAT_INS else SW_INS_NOT_SUPPORTED)
        if cmd.ins == INS_GET_RESPONSE:
            return self._get_response(ch, cmd)
        # T=0: the response waits only until the next command on the channel (§7.3.1.1.4).
        ch.response = b""
        if cmd.ins == INS_MANAGE_CHANNEL:
            return self._manage_channel(cmd)
        if cmd.ins == INS_SELECT:
            return self._select(ch, cmd)
        if cmd.ins == INS_READ_BINARY:
            return self._read_binary(ch, cmd)
        if not ch.app:
            return sw_bytes(SW_INS_NOT_SUPPORTED)  # SAFE2 instructions need SAFE2 selected
        return self.applet.instruction(cmd, lambda data: self._reply(ch, cmd, data))

    @staticmethod
    def _no_data(cmd: Command) -> int | None:
        """SW for a command that carries no data and expects none, or None when fine."""
        if cmd.data:
            return SW_WRONG_LENGTH
        if cmd.p3 not in (None, 0):
            return SW_WRONG_LENGTH
        return None

    def _reply(self, ch: _Channel, cmd: Command, data: bytes) -> bytes:
        """Outgoing data the T=0 way (TS 102 221 §7.3.1.1): directly when P3 is exactly the
        length; ``61xx`` (data waits for GET RESPONSE) for a case 4 command, or when P3 is
        absent or '00'; ``6Cxx`` for any other P3."""
        if not cmd.data and cmd.p3 is not None and cmd.ne == len(data):
            return data + sw_bytes(SW_OK)
        if cmd.data or cmd.p3 is None or cmd.p3 == 0:
            ch.response = data
            return bytes([SW1_RESPONSE_AVAILABLE, len(data) & 0xFF])
        return bytes([SW1_WRONG_LE, len(data) & 0xFF])

    # ---------------------------------------------------------------- ISO commands

    def _get_response(self, ch: _Channel, cmd: Command) -> bytes:
        if cmd.p1 or cmd.p2:
            return sw_bytes(SW_INCORRECT_P1P2)
        if cmd.data or cmd.p3 is None:
            return sw_bytes(SW_WRONG_LENGTH)
        if not ch.response:
            return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
        ne = cmd.ne or 256
        avail = len(ch.response)
        if ne > avail:
            return bytes([SW1_WRONG_LE, avail & 0xFF])
        data, ch.response = ch.response[:ne], ch.response[ne:]
        if ch.response:
            return data + bytes([SW1_RESPONSE_AVAILABLE, len(ch.response) & 0xFF])
        return data + sw_bytes(SW_OK)

    def _manage_channel(self, cmd: Command) -> bytes:
        """MANAGE CHANNEL, TS 102 221 §11.1.17 / ISO/IEC 7816-4 §11.1.2."""
        if cmd.data:
            return sw_bytes(SW_WRONG_LENGTH)
        if cmd.p1 == 0x00:  # open
            if cmd.p2 == 0:
                if cmd.p3 != 1:
                    return bytes([SW1_WRONG_LE, 0x01])
                free = [n for n in range(1, self._max_channel + 1) if n not in self._channels]
                if not free:
                    return sw_bytes(SW_FUNCTION_NOT_SUPPORTED)
                number = free[0]
            else:
                if cmd.p3 not in (None, 0):
                    return sw_bytes(SW_WRONG_LENGTH)
                if cmd.p2 > self._max_channel:
                    return sw_bytes(SW_INCORRECT_P1P2)
                if cmd.p2 in self._channels:
                    return sw_bytes(SW_FUNCTION_NOT_SUPPORTED)
                number = cmd.p2
            # Opened from a logical channel, the new one inherits its application (§11.1.17).
            origin = self._channels[cmd.channel]
            app = origin.app if cmd.channel else False
            self._channels[number] = _Channel(app=app)
            log.debug("card: logical channel %d opened", number)
            return (bytes([number]) + sw_bytes(SW_OK)) if cmd.p2 == 0 else sw_bytes(SW_OK)
        if cmd.p1 == 0x80:  # close
            if cmd.p3 not in (None, 0):
                return sw_bytes(SW_WRONG_LENGTH)
            number = cmd.p2 or cmd.channel
            if number == 0:
                return sw_bytes(SW_INCORRECT_P1P2)  # the basic channel cannot be closed
            if number > MAX_CHANNEL:
                return sw_bytes(SW_INCORRECT_P1P2)
            if number not in self._channels:
                return sw_bytes(SW_LOGICAL_CHANNEL_NOT_SUPPORTED)
            del self._channels[number]
            log.debug("card: logical channel %d closed", number)
            return sw_bytes(SW_OK)
        return sw_bytes(SW_INCORRECT_P1P2)

    def _select(self, ch: _Channel, cmd: Command) -> bytes:
        """SELECT, TS 102 221 §11.1.1 (P2 '0C' no data, '04' FCP; '00' FCI as ISO)."""
        if cmd.p2 not in (0x00, 0x04, 0x0C):
            return sw_bytes(SW_INCORRECT_P1P2)
        if not cmd.data:
            return sw_bytes(SW_WRONG_LENGTH)
        if cmd.p2 == 0x0C and cmd.le is not None:
            return sw_bytes(SW_WRONG_LENGTH)
        if cmd.p1 == 0x04:  # by DF name (AID), right truncation allowed (ISO 7816-4 §11.1.1)
            aid = cmd.data
            if len(aid) > 16 or len(aid) < 5 or not AID_SAFE2.startswith(aid):
                return sw_bytes(SW_FILE_NOT_FOUND)
            ch.app, ch.ef = True, None
            if cmd.p2 == 0x0C:
                return sw_bytes(SW_OK)
            fci = _tlv(0x84, AID_SAFE2) + _tlv(0xA5, b"")
            tag = 0x6F if cmd.p2 == 0x00 else 0x62
            return self._reply(ch, cmd, _tlv(tag, fci))
        if cmd.p1 in (0x00, 0x08):  # by file id / path from MF
            fid_path = cmd.data
            if len(fid_path) % 2 or not 2 <= len(fid_path) <= 4:
                return sw_bytes(SW_WRONG_LENGTH)
            fids = [int.from_bytes(fid_path[i : i + 2], "big") for i in range(0, len(fid_path), 2)]
            if cmd.p1 == 0x00 and len(fids) != 1:
                return sw_bytes(SW_WRONG_LENGTH)
            if fids == [FID_MF]:
                ch.app, ch.ef = False, None
                fcp = _tlv(0x82, b"\x78\x21") + _tlv(0x83, b"\x3f\x00") + _tlv(0x8A, b"\x05")
            elif fids == [FID_EF_ICCID] and (cmd.p1 == 0x08 or not ch.app):
                ch.app, ch.ef = False, FID_EF_ICCID
                fcp = (
                    _tlv(0x82, b"\x41\x21")  # working EF, transparent
                    + _tlv(0x83, b"\x2f\xe2")
                    + _tlv(0x8A, b"\x05")  # life cycle: operational, activated
                    + _tlv(0x80, b"\x00\x0a")  # file size 10
                    + _tlv(0x88, bytes([SFI_EF_ICCID << 3]))
                )
            else:
                return sw_bytes(SW_FILE_NOT_FOUND)
            if cmd.p2 == 0x0C:
                return sw_bytes(SW_OK)
            return self._reply(ch, cmd, _tlv(0x62, fcp))
        return sw_bytes(SW_INCORRECT_P1P2)

    def _read_binary(self, ch: _Channel, cmd: Command) -> bytes:
        """READ BINARY, TS 102 221 §11.1.3 (P1 b8=1: short file identifier in b5-b1)."""
        if cmd.data or cmd.p3 is None:
            return sw_bytes(SW_WRONG_LENGTH)
        if cmd.p1 & 0x80:
            if cmd.p1 & 0x60:
                return sw_bytes(SW_INCORRECT_P1P2)
            if cmd.p1 & 0x1F != SFI_EF_ICCID or ch.app:
                return sw_bytes(SW_FILE_NOT_FOUND)
            ch.ef = FID_EF_ICCID
            offset = cmd.p2
        else:
            if ch.ef != FID_EF_ICCID or ch.app:
                return sw_bytes(SW_NO_CURRENT_EF)
            offset = (cmd.p1 << 8) | cmd.p2
        content = self.state.ef_iccid
        if offset >= len(content):
            return sw_bytes(SW_WRONG_P1P2)
        rest = content[offset:]
        ne = cmd.ne or 256
        if ne > len(rest):
            return bytes([SW1_WRONG_LE, len(rest)])
        return rest[:ne] + sw_bytes(SW_OK)

    def _status(self, ch: _Channel, cmd: Command) -> bytes:
        """STATUS, TS 102 221 §11.1.2: P2 '0C' no data, '00' FCP of the current DF."""
        if cmd.p1 > 0x02 or cmd.p2 not in (0x00, 0x01, 0x0C):
            return sw_bytes(SW_INCORRECT_P1P2)
        if cmd.p2 == 0x0C:
            err = self._no_data(cmd)
            return sw_bytes(err if err is not None else SW_OK)
        if cmd.data or cmd.p3 is None:
            return sw_bytes(SW_WRONG_LENGTH)
        if ch.app:
            data = _tlv(0x62, _tlv(0x82, b"\x78\x21") + _tlv(0x84, AID_SAFE2))
        else:
            data = _tlv(0x62, _tlv(0x82, b"\x78\x21") + _tlv(0x83, b"\x3f\x00"))
        if (cmd.ne or 256) != len(data):
            return bytes([SW1_WRONG_LE, len(data)])
        return data + sw_bytes(SW_OK)

    # ---------------------------------------------------------------- CAT

    def _terminal_profile(self, cmd: Command) -> bytes:
        if not cmd.data or cmd.p1 or cmd.p2:
            return sw_bytes(SW_WRONG_LENGTH if not cmd.data else SW_INCORRECT_P1P2)
        self._profile = cmd.data
        log.debug("card: TERMINAL PROFILE %s", cmd.data.hex())
        self.applet.terminal_profile(cmd.data)
        return sw_bytes(SW_OK)

    def _fetch(self, cmd: Command) -> bytes:
        if cmd.p1 or cmd.p2:
            return sw_bytes(SW_INCORRECT_P1P2)
        if cmd.data or cmd.p3 is None:
            return sw_bytes(SW_WRONG_LENGTH)
        wire, announce = self.applet.toolkit.fetch(cmd.ne or 256)
        if wire is not None:
            return wire + sw_bytes(SW_OK)
        if announce:
            return bytes([SW1_WRONG_LE, announce])
        return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)

    def _terminal_response(self, cmd: Command) -> bytes:
        if cmd.p1 or cmd.p2:
            return sw_bytes(SW_INCORRECT_P1P2)
        toolkit = self.applet.toolkit
        if not toolkit.awaiting_terminal_response:
            return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
        try:
            tr = stk.parse_terminal_response(cmd.data)
        except StkDecodeError as e:
            log.info("card: bad TERMINAL RESPONSE: %s", e)
            return sw_bytes(SW_WRONG_DATA)
        if not toolkit.terminal_response(tr):
            return sw_bytes(SW_WRONG_DATA)
        return sw_bytes(SW_OK)

    def _envelope(self, cmd: Command) -> bytes:
        if cmd.p1 or cmd.p2:
            return sw_bytes(SW_INCORRECT_P1P2)
        if not cmd.data:
            return sw_bytes(SW_WRONG_LENGTH)
        try:
            env = stk.parse_envelope(cmd.data)
        except StkDecodeError as e:
            log.info("card: bad ENVELOPE: %s", e)
            return sw_bytes(SW_WRONG_DATA)
        if isinstance(env, SmsPpDownload):
            # SMS-PP data download (TS 31.111 §7.1.1): the secured packet goes to the OTA
            # security domain; its PoR is the response data ('61 xx', then GET RESPONSE).
            self.ota.state = self.state
            sw, data, changed = self.ota.envelope(cmd.data)
            self.applet.changed |= changed
            if data:
                return self._reply(self._channels[cmd.channel], cmd, data)
            return sw_bytes(sw)
        if isinstance(env, TimerExpiration) and env.timer_id == TIMER_DNS:
            self.applet.dns_cache.clear()  # the cached answer's TTL is over
            return sw_bytes(SW_OK)
        return sw_bytes(SW_OK if self.applet.toolkit.event(env) else SW_TOOLKIT_BUSY)


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag, len(value)]) + value
