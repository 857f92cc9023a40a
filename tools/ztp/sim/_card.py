"""The virtual SIM as the modem holds it: the sans-I/O card (``Uicc``) with its state file and
its time meter.

The card answers APDUs and says whether its persistent state changed; this adapter writes the
state file (temporary file, fsync, rename: ``CardState.save``) *before* it releases the
answer, so a crash never shows the terminal an answer whose state change was lost. It also
meters each APDU (``CostMeter``: transfer, OS overhead, the crypto the card did), which the
virtual modem reads as ``last_cost_ms``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ._cost import CostMeter, CostModel
from ._dns import DnsCache
from ._ota import SimOta, memory_only
from ._request import ExchangeRecord, RetryPolicy
from ._state import CardState, write_atomic
from ._uicc import ATR, CardAnswer, Uicc

__all__ = ["VirtualSim"]


class VirtualSim:
    """A SIM with the SAFE2 applet in its holder: ``transmit(apdu, now_ms) -> bytes``.

    Args:
        state: the card's persistent state; written to ``state.path`` (when set) after every
            APDU that changed it, before the answer is returned.
        cost_model: time model (``last_cost_ms`` after each ``transmit``).
        rng: ``rng(n) -> n random bytes`` (TLS randoms, DNS ids).
        retry: the applet's retry policy.
        logical_channels: channels 1..N besides the basic channel (at most 19).

    Raises:
        OSError: from ``transmit``/``reset`` when the state file cannot be written (the answer
            is withheld, as a card that lost power mid-write gives none).
    """

    def __init__(
        self,
        state: CardState,
        *,
        cost_model: CostModel | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        retry: RetryPolicy | None = None,
        logical_channels: int = 7,
    ) -> None:
        self.card = Uicc(
            state,
            rng=rng,
            retry=retry,
            logical_channels=logical_channels,
            write_state=self._write_state,
        )
        self.meter = CostMeter(cost_model or CostModel(), self.card.applet.crypto_work)
        self._release(self.card.power_on())

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: object) -> VirtualSim:
        """A card from its state file (see ``CardState.load``)."""
        return cls(CardState.load(Path(path)), **kwargs)  # type: ignore[arg-type]

    def save(self) -> None:
        """Write the card state to its file (atomic)."""
        self.state.save()

    def transmit(self, apdu: bytes, now_ms: int) -> bytes:
        """Process one command APDU; returns response data + SW1 SW2.

        Never raises for bad input: every malformed or unsupported APDU gets its status word.
        ``last_cost_ms`` is set to the time the exchange takes on a real card.
        """
        answer = self.card.transmit(apdu, now_ms)
        self.meter.apdu(len(apdu), len(answer.response))
        return self._release(answer)

    def reset(self) -> bytes:
        """Cold/warm reset (``Uicc.power_on``). Returns the ATR."""
        return self._release(self.card.power_on())

    def _write_state(self, new: CardState, power_cut_after: int | None) -> None:
        """The OTA PSK install: ``new`` replaces the state file atomically (PowerCut when the
        knob cuts the write; the old file stays)."""
        if self.state.path is None:
            memory_only(new, power_cut_after)
        else:
            write_atomic(self.state.path, new.encode(), power_cut_after)

    def _release(self, answer: CardAnswer) -> bytes:
        if answer.state_changed and self.state.path is not None:
            self.state.save()
        return answer.response

    # ---------------------------------------------------------------- what tests and tools read

    @property
    def state(self) -> CardState:
        return self.card.state

    @property
    def cost_model(self) -> CostModel:
        return self.meter.model

    @cost_model.setter
    def cost_model(self, model: CostModel) -> None:
        self.meter.model = model

    @property
    def last_cost_ms(self) -> float:
        return self.meter.last_ms

    @property
    def atr(self) -> bytes:
        return ATR

    @property
    def terminal_profile(self) -> bytes | None:
        return self.card.terminal_profile

    @property
    def proactive_pending(self) -> int:
        """Length of the proactive command the card would announce with 91xx, or 0."""
        return self.card.proactive_pending

    @property
    def open_bip_channels(self) -> tuple[int, ...]:
        return self.card.applet.toolkit.open_channels()

    @property
    def job_phase(self) -> str | None:
        job = self.card.applet.toolkit.job
        return job.state.name if job is not None else None

    @property
    def exchanges(self) -> list[ExchangeRecord]:
        """Every TLS connection the applet made (finished requests)."""
        return self.card.applet.exchanges

    @property
    def ota(self) -> SimOta:
        return self.card.ota

    @property
    def dns_cache(self) -> DnsCache:
        return self.card.applet.dns_cache
