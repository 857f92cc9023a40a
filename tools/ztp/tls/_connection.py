"""Sans-I/O TLS 1.3 external-PSK client and server (RFC 8446, RFC 6066, RFC 8449, RFC 9257).

Theory of operation
-------------------
``receive_data`` only buffers. ``next_event`` pulls records from the record layer, reassembles
handshake messages and hands each to the handler that the current state allows (one table per
role, ``_HANDLERS``); anything else is ``unexpected_message``. Handlers queue bytes through
``_send`` and events into ``_events``. Every state change goes through ``_set_state``.

Any ``Alert`` raised while processing input is fatal: the engine queues that alert (encrypted
with the current write key, if any), enters ``ERROR``, drops all further input and raises the
same exception from every later ``next_event`` call. An unexpected Python exception is
converted into ``InternalError`` the same way, so only ``Alert`` subclasses escape.

Profile decisions (see docs/tls.md): external PSKs only; one PSK per client; the server
validates the binder of the first offered identity it knows (all candidate keys of that
identity are tried, without early exit, the list padded with random dummy keys to
``max_psk_candidates``); an unknown identity costs the same number of dummy binders and ends
in the same ``decrypt_error`` as a wrong key. A HelloRetryRequest (for x25519) only when the
client offers psk_dhe_ke, lists x25519 in supported_groups, sends no x25519 share and offers no
psk_ke we would choose (issue 13); the client answers one. No tickets, no 0-RTT (early data is
skipped on the server, RFC 8446 §4.2.10).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ._alerts import (
    Alert,
    AlertDescription,
    AlertLevel,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    LocalProtocolError,
    MissingExtension,
    ProtocolVersion,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ._buffer import Buffer
from ._events import (
    NEED_DATA,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    PskRequest,
    _NeedData,
)
from ._key_schedule import (
    KeySchedule,
    binder_from_early_secret,
    binder_secrets,
    early_secret,
    hmac_sha256,
    message_hash,
    next_traffic_secret,
)
from ._messages import (
    HRR_RANDOM,
    MAX_FRAGMENT_LENGTHS,
    RECORD_SIZE_LIMIT_MAX_TLS13,
    RECORD_SIZE_LIMIT_MIN,
    TLS_1_2,
    TLS_1_3,
    CipherSuite,
    ClientHello,
    EncryptedExtensions,
    ExtensionType,
    Finished,
    Group,
    HandshakeType,
    KeyExchangeMode,
    KeyShareEntry,
    KeyUpdate,
    OfferedPsks,
    PskIdentity,
    ServerHello,
    encode_encrypted_extensions,
    encode_finished,
    encode_server_hello,
    frozen_builder,
    pull_client_hello,
    pull_encrypted_extensions,
    pull_finished,
    pull_key_update,
    pull_new_session_ticket,
    pull_server_hello,
    push_client_hello,
    push_finished,
    push_key_update,
    push_server_hello,
)
from ._record import (
    LEGACY_CLIENT_HELLO_RECORD_VERSION,
    MAX_PLAINTEXT,
    ContentType,
    Record,
    RecordCipher,
    RecordLayer,
)

logger = logging.getLogger("ztp.tls")

# Enum members read on every handshake, as module constants: on Python 3.11 reading a member as
# a class attribute goes through EnumType's ``__getattr__`` slot (~70 ns, against ~10 ns for a
# global), and a server handshake reads dozens (issue 14; the server states are below)
_HANDSHAKE = ContentType.HANDSHAKE
_ALERT = ContentType.ALERT
_CHANGE_CIPHER_SPEC = ContentType.CHANGE_CIPHER_SPEC
_APPLICATION_DATA = ContentType.APPLICATION_DATA
_PSK_DHE_KE = KeyExchangeMode.PSK_DHE_KE
_X25519 = Group.X25519

Rng = Callable[[int], bytes]
X25519_KEY_LENGTH = 32
MAX_HANDSHAKE_MESSAGE = 2**14  # our cap; the largest message we expect is a ClientHello
# Records a peer may send that cost us work but carry no data: beyond these, unexpected_message.
MAX_KEY_UPDATES = 16  # per connection; one-request connections need none
MAX_CHANGE_CIPHER_SPECS = 1  # RFC 8446 §D.4: the compatibility mode sends exactly one


# -- configuration ----------------------------------------------------------------------------


def _check_suites(suites: Sequence[CipherSuite]) -> tuple[CipherSuite, ...]:
    out = tuple(CipherSuite(s) for s in suites)
    if not out or len(set(out)) != len(out):
        raise ValueError("cipher_suites: give one or more distinct suites")
    return out


def _check_modes(modes: Sequence[KeyExchangeMode]) -> tuple[KeyExchangeMode, ...]:
    out = tuple(KeyExchangeMode(m) for m in modes)
    if not out or len(set(out)) != len(out):
        raise ValueError("key_exchange_modes: give one or more distinct modes")
    return out


def _check_record_size_limit(value: int | None) -> None:
    if value is not None and not RECORD_SIZE_LIMIT_MIN <= value <= RECORD_SIZE_LIMIT_MAX_TLS13:
        raise ValueError(f"record_size_limit must be 64..16385, not {value}")


@dataclass(frozen=True)
class ClientConfig:
    """Client settings. ``identity``: raw PSK identity (SAFE2: the 10 EF_ICCID bytes);
    ``psk``: raw key (SAFE2: 16 bytes, SHA-256). ``max_fragment_length`` is in bytes
    (512, 1024, 2048 or 4096; RFC 6066); ``middlebox_compat`` sends a 32-byte
    legacy_session_id and a change_cipher_spec (RFC 8446 §D.4). ``empty_key_share``: with
    psk_dhe_ke, list x25519 in supported_groups but send no share (RFC 8446 §4.2.8 allows an
    empty client_shares), so the server asks for one with a HelloRetryRequest."""

    identity: bytes
    psk: bytes
    server_name: str | None = None
    cipher_suites: tuple[CipherSuite, ...] = (CipherSuite.TLS_AES_128_CCM_SHA256,)
    key_exchange_modes: tuple[KeyExchangeMode, ...] = (KeyExchangeMode.PSK_KE,)
    send_key_share: bool = False
    record_size_limit: int | None = None
    max_fragment_length: int | None = None
    middlebox_compat: bool = False
    empty_key_share: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.identity) <= 0xFFFF:
            raise ValueError("identity must be 1..65535 bytes")
        if not 1 <= len(self.psk) <= 255:
            raise ValueError("psk must be 1..255 bytes")
        if self.server_name is not None:
            if not self.server_name or not self.server_name.isascii():
                raise ValueError("server_name must be a non-empty ASCII host name")
        object.__setattr__(self, "cipher_suites", _check_suites(self.cipher_suites))
        object.__setattr__(self, "key_exchange_modes", _check_modes(self.key_exchange_modes))
        _check_record_size_limit(self.record_size_limit)
        if self.max_fragment_length is not None and self.max_fragment_length not in {
            *MAX_FRAGMENT_LENGTHS.values()
        }:
            raise ValueError("max_fragment_length must be 512, 1024, 2048 or 4096")

    def __repr__(self) -> str:  # never show the key
        return (
            f"ClientConfig(identity={self.identity.hex()}, server_name={self.server_name!r}, "
            f"cipher_suites={self.cipher_suites}, key_exchange_modes={self.key_exchange_modes})"
        )


@dataclass(frozen=True)
class PskCandidate:
    """One key for an identity; ``tag`` is opaque to the engine (e.g. the key version)."""

    key: bytes
    tag: str = ""

    def __post_init__(self) -> None:
        if not 1 <= len(self.key) <= 255:
            raise ValueError("PSK must be 1..255 bytes")

    def __repr__(self) -> str:
        return f"PskCandidate(key=<{len(self.key)} bytes>, tag={self.tag!r})"


PskLookup = Callable[[bytes], Sequence[PskCandidate]]


@dataclass(frozen=True)
class ServerConfig:
    """Server policy. ``key_exchange_modes`` and ``cipher_suites`` are in preference order.

    ``psk_lookup(identity)`` returns the candidate keys of a raw identity (empty: unknown);
    with ``None`` the server stops with a ``PskRequest`` event instead. ``record_size_limit``
    is what we advertise when the client sends the extension (default 2^14 + 1).
    ``max_psk_identities``: only the first N offered identities are considered.
    ``max_psk_candidates``: binders computed per ClientHello; the candidate keys of the selected
    identity are padded with random dummy keys to this count (an unknown identity gets only
    dummies), so the work does not tell how many keys an identity has, or whether it is known.
    An identity with more keys than this costs one binder per key.
    ``max_early_data_skip``: bytes of 0-RTT data skipped before failing (RFC 8446 §4.2.10).
    """

    psk_lookup: PskLookup | None = None
    key_exchange_modes: tuple[KeyExchangeMode, ...] = (
        KeyExchangeMode.PSK_DHE_KE,
        KeyExchangeMode.PSK_KE,
    )
    cipher_suites: tuple[CipherSuite, ...] = (
        CipherSuite.TLS_AES_128_CCM_SHA256,
        CipherSuite.TLS_AES_128_GCM_SHA256,
    )
    record_size_limit: int | None = None
    max_psk_identities: int = 4
    max_psk_candidates: int = 2
    max_early_data_skip: int = 2**16
    max_handshake_message: int = MAX_HANDSHAKE_MESSAGE

    def __post_init__(self) -> None:
        object.__setattr__(self, "cipher_suites", _check_suites(self.cipher_suites))
        object.__setattr__(self, "key_exchange_modes", _check_modes(self.key_exchange_modes))
        _check_record_size_limit(self.record_size_limit)
        if self.max_psk_identities < 1:
            raise ValueError("max_psk_identities must be >= 1")
        if self.max_psk_candidates < 1:
            raise ValueError("max_psk_candidates must be >= 1")
        if not 512 <= self.max_handshake_message <= 2**24 - 1:
            raise ValueError("max_handshake_message must be 512..2^24-1")


# -- common machinery -------------------------------------------------------------------------


class _Connection:
    _HANDLERS: dict[Enum, dict[HandshakeType, str]] = {}
    _CCS_STATES: frozenset[Enum] = frozenset()
    _HOOK_STATES: frozenset[Enum] = frozenset()  # where _step calls _before_record

    def __init__(self, rng: Rng, state: Enum) -> None:
        self._rng = rng
        self._state = state
        # the handler table of the current state, looked up once per state change (hashing
        # an Enum member is a Python-level call)
        self._handlers: dict[HandshakeType, str] = self._HANDLERS.get(state, {})  # type: ignore[call-overload]
        self._records = RecordLayer()
        self._send_buffer = bytearray()
        self._events: deque[Event] = deque()
        self._handshake_buffer = bytearray()
        self._key_schedule = KeySchedule()
        self._max_handshake_message = MAX_HANDSHAKE_MESSAGE
        self._error: Alert | None = None
        self._handshake_complete = False
        self._sent_close = False
        self._peer_closed: ConnectionClosed | None = None
        self._suite: CipherSuite | None = None
        self._key_update_pending = False  # peer asked for update_requested; answer before data
        self._key_updates_received = 0
        self._ccs_received = 0
        self.bytes_sent = 0

    # -- public API ---------------------------------------------------------------------------

    @property
    def bytes_received(self) -> int:
        return self._records.bytes_received

    @property
    def state(self) -> Enum:
        return self._state

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; ``b""`` means EOF. Ignored after an error or close."""
        if self._error is not None or self._peer_closed is not None:
            return
        self._records.feed(data)  # copied into the record layer's buffer

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer (drain after every call)."""
        data = bytes(self._send_buffer)
        self._send_buffer.clear()
        return data

    def next_event(self) -> Event | _NeedData:
        """Return the next event, or ``NEED_DATA``.

        Raises:
            Alert: the peer broke the protocol (subclass names the alert); the alert is
                already queued in ``data_to_send()`` and the connection is dead. Every later
                call raises the same exception.
        """
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        try:
            while not self._events and self._step():
                pass
        except Alert as exc:
            self._fail(exc)
            raise
        except Exception as exc:  # a bug: fail closed, but keep the cause for debugging
            error = InternalError(f"internal error: {type(exc).__name__}")
            self._fail(error)
            raise error from exc
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def send_application_data(self, data: bytes) -> None:
        """Queue ``data`` (split into records as the negotiated limits require).

        Raises:
            LocalProtocolError: the handshake is not complete, or we closed or failed.
        """
        if not self._handshake_complete or self._sent_close or self._error is not None:
            raise LocalProtocolError(f"cannot send application data in state {self._state.name}")
        if data:
            if self._key_update_pending:
                self._send_key_update()
            self._send(_APPLICATION_DATA, bytes(data))

    def close(self) -> None:
        """Queue close_notify (RFC 8446 §6.1); idempotent, no-op after an error."""
        if self._sent_close or self._error is not None:
            return
        self._send_alert(AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY)
        self._sent_close = True

    # -- internals ----------------------------------------------------------------------------

    def _set_state(self, state: Enum) -> None:
        if logger.isEnabledFor(logging.DEBUG):  # Enum .name is a property: not for nothing
            logger.debug("%s: %s -> %s", type(self).__name__, self._state.name, state.name)
        self._state = state
        self._handlers = self._HANDLERS.get(state, {})  # type: ignore[call-overload]

    def _fail(self, exc: Alert) -> None:
        logger.debug("%s: %s (%s)", type(self).__name__, exc.description.name, exc)
        if not self._sent_close:
            try:
                self._send_alert(AlertLevel.FATAL, exc.description)
            except Exception:  # pragma: no cover - e.g. sequence numbers exhausted
                pass
        self._sent_close = True
        self._error = exc
        self._set_state(self._error_state())

    def _error_state(self) -> Enum:
        raise NotImplementedError

    def _closed_state(self) -> Enum:
        raise NotImplementedError

    def _send(self, content_type: ContentType, data: bytes, version: int | None = None) -> None:
        wire = self._records.protect(content_type, data, version)
        self._send_buffer += wire
        self.bytes_sent += len(wire)

    def _send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        self._send(_ALERT, bytes([level, description]))

    def _set_read_cipher(self, secret: bytes) -> None:
        # RFC 8446 §5.1: "Handshake messages MUST NOT span key changes."
        if self._handshake_buffer:
            raise UnexpectedMessage("handshake message spans a key change")
        assert self._suite is not None
        self._records.read_cipher = RecordCipher(self._suite, secret)

    def _set_write_cipher(self, secret: bytes) -> None:
        assert self._suite is not None
        self._records.write_cipher = RecordCipher(self._suite, secret)

    def _before_record(self) -> bool | None:
        """Hook, called in the states of ``_HOOK_STATES`` before reading a record: True/False
        to stop the read loop with that result, None to go on."""
        return None

    def _step(self) -> bool:
        """Process at most one record; False when more input is needed."""
        if self._peer_closed is not None:
            self._events.append(self._peer_closed)
            return False
        if self._state in self._HOOK_STATES:  # a set lookup, not a call per record
            hook = self._before_record()
            if hook is not None:
                return hook
        record = self._records.next_record()
        if record is None:
            if self._records.eof:
                self._peer_closed = ConnectionClosed(clean=False)
                self._set_state(self._closed_state())
                self._events.append(self._peer_closed)
            return False
        self._handle_record(record)
        return True

    def _handle_record(self, record: Record) -> None:
        ct = record.content_type
        if ct == _CHANGE_CIPHER_SPEC:
            # RFC 8446 §5: an unencrypted {0x01} between the first ClientHello and the peer's
            # Finished "MUST simply drop it"; any other value or time is unexpected_message.
            if self._state not in self._CCS_STATES or record.fragment != b"\x01":
                raise UnexpectedMessage(f"change_cipher_spec in state {self._state.name}")
            self._ccs_received += 1
            if self._ccs_received > MAX_CHANGE_CIPHER_SPECS:
                raise UnexpectedMessage(f"more than {MAX_CHANGE_CIPHER_SPECS} change_cipher_spec")
            return
        if self._handshake_buffer and ct != _HANDSHAKE:
            raise UnexpectedMessage(f"{ct.name} record inside a fragmented handshake message")
        if ct == _ALERT:
            self._handle_alert(record)
        elif ct == _HANDSHAKE:
            if not record.protected and self._records.read_cipher is not None:
                raise UnexpectedMessage("unprotected handshake record after the key change")
            self._handshake_buffer += record.fragment
            self._drain_handshake()
        else:
            if not record.protected or not self._handshake_complete:
                raise UnexpectedMessage(f"application data in state {self._state.name}")
            if record.fragment:
                self._events.append(ApplicationData(record.fragment))

    def _plaintext_alert_allowed(self) -> bool:
        """Hook: may an unprotected alert arrive although a read key is set?"""
        return False

    def _handle_alert(self, record: Record) -> None:
        # RFC 8446 §5: once the read key is set, every record is protected; an unprotected
        # alert then is unexpected_message (the server's one exception: _plaintext_alert_allowed)
        if (
            not record.protected
            and self._records.read_cipher is not None
            and not self._plaintext_alert_allowed()
        ):
            raise UnexpectedMessage(f"unprotected alert in state {self._state.name}")
        if len(record.fragment) != 2:
            raise DecodeError(f"alert of {len(record.fragment)} bytes")
        description = record.fragment[1]
        if description == AlertDescription.CLOSE_NOTIFY:
            self._peer_closed = ConnectionClosed(clean=True)
        elif description == AlertDescription.USER_CANCELED:
            return  # RFC 8446 §6.1: followed by close_notify
        else:
            # RFC 8446 §6.2: every other alert is fatal
            self._peer_closed = ConnectionClosed(clean=False)
            self._sent_close = True
            self._events.append(AlertReceived(description))
        self._set_state(self._closed_state())

    def _drain_handshake(self) -> None:
        buf = self._handshake_buffer
        while buf:
            # fail on a message type this state does not accept before buffering its body
            handler = self._handlers.get(buf[0])
            if handler is None:
                raise self._unexpected_handshake(buf[0])
            if len(buf) < 4:
                return
            length = buf[1] << 16 | buf[2] << 8 | buf[3]  # uint24
            if length > self._max_handshake_message:
                raise DecodeError(
                    f"handshake message of {length} bytes, limit {self._max_handshake_message}"
                )
            if len(buf) < 4 + length:
                return
            if len(buf) == 4 + length:  # the usual case: one whole message, one copy
                message = bytes(buf)
                buf.clear()
            else:
                message = bytes(buf[: 4 + length])
                del buf[: 4 + length]
            getattr(self, handler)(message)
            if self._error is not None or self._peer_closed is not None:
                return

    def _unexpected_handshake(self, msg_type: int) -> UnexpectedMessage:
        try:
            name = HandshakeType(msg_type).name
        except ValueError:
            name = f"handshake type {msg_type}"
        return UnexpectedMessage(f"{name} in state {self._state.name}")

    def _on_key_update(self, message: bytes) -> None:
        """RFC 8446 §4.6.3: update the read key. An update_requested is answered with one
        KeyUpdate(update_not_requested) before our next application data record, however many
        requests came meanwhile; more than ``MAX_KEY_UPDATES`` KeyUpdates are
        unexpected_message (each costs a key derivation)."""
        update = _pull_exact(message, pull_key_update)
        self._key_updates_received += 1
        if self._key_updates_received > MAX_KEY_UPDATES:
            raise UnexpectedMessage(f"more than {MAX_KEY_UPDATES} KeyUpdate messages")
        read = self._records.read_cipher
        assert read is not None
        self._set_read_cipher(next_traffic_secret(read.secret))
        if update.request_update and not self._sent_close:
            self._key_update_pending = True

    def _send_key_update(self) -> None:
        self._key_update_pending = False
        buf = Buffer()
        push_key_update(buf, KeyUpdate(False))
        self._send(_HANDSHAKE, buf.data)
        write = self._records.write_cipher
        assert write is not None
        self._set_write_cipher(next_traffic_secret(write.secret))


def _pull_exact(message: bytes, puller):
    buf = Buffer(message)
    value = puller(buf)
    if not buf.eof():
        raise DecodeError(f"{buf.remaining()} trailing bytes after a handshake message")
    return value


def _x25519(private_key: X25519PrivateKey, peer_public: bytes) -> bytes:
    if len(peer_public) != X25519_KEY_LENGTH:
        raise IllegalParameter(f"x25519 key share of {len(peer_public)} bytes")
    try:
        return private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        # RFC 8446 §7.4.2 / RFC 7748 §6.1: an all-zero shared secret must be rejected
        raise IllegalParameter("x25519 key share gives an all-zero secret") from None


_RETRY_MAY_CHANGE = frozenset({ExtensionType.PADDING, ExtensionType.COOKIE})


def _retry_invariant(hello: ClientHello) -> ClientHello:
    """What RFC 8446 §4.1.2 keeps equal between ClientHello1 and ClientHello2: everything but
    key_share, early_data, cookie, padding and the PSK ages and binders."""
    assert hello.pre_shared_key is not None
    offered = hello.pre_shared_key
    return dataclasses.replace(
        hello,
        key_share=None,
        early_data=False,
        other_extensions=tuple(
            (t, d) for t, d in hello.other_extensions if t not in _RETRY_MAY_CHANGE
        ),
        pre_shared_key=OfferedPsks(
            tuple(PskIdentity(p.identity) for p in offered.identities),
            (bytes(32),) * len(offered.binders),
        ),
    )


# -- client -----------------------------------------------------------------------------------


class ClientState(Enum):
    START = "START"
    EXPECT_SERVER_HELLO = "EXPECT_SERVER_HELLO"
    EXPECT_ENCRYPTED_EXTENSIONS = "EXPECT_ENCRYPTED_EXTENSIONS"
    EXPECT_FINISHED = "EXPECT_FINISHED"
    CONNECTED = "CONNECTED"
    CLOSED = "CLOSED"
    ERROR = "ERROR"

    # identity hash, in C: Enum's own __hash__ is a Python call, and every state change looks
    # the state up in the handler table (members are singletons, so equality is identity)
    __hash__ = object.__hash__


class ClientConnection(_Connection):
    """TLS 1.3 external-PSK client (the SIM's side)."""

    _HANDLERS = {
        ClientState.EXPECT_SERVER_HELLO: {HandshakeType.SERVER_HELLO: "_on_server_hello"},
        ClientState.EXPECT_ENCRYPTED_EXTENSIONS: {
            HandshakeType.ENCRYPTED_EXTENSIONS: "_on_encrypted_extensions"
        },
        ClientState.EXPECT_FINISHED: {HandshakeType.FINISHED: "_on_finished"},
        ClientState.CONNECTED: {
            HandshakeType.NEW_SESSION_TICKET: "_on_new_session_ticket",
            HandshakeType.KEY_UPDATE: "_on_key_update",
        },
    }
    _CCS_STATES = frozenset(
        {
            ClientState.EXPECT_SERVER_HELLO,
            ClientState.EXPECT_ENCRYPTED_EXTENSIONS,
            ClientState.EXPECT_FINISHED,
        }
    )

    def __init__(self, config: ClientConfig, rng: Rng = os.urandom) -> None:
        super().__init__(rng, ClientState.START)
        self._config = config
        self._session_id = b""
        self._private_key: X25519PrivateKey | None = None
        self._server_hs_secret = b""
        self._client_hs_secret = b""
        self._mode: KeyExchangeMode | None = None
        self._hello: ClientHello | None = None  # our (latest) ClientHello
        self._hello_message = b""
        self._retry_suite: int | None = None  # set once we answered a HelloRetryRequest

    def _error_state(self) -> Enum:
        return ClientState.ERROR

    def _closed_state(self) -> Enum:
        return ClientState.CLOSED

    def start_handshake(self) -> None:
        """Queue the ClientHello.

        Raises:
            LocalProtocolError: called twice.
        """
        if self._state != ClientState.START:
            raise LocalProtocolError("start_handshake() called twice")
        config = self._config
        if config.middlebox_compat:
            self._session_id = self._rng(32)
        key_share: tuple[KeyShareEntry, ...] | None = None
        supported_groups = None
        if _PSK_DHE_KE in config.key_exchange_modes or config.send_key_share:
            supported_groups = (_X25519,)
            key_share = () if config.empty_key_share else (self._new_key_share(),)
        mfl_code = None
        if config.max_fragment_length is not None:
            mfl_code = {v: k for k, v in MAX_FRAGMENT_LENGTHS.items()}[config.max_fragment_length]
        hello = ClientHello(
            random=self._rng(32),
            legacy_session_id=self._session_id,
            cipher_suites=tuple(config.cipher_suites),
            server_name=config.server_name,
            max_fragment_length=mfl_code,
            supported_groups=supported_groups,
            record_size_limit=config.record_size_limit,
            supported_versions=(TLS_1_3,),
            psk_key_exchange_modes=tuple(config.key_exchange_modes),
            key_share=key_share,
            pre_shared_key=OfferedPsks((PskIdentity(config.identity, 0),), (bytes(32),)),
        )
        self._send_client_hello(hello, b"", LEGACY_CLIENT_HELLO_RECORD_VERSION)
        self._set_state(ClientState.EXPECT_SERVER_HELLO)

    def _new_key_share(self) -> KeyShareEntry:
        self._private_key = X25519PrivateKey.from_private_bytes(self._rng(32))
        return KeyShareEntry(_X25519, self._private_key.public_key().public_bytes_raw())

    def _send_client_hello(
        self, hello: ClientHello, transcript_prefix: bytes, record_version: int | None = None
    ) -> None:
        """Sign (binder) and queue ``hello``; the transcript restarts from the prefix."""
        buf = Buffer()
        push_client_hello(buf, hello)
        message = buf.data
        assert hello.pre_shared_key is not None
        # RFC 8446 §4.2.11.2: the binder covers the transcript up to the binders list
        truncated = message[: len(message) - hello.pre_shared_key.binders_length()]
        early = early_secret(self._config.psk)
        truncated_hash = hashlib.sha256(transcript_prefix + truncated).digest()
        message = message[:-32] + binder_from_early_secret(early, truncated_hash)
        self._key_schedule = KeySchedule()
        self._key_schedule.update_transcript(transcript_prefix + message)
        self._key_schedule.start_from_early_secret(early)
        self._hello = hello
        self._hello_message = message
        self._send(_HANDSHAKE, message, record_version)

    def _on_hello_retry_request(self, hello: ServerHello, message: bytes) -> None:
        """RFC 8446 §4.1.4: check the HRR, then send ClientHello2 with what it asks for."""
        config = self._config
        first = self._hello
        assert first is not None
        if self._retry_suite is not None:
            # "If a client receives a second HelloRetryRequest in the same connection [...],
            # it MUST abort the handshake with an "unexpected_message" alert."
            raise UnexpectedMessage("second HelloRetryRequest")
        if hello.supported_versions != TLS_1_3 or hello.legacy_version != TLS_1_2:
            raise IllegalParameter("HelloRetryRequest does not select TLS 1.3")
        if hello.legacy_session_id_echo != self._session_id:
            raise IllegalParameter("legacy_session_id_echo differs from legacy_session_id")
        if hello.cipher_suite not in config.cipher_suites:
            raise IllegalParameter(f"HelloRetryRequest cipher suite {hello.cipher_suite:#06x}")
        if hello.legacy_compression_method != 0:
            raise IllegalParameter("non-zero legacy_compression_method")
        key_share = first.key_share
        if hello.selected_group is not None:
            # §4.2.8: a group we listed in supported_groups and sent no share for
            offered = first.supported_groups or ()
            shared = {e.group for e in first.key_share or ()}
            if hello.selected_group not in offered or hello.selected_group in shared:
                raise IllegalParameter(f"HelloRetryRequest for group {hello.selected_group}")
            key_share = (self._new_key_share(),)
        elif hello.cookie is None:
            # "Clients MUST abort the handshake with an "illegal_parameter" alert if the
            # HelloRetryRequest would not result in any change in the ClientHello."
            raise IllegalParameter("HelloRetryRequest that changes nothing")
        other = tuple((t, d) for t, d in first.other_extensions if t != ExtensionType.COOKIE)
        if hello.cookie is not None:
            cookie = len(hello.cookie).to_bytes(2, "big") + hello.cookie
            other += ((ExtensionType.COOKIE, cookie),)  # §4.2.2: echoed in ClientHello2
        second = dataclasses.replace(
            first, key_share=key_share, early_data=False, other_extensions=other
        )
        self._retry_suite = hello.cipher_suite
        self._send_client_hello(second, message_hash(self._hello_message) + message)

    def _on_server_hello(self, message: bytes) -> None:
        hello: ServerHello = _pull_exact(message, pull_server_hello)
        config = self._config
        if hello.is_hello_retry_request:
            self._on_hello_retry_request(hello, message)
            return
        if self._retry_suite is not None and hello.cipher_suite != self._retry_suite:
            # §4.1.4: "the client MUST check that the cipher suite supplied in the ServerHello
            # is the same as that in the HelloRetryRequest"
            raise IllegalParameter("ServerHello cipher suite differs from the HelloRetryRequest")
        if hello.supported_versions is None:
            raise ProtocolVersion("server did not select TLS 1.3")
        if hello.supported_versions != TLS_1_3 or hello.legacy_version != TLS_1_2:
            raise IllegalParameter(f"server selected version {hello.supported_versions:#06x}")
        if hello.legacy_session_id_echo != self._session_id:
            raise IllegalParameter("legacy_session_id_echo differs from legacy_session_id")
        if hello.cipher_suite not in config.cipher_suites:
            raise IllegalParameter(f"server selected cipher suite {hello.cipher_suite:#06x}")
        if hello.legacy_compression_method != 0:
            raise IllegalParameter("non-zero legacy_compression_method")
        if hello.pre_shared_key is None:
            raise HandshakeFailure("server did not accept the PSK (certificates unsupported)")
        if hello.pre_shared_key != 0:
            raise IllegalParameter(f"server selected PSK identity {hello.pre_shared_key}")
        shared_secret = None
        if hello.key_share is not None:
            if (
                self._private_key is None
                or hello.key_share.group != _X25519
                or _PSK_DHE_KE not in config.key_exchange_modes
            ):
                raise IllegalParameter("key_share for a mode or group we did not offer")
            shared_secret = _x25519(self._private_key, hello.key_share.key_exchange)
            self._mode = _PSK_DHE_KE
        else:
            if KeyExchangeMode.PSK_KE not in config.key_exchange_modes:
                raise MissingExtension("server chose psk_ke, which we did not offer")
            self._mode = KeyExchangeMode.PSK_KE
        self._suite = CipherSuite(hello.cipher_suite)
        ks = self._key_schedule
        ks.update_transcript(message)
        ks.handshake_secret(shared_secret)
        self._client_hs_secret = ks.client_handshake_traffic_secret()
        self._server_hs_secret = ks.server_handshake_traffic_secret()
        self._set_read_cipher(self._server_hs_secret)
        if config.middlebox_compat:
            self._send(_CHANGE_CIPHER_SPEC, b"\x01")
        self._set_write_cipher(self._client_hs_secret)
        self._set_state(ClientState.EXPECT_ENCRYPTED_EXTENSIONS)

    def _on_encrypted_extensions(self, message: bytes) -> None:
        ee: EncryptedExtensions = _pull_exact(message, pull_encrypted_extensions)
        config = self._config
        # RFC 8446 §4.2: only extensions we offered may come back
        if ee.server_name and config.server_name is None:
            raise UnsupportedExtension("server_name in EncryptedExtensions, none offered")
        if ee.early_data:
            raise UnsupportedExtension("early_data in EncryptedExtensions, none offered")
        if ee.record_size_limit is not None:
            if config.record_size_limit is None:
                raise UnsupportedExtension("record_size_limit, not offered")
            # RFC 8449 §4: in TLS 1.3 the limit counts the content type byte. Our own limit
            # binds the server only once it answered with the extension (negotiated); GnuTLS,
            # for one, ignores offers below 512 and then sends full-size records.
            self._records.max_fragment_out = min(MAX_PLAINTEXT, ee.record_size_limit - 1)
            self._records.max_inner_plaintext_in = config.record_size_limit
        if ee.max_fragment_length is not None:
            if config.max_fragment_length is None:
                raise UnsupportedExtension("max_fragment_length, not offered")
            size = MAX_FRAGMENT_LENGTHS[ee.max_fragment_length]
            if size != config.max_fragment_length:
                # RFC 6066 §4: a different value -> illegal_parameter
                raise IllegalParameter("max_fragment_length differs from the offer")
            if ee.record_size_limit is None:
                self._records.max_fragment_out = min(self._records.max_fragment_out, size)
                self._records.max_inner_plaintext_in = min(
                    self._records.max_inner_plaintext_in, size + 1
                )
        self._key_schedule.update_transcript(message)
        self._set_state(ClientState.EXPECT_FINISHED)

    def _on_finished(self, message: bytes) -> None:
        finished: Finished = _pull_exact(message, pull_finished)
        ks = self._key_schedule
        expected = ks.finished_verify_data(self._server_hs_secret)
        if not hmac.compare_digest(expected, finished.verify_data):
            raise DecryptError("server Finished does not verify")
        ks.update_transcript(message)
        ks.master_secret()
        client_ap = ks.client_application_traffic_secret()
        server_ap = ks.server_application_traffic_secret()
        self._set_read_cipher(server_ap)
        buf = Buffer()
        push_finished(buf, Finished(ks.finished_verify_data(self._client_hs_secret)))
        ks.update_transcript(buf.data)
        self._send(_HANDSHAKE, buf.data)
        self._set_write_cipher(client_ap)
        self._handshake_complete = True
        self._set_state(ClientState.CONNECTED)
        assert self._suite is not None and self._mode is not None
        self._events.append(
            HandshakeComplete(
                identity=self._config.identity,
                psk_tag="",
                key_exchange_mode=self._mode,
                cipher_suite=self._suite,
                server_name=self._config.server_name,
            )
        )

    def _on_new_session_ticket(self, message: bytes) -> None:
        # Parsed for strictness, then discarded: external PSKs only, no resumption.
        _pull_exact(message, pull_new_session_ticket)


# -- server -----------------------------------------------------------------------------------


class ServerState(Enum):
    EXPECT_CLIENT_HELLO = "EXPECT_CLIENT_HELLO"
    EXPECT_SECOND_CLIENT_HELLO = "EXPECT_SECOND_CLIENT_HELLO"  # after our HelloRetryRequest
    WAIT_PSKS = "WAIT_PSKS"
    EXPECT_FINISHED = "EXPECT_FINISHED"
    CONNECTED = "CONNECTED"
    CLOSED = "CLOSED"
    ERROR = "ERROR"

    __hash__ = object.__hash__  # as ClientState's


# the server's dummy binder keys (ServerConfig.max_psk_candidates), taken in turn: random,
# made once per process, cached in BINDER_SECRETS like real keys (see _finish_client_hello)
_DUMMY_PSKS = itertools.cycle([os.urandom(32) for _ in range(8)])

# HandshakeComplete(**fields) without the frozen dataclass __init__ (one per handshake)
_build_handshake_complete = frozen_builder(HandshakeComplete)

_EXPECT_CLIENT_HELLO = ServerState.EXPECT_CLIENT_HELLO  # module constants, as _HANDSHAKE
_WAIT_PSKS = ServerState.WAIT_PSKS
_EXPECT_FINISHED = ServerState.EXPECT_FINISHED
_CONNECTED = ServerState.CONNECTED


@dataclass(slots=True)
class _PendingHello:
    message: bytes
    hello: ClientHello
    suite: CipherSuite
    mode: KeyExchangeMode
    identities: tuple[bytes, ...]
    candidates: dict[bytes, list[PskCandidate]] | None = field(default=None)


class ServerConnection(_Connection):
    """TLS 1.3 external-PSK server (the gateway's side)."""

    _HANDLERS = {
        ServerState.EXPECT_CLIENT_HELLO: {HandshakeType.CLIENT_HELLO: "_on_client_hello"},
        ServerState.EXPECT_SECOND_CLIENT_HELLO: {
            HandshakeType.CLIENT_HELLO: "_on_second_client_hello"
        },
        ServerState.EXPECT_FINISHED: {HandshakeType.FINISHED: "_on_finished"},
        ServerState.CONNECTED: {HandshakeType.KEY_UPDATE: "_on_key_update"},
    }
    _CCS_STATES = frozenset(
        {ServerState.EXPECT_SECOND_CLIENT_HELLO, ServerState.WAIT_PSKS, ServerState.EXPECT_FINISHED}
    )
    _HOOK_STATES = frozenset({ServerState.WAIT_PSKS})  # finish the ClientHello once supplied

    def __init__(self, config: ServerConfig, rng: Rng = os.urandom) -> None:
        super().__init__(rng, _EXPECT_CLIENT_HELLO)
        self._config = config
        self._max_handshake_message = config.max_handshake_message
        self._pending: _PendingHello | None = None
        self._client_hs_secret = b""
        self._complete: HandshakeComplete | None = None
        # after a HelloRetryRequest: the first ClientHello, the suite chosen then, and the
        # transcript the second ClientHello's binder covers (message_hash(CH1) + HRR)
        self._first_hello: ClientHello | None = None
        self._retry_suite: CipherSuite | None = None
        self._transcript_prefix = b""
        self._sent_ccs = False

    def _error_state(self) -> Enum:
        return ServerState.ERROR

    def _plaintext_alert_allowed(self) -> bool:
        # After our ServerHello the client may reject it before it has handshake keys: its
        # alert comes in clear. Allowed until the client's Finished (OpenSSL does the same).
        return self._state is _EXPECT_FINISHED

    def _closed_state(self) -> Enum:
        return ServerState.CLOSED

    def supply_psks(self, candidates: Mapping[bytes, Sequence[PskCandidate]]) -> None:
        """Answer a ``PskRequest``: candidate keys per identity (a missing identity = unknown).

        Raises:
            LocalProtocolError: no ``PskRequest`` is pending.
        """
        if self._state != ServerState.WAIT_PSKS or self._pending is None:
            raise LocalProtocolError(f"supply_psks() in state {self._state.name}")
        if self._pending.candidates is not None:
            raise LocalProtocolError("supply_psks() called twice")
        table: dict[bytes, list[PskCandidate]] = {}
        for identity, keys in candidates.items():
            keys = list(keys)
            if not all(isinstance(k, PskCandidate) for k in keys):
                raise LocalProtocolError("supply_psks() needs PskCandidate values")
            table[bytes(identity)] = keys
        self._pending.candidates = table

    def _before_record(self) -> bool | None:
        if self._state is not _WAIT_PSKS:
            return None
        pending = self._pending
        assert pending is not None
        if pending.candidates is None:
            return False  # waiting for supply_psks()
        self._finish_client_hello(pending, pending.candidates)
        return True

    def _check_client_hello(self, hello: ClientHello) -> CipherSuite:
        """Checks every ClientHello passes; returns the cipher suite we choose."""
        config = self._config
        # RFC 8446 §4.2.1: without supported_versions this is a TLS 1.2 (or older) ClientHello
        if hello.supported_versions is None or TLS_1_3 not in hello.supported_versions:
            raise ProtocolVersion("client does not offer TLS 1.3")
        if hello.legacy_compression_methods != b"\x00":
            # RFC 8446 §4.1.2: "MUST abort the handshake with an "illegal_parameter" alert"
            raise IllegalParameter("legacy_compression_methods other than [null]")
        for suite in config.cipher_suites:  # ours first: the preference order is the server's
            if suite in hello.cipher_suites:
                break
        else:
            raise HandshakeFailure("no cipher suite in common")
        if hello.pre_shared_key is None:
            raise HandshakeFailure("no pre_shared_key offered (this server has no certificate)")
        if hello.psk_key_exchange_modes is None:
            # RFC 8446 §4.2.9: "clients MUST supply a "psk_key_exchange_modes" extension"
            raise MissingExtension("pre_shared_key without psk_key_exchange_modes")
        # RFC 8446 §9.2: "If containing a "supported_groups" extension, it MUST also contain a
        # "key_share" extension, and vice versa. [...] Servers receiving a ClientHello which
        # does not conform to these requirements MUST abort the handshake with a
        # "missing_extension" alert."
        if hello.key_share is not None and hello.supported_groups is None:
            raise MissingExtension("key_share without supported_groups")
        if hello.supported_groups is not None and hello.key_share is None:
            raise MissingExtension("supported_groups without key_share")
        return suite

    def _select_mode(self, hello: ClientHello) -> KeyExchangeMode | None:
        """Our most preferred mode the client offers and can do now; None: psk_dhe_ke only,
        and a HelloRetryRequest for x25519 would make it possible."""
        assert hello.psk_key_exchange_modes is not None
        x25519_share = None
        for entry in hello.key_share or ():
            if entry.group == _X25519:
                x25519_share = entry
                break
        retry = False
        for candidate in self._config.key_exchange_modes:
            if candidate not in hello.psk_key_exchange_modes:
                continue
            if candidate == _PSK_DHE_KE and x25519_share is None:
                # RFC 8446 §4.1.4 / §4.2.8: a HelloRetryRequest only for a group the client
                # supports; psk_ke, when both sides allow it, needs no second round trip
                retry = _X25519 in (hello.supported_groups or ())
                continue
            if x25519_share is not None and len(x25519_share.key_exchange) != X25519_KEY_LENGTH:
                raise IllegalParameter("x25519 key share is not 32 bytes")
            return candidate
        if retry:
            return None
        raise HandshakeFailure("no PSK key exchange mode in common")

    def _on_client_hello(self, message: bytes) -> None:
        hello: ClientHello = _pull_exact(message, pull_client_hello)
        suite = self._check_client_hello(hello)
        mode = self._select_mode(hello)
        if mode is None:
            self._send_hello_retry_request(message, hello, suite)
            return
        if hello.early_data:
            # RFC 8446 §4.2.10: refuse 0-RTT by skipping records that fail to decrypt
            self._records.early_data_skip_budget = self._config.max_early_data_skip
        self._accept_client_hello(message, hello, suite, mode)

    def _send_hello_retry_request(
        self, message: bytes, hello: ClientHello, suite: CipherSuite
    ) -> None:
        """RFC 8446 §4.1.4: ask for an x25519 key share. No PSK work yet: the binder of the
        second ClientHello is the one that counts (§4.2.11.2), so this answer is the same
        whatever the identity."""
        hrr = ServerHello(
            random=HRR_RANDOM,
            legacy_session_id_echo=hello.legacy_session_id,
            cipher_suite=suite,
            supported_versions=TLS_1_3,
            selected_group=_X25519,
        )
        buf = Buffer()
        push_server_hello(buf, hrr)
        # §4.4.1: the transcript continues with message_hash(ClientHello1), then the HRR
        self._transcript_prefix = message_hash(message) + buf.data
        self._key_schedule.update_transcript(self._transcript_prefix)
        self._first_hello = hello
        self._retry_suite = suite
        self._send(_HANDSHAKE, buf.data)
        if hello.legacy_session_id:
            # RFC 8446 §D.4: after the server's first handshake message, which may be an HRR
            self._send(_CHANGE_CIPHER_SPEC, b"\x01")
            self._sent_ccs = True
        if hello.early_data:
            # §4.2.10: early data after ClientHello1 is skipped (here it cannot be decrypted
            # at all: no read key), up to the same budget
            self._records.early_data_skip_budget = self._config.max_early_data_skip
        self._set_state(ServerState.EXPECT_SECOND_CLIENT_HELLO)

    def _on_second_client_hello(self, message: bytes) -> None:
        hello: ClientHello = _pull_exact(message, pull_client_hello)
        first = self._first_hello
        assert first is not None
        self._records.early_data_skip_budget = 0  # early data ends before ClientHello2
        suite = self._check_client_hello(hello)
        if suite != self._retry_suite:
            # §4.1.4: the same cipher suite as in the HelloRetryRequest
            raise IllegalParameter("second ClientHello changes the cipher suite")
        shares = hello.key_share or ()
        if len(shares) != 1 or shares[0].group != _X25519:
            # §4.2.8: "the client MUST replace the original "key_share" extension with one
            # containing only a new KeyShareEntry for the group indicated"
            raise IllegalParameter("second ClientHello must carry one x25519 key share")
        if hello.early_data:
            # §4.2.10: "A client MUST NOT include the "early_data" extension in its followup
            # ClientHello."
            raise IllegalParameter("early_data in the second ClientHello")
        if _retry_invariant(hello) != _retry_invariant(first):
            # §4.1.2: "the client MUST send the same ClientHello without modification",
            # except key_share, early_data, cookie, the PSK ages and binders, and padding
            raise IllegalParameter("second ClientHello differs from the first")
        mode = self._select_mode(hello)
        assert mode is not None  # an x25519 share is there now
        self._accept_client_hello(message, hello, suite, mode)

    def _accept_client_hello(
        self, message: bytes, hello: ClientHello, suite: CipherSuite, mode: KeyExchangeMode
    ) -> None:
        config = self._config
        assert hello.pre_shared_key is not None
        identities = tuple(
            [p.identity for p in hello.pre_shared_key.identities[: config.max_psk_identities]]
        )
        pending = _PendingHello(message, hello, suite, mode, identities)
        self._pending = pending
        if config.psk_lookup is None:
            self._set_state(ServerState.WAIT_PSKS)
            self._events.append(PskRequest(identities))
            return
        table = {}
        for identity in identities:
            table[identity] = [
                c if isinstance(c, PskCandidate) else PskCandidate(*c)
                for c in config.psk_lookup(identity)
            ]
        self._finish_client_hello(pending, table)

    def _finish_client_hello(
        self, pending: _PendingHello, table: Mapping[bytes, Sequence[PskCandidate]]
    ) -> None:
        self._pending = None
        hello, message = pending.hello, pending.message
        offered = hello.pre_shared_key
        assert offered is not None
        # after a HelloRetryRequest the binder covers message_hash(CH1) + HRR too (§4.2.11.2)
        truncated = self._transcript_prefix + message[: len(message) - offered.binders_length()]
        # Select the first offered identity we know; RFC 8446 §4.2.11 asks to validate the
        # binder of that one PSK only. Its candidate keys are padded with random dummy keys to
        # max_psk_candidates (an unknown identity: dummies only), every binder is computed and
        # compared in constant time, then the same error for an unknown identity and a wrong key.
        index = None
        for i, ident in enumerate(pending.identities):
            if table.get(ident):
                index = i
                break
        keys: list[PskCandidate | None] = []
        if index is not None:
            keys = list(table[pending.identities[index]])
        binder = offered.binders[0 if index is None else index]
        limit = self._config.max_psk_candidates
        if len(keys) > limit:
            logger.warning(
                "identity %s has %d keys, more than max_psk_candidates=%d",
                pending.identities[index or 0].hex(),
                len(keys),
                limit,
            )
        keys += [None] * (limit - len(keys))
        # A dummy key from the pool (made with os.urandom, not rng: replayed runs keep their
        # byte stream); a dummy is never accepted, even if it matched. Real keys and dummies
        # go through the same cached lookup of their Early Secret and binder finished key, so
        # each candidate costs one lookup and one HMAC, known identity or not (issue 14).
        dummy = next(_DUMMY_PSKS)
        truncated_hash = hashlib.sha256(truncated).digest()  # the same for every candidate
        matched: PskCandidate | None = None
        matched_early = b""
        for candidate in keys:
            early, binder_finished_key = binder_secrets(
                dummy if candidate is None else candidate.key
            )
            ok = hmac.compare_digest(hmac_sha256(binder_finished_key, truncated_hash), binder)
            if ok and matched is None and candidate is not None:
                matched, matched_early = candidate, early
        if index is None or matched is None:
            logger.info(
                "binder did not verify for identity %s",
                pending.identities[0 if index is None else index].hex(),
            )
            raise DecryptError("PSK binder does not verify")
        identity = pending.identities[index]
        self._suite = pending.suite
        ks = self._key_schedule
        ks.start_from_early_secret(matched_early)
        ks.update_transcript(message)

        shared_secret = None
        server_share = None
        if pending.mode == _PSK_DHE_KE:
            peer = next(e for e in hello.key_share or () if e.group == _X25519)
            private_key = X25519PrivateKey.from_private_bytes(self._rng(32))
            shared_secret = _x25519(private_key, peer.key_exchange)
            server_share = KeyShareEntry(_X25519, private_key.public_key().public_bytes_raw())
        # the flight's messages encoded straight from their fields (encode_x checks them as
        # the dataclasses do): one ServerHello, EE and Finished per handshake (issue 14)
        wire = encode_server_hello(
            self._rng(32),
            hello.legacy_session_id,
            pending.suite,
            supported_versions=TLS_1_3,
            key_share=server_share,
            pre_shared_key=index,
        )
        ks.update_transcript(wire)
        self._send(_HANDSHAKE, wire)
        if hello.legacy_session_id and not self._sent_ccs:
            # RFC 8446 §D.4: middlebox compatibility, "immediately after its first handshake
            # message" (the HelloRetryRequest, if there was one)
            self._send(_CHANGE_CIPHER_SPEC, b"\x01")
            self._sent_ccs = True
        ks.handshake_secret(shared_secret)
        self._client_hs_secret = ks.client_handshake_traffic_secret()
        server_hs = ks.server_handshake_traffic_secret()
        self._set_read_cipher(self._client_hs_secret)
        self._set_write_cipher(server_hs)

        encrypted_extensions = self._encrypted_extensions(hello)
        ks.update_transcript(encrypted_extensions)
        finished = encode_finished(ks.finished_verify_data(server_hs))
        ks.update_transcript(finished)
        self._send(_HANDSHAKE, encrypted_extensions + finished)
        ks.master_secret()
        self._client_ap_secret = ks.client_application_traffic_secret()
        self._set_write_cipher(ks.server_application_traffic_secret())
        self._complete = _build_handshake_complete(
            {
                "identity": identity,
                "psk_tag": matched.tag,
                "key_exchange_mode": pending.mode,
                "cipher_suite": pending.suite,
                "server_name": hello.server_name,
            }
        )
        self._set_state(_EXPECT_FINISHED)

    def _encrypted_extensions(self, hello: ClientHello) -> bytes:
        """Our EncryptedExtensions message (and the record limits it announces)."""
        records = self._records
        record_size_limit = None
        mfl = None
        if hello.record_size_limit is not None:
            # RFC 8449 §4: TLS 1.3 limit includes the content type; ignore MFL when both came
            record_size_limit = self._config.record_size_limit or RECORD_SIZE_LIMIT_MAX_TLS13
            records.max_inner_plaintext_in = record_size_limit
            records.max_fragment_out = min(MAX_PLAINTEXT, hello.record_size_limit - 1)
        elif hello.max_fragment_length is not None:
            mfl = hello.max_fragment_length
            size = MAX_FRAGMENT_LENGTHS[mfl]
            records.max_fragment_out = size
            records.max_inner_plaintext_in = size + 1
        return encode_encrypted_extensions(
            server_name=hello.server_name is not None,
            max_fragment_length=mfl,
            record_size_limit=record_size_limit,
        )

    def _on_finished(self, message: bytes) -> None:
        # _drain_handshake hands over exactly one whole Finished (type checked, 4 + its uint24
        # length bytes): the body is verify_data, as _pull_exact(message, pull_finished) would
        # read it, without a Buffer and a Finished object on every handshake (issue 14)
        verify_data = message[4:]
        ks = self._key_schedule
        expected = ks.finished_verify_data(self._client_hs_secret)
        if not hmac.compare_digest(expected, verify_data):
            raise DecryptError("client Finished does not verify")
        ks.update_transcript(message)
        self._records.early_data_skip_budget = 0
        self._set_read_cipher(self._client_ap_secret)
        self._handshake_complete = True
        self._set_state(_CONNECTED)
        assert self._complete is not None
        self._events.append(self._complete)
