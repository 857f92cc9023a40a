# PSK rotation of one SIM as a pure state machine (no I/O, no clock: `now_s` is a parameter).
#
# Theory of operation
# -------------------
#     PENDING --PoR installed--> DELIVERED --handshake with new key--> CONFIRMED --retire--> RETIRED
#      | | |  ^                                                           ^
#      | | |  '-- no PoR (or an unverified one) by the deadline: RESEND (new packet, new counter)
#      | | '--------------- handshake with the new key (the PoR was lost) --'
#      | '-- verified PoR: refused --> FAILED --operator retry--> PENDING (a fresh attempt budget)
#      '--------- operator cancel --> CANCELLED <-- operator cancel --'
#
# The one rule that keeps a SIM from being locked out: the old key is retired only from
# CONFIRMED, i.e. after the SIM has proved, by completing a TLS handshake with it, that it holds
# the new key. Until then `accepted_key_versions()` returns both keys, whatever PoRs said or
# failed to say: a lost PoR leaves the card on the new key while we are still PENDING, and a
# card that never got the packet keeps working on the old one. A SIM that stays offline is
# reported by `is_overdue(now_s)`, not forced.
#
# FAILED means the card refused the command in a *verified* PoR (a terminal status, or the
# applet refused the key version); both keys stay accepted, nothing is sent again until an
# operator retries (`retry`), and a later proof (verified PoR OK, new-key handshake) still
# moves it on. An unverified PoR (an unsecured error report: anyone able to send an SMS can
# forge one) proves nothing and changes nothing: it counts as no PoR (POR_UNVERIFIED).
#
# CANCELLED (operator, from PENDING or FAILED) closes the rotation: the old key stays, and the
# new key is dropped only when the verified PoRs prove the SIM does not hold it
# (`sim_lacks_new_key`); otherwise both stay accepted.
#
# Transitions live in one table, TRANSITIONS; every change goes through `_set_state`. The
# object serialises to a JSON-able dict (to_dict / from_dict) so the service can persist it;
# it never holds key material.
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import OtaProtocolError, OtaUsageError, RotationError
from ._operator import PorResult
from ._safe2 import InstallStatus
from ._ts_102_225 import ResponseStatus


class RotationState(enum.StrEnum):
    PENDING = "pending"  # waiting for the PoR (packet sent, or to be sent)
    DELIVERED = "delivered"  # verified PoR: the SIM holds the new key; both keys accepted
    CONFIRMED = "confirmed"  # a handshake with the new key: the old key may be retired
    RETIRED = "retired"  # the old key is retired: done
    FAILED = "failed"  # the SIM refused (verified); both keys still accepted, operator attention
    CANCELLED = "cancelled"  # closed by an operator; the old key kept (see cancel())


class RotationEvent(enum.StrEnum):
    PACKET_SENT = "packet_sent"
    POR_INSTALLED = "por_installed"  # verified PoR, status 00, applet SW 9000
    POR_RETRYABLE = "por_retryable"  # counter low/high, memory, more time, storage failure
    POR_REFUSED = "por_refused"  # TAR unknown, security failures, version refused
    POR_UNVERIFIED = "por_unverified"  # an unsecured error report: proves nothing, ignored
    NEW_KEY_HANDSHAKE = "new_key_handshake"
    OLD_KEY_HANDSHAKE = "old_key_handshake"
    RETIRE_OLD_KEY = "retire_old_key"
    OPERATOR_RETRY = "operator_retry"
    CANCEL = "cancel"


class RotationAction(enum.StrEnum):
    RESEND = "resend"  # build a new packet with the next counter and send it


