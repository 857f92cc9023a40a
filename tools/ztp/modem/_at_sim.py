"""SIM AT commands of the virtual SARA-U201: SIM status and UICC access.

27.007 §8.3 ``+CPIN`` (no PIN on the virtual SIM), DS ``+CCID`` (ICCID read at boot), §8.17
``+CSIM`` (generic SIM access), §8.45 ``+CCHO`` / §8.46 ``+CCHC`` (open / close a logical
channel), §8.43 ``+CGLA`` (logical channel access). The APDU exchanges themselves are the
procedures of ``_uicc``; a handler starts one with ``core.begin_card_procedure`` and says how
its result is printed. DS = u-blox SARA-U2 AT commands manual (UBX-13002752). Handlers: see
``_at_state.Handler``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Final

from ztp.modem._at_state import CommandContext, Handler
from ztp.modem._at_syntax import CommandError, CommandSyntaxError
from ztp.modem._cme import CmeError
from ztp.modem._uicc import Procedure, UiccError

__all__ = ["SIM_COMMANDS", "CardSession", "NeedsCard"]

log = logging.getLogger(__name__)

# 27.007 §8.17: <length> counts hex characters; the longest command APDU is 5 + 255 + 1 bytes.
_CSIM_MAX_HEX: Final = 2 * 261


class NeedsCard(Exception):
    """The running command waits for the card: the AT core sends ``apdu`` (``CardCommand``)
    and resumes the command with the answer (``CardSession.advance``)."""

    def __init__(self, apdu: bytes) -> None:
        super().__init__()
        self.apdu = apdu


class CardSession:
    """The UICC procedure (``_uicc``) an AT command is running, at most one at a time."""

    def __init__(self) -> None:
        self._procedure: tuple[Procedure[Any], Callable[[Any], list[bytes]]] | None = None

    def begin(self, proc: Procedure[Any], done: Callable[[Any], list[bytes]]) -> list[bytes]:
        """Start ``proc`` (closing any other); ``done(result)`` gives the information text.

        Raises ``NeedsCard`` for its first APDU, ``CommandError`` when it fails at once.
        """
        self.close()
        self._procedure = (proc, done)
        return self.advance(None)

    def advance(self, response: bytes | None) -> list[bytes]:
        """Feed the card's answer to the running procedure (None: start it).

        Raises ``NeedsCard`` for its next APDU, ``CommandError`` when it fails.
        """
        assert self._procedure is not None
        proc, done = self._procedure
        try:
            apdu = next(proc) if response is None else proc.send(response)
        except StopIteration as stop:
            self._procedure = None
            return done(stop.value)
        except UiccError as err:
            self._procedure = None
            log.info("AT core: %s", err)
            raise CommandError(err.code) from None
        raise NeedsCard(apdu)

    def close(self) -> None:
        """Abandon the running procedure (reboot, card failure, line finished)."""
        if self._procedure is not None:
            self._procedure[0].close()
            self._procedure = None


def _cmd_cpin(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"=?":
        return []
    if kind != b"?":
        raise CommandError(CmeError.OPERATION_NOT_ALLOWED)  # no PIN on the virtual SIM
    _require_sim(core)
    return [b"+CPIN: READY"]


def _cmd_ccid(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"=?":
        return []
    if kind not in (b"", b"?"):
        raise CommandSyntaxError()
    _require_sim(core)
    if core.iccid is None:
        raise CommandError(CmeError.SIM_FAILURE)
    return [b"+CCID: " + core.iccid.encode()]


def _cmd_csim(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"=?":
        return []
    if kind != b"=":
        raise CommandSyntaxError()
    # 27.007 §8.17: AT+CSIM=<length>,<command>; <length> = number of hex characters.
    m = re.fullmatch(rb'([0-9]{1,4}),"([0-9A-Fa-f]*)"', args)
    if m is None:
        raise CommandError(CmeError.OPERATION_NOT_ALLOWED)
    apdu = _apdu_arg(m.group(1), m.group(2))
    _require_card(core)
    return core.begin_card_procedure(core.uicc.csim(apdu),
                                     lambda resp: [_hex_answer(b"+CSIM", resp)])


def _cmd_ccho(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    # 27.007 §8.45: AT+CCHO=<dfname> -> <sessionid>; we prefix "+CCHO: " as many modems do
    # (Habits.ccho_prefix; what the SARA-U2 firmware prints is not confirmed).
    _require_logical_channels(core)
    if kind == b"=?":
        return []
    if kind != b"=":
        raise CommandSyntaxError()
    m = re.fullmatch(rb'"((?:[0-9A-Fa-f]{2}){1,16})"', args)
    if m is None:
        raise CommandError(CmeError.OPERATION_NOT_ALLOWED)
    _require_card(core)
    prefix = b"+CCHO: " if core.habits.ccho_prefix else b""
    return core.begin_card_procedure(core.uicc.open_channel(bytes.fromhex(m.group(1).decode())),
                                     lambda sessionid: [prefix + b"%d" % sessionid])


def _cmd_cchc(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    # 27.007 §8.46: AT+CCHC=<sessionid> -> OK.
    _require_logical_channels(core)
    if kind == b"=?":
        return []
    if kind != b"=":
        raise CommandSyntaxError()
    if not re.fullmatch(rb"[0-9]{1,5}", args):
        raise CommandError(CmeError.OPERATION_NOT_ALLOWED)
    _require_card(core)
    return core.begin_card_procedure(core.uicc.close_channel(int(args)), lambda _: [])


def _cmd_cgla(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    # 27.007 §8.43: AT+CGLA=<sessionid>,<length>,<command> -> +CGLA: <length>,<response>.
    _require_logical_channels(core)
    if kind == b"=?":
        return []
    if kind != b"=":
        raise CommandSyntaxError()
    m = re.fullmatch(rb'([0-9]{1,5}),([0-9]{1,4}),"([0-9A-Fa-f]*)"', args)
    if m is None:
        raise CommandError(CmeError.OPERATION_NOT_ALLOWED)
    apdu = _apdu_arg(m.group(2), m.group(3))
    _require_card(core)
    return core.begin_card_procedure(core.uicc.channel_access(int(m.group(1)), apdu),
                                     lambda resp: [_hex_answer(b"+CGLA", resp)])


def _require_logical_channels(core: CommandContext) -> None:
    if not core.habits.logical_channel_commands:
        raise CommandError(CmeError.OPERATION_NOT_SUPPORTED)  # as any unsupported command


def _require_card(core: CommandContext) -> None:
    """A UICC access command may go ahead (SIM present, no SIM-busy fault left)."""
    _require_sim(core)
    if core.sim_busy_commands > 0:
        core.sim_busy_commands -= 1
        raise CommandError(CmeError.SIM_BUSY)


def _require_sim(core: CommandContext) -> None:
    if not core.sim_present:
        raise CommandError(CmeError.SIM_NOT_INSERTED)
    if core.now_ms < core.sim_ready_at_ms:
        # the modem is still reading the SIM after a reboot: SIM busy (27.007 9.2.1, 14)
        raise CommandError(CmeError.SIM_BUSY)


def _apdu_arg(length: bytes, hexa: bytes) -> bytes:
    """<length>,<command> of +CSIM / +CGLA: <length> counts hex characters (27.007 §8.17)."""
    n = int(length)
    if n != len(hexa) or n % 2 or not 8 <= n <= _CSIM_MAX_HEX:
        raise CommandError(CmeError.OPERATION_NOT_ALLOWED)
    return bytes.fromhex(hexa.decode())


def _hex_answer(name: bytes, resp: bytes) -> bytes:
    """``+CSIM: <length>,"<response>"`` (the same shape for +CGLA)."""
    hexa = resp.hex().upper().encode()
    return b'%s: %d,"%s"' % (name, len(hexa), hexa)


SIM_COMMANDS: Final[dict[bytes, Handler]] = {
    b"+CPIN": _cmd_cpin,
    b"+CCID": _cmd_ccid,
    b"+CSIM": _cmd_csim,
    b"+CCHO": _cmd_ccho,
    b"+CCHC": _cmd_cchc,
    b"+CGLA": _cmd_cgla,
}
