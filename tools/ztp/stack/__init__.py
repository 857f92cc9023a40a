"""One running provisioning stack: configuration service + gateway + virtual modem + virtual
SIM with their options (``Stack``); ``ztp serve`` is ``ztp.stack.cli:serve_command``.

``ztp.demo.Stack`` is this stack plus the firmware's lib/ on the modem's pty.
"""

from ._stack import (
    DEMO_CONFIG,
    DEMO_DEVICE_ID,
    DEMO_HOST,
    DEMO_ICCID,
    Event,
    Stack,
    StackError,
    StackOptions,
)

__all__ = [
    "DEMO_CONFIG",
    "DEMO_DEVICE_ID",
    "DEMO_HOST",
    "DEMO_ICCID",
    "Event",
    "Stack",
    "StackError",
    "StackOptions",
]
