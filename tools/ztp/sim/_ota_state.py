"""The card's OTA key set (what a real card keeps for its RAM/RFM security domain), persisted
with the rest of the card state: KIc / KID with their key indexes (ETSI TS 102 225 §5.1.2) and
the last counter accepted for the SAFE2 OTA TAR (replay detection, §5.1.1).

Kept out of ``_ota.py`` so that ``_state.py`` can import it without importing the applet glue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["OtaCardKeys"]

COUNTER_MAX = 2**40 - 1  # CNTR is 5 bytes


@dataclass
class OtaCardKeys:
    """KIc (AES-CBC) and KID (AES-CMAC) of the card, their indexes and the stored counter.

    Keys never appear in repr().
    """

    kic: bytes = field(repr=False)
    kid: bytes = field(repr=False)
    kic_index: int = 1
    kid_index: int = 1
    counter: int = 0

    def __post_init__(self) -> None:
        for name in ("kic", "kid"):
            key = getattr(self, name)
            if not isinstance(key, bytes) or len(key) not in (16, 24, 32):
                raise ValueError(f"ota.{name}: expected a 16, 24 or 32-byte AES key")
        for name in ("kic_index", "kid_index"):
            index = getattr(self, name)
            if not isinstance(index, int) or not 1 <= index <= 15:
                raise ValueError(f"ota.{name}: expected 1..15, got {index!r}")
        if not isinstance(self.counter, int) or not 0 <= self.counter <= COUNTER_MAX:
            raise ValueError(f"ota.counter: expected 0..2^40-1, got {self.counter!r}")

    def to_json(self) -> dict[str, Any]:
        return {"kic": self.kic.hex(), "kid": self.kid.hex(), "kic_index": self.kic_index,
                "kid_index": self.kid_index, "counter": self.counter}

    @classmethod
    def from_json(cls, doc: object) -> OtaCardKeys:
        """Raises ValueError naming the bad field."""
        if not isinstance(doc, dict) or set(doc) - {"kic", "kid", "kic_index", "kid_index",
                                                    "counter"}:
            raise ValueError("ota: expected an object with kic, kid, kic_index, kid_index, "
                             "counter")
        try:
            kic = bytes.fromhex(doc["kic"])
            kid = bytes.fromhex(doc["kid"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("ota.kic / ota.kid: expected hex strings") from None
        return cls(kic=kic, kid=kid, kic_index=doc.get("kic_index", 1),
                   kid_index=doc.get("kid_index", 1), counter=doc.get("counter", 0))