_S, _E = RotationState, RotationEvent
TRANSITIONS: Mapping[tuple[RotationState, RotationEvent], RotationState] = {
    (_S.PENDING, _E.PACKET_SENT): _S.PENDING,
    (_S.PENDING, _E.POR_INSTALLED): _S.DELIVERED,
    (_S.PENDING, _E.POR_RETRYABLE): _S.PENDING,
    (_S.PENDING, _E.POR_REFUSED): _S.FAILED,
    (_S.PENDING, _E.NEW_KEY_HANDSHAKE): _S.CONFIRMED,  # PoR lost, the SIM proved the key
    (_S.PENDING, _E.OLD_KEY_HANDSHAKE): _S.PENDING,
    # Late PoRs of earlier attempts (e.g. CNTR low after a retry got through) change nothing.
    (_S.DELIVERED, _E.POR_INSTALLED): _S.DELIVERED,
    (_S.DELIVERED, _E.POR_RETRYABLE): _S.DELIVERED,
    (_S.DELIVERED, _E.POR_REFUSED): _S.DELIVERED,
    (_S.DELIVERED, _E.NEW_KEY_HANDSHAKE): _S.CONFIRMED,
    (_S.DELIVERED, _E.OLD_KEY_HANDSHAKE): _S.DELIVERED,
    (_S.CONFIRMED, _E.POR_INSTALLED): _S.CONFIRMED,
    (_S.CONFIRMED, _E.POR_RETRYABLE): _S.CONFIRMED,
    (_S.CONFIRMED, _E.POR_REFUSED): _S.CONFIRMED,
    (_S.CONFIRMED, _E.NEW_KEY_HANDSHAKE): _S.CONFIRMED,
    (_S.CONFIRMED, _E.OLD_KEY_HANDSHAKE): _S.CONFIRMED,
    (_S.CONFIRMED, _E.RETIRE_OLD_KEY): _S.RETIRED,
    (_S.RETIRED, _E.POR_INSTALLED): _S.RETIRED,
    (_S.RETIRED, _E.POR_RETRYABLE): _S.RETIRED,
    (_S.RETIRED, _E.POR_REFUSED): _S.RETIRED,
    (_S.RETIRED, _E.NEW_KEY_HANDSHAKE): _S.RETIRED,
    # FAILED sends nothing (no PACKET_SENT) until the operator retries it.
    (_S.FAILED, _E.OPERATOR_RETRY): _S.PENDING,
    (_S.FAILED, _E.POR_INSTALLED): _S.DELIVERED,  # e.g. the refusal was a forged error report
    (_S.FAILED, _E.POR_RETRYABLE): _S.FAILED,
    (_S.FAILED, _E.POR_REFUSED): _S.FAILED,
    (_S.FAILED, _E.NEW_KEY_HANDSHAKE): _S.CONFIRMED,
    (_S.FAILED, _E.OLD_KEY_HANDSHAKE): _S.FAILED,
    (_S.PENDING, _E.CANCEL): _S.CANCELLED,
    (_S.FAILED, _E.CANCEL): _S.CANCELLED,
    # Closed: late PoRs and handshakes change nothing.
    (_S.CANCELLED, _E.POR_INSTALLED): _S.CANCELLED,
    (_S.CANCELLED, _E.POR_RETRYABLE): _S.CANCELLED,
    (_S.CANCELLED, _E.POR_REFUSED): _S.CANCELLED,
    (_S.CANCELLED, _E.NEW_KEY_HANDSHAKE): _S.CANCELLED,
    (_S.CANCELLED, _E.OLD_KEY_HANDSHAKE): _S.CANCELLED,
    **{(state, _E.POR_UNVERIFIED): state for state in RotationState},
}

_RETRYABLE_STATUS = frozenset({ResponseStatus.CNTR_LOW, ResponseStatus.CNTR_HIGH,
                               ResponseStatus.INSUFFICIENT_MEMORY, ResponseStatus.MORE_TIME})


def classify_por(result: PorResult) -> RotationEvent:
    """Map a checked PoR to a rotation event. Only a verified PoR can fail a rotation: an
    unverified one (whatever its status) is POR_UNVERIFIED, treated as no PoR at all."""
    if not result.verified:
        return RotationEvent.POR_UNVERIFIED
    if result.status == ResponseStatus.POR_OK:
        if result.install is None:
            return RotationEvent.POR_REFUSED  # cannot happen through check_por; be safe
        if result.install.ok:
            return RotationEvent.POR_INSTALLED
        if result.install.status_word == InstallStatus.MEMORY_FAILURE:
            return RotationEvent.POR_RETRYABLE
        return RotationEvent.POR_REFUSED
    if result.status in _RETRYABLE_STATUS:
        return RotationEvent.POR_RETRYABLE
    return RotationEvent.POR_REFUSED


