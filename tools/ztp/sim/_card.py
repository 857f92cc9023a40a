"""The virtual UICC: ISO/IEC 7816-4 / ETSI TS 102 221 v15 card with the SAFE2 applet.

Sans-I/O: ``transmit(apdu, now_ms)`` takes one command APDU and returns response data + SW1 SW2,
exactly as a T=0 card answers through AT+CSIM. Nothing runs between APDUs; the applet's network
job (``_job.py``) advances only when the terminal sends TERMINAL RESPONSE or ENVELOPE.

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

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ztp import stk
from ztp.stk import (
    CloseChannel,
    EventDownload,
    OpenChannel,
    SmsPpDownload,
    StkDecodeError,
    TerminalResponse,
    TimerExpiration,
)

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
from ._cost import CostModel
from ._job import (
    TIMER_DNS,
    WAIT,
    Config,
    DnsCache,
    ExchangeRecord,
    Job,
    Request,
    ResultCode,
    RetryPolicy,
)
from ._ota import SimOta
from ._state import AppletStatus, CardState

__all__ = ["AID_SAFE2", "VirtualSim"]

log = logging.getLogger("ztp.sim")

AID_SAFE2: Final = bytes([0xF0]) + b"podgsafe2" + bytes([0x01, 0x01])
FID_MF: Final = 0x3F00
FID_EF_ICCID: Final = 0x2FE2  # TS 102 221 §13.2
SFI_EF_ICCID: Final = 0x02
_MAX_INBOX: Final = 8

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


class VirtualSim:
    """A SIM with the SAFE2 applet, answering APDUs as a real card does.

    Args:
        state: the card's persistent state (``CardState``); saved after every change of
            the applet's outcome when it has a path.
        cost_model: time model (``last_cost_ms`` after each ``transmit``).
        rng: ``rng(n) -> n random bytes`` (TLS randoms, DNS ids).
        retry: the applet's retry policy.
        logical_channels: channels 1..N besides the basic channel (at most 19).
    """

    def __init__(
        self,
        state: CardState,
        *,
        cost_model: CostModel | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        retry: RetryPolicy | None = None,
        logical_channels: int = 7,
    ) -> None:
        if not 1 <= logical_channels <= MAX_CHANNEL:
            raise ValueError(f"logical_channels must be 1..{MAX_CHANNEL}")
        self.state = state
        self._cost = cost_model or CostModel()
        self._rng = rng
        self._retry = retry or RetryPolicy()
        self._max_channel = logical_channels
        self.last_cost_ms = 0.0
        self.exchanges: list[ExchangeRecord] = []  # every TLS connection the applet made
        self.ota = SimOta(state)  # SMS-PP data download -> OTA security domain (_ota.py)
        self._now_ms = 0
        self._power_on()
        if self.state.status == AppletStatus.BUSY:  # the card lost power mid-request
            self._set_outcome(AppletStatus.ERROR, ResultCode.INTERRUPTED, b"")

    # ---------------------------------------------------------------- public API

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: object) -> VirtualSim:
        """A card from its state file (see ``CardState.load``)."""
        return cls(CardState.load(Path(path)), **kwargs)  # type: ignore[arg-type]

    def save(self) -> None:
        """Write the card state to its file (atomic)."""
        self.state.save()

    @property
    def cost_model(self) -> CostModel:
        return self._cost

    @cost_model.setter
    def cost_model(self, model: CostModel) -> None:
        self._cost = model

    def reset(self) -> bytes:
        """Cold/warm reset: channels closed, toolkit session and any running request end (the
        applet reports ``000F`` / INTERRUPTED for it). Returns the ATR."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
            if self.state.status == AppletStatus.BUSY:
                self._set_outcome(AppletStatus.ERROR, ResultCode.INTERRUPTED, b"")
        self._power_on()
        return ATR

    @property
    def atr(self) -> bytes:
        return ATR

    @property
    def terminal_profile(self) -> bytes | None:
        return self._profile

    @property
    def proactive_pending(self) -> int:
        """Length of the proactive command the card would announce with 91xx, or 0."""
        if self._pending is None or self._outstanding is not None:
            return 0
        return len(self._pending[1])

    @property
    def open_bip_channels(self) -> tuple[int, ...]:
        return tuple(sorted(self._bip_channels))

    @property
    def job_phase(self) -> str | None:
        return self._job.phase if self._job is not None else None

    def transmit(self, apdu: bytes, now_ms: int) -> bytes:
        """Process one command APDU; returns response data + SW1 SW2.

        Never raises for bad input: every malformed or unsupported APDU gets its status word.
        ``last_cost_ms`` is set to the time the exchange takes on a real card.
        """
        self._now_ms = now_ms
        self.state.counters.apdus += 1
        job = self._job
        sha0 = job.sha256_blocks if job else 0
        aes0 = job.aes_blocks if job else 0
        try:
            cmd = parse_command(bytes(apdu))
        except ApduFormatError as e:
            resp = sw_bytes(e.sw)
        else:
            resp = self._dispatch(cmd)
        if resp[-2:] == sw_bytes(SW_OK) and self.proactive_pending:
            # TS 102 221 §10.2.1.1: '91 XX' normal ending, XX bytes of proactive command.
            resp = resp[:-2] + bytes([SW1_PROACTIVE, self.proactive_pending])
        sha = aes = 0
        for j in {job, self._job} - {None}:
            assert j is not None
            sha += j.sha256_blocks - (sha0 if j is job else 0)
            aes += j.aes_blocks - (aes0 if j is job else 0)
        self.last_cost_ms = self._cost.apdu_ms(len(apdu), len(resp), sha, aes)
        return resp

    # ---------------------------------------------------------------- card internals

    def _power_on(self) -> None:
        self._channels: dict[int, _Channel] = {0: _Channel()}
        self._profile: bytes | None = None
        self._job: Job | None = None
        self._job_started = False
        self._pending: tuple[stk.ProactiveCommand, bytes, Job] | None = None
        self._outstanding: tuple[stk.ProactiveCommand, bytes, Job] | None = None
        self._inbox: deque[EventDownload | TimerExpiration] = deque()
        self._bip_channels: set[int] = set()
        self._command_number = 0
        self._waiting = False  # the job waits for an ENVELOPE
        # transient memory: the DNS answer lives while the terminal's timer 3 runs (_job.py)
        self.dns_cache = DnsCache()

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
        return self._applet(ch, cmd)

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
        # A new TERMINAL PROFILE without a card reset means the terminal restarted (modem
        # reboot): its channels, timers and the command it had fetched are gone. A running
        # request starts over rather than waiting forever.
        self._outstanding = self._pending = None
        self._bip_channels.clear()
        self.dns_cache.clear()  # its expiry timer went with the terminal
        if self._job is not None:
            requests = list(self._job.requests)
            self._job.cancel()
            self._job = None
            log.info("SAFE2: terminal restarted, request starts over")
            self._new_request(requests, count=False)
        return sw_bytes(SW_OK)

    def _fetch(self, cmd: Command) -> bytes:
        if cmd.p1 or cmd.p2:
            return sw_bytes(SW_INCORRECT_P1P2)
        if cmd.data or cmd.p3 is None:
            return sw_bytes(SW_WRONG_LENGTH)
        current = self._outstanding or self._pending
        if current is None:
            return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
        wire = current[1]
        if (cmd.ne or 256) != len(wire):
            return bytes([SW1_WRONG_LE, len(wire)])
        if self._outstanding is None:
            self._outstanding, self._pending = self._pending, None
        return wire + sw_bytes(SW_OK)

    def _terminal_response(self, cmd: Command) -> bytes:
        if cmd.p1 or cmd.p2:
            return sw_bytes(SW_INCORRECT_P1P2)
        if self._outstanding is None:
            return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
        try:
            tr = stk.parse_terminal_response(cmd.data)
        except StkDecodeError as e:
            log.info("card: bad TERMINAL RESPONSE: %s", e)
            return sw_bytes(SW_WRONG_DATA)
        command, _wire, owner = self._outstanding
        if tr.details != command.details:
            log.info("card: TERMINAL RESPONSE for %s, expected %s", tr.details, command.details)
            return sw_bytes(SW_WRONG_DATA)
        self._outstanding = None
        self._bookkeep(command, tr)
        if owner is self._job and self._job is not None:
            self._advance(tr)
        elif self._job is not None and not self._job_started:
            self._start_job()
        return sw_bytes(SW_OK)

    def _bookkeep(self, command: stk.ProactiveCommand, tr: TerminalResponse) -> None:
        if isinstance(command, OpenChannel) and tr.result.ok:
            for cs in tr.channel_status:
                if cs.channel:
                    self._bip_channels.add(cs.channel)
        elif isinstance(command, CloseChannel):
            self._bip_channels.discard(command.channel)

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
            sw, data = self.ota.envelope(cmd.data)
            if data:
                return self._reply(self._channels[cmd.channel], cmd, data)
            return sw_bytes(sw)
        if isinstance(env, TimerExpiration) and env.timer_id == TIMER_DNS:
            self.dns_cache.clear()  # the cached answer's TTL is over
            return sw_bytes(SW_OK)
        if self._job is None:
            return sw_bytes(SW_OK)  # no applet is waiting for events: nothing to do
        if len(self._inbox) >= _MAX_INBOX:
            return sw_bytes(SW_TOOLKIT_BUSY)
        self._inbox.append(env)
        if self._waiting and self._outstanding is None and self._pending is None:
            self._advance(None)
        return sw_bytes(SW_OK)

    # ---------------------------------------------------------------- applet job driver

    def _start_job(self) -> None:
        assert self._job is not None
        self._job_started = True
        self._on_yield(self._job.start())

    def _advance(self, tr: TerminalResponse | None) -> None:
        """Resume the job with a TR, or with queued envelopes when it is waiting."""
        assert self._job is not None
        if tr is not None:
            self._on_yield(self._job.resume(tr))
        elif self._inbox:
            self._on_yield(self._job.resume(self._inbox.popleft()))

    def _on_yield(self, y: object) -> None:
        job = self._job
        assert job is not None
        while True:
            if job.outcome is not None and self.state.status == AppletStatus.BUSY:
                self._finish(job)
            if y is None:
                self._job = None
                self._waiting = False
                self._inbox.clear()
                return
            if y is WAIT:
                if self._inbox:
                    y = job.resume(self._inbox.popleft())
                    continue
                self._waiting = True
                return
            self._waiting = False
            self._command_number = self._command_number % 0xFE + 1
            numbered = dataclasses.replace(y, number=self._command_number)  # type: ignore[type-var]
            self._pending = (numbered, stk.build_proactive_command(numbered), job)
            return

    def _finish(self, job: Job) -> None:
        status, result, body = job.outcome  # type: ignore[misc]
        if job.delivered_telemetry:
            self.state.telemetry = None
        counters = self.state.counters
        counters.attempts += job.attempts
        counters.tls_handshakes += job.handshakes
        if status == AppletStatus.ERROR:
            counters.failures += 1
        else:
            counters.successes += 1
        self.exchanges.extend(job.exchanges)
        log.info(
            "SAFE2: request finished: state %04X result %04X, %d bytes", status, result, len(body)
        )
        self._set_outcome(status, result, body)

    def _set_outcome(self, status: int, result: int, body: bytes) -> None:
        self.state.status, self.state.result, self.state.body = status, result, body
        self._persist()

    def _persist(self) -> None:
        if self.state.path is not None:
            self.state.save()

    def _new_request(self, requests: list[Request], count: bool = True) -> None:
        """Start a job for ``requests``, superseding any unfinished one."""
        if self._job is not None:
            log.info("SAFE2: unfinished request superseded")
            self._job.cancel()
            self._job = None
        self._inbox.clear()
        self._waiting = False
        if self._pending is not None:
            self._pending = None  # not fetched yet: withdrawn
        if count:
            self.state.counters.requests += 1
        profile = self._profile or b""
        need = [
            stk.Feature.OPEN_CHANNEL,
            stk.Feature.CLOSE_CHANNEL,
            stk.Feature.SEND_DATA,
            stk.Feature.RECEIVE_DATA,
            stk.Feature.TCP_CLIENT_REMOTE,
            stk.Feature.EVENT_DATA_AVAILABLE,
        ]
        if not _is_ip(self.state.host):
            need.append(stk.Feature.UDP_CLIENT_REMOTE)
        if not all(stk.profile_supports(profile, f) for f in need):
            self._set_outcome(AppletStatus.ERROR, ResultCode.NO_BIP, b"")
            self.state.counters.failures += 1
            return
        timers = stk.profile_supports(profile, stk.Feature.TIMER_MANAGEMENT) and (
            stk.profile_supports(profile, stk.Feature.TIMER_EXPIRATION)
        )
        assert self.state.device_id is not None
        config = Config(
            self.state.ef_iccid,
            self.state.psk,
            self.state.host,
            self.state.port,
            self.state.device_id,
            timers,
        )
        self._job = Job(
            config,
            requests,
            telemetry=lambda: self.state.telemetry,
            rng=self._rng,
            retry=self._retry,
            open_channels=lambda: tuple(sorted(self._bip_channels)),
            dns_cache=self.dns_cache,
        )
        self._set_outcome(AppletStatus.BUSY, 0, b"")
        self._job_started = False
        if self._outstanding is None:
            self._start_job()
        # else: the previous job's command is still with the terminal; start after its TR

    # ---------------------------------------------------------------- SAFE2 applet

    def _targets(self) -> tuple[str, str]:
        assert self.state.device_id is not None
        query = f"?iccid={self.state.ef_iccid.hex()}"
        dev = self.state.device_id.hex()
        return f"/v1/config/{dev}{query}", f"/v1/data/{dev}{query}"

    def _applet(self, ch: _Channel, cmd: Command) -> bytes:
        """SAFE2 instructions (SAFE2-PROTOCOL.md APDU table)."""
        if cmd.ins == INS_SAFE2_PUT:
            if (cmd.p1, cmd.p2) not in ((0x02, 0xC0), (0x02, 0xC1)):
                return sw_bytes(SW_INCORRECT_P1P2)
            if not cmd.data or cmd.le is not None:
                return sw_bytes(SW_WRONG_LENGTH)
            if cmd.p2 == 0xC0:  # DeviceID
                if len(cmd.data) > 64:
                    return sw_bytes(SW_WRONG_LENGTH)
                self.state.device_id = cmd.data
                self._persist()
                return sw_bytes(SW_OK)
            # telemetry: delivered by POST (before the GET when a request is running)
            if self.state.device_id is None:
                return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
            self.state.telemetry = cmd.data
            post = Request("POST", self._targets()[1])
            if self._job is not None:
                self._job.add(post)
                self._persist()
            else:
                self._new_request([post])
            return sw_bytes(SW_OK)
        if cmd.ins == INS_SAFE2_GET:
            if (cmd.p1, cmd.p2) == (0x00, 0x00):  # start configuration request
                err = self._no_data(cmd)
                if err is not None:
                    return sw_bytes(err)
                if self.state.device_id is None:
                    return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
                requests = []
                if self.state.telemetry is not None:
                    requests.append(Request("POST", self._targets()[1]))
                requests.append(Request("GET", self._targets()[0]))
                self._new_request(requests)
                return sw_bytes(SW_OK)
            if (cmd.p1, cmd.p2) == (0x01, 0x00):  # read configuration
                if cmd.data:
                    return sw_bytes(SW_WRONG_LENGTH)
                if self.state.status != AppletStatus.DATA or not self.state.body:
                    return sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
                return self._reply(ch, cmd, self.state.body)
            return sw_bytes(SW_INCORRECT_P1P2)
        # INS_SAFE2_STATUS
        if (cmd.p1, cmd.p2) != (0x02, 0x00):
            return sw_bytes(SW_INCORRECT_P1P2)
        if cmd.data:
            return sw_bytes(SW_WRONG_LENGTH)
        data = self.state.status.to_bytes(2, "big") + self.state.result.to_bytes(2, "big")
        return self._reply(ch, cmd, data)


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag, len(value)]) + value


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
