"""Virtual SIM: an ISO/IEC 7816-4 / ETSI TS 102 221 card with the SAFE2 applet.

The applet reaches the network like a real one, through SIM Toolkit BIP proactive commands
(ETSI TS 102 223) that the modem fetches and carries out; TLS 1.3 PSK via ``ztp.tls``. See
docs/sim.md.
"""

from ._apdu import ApduFormatError, Command, decode_cla, parse_command
from ._card import AID_SAFE2, ATR, FID_EF_ICCID, FID_MF, VirtualSim
from ._cost import CostModel
from ._job import ExchangeRecord, Request, ResultCode, RetryPolicy
from ._state import AppletStatus, CardState, CardStateError, Counters

__all__ = [
    "AID_SAFE2",
    "ATR",
    "FID_EF_ICCID",
    "FID_MF",
    "ApduFormatError",
    "AppletStatus",
    "CardState",
    "CardStateError",
    "Command",
    "CostModel",
    "Counters",
    "ExchangeRecord",
    "Request",
    "ResultCode",
    "RetryPolicy",
    "VirtualSim",
    "decode_cla",
    "parse_command",
]