@dataclass(frozen=True)
class RotationPolicy:
    """Timing of one rotation, in seconds.

    Attributes:
        retry_after_s: wait this long for a PoR before the first resend.
        retry_backoff: multiply the wait by this after each attempt...
        max_retry_interval_s: ...up to this.
        max_attempts: stop resending after this many packets (None: never stop).
        overdue_after_s: not CONFIRMED this long after the start: overdue.
    """

    retry_after_s: int = 600
    retry_backoff: int = 2
    max_retry_interval_s: int = 86_400
    max_attempts: int | None = 20
    overdue_after_s: int = 7 * 86_400

    def __post_init__(self) -> None:
        if self.retry_after_s <= 0 or self.retry_backoff < 1 or self.max_retry_interval_s <= 0:
            raise OtaUsageError("retry intervals must be positive, backoff at least 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise OtaUsageError("max_attempts must be at least 1 (or None)")
        if self.overdue_after_s <= 0:
            raise OtaUsageError("overdue_after_s must be positive")

    def retry_interval(self, attempts: int) -> int:
        """Wait after the `attempts`-th packet (1-based) before resending."""
        interval = self.retry_after_s * self.retry_backoff ** max(0, attempts - 1)
        return min(interval, self.max_retry_interval_s)


@dataclass
class Rotation:
    """One SIM's rotation from `old_key_version` to `new_key_version`.

    Attributes:
        sim: opaque SIM reference chosen by the caller (e.g. the identity hex).
        counters: the CNTR of every packet sent, oldest first.
        history: (now_s, event, old state, new state) of every transition, for the audit log.
        por_log: [counter, status, key version in force or None] of every verified PoR.
        retry_base: len(counters) at the last operator retry (the attempt budget starts there).
        new_key_dropped: set by cancel(): the new key is proven unused and may be retired.
    """

    sim: str
    old_key_version: int
    new_key_version: int
    created_at_s: int
    policy: RotationPolicy = field(default_factory=RotationPolicy)
    state: RotationState = RotationState.PENDING
    counters: list[int] = field(default_factory=list)
    last_sent_at_s: int | None = None
    delivered_at_s: int | None = None
    confirmed_at_s: int | None = None
    retired_at_s: int | None = None
    last_por: str = ""
    history: list[tuple[int, str, str, str]] = field(default_factory=list)
    por_log: list[tuple[int, int, int | None]] = field(default_factory=list)
    retry_base: int = 0
    retried_at_s: int | None = None
    cancelled_at_s: int | None = None
    new_key_dropped: bool = False

    def __post_init__(self) -> None:
        for name in ("old_key_version", "new_key_version"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise OtaUsageError(f"{name}: expected 0..255, got {value!r}")
        if self.new_key_version <= self.old_key_version:
            raise OtaUsageError("the new key version must be above the old one")
        self.state = RotationState(self.state)

    # --- transitions ------------------------------------------------------------------------

    def _apply(self, event: RotationEvent, now_s: int) -> RotationState:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise RotationError(f"rotation {self.sim}: event {event.value} not allowed in "
                                f"state {self.state.value}")
        self._set_state(new, event, now_s)
        return new

    def _set_state(self, new: RotationState, event: RotationEvent, now_s: int) -> None:
        self.history.append((now_s, event.value, self.state.value, new.value))
        self.state = new

    def packet_sent(self, counter: int, now_s: int) -> None:
        """Record that a packet with CNTR `counter` went out (first send or resend).

        Raises:
            RotationError: not PENDING (a FAILED rotation is sent again only after retry()),
                the attempt budget is spent, or the counter is not above every counter used
                before.
        """
        if self.counters and counter <= self.counters[-1]:
            raise RotationError(f"rotation {self.sim}: counter {counter} not above "
                                f"{self.counters[-1]}")
        limit = self.policy.max_attempts
        if limit is not None and self.attempts >= limit:
            raise RotationError(f"rotation {self.sim}: {limit} attempts used")
        self._apply(RotationEvent.PACKET_SENT, now_s)
        self.counters.append(counter)
        self.last_sent_at_s = now_s

    def por_received(self, result: PorResult, now_s: int) -> RotationEvent:
        """Feed a PoR checked by `check_por`; returns the event it counted as.

        Raises:
            OtaProtocolError: a verified PoR for a counter we never sent.
        """
        if result.verified and result.counter not in self.counters:
            raise OtaProtocolError(f"rotation {self.sim}: PoR for CNTR {result.counter}, "
                                   "which was never sent")
        event = classify_por(result)
        if self._apply(event, now_s) == _S.DELIVERED and self.delivered_at_s is None:
            self.delivered_at_s = now_s
        if result.verified:
            version = result.install.key_version if result.install is not None else None
            self.por_log.append((result.counter, int(result.status), version))
        self.last_por = result.describe()
        return event

    def handshake(self, key_version: int, now_s: int) -> None:
        """Feed a completed TLS handshake of this SIM and the key version that verified."""
        if key_version == self.new_key_version:
            if self._apply(RotationEvent.NEW_KEY_HANDSHAKE, now_s) in (_S.CONFIRMED,) and (
                    self.confirmed_at_s is None):
                self.confirmed_at_s = now_s
        elif key_version == self.old_key_version:
            self._apply(RotationEvent.OLD_KEY_HANDSHAKE, now_s)
        else:
            raise OtaUsageError(f"rotation {self.sim}: key version {key_version} is neither "
                                f"{self.old_key_version} nor {self.new_key_version}")

    def retire_old_key(self, now_s: int) -> None:
        """Retire the old key. Raises RotationError unless CONFIRMED."""
        self._apply(RotationEvent.RETIRE_OLD_KEY, now_s)
        self.retired_at_s = now_s

    def retry(self, now_s: int) -> None:
        """The operator sends a FAILED rotation again: PENDING, due now, with a fresh attempt
        budget. Raises RotationError unless FAILED."""
        self._apply(RotationEvent.OPERATOR_RETRY, now_s)
        self.retry_base = len(self.counters)
        self.retried_at_s = now_s

    def cancel(self, now_s: int) -> bool:
        """The operator closes a PENDING or FAILED rotation (RotationError otherwise: a
        DELIVERED SIM holds the new key and confirms it on its own). The old key is never
        touched. Returns True when the new key may be retired too (sim_lacks_new_key);
        otherwise both keys stay accepted."""
        self._apply(RotationEvent.CANCEL, now_s)
        self.cancelled_at_s = now_s
        self.new_key_dropped = self.sim_lacks_new_key()
        return self.new_key_dropped

    # --- queries -----------------------------------------------------------------------------

    @property
    def attempts(self) -> int:
        """Packets sent since the start or the last operator retry."""
        return len(self.counters) - self.retry_base

    def sim_lacks_new_key(self) -> bool:
        """True only when it is certain the SIM does not hold the new key: no packet was ever
        sent, or the verified PoRs prove it. Walking back from the last packet: a verified
        security-layer refusal (status != 0) means that packet never ran, look at the one
        before; a verified applet answer reports the key version in force, which covers every
        earlier packet too (the applet never rolls a version back). A packet without a
        verified PoR may have installed the key: not certain."""
        if self.confirmed_at_s is not None or self.delivered_at_s is not None:
            return False
        proof = {counter: (status, version) for counter, status, version in self.por_log}
        for counter in reversed(self.counters):
            if counter not in proof:
                return False
            status, version = proof[counter]
            if status == ResponseStatus.POR_OK:
                return version is not None and version != self.new_key_version
        return True

    def accepted_key_versions(self) -> tuple[int, ...]:
        """Key versions the gateway must accept for this SIM now."""
        if self.state == _S.RETIRED:
            return (self.new_key_version,)
        if self.state == _S.CANCELLED and self.new_key_dropped:
            return (self.old_key_version,)
        return (self.old_key_version, self.new_key_version)

    def timer(self) -> int | None:
        """When the next packet is due (now_s value), or None if none will be sent."""
        if self.state != _S.PENDING:
            return None
        if not self.attempts:
            return self.retried_at_s if self.retried_at_s is not None else self.created_at_s
        limit = self.policy.max_attempts
        if limit is not None and self.attempts >= limit:
            return None
        assert self.last_sent_at_s is not None
        return self.last_sent_at_s + self.policy.retry_interval(self.attempts)

    def handle_timer(self, now_s: int) -> RotationAction | None:
        """RESEND when a packet is due: the caller builds it with the next counter, sends it
        and calls packet_sent()."""
        due = self.timer()
        if due is not None and now_s >= due:
            return RotationAction.RESEND
        return None

    def is_overdue(self, now_s: int) -> bool:
        """Not yet CONFIRMED (or RETIRED) `overdue_after_s` after the start."""
        return (self.state in (_S.PENDING, _S.DELIVERED, _S.FAILED)
                and now_s - self.created_at_s >= self.policy.overdue_after_s)

    # --- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        p = self.policy
        return {
            "sim": self.sim, "old_key_version": self.old_key_version,
            "new_key_version": self.new_key_version, "created_at_s": self.created_at_s,
            "policy": {"retry_after_s": p.retry_after_s, "retry_backoff": p.retry_backoff,
                       "max_retry_interval_s": p.max_retry_interval_s,
                       "max_attempts": p.max_attempts, "overdue_after_s": p.overdue_after_s},
            "state": self.state.value, "counters": list(self.counters),
            "last_sent_at_s": self.last_sent_at_s, "delivered_at_s": self.delivered_at_s,
            "confirmed_at_s": self.confirmed_at_s, "retired_at_s": self.retired_at_s,
            "last_por": self.last_por, "history": [list(h) for h in self.history],
            "por_log": [list(p) for p in self.por_log], "retry_base": self.retry_base,
            "retried_at_s": self.retried_at_s, "cancelled_at_s": self.cancelled_at_s,
            "new_key_dropped": self.new_key_dropped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rotation:
        """Rebuild from to_dict() output. Raises OtaUsageError on a malformed record."""
        try:
            rotation = cls(
                sim=str(data["sim"]), old_key_version=int(data["old_key_version"]),
                new_key_version=int(data["new_key_version"]),
                created_at_s=int(data["created_at_s"]),
                policy=RotationPolicy(**data["policy"]),
                state=RotationState(data["state"]),
                counters=[int(c) for c in data["counters"]],
                last_sent_at_s=data["last_sent_at_s"], delivered_at_s=data["delivered_at_s"],
                confirmed_at_s=data["confirmed_at_s"], retired_at_s=data["retired_at_s"],
                last_por=str(data["last_por"]),
                history=[(int(a), str(b), str(c), str(d)) for a, b, c, d in data["history"]],
                # absent from records written before these fields existed
                por_log=[(int(c), int(s), None if v is None else int(v))
                         for c, s, v in data.get("por_log", [])],
                retry_base=int(data.get("retry_base", 0)),
                retried_at_s=data.get("retried_at_s"),
                cancelled_at_s=data.get("cancelled_at_s"),
                new_key_dropped=bool(data.get("new_key_dropped", False)))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, OtaUsageError):
                raise
            raise OtaUsageError(f"rotation record: {exc!r}") from None
        if rotation.counters != sorted(set(rotation.counters)):
            raise OtaUsageError("rotation record: counters not strictly increasing")
        if not 0 <= rotation.retry_base <= len(rotation.counters):
            raise OtaUsageError("rotation record: retry_base out of range")
        return rotation
