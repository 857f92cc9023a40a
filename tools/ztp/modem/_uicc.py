"""UICC access through the MT: AT+CSIM and the logical channel commands of 3GPP TS 27.007.

TS 27.007 §8.17 +CSIM (generic SIM access), §8.45 +CCHO (open logical channel), §8.46 +CCHC
(close logical channel), §8.43 +CGLA (generic UICC logical channel access), carried out with
ETSI TS 102 221 APDUs: MANAGE CHANNEL (§11.1.17), SELECT by DF name (§11.1.1), GET RESPONSE
(§11.1.11); CLA coding of the channel number in §10.1.1.

Theory of operation
-------------------
Sans-I/O. Each AT command becomes a *procedure*: a generator that yields the command APDUs
the MT sends to the card and is sent back the card's answers (data + SW1 SW2). It returns its
result (the answer for +CSIM / +CGLA, the <sessionid> for +CCHO) or raises ``UiccError`` with
the +CME ERROR the MT reports. The AT core turns every yielded APDU into a ``CardCommand``.

    proc = uicc.open_channel(aid)
    apdu = next(proc)                   # 00 70 00 00 01
    apdu = proc.send(bytes.fromhex("019000"))   # 01 A4 04 00 ...
    ...                                 # StopIteration(value=<sessionid>) at the end

+CCHO: MANAGE CHANNEL open on the basic channel, then SELECT by DF name on the new channel with
P2 '00' (FCI); a 61xx is followed by GET RESPONSE and the FCI is dropped (TS 27.007 gives the TE
only the <sessionid>). A refused SELECT closes the channel again. +CGLA: "the MT [manages] the
logical channel part of the APDU CLASS byte" (§8.45 NOTE): the TE's CLA channel bits are
replaced by the session's channel; the answer goes back "as it is" (§8.43): 61xx/6Cxx are the
TE's business. MANAGE CHANNEL through +CGLA is refused (the MT owns the channel), so are RUN GSM
ALGORITHM / AUTHENTICATE in GSM context (§8.43: "shall not be allowed").

+CSIM passes APDUs through unchanged unless the habits say otherwise (refuse INS 70 / C0,
or answer 61xx with the MT's own GET RESPONSE).

Error codes where TS 27.007 and the SARA-U2 manual leave the choice to us *(assumed)*: no free
channel (6881/6A81) -> 20 memory full; SELECT refused or another card failure -> 100 unknown;
unknown <sessionid> -> 21 invalid index; refused APDUs -> ``Habits.csim_refusal`` (3).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Final, TypeVar

from ztp.modem._cme import CmeError
from ztp.modem._habits import Habits

__all__ = ["Procedure", "UiccAccess", "UiccError", "cla_for_channel"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Procedure = Generator[bytes, bytes, T]

INS_MANAGE_CHANNEL: Final = 0x70  # TS 102 221 §11.1.17
INS_SELECT: Final = 0xA4  # §11.1.1
INS_GET_RESPONSE: Final = 0xC0  # §11.1.11
INS_RUN_GSM_ALGORITHM: Final = 0x88  # TS 51.011 RUN GSM ALGORITHM / TS 31.102 AUTHENTICATE
MAX_CHANNEL: Final = 19  # TS 102 221 §10.1.1: logical channels 1..19


class UiccError(Exception):
    """The MT answers ``+CME ERROR: <code>``; ``why`` is for the log."""

    def __init__(self, code: CmeError, why: str) -> None:
        super().__init__(f"{why} (CME {int(code)})")
        self.code = code
        self.why = why


def _sw(resp: bytes) -> int:
    return (resp[-2] << 8) | resp[-1]


def _ok(resp: bytes) -> bool:
    """9000, 91xx (proactive command pending) or a 62xx/63xx warning: the command ran."""
    return len(resp) >= 2 and (_sw(resp) == 0x9000 or resp[-2] in (0x91, 0x62, 0x63))


def cla_for_channel(cla: int, channel: int) -> int:
    """``cla`` with its logical channel set to ``channel`` (TS 102 221 §10.1.1).

    Channels 0-3 use the first interindustry coding ('0X', proprietary '8X': b2-b1 = channel,
    b4-b3 secure messaging kept); channels 4-19 the further coding ('4X'/'6X', proprietary
    'CX'/'EX': b4-b1 = channel - 4, b6 secure messaging). The chaining bit b5 is kept.
    """
    if not 0 <= channel <= MAX_CHANNEL:
        raise ValueError(f"logical channel must be 0..{MAX_CHANNEL}, got {channel}")
    proprietary = cla & 0x80
    chaining = cla & 0x10
    if channel <= 3:
        sm = 0 if cla & 0x40 else cla & 0x0C
        return proprietary | chaining | sm | channel
    sm = cla & 0x20 if cla & 0x40 else 0
    return proprietary | 0x40 | sm | chaining | (channel - 4)


def channel_of_cla(cla: int) -> int:
    """The logical channel a CLA byte addresses (TS 102 221 §10.1.1)."""
    return 4 + (cla & 0x0F) if cla & 0x40 else cla & 0x03


def _get_response(channel: int, length: int) -> bytes:
    """GET RESPONSE on ``channel`` for ``length`` bytes (0 = 256), TS 102 221 §11.1.11."""
    return bytes([cla_for_channel(0x00, channel), INS_GET_RESPONSE, 0, 0, length & 0xFF])


class UiccAccess:
    """The MT side of UICC access: filters, procedures and the open +CCHO sessions.

    Args:
        habits: which APDUs +CSIM refuses, <sessionid> numbering (see ``Habits``).
    """

    def __init__(self, habits: Habits) -> None:
        self.habits = habits
        self._sessions: dict[int, int] = {}  # <sessionid> -> logical channel

    @property
    def sessions(self) -> dict[int, int]:
        """Open +CCHO sessions: <sessionid> -> logical channel (a copy)."""
        return dict(self._sessions)

    def reset(self) -> None:
        """The SIM was reset (modem reboot): every logical channel is gone."""
        self._sessions.clear()

    # ------------------------------------------------------------------ +CSIM
    def csim(self, apdu: bytes) -> Procedure[bytes]:
        """AT+CSIM: the APDU to the card; returns the answer to report (data + SW)."""
        ins = apdu[1]
        if ins == INS_MANAGE_CHANNEL and self.habits.csim_refuses_manage_channel:
            raise UiccError(self.habits.csim_refusal, "+CSIM: MANAGE CHANNEL refused")
        if ins == INS_GET_RESPONSE and self.habits.csim_refuses_get_response:
            raise UiccError(self.habits.csim_refusal, "+CSIM: GET RESPONSE refused")
        resp = yield apdu
        if self.habits.csim_gets_response_itself and len(resp) == 2 and resp[0] == 0x61:
            # The MT fetches the waiting data on the command's channel (TS 102 221 §7.3.1.1.4).
            resp = yield _get_response(channel_of_cla(apdu[0]), resp[1])
        return resp

    # ------------------------------------------------------------------ +CCHO / +CCHC / +CGLA
    def open_channel(self, dfname: bytes) -> Procedure[int]:
        """AT+CCHO=<dfname>: open a channel, select the application; returns <sessionid>."""
        if not 1 <= len(dfname) <= 16:
            raise UiccError(CmeError.OPERATION_NOT_ALLOWED, "+CCHO: DF name must be 1..16 bytes")
        resp = yield bytes([0x00, INS_MANAGE_CHANNEL, 0x00, 0x00, 0x01])
        if len(resp) != 3 or not _ok(resp) or not 1 <= resp[0] <= MAX_CHANNEL:
            if len(resp) >= 2 and _sw(resp) in (0x6881, 0x6A81):
                raise UiccError(CmeError.MEMORY_FULL, "+CCHO: no free logical channel")
            raise UiccError(CmeError.UNKNOWN, f"+CCHO: MANAGE CHANNEL answered {resp.hex()}")
        channel = resp[0]
        select = bytes([cla_for_channel(0x00, channel), INS_SELECT, 0x04, 0x00, len(dfname)])
        resp = yield select + dfname
        if len(resp) == 2 and resp[0] == 0x61:
            resp = yield _get_response(channel, resp[1])  # the FCI: the TE gets none of it
        if not _ok(resp):
            log.info("uicc: SELECT %s on channel %d answered %s: closing it", dfname.hex(),
                     channel, resp[-2:].hex())
            yield bytes([0x00, INS_MANAGE_CHANNEL, 0x80, channel, 0x00])
            raise UiccError(CmeError.UNKNOWN, f"+CCHO: SELECT answered {resp[-2:].hex()}")
        sessionid = channel + self.habits.session_id_offset
        self._sessions[sessionid] = channel
        log.info("uicc: session %d = logical channel %d (%s)", sessionid, channel, dfname.hex())
        return sessionid

    def close_channel(self, sessionid: int) -> Procedure[None]:
        """AT+CCHC=<sessionid>: MANAGE CHANNEL close; the session is gone whatever the card
        answers."""
        channel = self._channel(sessionid)
        del self._sessions[sessionid]
        resp = yield bytes([0x00, INS_MANAGE_CHANNEL, 0x80, channel, 0x00])
        if not _ok(resp):
            raise UiccError(CmeError.UNKNOWN, f"+CCHC: MANAGE CHANNEL answered {resp.hex()}")

    def channel_access(self, sessionid: int, apdu: bytes) -> Procedure[bytes]:
        """AT+CGLA=<sessionid>,...: the APDU on the session's channel; the answer as it is."""
        channel = self._channel(sessionid)
        cla, ins = apdu[0], apdu[1]
        if ins == INS_MANAGE_CHANNEL:
            raise UiccError(CmeError.OPERATION_NOT_ALLOWED, "+CGLA: MANAGE CHANNEL refused")
        if ins == INS_RUN_GSM_ALGORITHM and apdu[3] == 0x00:
            raise UiccError(CmeError.OPERATION_NOT_ALLOWED, "+CGLA: GSM authentication refused")
        resp = yield bytes([cla_for_channel(cla, channel)]) + apdu[1:]
        return resp

    def _channel(self, sessionid: int) -> int:
        channel = self._sessions.get(sessionid)
        if channel is None:
            raise UiccError(CmeError.INVALID_INDEX, f"no session {sessionid}")
        return channel
