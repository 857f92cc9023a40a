"""Time model of a slow SIM: bytes at the ISO/IEC 7816-3 interface rate, plus crypto.

Transfer: one character is 12 etu under T=0 (start bit, 8 data bits, parity, 2 etu guard
time; ISO/IEC 7816-3 §7.2 and §8.2) and 1 etu = F / (D * f) seconds (§7.1). The default
F=372, D=1 at f = 3.5712 MHz is 9600 bit/s; after PPS to F=512, D=16 it is 111 600 bit/s.
A T=0 exchange moves the 5-byte header, one procedure byte (the INS echo) when data flows,
the data and the 2-byte SW. Check (SAFE2-PROTOCOL.md): a 255-byte APDU takes ~330 ms at
9600 bit/s and ~28 ms after PPS.

Crypto (SAFE2-PROTOCOL.md "Public sizes and costs"): SHA-256 ~13 ms and AES-128 ~8 ms per 256
bytes on measured SIMs, i.e. per 64-byte SHA-256 block and per 16-byte AES block.

``CostMeter`` applies the model to a card: the card only counts its crypto (``CryptoWork``),
its owner meters each APDU.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._request import CryptoWork

__all__ = ["CostMeter", "CostModel"]

# ISO/IEC 7816-3 Table 7 / Table 8: the F and D values PPS may select.
_FI = (372, 372, 558, 744, 1116, 1488, 1860, 512, 768, 1024, 1536, 2048)
_DI = (1, 2, 4, 8, 16, 32, 64, 12, 20)


@dataclass(frozen=True)
class CostModel:
    """Per-APDU time of a slow SIM.

    Args:
        clock_hz: the card clock f (3.5712 MHz gives 9600 bit/s at F=372, D=1).
        f: clock rate conversion integer F; d: baud rate adjustment integer D.
        etu_per_char: 12 under T=0 (11 plus one extra guard etu is typical; 12 is the spec
            default with N=0 and the 2 etu guard time of T=0).
        apdu_overhead_ms: card OS dispatch per command.
        sha256_block_ms / aes_block_ms: one SHA-256 compression / one AES-128 block.
    """

    clock_hz: float = 3_571_200.0
    f: int = 372
    d: int = 1
    etu_per_char: int = 12
    apdu_overhead_ms: float = 1.0
    sha256_block_ms: float = 13.0 / 4
    aes_block_ms: float = 8.0 / 16

    def __post_init__(self) -> None:
        if self.f not in _FI or self.d not in _DI:
            raise ValueError(f"F={self.f} D={self.d} is not a ISO/IEC 7816-3 value pair")
        if self.clock_hz <= 0:
            raise ValueError("clock must be positive")

    @property
    def bits_per_second(self) -> float:
        return self.clock_hz * self.d / self.f

    def after_pps(self, f: int = 512, d: int = 16) -> CostModel:
        """The same card after a PPS exchange selecting F and D."""
        return CostModel(
            self.clock_hz,
            f,
            d,
            self.etu_per_char,
            self.apdu_overhead_ms,
            self.sha256_block_ms,
            self.aes_block_ms,
        )

    def transfer_ms(self, command_len: int, response_len: int) -> float:
        """Interface time of one T=0 exchange: ``command_len`` APDU bytes sent, ``response_len``
        bytes (data + SW) returned."""
        chars = command_len + response_len
        if command_len > 5 or response_len > 2:
            chars += 1  # procedure byte (INS) before the data
        return chars * self.etu_per_char * 1000.0 / self.bits_per_second

    def crypto_ms(self, sha256_blocks: int = 0, aes_blocks: int = 0) -> float:
        return sha256_blocks * self.sha256_block_ms + aes_blocks * self.aes_block_ms

    def apdu_ms(
        self, command_len: int, response_len: int, sha256_blocks: int = 0, aes_blocks: int = 0
    ) -> float:
        """Total time of one APDU: transfer + OS overhead + crypto done while answering it."""
        return (
            self.transfer_ms(command_len, response_len)
            + self.apdu_overhead_ms
            + self.crypto_ms(sha256_blocks, aes_blocks)
        )


class CostMeter:
    """The time each APDU takes on the card: transfer and OS overhead of the exchange, plus
    the crypto the card did while answering it (read off the card's ``CryptoWork`` tally).

    Args:
        model: the time model (may be swapped, e.g. after PPS). work: the card's tally.
    """

    def __init__(self, model: CostModel, work: CryptoWork) -> None:
        self.model = model
        self._work = work
        self._seen = (work.sha256_blocks, work.aes_blocks)
        self.last_ms = 0.0

    def apdu(self, command_len: int, response_len: int) -> float:
        """Meter one exchange (call after the card answered); returns and keeps its ms."""
        now = (self._work.sha256_blocks, self._work.aes_blocks)
        sha, aes = now[0] - self._seen[0], now[1] - self._seen[1]
        self._seen = now
        self.last_ms = self.model.apdu_ms(command_len, response_len, sha, aes)
        return self.last_ms
