"""The end-to-end demo: configuration service + gateway + virtual modem + virtual SIM on
loopback, with the firmware's own lib/ provisioning through pyserial (docs/demo.md).

``Stack`` brings the parts up and runs the firmware (the e2e tests and the benchmarks use
it too); ``Transcript`` renders its events; ``ztp demo`` is ``ztp.demo._cli:demo_command``.
"""

from ._decode import ApduDecoder, ApduSummary, describe_sw
from ._stack import (
    DEMO_CONFIG,
    DEMO_DEVICE_ID,
    DEMO_HOST,
    DEMO_ICCID,
    Event,
    Outcome,
    Stack,
    StackError,
    StackOptions,
)

__all__ = [
    "DEMO_CONFIG",
    "DEMO_DEVICE_ID",
    "DEMO_HOST",
    "DEMO_ICCID",
    "ApduDecoder",
    "ApduSummary",
    "Event",
    "Outcome",
    "Stack",
    "StackError",
    "StackOptions",
    "describe_sw",
]
