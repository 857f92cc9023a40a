"""General AT commands of the virtual SARA-U201: V.250 basics, error reporting, identity, rate.

V.250 ``E`` (echo), ``V`` (verbose result codes), ``Z`` / ``&F`` (settings back to defaults),
``I`` (identification), DS ``&K`` (flow control), 27.007 ``+CMEE`` (error format), ``+CGSN``
(IMEI), ``+CGMI`` / ``+CGMM`` / ``+CGMR`` (manufacturer, model, revision), DS ``+IPR`` (UART
rate). DS = u-blox SARA-U2 AT commands manual (UBX-13002752), SIM = SARA-G3/U2 system
integration manual (UBX-13000995). Handlers: see ``_at_state.Handler``.
"""

from __future__ import annotations

from typing import Final

from ztp.modem._at_state import CommandContext, Handler, Settings
from ztp.modem._at_syntax import CommandError, CommandSyntaxError, basic_flag, int_arg
from ztp.modem._cme import CmeError

__all__ = ["GENERAL_COMMANDS", "IPR_RATES"]

# DS +IPR: supported fixed rates; 0 = autobauding (factory default).
IPR_RATES: Final = (0, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800,
                    921600)


def _cmd_e(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    core.settings.echo = basic_flag(args)
    return []


def _cmd_v(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if basic_flag(args) is not True:
        raise CommandSyntaxError()  # only verbose result codes are modelled
    return []


def _cmd_z(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if args not in (b"", b"0"):
        raise CommandSyntaxError()
    core.settings = Settings()
    return []


def _cmd_i(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if args in (b"", b"0"):
        return [core.identity.type_number.encode()]
    if args == b"9":
        return [(core.identity.revision + ",A01.01").encode()]
    raise CommandSyntaxError()


def _cmd_and_k(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    # DS &K: 0 = no flow control, 3 = RTS/CTS; 4 (XON/XOFF) is not supported here.
    if args not in (b"0", b"3"):
        raise CommandSyntaxError()
    was_held = core.output_held
    core.settings.flow_control = int(args)
    if was_held and not core.output_held:
        core.output_released()  # &K0: "data sent by the module ... regardless of RTS" (SIM t. 11)
    return []


def _cmd_and_f(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if args not in (b"", b"0"):
        raise CommandSyntaxError()
    core.settings = Settings()
    return []


def _cmd_cmee(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"?":
        return [b"+CMEE: %d" % core.settings.cmee]
    if kind == b"=?":
        return [b"+CMEE: (0-2)"]
    if kind == b"=":
        core.settings.cmee = int_arg(args, 0, 2, default=0)
        return []
    raise CommandSyntaxError()


def _cmd_cgsn(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"=?":
        return []
    if kind != b"":
        raise CommandSyntaxError()
    return [core.identity.imei.encode()]


def _cmd_cgmi(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    return _ident(kind, core.identity.manufacturer)


def _cmd_cgmm(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    return _ident(kind, core.identity.model)


def _cmd_cgmr(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    return _ident(kind, core.identity.revision)


def _ident(kind: bytes, text: str) -> list[bytes]:
    if kind == b"=?":
        return []
    if kind != b"":
        raise CommandSyntaxError()
    return [text.encode()]


def _cmd_ipr(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"?":
        return [b"+IPR: %d" % core.ipr]
    if kind == b"=?":
        return [b"+IPR: (%s),()" % ",".join(str(r) for r in IPR_RATES).encode()]
    if kind == b"=":
        rate = int_arg(args, 0, 921600, default=0)
        if rate not in IPR_RATES:
            raise CommandError(CmeError.OPERATION_NOT_SUPPORTED)
        core.ipr = rate
        return []
    raise CommandSyntaxError()


GENERAL_COMMANDS: Final[dict[bytes, Handler]] = {
    b"E": _cmd_e,
    b"V": _cmd_v,
    b"Z": _cmd_z,
    b"I": _cmd_i,
    b"&K": _cmd_and_k,
    b"&F": _cmd_and_f,
    b"+CMEE": _cmd_cmee,
    b"+CGSN": _cmd_cgsn,
    b"+CGMI": _cmd_cgmi,
    b"+CGMM": _cmd_cgmm,
    b"+CGMR": _cmd_cgmr,
    b"+IPR": _cmd_ipr,
}
