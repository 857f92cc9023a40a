"""The end-to-end demo: configuration service + gateway + virtual modem + virtual SIM on
loopback, with the firmware's own lib/ provisioning through pyserial (docs/demo.md).

``Stack`` is ``ztp.stack.Stack`` plus ``provision()``, the firmware run (the e2e tests and the
benchmarks use it too); ``Transcript`` renders its events; ``ztp demo`` is
``ztp.demo.cli:demo_command``. The replay of a recorded run under MicroPython is
``Conversation`` / ``ReplayUart`` / ``run_under_micropython``.
"""

from ztp.stack import (
    DEMO_CONFIG,
    DEMO_DEVICE_ID,
    DEMO_HOST,
    DEMO_ICCID,
    Event,
    StackError,
    StackOptions,
)

from ._decode import ApduDecoder, ApduSummary, describe_sw
from ._replay import Conversation, ReplayUart, run_under_micropython
from ._stack import Outcome, Stack

__all__ = [
    "DEMO_CONFIG",
    "DEMO_DEVICE_ID",
    "DEMO_HOST",
    "DEMO_ICCID",
    "ApduDecoder",
    "ApduSummary",
    "Conversation",
    "Event",
    "Outcome",
    "ReplayUart",
    "Stack",
    "StackError",
    "StackOptions",
    "describe_sw",
    "run_under_micropython",
]
