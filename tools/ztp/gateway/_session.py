"""One gateway connection as a sans-I/O core: TLS 1.3 PSK server + one HTTP/1.1 request.

Theory of operation. The core owns a ``ztp.tls.ServerConnection`` (with ``psk_lookup=None``)
and a :class:`~._http.RequestReader`. Bytes and time go in (``receive_data(data, now)``,
``handle_timer(now)``); bytes (``data_to_send()``) and events (``next_event()``) come out. The
adapter answers the events that need I/O:

- :class:`PskLookup` -> look the identities up (service, cache), then ``supply_psks(...)``;
- :class:`Authenticated` -> the binder verified: charge the per-identity rate limit, and if it
  is exhausted call ``refuse_request(429, ...)`` (the request is still read and checked, then
  refused; an ICCID mismatch is refused as such, 403, so that it is audited past the limit too);
- :class:`Forward` -> send the checked request to the service, then ``respond(...)``;
- :class:`Refuse` -> (audit ``iccid_mismatch``), then ``respond(refusal.status)``;
- :class:`Closed` -> write what ``data_to_send()`` holds and close the socket.

States (what we wait for)::

    EXPECT_CLIENT_HELLO -> WAIT_PSKS -> EXPECT_FINISHED -> EXPECT_REQUEST -> WAIT_RESPONSE
          \\________________\\______________\\___________________\\_____________\\-> CLOSED

Deadlines: the handshake must finish within ``handshake_timeout_s`` of the accept; the whole
request must arrive within ``request_timeout_s`` of the handshake (a slow client trickling a
byte at a time is cut off); and no gap between received bytes may exceed ``idle_timeout_s``.
Waiting for the service (WAIT_PSKS, WAIT_RESPONSE) is the adapter's wait, not the client's, so
no client deadline runs then (the service client has its own timeout).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from ztp.tls import (
    NEED_DATA as TLS_NEED_DATA,
)
from ztp.tls import (
    Alert,
    AlertDescription,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    PskCandidate,
    PskRequest,
    ServerConnection,
)

from ._http import NEED_DATA, HttpError, HttpLimits, RequestReader, build_response
from ._policy import ForwardRequest, RequestRejected, check_request
from ._psk_cache import PskKey

__all__ = [
    "Authenticated",
    "Closed",
    "Forward",
    "GatewaySession",
    "PskLookup",
    "Refuse",
    "SessionLimits",
    "SessionState",
]


class SessionState(Enum):
    EXPECT_CLIENT_HELLO = "EXPECT_CLIENT_HELLO"
    WAIT_PSKS = "WAIT_PSKS"
    EXPECT_FINISHED = "EXPECT_FINISHED"
    EXPECT_REQUEST = "EXPECT_REQUEST"
    WAIT_RESPONSE = "WAIT_RESPONSE"
    CLOSED = "CLOSED"


# the states' names for the state log and Closed.phase: an enum member's ``.value`` is a
# Python-level descriptor call, and an exchange logs five transitions
_STATE_NAME = {state: state.value for state in SessionState}


@dataclass(frozen=True)
class SessionLimits:
    """Deadlines in seconds. Defaults are sized for SIMs over a cellular bearer: a SIM doing
    AES and SHA-256 at 9600 bit/s through BIP needs seconds per flight, not milliseconds."""

    handshake_timeout_s: float = 30.0
    idle_timeout_s: float = 20.0
    request_timeout_s: float = 30.0
    http: HttpLimits = HttpLimits()
    max_identities: int = 4  # identities in one ClientHello that we look up

    def __post_init__(self) -> None:
        for name in ("handshake_timeout_s", "idle_timeout_s", "request_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SessionLimits.{name} must be > 0")
        if self.max_identities < 1:
            raise ValueError("SessionLimits.max_identities must be >= 1")


@dataclass(frozen=True)
class PskLookup:
    identities: tuple[bytes, ...]


@dataclass(frozen=True)
class Authenticated:
    identity: bytes
    psk_tag: str
    key_exchange_mode: str
    cipher_suite: str
    server_name: str | None
    handshake_s: float


@dataclass(frozen=True)
class Forward:
    request: ForwardRequest


@dataclass(frozen=True)
class Refuse:
    refusal: RequestRejected


@dataclass(frozen=True)
class Closed:
    """The connection is over. ``reason``: ``responded``, ``alert``, ``peer_alert``,
    ``peer_closed`` (close_notify), ``eof`` (TCP closed without it), ``timeout``. ``alert``:
    the alert's name (``decrypt_error``), sent when reason is ``alert``, received when
    ``peer_alert``; ``phase``: the state the connection was in."""

    reason: str
    phase: str
    alert: str | None = None


Event = PskLookup | Authenticated | Forward | Refuse | Closed


def _alert_name(exc: Alert) -> str:
    desc = getattr(exc, "description", None)
    name = getattr(desc, "name", None)
    return name.lower() if isinstance(name, str) else type(exc).__name__


def _description_name(description: int) -> str:
    try:
        return AlertDescription(description).name.lower()
    except ValueError:  # not a registered alert: still a bounded label (256 values)
        return f"alert_{description}"


def _enum_name(value: object) -> str:
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


class GatewaySession:
    """The per-connection core. See the module docstring for the event protocol."""

    def __init__(
        self, tls: ServerConnection, now: float, limits: SessionLimits | None = None
    ) -> None:
        self.limits = limits or SessionLimits()
        self._tls = tls
        self._http = RequestReader(self.limits.http)
        self._state = SessionState.EXPECT_CLIENT_HELLO
        self._events: deque[Event] = deque()
        self._out = bytearray()
        self._started = now
        self._now = now
        self._last_rx = now
        self._handshake_done: float | None = None
        self._eof = False
        self._refusal: RequestRejected | None = None
        self._closed: Closed | None = None
        self.identity: bytes | None = None
        self.psk_tag = ""
        self.response_status: int | None = None
        self.state_log: list[tuple[str, str]] = []

    @property
    def state(self) -> SessionState:
        return self._state

    def _set_state(self, new: SessionState) -> None:
        self.state_log.append((_STATE_NAME[self._state], _STATE_NAME[new]))
        self._state = new

    # -- input ----------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Buffer bytes from the socket (``b""`` = EOF) at monotonic time ``now``."""
        self._now = now
        if self._state is SessionState.CLOSED:
            return
        if data:
            self._last_rx = now
        else:
            self._eof = True
        self._tls.receive_data(data)

    def timer(self) -> float | None:
        """The next client deadline (monotonic seconds), or None while we wait on the adapter."""
        if self._state in (SessionState.EXPECT_CLIENT_HELLO, SessionState.EXPECT_FINISHED):
            return min(
                self._started + self.limits.handshake_timeout_s,
                self._last_rx + self.limits.idle_timeout_s,
            )
        if self._state is SessionState.EXPECT_REQUEST:
            assert self._handshake_done is not None
            return min(
                self._handshake_done + self.limits.request_timeout_s,
                self._last_rx + self.limits.idle_timeout_s,
            )
        return None

    def handle_timer(self, now: float) -> None:
        """Fire the deadline if ``now`` is past it: the connection closes (after a 408 when the
        handshake is done, so the SIM learns why)."""
        self._now = now
        deadline = self.timer()
        if deadline is None or now < deadline:
            return
        phase = _STATE_NAME[self._state]
        if self._state is SessionState.EXPECT_REQUEST:
            self._send_response(408, build_response(408))
        self._close(Closed("timeout", phase))

    def supply_psks(self, psks: dict[bytes, tuple[PskKey, ...] | None]) -> None:
        """Answer a :class:`PskLookup`. Identities missing or mapped to None are unknown."""
        if self._state is not SessionState.WAIT_PSKS:
            raise RuntimeError(f"supply_psks in state {self._state.value}")
        self._tls.supply_psks(
            {i: [PskCandidate(k.key, k.tag) for k in keys] for i, keys in psks.items() if keys}
        )
        self._set_state(SessionState.EXPECT_FINISHED)

    def refuse_request(self, status: int, kind: str, reason: str) -> None:
        """Read the request anyway, then answer ``status`` instead of forwarding it."""
        if self._state is not SessionState.EXPECT_REQUEST:
            raise RuntimeError(f"refuse_request in state {self._state.value}")
        self._refusal = RequestRejected(status, kind, reason)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer the request (after :class:`Forward` or :class:`Refuse`), then close_notify."""
        if self._state is not SessionState.WAIT_RESPONSE:
            raise RuntimeError(f"respond in state {self._state.value}")
        self._send_response(status, build_response(status, body, content_type, extra_headers))
        self._close(Closed("responded", "WAIT_RESPONSE"))

    def abort(self, reason: str) -> None:
        """Close without a TLS-level goodbye (e.g. the service is unreachable for a lookup)."""
        if self._state is not SessionState.CLOSED:
            self._close(Closed(reason, _STATE_NAME[self._state]))

    # -- output ---------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if self._state is not SessionState.CLOSED:
            self._out += self._tls.data_to_send()
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | object:
        """The next event, or ``NEED_DATA`` (feed bytes, or answer the pending event)."""
        while True:
            if self._events:
                return self._events.popleft()
            if self._closed is not None:
                return self._closed
            if self._state in (SessionState.WAIT_PSKS, SessionState.WAIT_RESPONSE):
                return NEED_DATA
            try:
                ev = self._tls.next_event()
            except Alert as exc:
                # The engine queued the alert in its data_to_send(); keep it for the adapter.
                self._out += self._tls.data_to_send()
                self._close(Closed("alert", _STATE_NAME[self._state], _alert_name(exc)))
                continue
            if ev is TLS_NEED_DATA:
                if self._eof:
                    self._close(Closed("eof", _STATE_NAME[self._state]))
                    continue
                return NEED_DATA
            self._on_tls_event(ev)

    def _on_tls_event(self, ev: object) -> None:
        if isinstance(ev, PskRequest):
            if self._state is not SessionState.EXPECT_CLIENT_HELLO:
                raise RuntimeError("engine asked for PSKs twice")
            self._set_state(SessionState.WAIT_PSKS)
            self._events.append(PskLookup(tuple(ev.identities[: self.limits.max_identities])))
        elif isinstance(ev, HandshakeComplete):
            self._handshake_done = self._now
            self.identity = ev.identity
            self.psk_tag = ev.psk_tag
            self._set_state(SessionState.EXPECT_REQUEST)
            self._events.append(
                Authenticated(
                    ev.identity,
                    ev.psk_tag,
                    _enum_name(ev.key_exchange_mode),
                    _enum_name(ev.cipher_suite),
                    ev.server_name,
                    self._now - self._started,
                )
            )
        elif isinstance(ev, ApplicationData):
            if self._state is not SessionState.EXPECT_REQUEST or not ev.data:
                return  # bytes after the request (pipelining): ignored, one request only
            self._on_request_bytes(ev.data)
        elif isinstance(ev, AlertReceived):
            phase = _STATE_NAME[self._state]
            self._close(Closed("peer_alert", phase, _description_name(ev.description)))
        elif isinstance(ev, ConnectionClosed):
            # close_notify (or EOF) before a complete request: nobody is left to answer.
            if self._state is not SessionState.WAIT_RESPONSE:
                self._close(Closed("peer_closed" if ev.clean else "eof", _STATE_NAME[self._state]))

    def _on_request_bytes(self, data: bytes) -> None:
        self._http.receive_data(data)
        try:
            req = self._http.next_event()
        except HttpError as exc:
            self._set_state(SessionState.WAIT_RESPONSE)
            self._events.append(Refuse(RequestRejected(exc.status, "bad_request", str(exc))))
            return
        if req is NEED_DATA:
            return
        assert self.identity is not None
        self._set_state(SessionState.WAIT_RESPONSE)
        try:
            fwd = check_request(req, self.identity)  # type: ignore[arg-type]
        except RequestRejected as rej:
            if self._refusal is not None and rej.kind == "iccid_mismatch":
                # past its limit too: still a mismatch, answered 403 and audited (issue 13)
                rej = RequestRejected(
                    rej.status, rej.kind, rej.reason, {**rej.detail, "rate_limited": True}
                )
            elif self._refusal is not None:
                rej = self._refusal
            self._events.append(Refuse(rej))
            return
        if self._refusal is not None:
            self._events.append(Refuse(self._refusal))
            return
        self._events.append(Forward(fwd))

    def _send_response(self, status: int, response: bytes) -> None:
        self.response_status = status
        self._tls.send_application_data(response)
        self._tls.close()
        self._out += self._tls.data_to_send()

    def _close(self, closed: Closed) -> None:
        if self._closed is None:
            self._closed = closed
            self._set_state(SessionState.CLOSED)
