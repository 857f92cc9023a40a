"""Virtual u-blox SARA-U201 modem: AT interpreter, SIM Toolkit terminal (BIP), virtual network.

See docs/modem.md. ``VirtualModem(sim, network=Network(...), latency=LatencyModel(...),
faults=Faults(...), habits=Habits(...))``; ``await modem.serve_pty()`` /
``await modem.serve_tcp(host, port)``; hardware lines ``modem.set_rts(bool)``,
``modem.set_reset_line(bool)``.
"""

from ztp.modem._at import NEED_DATA, AtCore, CardCommand, RebootRequest
from ztp.modem._at_state import ModemIdentity, NetworkConditions, Registration
from ztp.modem._cme import CmeError
from ztp.modem._faults import Faults, LatencyModel, UartLine
from ztp.modem._habits import EarlyCommand, Habits
from ztp.modem._modem import VirtualModem
from ztp.modem._network import Network
from ztp.modem._reset import ResetAction, ResetLine, ResetPulse
from ztp.modem._smsc import SmsCentre, SmsDelivery, SmsFaults
from ztp.modem._terminal import TERMINAL_PROFILE, CloseLink, OpenLink, SendLink, ToolkitTerminal
from ztp.modem._uicc import UiccAccess, UiccError, cla_for_channel

__all__ = [
    "NEED_DATA",
    "TERMINAL_PROFILE",
    "AtCore",
    "CardCommand",
    "CloseLink",
    "CmeError",
    "EarlyCommand",
    "Faults",
    "Habits",
    "LatencyModel",
    "ModemIdentity",
    "Network",
    "NetworkConditions",
    "OpenLink",
    "RebootRequest",
    "Registration",
    "ResetAction",
    "ResetLine",
    "ResetPulse",
    "SendLink",
    "SmsCentre",
    "SmsDelivery",
    "SmsFaults",
    "ToolkitTerminal",
    "UartLine",
    "UiccAccess",
    "UiccError",
    "VirtualModem",
    "cla_for_channel",
]
