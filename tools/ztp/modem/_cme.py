"""Mobile termination error result codes, 3GPP TS 27.007 §9.2 (numeric and verbose forms).

Shared by the AT interpreter (``_at``) and the UICC access procedures (``_uicc``).
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["CME_TEXT", "CmeError"]


class CmeError(enum.IntEnum):
    """<err> of ``+CME ERROR: <err>`` (TS 27.007 §9.2.1)."""

    PHONE_FAILURE = 0
    OPERATION_NOT_ALLOWED = 3
    OPERATION_NOT_SUPPORTED = 4
    SIM_NOT_INSERTED = 10
    SIM_FAILURE = 13
    SIM_BUSY = 14
    MEMORY_FULL = 20
    INVALID_INDEX = 21
    NO_NETWORK_SERVICE = 30
    UNKNOWN = 100


CME_TEXT: Final = {
    CmeError.PHONE_FAILURE: "phone failure",
    CmeError.OPERATION_NOT_ALLOWED: "operation not allowed",
    CmeError.OPERATION_NOT_SUPPORTED: "operation not supported",
    CmeError.SIM_NOT_INSERTED: "SIM not inserted",
    CmeError.SIM_FAILURE: "SIM failure",
    CmeError.SIM_BUSY: "SIM busy",
    CmeError.MEMORY_FULL: "memory full",
    CmeError.INVALID_INDEX: "invalid index",
    CmeError.NO_NETWORK_SERVICE: "no network service",
    CmeError.UNKNOWN: "unknown",
}
