"""Radio AT commands of the virtual SARA-U201: power level and network registration.

27.007 §8.2 ``+CFUN`` (0/1/4; DS 15/16 reboot), §8.5 ``+CSQ`` (signal quality), §7.2
``+CREG`` (circuit-switched registration) and §10.1.20 ``+CGREG`` (packet domain), with the
field layout of their read answers and URCs. DS = u-blox SARA-U2 AT commands manual
(UBX-13002752). Handlers: see ``_at_state.Handler``.
"""

from __future__ import annotations

from typing import Final

from ztp.modem._at_state import CommandContext, Handler, NetworkConditions, Registration
from ztp.modem._at_syntax import (
    CommandError,
    CommandSyntaxError,
    int_arg,
    int_field,
    split_args,
)
from ztp.modem._cme import CmeError

__all__ = ["RADIO_COMMANDS", "cgreg_fields", "creg_fields"]

# Packet-domain access technology for <AcT> (27.007 §7.3): 2 = UTRAN. SARA-U201 is 2G/3G only.
_ACT_UTRAN: Final = 2


def creg_fields(network: NetworkConditions, stat: Registration, n: int) -> bytes:
    """``<stat>[,<lac>,<ci>,<AcT>]`` of +CREG (read answer after ``<n>,``, and URC)."""
    text = b"%d" % stat
    if n == 2 and stat in (Registration.HOME, Registration.ROAMING):
        text += b',"%04X","%08X",%d' % (network.lac, network.ci, _ACT_UTRAN)
    return text


def cgreg_fields(network: NetworkConditions, stat: Registration, n: int) -> bytes:
    """``<stat>[,<lac>,<ci>,<AcT>,<rac>]`` of +CGREG (read answer after ``<n>,``, and URC)."""
    text = b"%d" % stat
    if n == 2 and stat in (Registration.HOME, Registration.ROAMING):
        text += b',"%04X","%08X",%d,"%02X"' % (network.lac, network.ci, _ACT_UTRAN, network.rac)
    return text


def _cmd_csq(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"=?":
        return [b"+CSQ: (0-31,99),(0-7,99)"]
    if kind != b"":
        raise CommandSyntaxError()
    rssi = 18 if core.fun == 1 and core.ps_stat != Registration.SEARCHING else 99
    return [b"+CSQ: %d,99" % rssi]


def _cmd_cfun(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"?":
        return [b"+CFUN: %d" % core.fun]
    if kind == b"=?":
        return [b"+CFUN: (0,1,4,15,16),(0-1)"]
    if kind != b"=":
        raise CommandSyntaxError()
    fields = split_args(args)
    if not 1 <= len(fields) <= 2:
        raise CommandSyntaxError()
    fun = int_field(fields[0], 0, 16)
    if len(fields) == 2:
        int_field(fields[1], 0, 1)  # <rst>: the model always resets when asked (15/16)
    if fun in (15, 16):
        core.request_reboot(reset_sim=fun == 15)
        return []
    if fun == 1:
        if core.fun != 1:
            core.fun = 1
            core.radio_on(core.now_ms)
        return []
    if fun in (0, 4):
        # 0: minimum functionality, 4: airplane mode; SIM stays accessible (DS +CFUN).
        core.fun = fun
        core.radio_off()
        return []
    raise CommandError(CmeError.OPERATION_NOT_SUPPORTED)


def _cmd_creg(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"?":
        return [b"+CREG: %d," % core.settings.creg_n
                + creg_fields(core.network, core.cs_stat, core.settings.creg_n)]
    if kind == b"=?":
        return [b"+CREG: (0-2)"]
    if kind == b"=":
        core.settings.creg_n = int_arg(args, 0, 2, default=0)
        return []
    raise CommandSyntaxError()


def _cmd_cgreg(core: CommandContext, kind: bytes, args: bytes) -> list[bytes]:
    if kind == b"?":
        return [b"+CGREG: %d," % core.settings.cgreg_n
                + cgreg_fields(core.network, core.ps_stat, core.settings.cgreg_n)]
    if kind == b"=?":
        return [b"+CGREG: (0-2)"]
    if kind == b"=":
        core.settings.cgreg_n = int_arg(args, 0, 2, default=0)
        return []
    raise CommandSyntaxError()


RADIO_COMMANDS: Final[dict[bytes, Handler]] = {
    b"+CSQ": _cmd_csq,
    b"+CFUN": _cmd_cfun,
    b"+CREG": _cmd_creg,
    b"+CGREG": _cmd_cgreg,
}
