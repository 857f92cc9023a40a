"""Virtual SIM: an ISO/IEC 7816-4 / ETSI TS 102 221 card with the SAFE2 applet.

The applet reaches the network like a real one, through SIM Toolkit BIP proactive commands
(ETSI TS 102 223) that the modem fetches and carries out; TLS 1.3 PSK via ``ztp.tls``. See
docs/sim.md. ``Uicc`` is the sans-I/O card; ``VirtualSim`` holds it with its state file and
cost meter, and is what the modem is handed.
"""

from ._apdu import ApduFormatError, Command, decode_cla, parse_command
from ._card import VirtualSim
from ._cost import CostMeter, CostModel
from ._job_state import JobState
from ._request import CryptoWork, ExchangeRecord, Request, ResultCode, RetryPolicy
from ._state import AppletStatus, CardState, CardStateError, Counters
from ._uicc import AID_SAFE2, ATR, FID_EF_ICCID, FID_MF, CardAnswer, Uicc

__all__ = [
    "AID_SAFE2",
    "ATR",
    "FID_EF_ICCID",
    "FID_MF",
    "ApduFormatError",
    "AppletStatus",
    "CardAnswer",
    "CardState",
    "CardStateError",
    "Command",
    "CostMeter",
    "CostModel",
    "Counters",
    "CryptoWork",
    "ExchangeRecord",
    "JobState",
    "Request",
    "ResultCode",
    "RetryPolicy",
    "Uicc",
    "VirtualSim",
    "decode_cla",
    "parse_command",
]
