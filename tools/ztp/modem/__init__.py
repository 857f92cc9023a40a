"""Virtual u-blox SARA-U201 modem: AT interpreter, SIM Toolkit terminal (BIP), virtual network.

See docs/modem.md. ``VirtualModem(sim, network=Network(...), latency=LatencyModel(...),
faults=Faults(...))``; ``await modem.serve_pty()`` / ``await modem.serve_tcp(host, port)``.
"""

from ztp.modem._at import (
    NEED_DATA,
    AtCore,
    CardCommand,
    CmeError,
    ModemIdentity,
    NetworkConditions,
    RebootRequest,
    Registration,
)
from ztp.modem._modem import Faults, LatencyModel, UartLine, VirtualModem
from ztp.modem._network import Network
from ztp.modem._smsc import SmsCentre, SmsDelivery, SmsFaults
from ztp.modem._terminal import TERMINAL_PROFILE, CloseLink, OpenLink, SendLink, ToolkitTerminal

__all__ = [
    "NEED_DATA",
    "TERMINAL_PROFILE",
    "AtCore",
    "CardCommand",
    "CloseLink",
    "CmeError",
    "Faults",
    "LatencyModel",
    "ModemIdentity",
    "Network",
    "NetworkConditions",
    "OpenLink",
    "RebootRequest",
    "Registration",
    "SendLink",
    "SmsCentre",
    "SmsDelivery",
    "SmsFaults",
    "ToolkitTerminal",
    "UartLine",
    "VirtualModem",
]
