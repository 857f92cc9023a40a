"""Bad input ends in the right alert, named by class (STYLE §4, §5)."""

from __future__ import annotations

import dataclasses

import pytest
from ztp.tls import (
    NEED_DATA,
    Alert,
    ApplicationData,
    BadRecordMac,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    ClientState,
    DecodeError,
    DecryptError,
    HandshakeComplete,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    KeyExchangeMode,
    MissingExtension,
    ProtocolVersion,
    PskCandidate,
    RecordOverflow,
    ServerConfig,
    ServerConnection,
    ServerState,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ztp.tls._buffer import Buffer
from ztp.tls._messages import (
    HRR_RANDOM,
    EncryptedExtensions,
    ExtensionType,
    HandshakeType,
    KeyShareEntry,
    OfferedPsks,
    PskIdentity,
    ServerHello,
    pull_client_hello,
    push_encrypted_extensions,
    push_server_hello,
)
from ztp.tls._record import ContentType

from .helpers import IDENTITY, PSK, CountingRng, drain, handshake, lookup_for, make_pair
from .wire import (
    handshake_message,
    insert_extension,
    protected,
    record,
    rewrite_hello,
    sign,
)

CCM = CipherSuite.TLS_AES_128_CCM_SHA256
GCM = CipherSuite.TLS_AES_128_GCM_SHA256
ALERT_PREFIX = b"\x15\x03\x03\x00\x02\x02"


def expect_alert(conn, error_class, wire: bytes | None = None) -> Alert:
    """Feed ``wire``, expect exactly ``error_class``, the alert queued, and a dead core."""
    if wire is not None:
        conn.receive_data(wire)
    with pytest.raises(Alert) as info:
        drain(conn)
    assert type(info.value) is error_class, repr(info.value)
    out = conn.data_to_send()
    assert out, "an alert must be queued"
    if conn._records.write_cipher is None:
        assert out.endswith(ALERT_PREFIX + bytes([error_class.description]))
    assert conn.state.name == "ERROR"
    with pytest.raises(error_class):  # fail closed: the same error again
        conn.next_event()
    conn.receive_data(b"\x16\x03\x03\x00\x01\x01")  # ignored
    assert conn.data_to_send() == b""
    return info.value


def server(**kwargs) -> ServerConnection:
    config = ServerConfig(psk_lookup=lookup_for({IDENTITY: [PskCandidate(PSK, "1")]}), **kwargs)
    return ServerConnection(config, rng=CountingRng(b"server"))


def client(**kwargs) -> ClientConnection:
    kwargs.setdefault("server_name", "gw.example")
    return ClientConnection(ClientConfig(IDENTITY, PSK, **kwargs), rng=CountingRng(b"client"))


def started(**kwargs) -> ClientConnection:
    c = client(**kwargs)
    c.start_handshake()
    return c


# -- PSK authentication -----------------------------------------------------------------------


def test_unknown_identity_and_wrong_key_are_indistinguishable():
    wrong_key = ClientConnection(ClientConfig(IDENTITY, b"\x55" * 16), rng=CountingRng(b"c"))
    unknown = ClientConnection(ClientConfig(b"\x98" * 10, PSK), rng=CountingRng(b"c"))
    outputs = []
    for c in (wrong_key, unknown):
        c.start_handshake()
        s = server()
        s.receive_data(c.data_to_send())
        error = expect_alert(s, DecryptError)
        outputs.append((str(error), s.bytes_sent))
    assert outputs[0] == outputs[1]


def test_unknown_identity_via_psk_request_same_error():
    c = started()
    s = ServerConnection(ServerConfig(), rng=CountingRng(b"server"))
    s.receive_data(c.data_to_send())
    assert s.next_event().identities == (IDENTITY,)
    s.supply_psks({})
    expect_alert(s, DecryptError)


def test_tampered_binder():
    c = started()
    wire = bytearray(c.data_to_send())
    wire[-1] ^= 0x01
    expect_alert(server(), DecryptError, bytes(wire))


def test_rotation_with_only_wrong_candidates():
    c = started()
    s = ServerConnection(
        ServerConfig(
            psk_lookup=lookup_for(
                {IDENTITY: [PskCandidate(b"\x01" * 16), PskCandidate(b"\x02" * 16)]}
            )
        )
    )
    expect_alert(s, DecryptError, c.data_to_send())


def test_binder_count_mismatch():
    c = started()
    offered = OfferedPsks((PskIdentity(IDENTITY), PskIdentity(b"other")), (bytes(32),))
    wire = rewrite_hello(c, PSK, resign=False, pre_shared_key=offered)
    expect_alert(server(), IllegalParameter, wire)


def test_second_identity_selected_when_first_unknown():
    c = started()
    offered = OfferedPsks((PskIdentity(b"unknown"), PskIdentity(IDENTITY)), (bytes(32), bytes(32)))
    wire = rewrite_hello(c, PSK, pre_shared_key=offered)
    # fix the binders: both computed with PSK (the unknown one's binder is never checked)
    from ztp.tls._key_schedule import compute_binder

    message = wire[5:]
    truncated = message[: len(message) - offered.binders_length()]
    binder = compute_binder(PSK, truncated)
    message = message[:-66] + b"\x20" + binder + b"\x20" + binder
    c._key_schedule.__init__()
    c._key_schedule.update_transcript(message)
    c._key_schedule.early_secret(PSK)
    s = server()
    s.receive_data(record(ContentType.HANDSHAKE, message))
    drain(s)
    c.receive_data(s.data_to_send())
    with pytest.raises(IllegalParameter):  # our client offered one identity: index 1 is bad
        drain(c)


# -- ClientHello checks -----------------------------------------------------------------------


def test_tls12_only_client_hello():
    c = started()
    expect_alert(server(), ProtocolVersion, rewrite_hello(c, PSK, supported_versions=None))
    c = started()
    wire = rewrite_hello(c, PSK, supported_versions=(0x0303,))
    expect_alert(server(), ProtocolVersion, wire)


def test_pre_shared_key_not_last():
    c = started()
    message = c.data_to_send()[5:]
    bad = insert_extension(message, 0x0017, b"", at_end=True)  # extended_master_secret after
    expect_alert(server(), IllegalParameter, record(ContentType.HANDSHAKE, bad))


def test_duplicated_extension():
    c = started()
    message = c.data_to_send()[5:]
    hello = pull_client_hello(Buffer(message))
    name = b"\x00\x0d\x00\x00\x0agw.example"
    bad = insert_extension(message, ExtensionType.SERVER_NAME, name, at_end=False)
    assert hello.server_name == "gw.example"
    expect_alert(server(), IllegalParameter, record(ContentType.HANDSHAKE, sign(bad, PSK)))


def _hello_with_extensions(extensions: bytes, vector_length: int | None = None) -> bytes:
    """A ClientHello message whose extensions vector holds these bytes (and says it holds
    ``vector_length``)."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x04" + b"\x01\x00"
    size = len(extensions) if vector_length is None else vector_length
    body += size.to_bytes(2, "big") + extensions
    return b"\x01" + len(body).to_bytes(3, "big") + body


def _ext(ext_type: int, data: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


_VERSIONS = _ext(43, b"\x02\x03\x04")


@pytest.mark.parametrize(
    "extensions, vector_length, error",
    [
        # a duplicate is illegal_parameter even when a later extension is cut short: the walk
        # meets the duplicate first
        (_VERSIONS + _VERSIONS + b"\x00\x01", None, IllegalParameter),
        (_VERSIONS + _VERSIONS + b"\x00\x01\x00\x09ab", None, IllegalParameter),
        (_ext(0, b"") + _VERSIONS + _ext(0, b""), None, IllegalParameter),
        (_VERSIONS + b"\x00\x2b\x00\x09ab", None, DecodeError),  # cut short, no duplicate
        (_VERSIONS + b"\x00", None, DecodeError),  # a header cut short
        (_VERSIONS + _VERSIONS, 40, DecodeError),  # the vector runs past the message
    ],
)
def test_client_hello_extensions_walk_errors(extensions, vector_length, error):
    with pytest.raises(error):
        pull_client_hello(Buffer(_hello_with_extensions(extensions, vector_length)))


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"cipher_suites": (0x1302,)}, HandshakeFailure),
        ({"pre_shared_key": None}, HandshakeFailure),
        ({"psk_key_exchange_modes": None}, MissingExtension),
        ({"psk_key_exchange_modes": (1,)}, HandshakeFailure),  # psk_dhe_ke without key_share
        ({"legacy_compression_methods": b"\x01\x00"}, IllegalParameter),
        ({"key_share": (KeyShareEntry(0x1D, bytes(32)),)}, MissingExtension),  # no groups
        (
            {"key_share": (KeyShareEntry(0x1D, b"\x01" * 31),), "supported_groups": (0x1D,)},
            IllegalParameter,
        ),
    ],
)
def test_client_hello_rejections(changes, error):
    c = started()
    expect_alert(server(), error, rewrite_hello(c, PSK, **changes))


def test_all_zero_x25519_share():
    c = started()
    changes = {
        "key_share": (KeyShareEntry(0x1D, bytes(32)),),
        "supported_groups": (0x1D,),
        "psk_key_exchange_modes": (1,),
    }
    expect_alert(server(), IllegalParameter, rewrite_hello(c, PSK, **changes))


@pytest.mark.parametrize(
    "ext_type, data",
    [
        (ExtensionType.RECORD_SIZE_LIMIT, b"\x00\x3f"),  # below 64
        (ExtensionType.MAX_FRAGMENT_LENGTH, b"\x05"),
        (ExtensionType.SERVER_NAME, b"\x00\x0a\x00\x00\x03abc\x00\x00\x01d"),  # two host names
    ],
)
def test_bad_extension_values(ext_type, data):
    c = started(server_name=None)
    message = insert_extension(c.data_to_send()[5:], ext_type, data, at_end=False)
    expect_alert(server(), IllegalParameter, record(ContentType.HANDSHAKE, sign(message, PSK)))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m[:3] + bytes([m[3] + 1]) + m[4:] + b"\x00",  # handshake length too long
        lambda m: m[:1] + (len(m) - 5).to_bytes(3, "big") + m[4:-1],  # inner lengths too long
        lambda m: m[:38] + b"\x21" + m[39:],  # session id length past its bound
        lambda m: m[: 4 + 2 + 32 + 1] + b"\x00\x03" + m[4 + 2 + 32 + 3 :],  # odd suites length
    ],
)
def test_bad_lengths(mutate):
    c = started()
    message = mutate(c.data_to_send()[5:])
    expect_alert(server(), DecodeError, record(ContentType.HANDSHAKE, message))


def test_early_data_is_skipped_and_handshake_completes():
    c = started()
    wire = rewrite_hello(c, PSK, early_data=True)
    s = server()
    s.receive_data(wire)
    drain(s)
    # 0-RTT records under a key the server never derives: skipped (RFC 8446 §4.2.10)
    early = protected(CCM, b"\x07" * 32, 0, ContentType.APPLICATION_DATA, b"GET / early")
    c.receive_data(s.data_to_send())
    assert isinstance(drain(c)[0], HandshakeComplete)
    s.receive_data(early * 3 + c.data_to_send())
    assert isinstance(drain(s)[0], HandshakeComplete)


def test_early_data_skip_is_bounded():
    c = started()
    s = server(max_early_data_skip=100)
    s.receive_data(rewrite_hello(c, PSK, early_data=True))
    drain(s)
    early = protected(CCM, b"\x07" * 32, 0, ContentType.APPLICATION_DATA, bytes(200))
    expect_alert(s, BadRecordMac, early)


# -- ServerHello / EncryptedExtensions checks on the client ------------------------------------


def server_hello(c: ClientConnection, **changes) -> bytes:
    fields = dict(
        random=b"\x11" * 32,
        legacy_session_id_echo=c._session_id,
        cipher_suite=CCM,
        supported_versions=0x0304,
        pre_shared_key=0,
    )
    fields.update(changes)
    buf = Buffer()
    push_server_hello(buf, ServerHello(**fields))
    return record(ContentType.HANDSHAKE, buf.data)


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"supported_versions": None}, ProtocolVersion),
        ({"supported_versions": 0x0303}, IllegalParameter),
        ({"legacy_session_id_echo": b"\x01" * 32}, IllegalParameter),
        ({"cipher_suite": GCM}, IllegalParameter),
        ({"legacy_compression_method": 1}, IllegalParameter),
        ({"pre_shared_key": None}, HandshakeFailure),
        ({"pre_shared_key": 1}, IllegalParameter),
        ({"key_share": KeyShareEntry(0x1D, b"\x09" * 32)}, IllegalParameter),  # not offered
        ({"random": HRR_RANDOM, "selected_group": 0x17, "pre_shared_key": None}, IllegalParameter),
        # an HRR that would change nothing (RFC 8446 §4.1.4)
        ({"random": HRR_RANDOM, "pre_shared_key": None}, IllegalParameter),
    ],
)
def test_server_hello_rejections(changes, error):
    c = started()
    expect_alert(c, error, server_hello(c, **changes))


def test_server_chose_psk_ke_not_offered():
    c = started(key_exchange_modes=(KeyExchangeMode.PSK_DHE_KE,))
    expect_alert(c, MissingExtension, server_hello(c))


def _client_after_server_hello(**kwargs):
    c, s = make_pair(ClientConfig(IDENTITY, PSK, **kwargs))
    c.start_handshake()
    s.receive_data(c.data_to_send())
    drain(s)
    flight = s.data_to_send()
    sh_end = 5 + int.from_bytes(flight[3:5], "big")
    c.receive_data(flight[:sh_end])
    assert drain(c) == []
    assert c.state is ClientState.EXPECT_ENCRYPTED_EXTENSIONS
    return c


@pytest.mark.parametrize(
    "ee, error",
    [
        (EncryptedExtensions(server_name=True), UnsupportedExtension),
        (EncryptedExtensions(early_data=True), UnsupportedExtension),
        (EncryptedExtensions(record_size_limit=1000), UnsupportedExtension),
        (EncryptedExtensions(max_fragment_length=1), UnsupportedExtension),
    ],
)
def test_encrypted_extensions_not_offered(ee, error):
    c = _client_after_server_hello()
    buf = Buffer()
    push_encrypted_extensions(buf, ee)
    wire = protected(CCM, c._server_hs_secret, 0, ContentType.HANDSHAKE, buf.data)
    expect_alert(c, error, wire)


def test_encrypted_extensions_unknown_and_bad_mfl():
    c = _client_after_server_hello()
    body = b"\x00\x04\xfa\xfa\x00\x00"
    wire = protected(CCM, c._server_hs_secret, 0, ContentType.HANDSHAKE, handshake_message(8, body))
    expect_alert(c, UnsupportedExtension, wire)
    c = _client_after_server_hello(max_fragment_length=512)
    buf = Buffer()
    push_encrypted_extensions(buf, EncryptedExtensions(max_fragment_length=2))
    wire = protected(CCM, c._server_hs_secret, 0, ContentType.HANDSHAKE, buf.data)
    expect_alert(c, IllegalParameter, wire)


def test_bad_server_finished():
    c = _client_after_server_hello()
    buf = Buffer()
    push_encrypted_extensions(buf, EncryptedExtensions())
    msgs = buf.data + handshake_message(HandshakeType.FINISHED, b"\x00" * 32)
    expect_alert(
        c, DecryptError, protected(CCM, c._server_hs_secret, 0, ContentType.HANDSHAKE, msgs)
    )


def test_bad_client_finished():
    c, s = make_pair()
    c.start_handshake()
    s.receive_data(c.data_to_send())
    drain(s)
    wire = protected(
        CCM, s._client_hs_secret, 0, ContentType.HANDSHAKE, handshake_message(20, bytes(32))
    )
    expect_alert(s, DecryptError, wire)


def test_short_finished_is_decrypt_error():
    c, s = make_pair()
    c.start_handshake()
    s.receive_data(c.data_to_send())
    drain(s)
    wire = protected(
        CCM, s._client_hs_secret, 0, ContentType.HANDSHAKE, handshake_message(20, bytes(12))
    )
    expect_alert(s, DecryptError, wire)


# -- unexpected messages in every state ---------------------------------------------------------

ALL_TYPES = [t for t in HandshakeType if t != HandshakeType.MESSAGE_HASH] + [99]


def _client_in(state: ClientState):
    """A client in ``state`` and a function that wraps a handshake message as the server's
    next record."""
    c, s = make_pair()
    c.start_handshake()
    if state is ClientState.EXPECT_SERVER_HELLO:
        return c, lambda m: record(ContentType.HANDSHAKE, m)
    c = _client_after_server_hello()
    if state is ClientState.EXPECT_ENCRYPTED_EXTENSIONS:
        return c, lambda m: protected(CCM, c._server_hs_secret, 0, ContentType.HANDSHAKE, m)
    buf = Buffer()
    push_encrypted_extensions(buf, EncryptedExtensions())
    c.receive_data(protected(CCM, c._server_hs_secret, 0, ContentType.HANDSHAKE, buf.data))
    assert drain(c) == []
    assert c.state is ClientState.EXPECT_FINISHED
    if state is ClientState.EXPECT_FINISHED:
        return c, lambda m: protected(CCM, c._server_hs_secret, 1, ContentType.HANDSHAKE, m)
    c, s = make_pair()
    handshake(c, s)
    return c, lambda m: s._records.protect(ContentType.HANDSHAKE, m)


ALLOWED_CLIENT = {
    ClientState.EXPECT_SERVER_HELLO: {HandshakeType.SERVER_HELLO},
    ClientState.EXPECT_ENCRYPTED_EXTENSIONS: {HandshakeType.ENCRYPTED_EXTENSIONS},
    ClientState.EXPECT_FINISHED: {HandshakeType.FINISHED},
    ClientState.CONNECTED: {HandshakeType.NEW_SESSION_TICKET, HandshakeType.KEY_UPDATE},
}


@pytest.mark.parametrize("state", list(ALLOWED_CLIENT))
def test_client_unexpected_message_in_every_state(state):
    for msg_type in ALL_TYPES:
        if msg_type in ALLOWED_CLIENT[state]:
            continue
        c, wrap = _client_in(state)
        expect_alert(c, UnexpectedMessage, wrap(handshake_message(msg_type, b"\x00" * 8)))


def _server_in(state: ServerState):
    c, s = make_pair()
    if state is ServerState.EXPECT_CLIENT_HELLO:
        return s, lambda m: record(ContentType.HANDSHAKE, m)
    if state is ServerState.EXPECT_SECOND_CLIENT_HELLO:
        c = client(key_exchange_modes=(KeyExchangeMode.PSK_DHE_KE,), empty_key_share=True)
        c.start_handshake()
        s.receive_data(c.data_to_send())
        assert drain(s) == [] and s.state is state  # our HelloRetryRequest went out
        return s, lambda m: record(ContentType.HANDSHAKE, m)
    c.start_handshake()
    s.receive_data(c.data_to_send())
    drain(s)
    if state is ServerState.EXPECT_FINISHED:
        return s, lambda m: protected(CCM, s._client_hs_secret, 0, ContentType.HANDSHAKE, m)
    c.receive_data(s.data_to_send())
    drain(c)
    s.receive_data(c.data_to_send())
    drain(s)
    assert s.state is ServerState.CONNECTED
    return s, lambda m: c._records.protect(ContentType.HANDSHAKE, m)


ALLOWED_SERVER = {
    ServerState.EXPECT_CLIENT_HELLO: {HandshakeType.CLIENT_HELLO},
    ServerState.EXPECT_SECOND_CLIENT_HELLO: {HandshakeType.CLIENT_HELLO},
    ServerState.EXPECT_FINISHED: {HandshakeType.FINISHED},
    ServerState.CONNECTED: {HandshakeType.KEY_UPDATE},
}


@pytest.mark.parametrize("state", list(ALLOWED_SERVER))
def test_server_unexpected_message_in_every_state(state):
    for msg_type in ALL_TYPES:
        if msg_type in ALLOWED_SERVER[state]:
            continue
        s, wrap = _server_in(state)
        expect_alert(s, UnexpectedMessage, wrap(handshake_message(msg_type, b"\x00" * 8)))


def test_unexpected_content_types():
    # application data before the handshake completes
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    expect_alert(s, UnexpectedMessage, record(ContentType.APPLICATION_DATA, b"x"))
    s, _ = _server_in(ServerState.EXPECT_FINISHED)
    c_hs = s._client_hs_secret
    expect_alert(s, UnexpectedMessage, protected(CCM, c_hs, 0, ContentType.APPLICATION_DATA, b"x"))
    # change_cipher_spec: before the ClientHello, with a bad value, after the handshake
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    expect_alert(s, UnexpectedMessage, record(ContentType.CHANGE_CIPHER_SPEC, b"\x01"))
    s, _ = _server_in(ServerState.EXPECT_FINISHED)
    expect_alert(s, UnexpectedMessage, record(ContentType.CHANGE_CIPHER_SPEC, b"\x02"))
    s, _ = _server_in(ServerState.CONNECTED)
    expect_alert(s, UnexpectedMessage, record(ContentType.CHANGE_CIPHER_SPEC, b"\x01"))
    # plaintext handshake and alert after the key change
    s, _ = _server_in(ServerState.EXPECT_FINISHED)
    expect_alert(
        s, UnexpectedMessage, record(ContentType.HANDSHAKE, handshake_message(20, bytes(32)))
    )
    s, _ = _server_in(ServerState.CONNECTED)
    expect_alert(s, UnexpectedMessage, record(ContentType.ALERT, b"\x01\x00"))
    # protected change_cipher_spec, content type 0, unknown content types
    s, _ = _server_in(ServerState.EXPECT_FINISHED)
    expect_alert(
        s, UnexpectedMessage, protected(CCM, c_hs, 0, ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    )
    s, _ = _server_in(ServerState.EXPECT_FINISHED)
    expect_alert(s, UnexpectedMessage, protected(CCM, s._client_hs_secret, 0, 0, b""))
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    expect_alert(s, UnexpectedMessage, record(24, b"\x01"))
    # an alert interleaved with a fragmented handshake message
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    wire = record(ContentType.HANDSHAKE, b"\x01\x00\x00") + record(ContentType.ALERT, b"\x01\x00")
    expect_alert(s, UnexpectedMessage, wire)
    # malformed alert record
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    expect_alert(s, DecodeError, record(ContentType.ALERT, b"\x02\x28\x00"))


def test_handshake_message_spanning_key_change():
    c, s = make_pair()
    c.start_handshake()
    hello = c.data_to_send()
    # the ClientHello plus the first bytes of a Finished in the same record
    payload = hello[5:] + b"\x14\x00"
    expect_alert(s, UnexpectedMessage, record(ContentType.HANDSHAKE, payload))


# -- records: sizes, truncation, MAC, garbage ----------------------------------------------------


def test_plaintext_record_overflow():
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    expect_alert(s, RecordOverflow, b"\x16\x03\x01\x40\x01")  # 2^14 + 1, from the header alone


def test_ciphertext_record_overflow():
    s, _ = _server_in(ServerState.EXPECT_FINISHED)
    expect_alert(s, RecordOverflow, b"\x17\x03\x03\x41\x01")  # 2^14 + 257


def test_inner_plaintext_overflow():
    s, _ = _server_in(ServerState.EXPECT_FINISHED)
    big = protected(CCM, s._client_hs_secret, 0, ContentType.HANDSHAKE, bytes(2**14 + 1))
    expect_alert(s, RecordOverflow, big)


def test_record_size_limit_enforced_on_receive():
    c, s = make_pair(
        ClientConfig(IDENTITY, PSK, record_size_limit=100),
        ServerConfig(psk_lookup=lookup_for({IDENTITY: [PskCandidate(PSK)]}), record_size_limit=200),
    )
    handshake(c, s)
    assert s._records.max_inner_plaintext_in == 200
    c._records.max_fragment_out = 500  # a client that ignores the server's limit
    c.send_application_data(bytes(300))
    expect_alert(s, RecordOverflow, c.data_to_send())


def test_truncated_record_at_eof():
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    s.receive_data(b"\x16\x03\x01\x00\x10\x01\x00")
    assert s.next_event() is NEED_DATA
    expect_alert(s, DecodeError, b"")


def _connected_pair_and_two_records():
    c, s = make_pair()
    handshake(c, s)
    c.send_application_data(b"one")
    c.send_application_data(b"two" * 100)
    return c, s, c.data_to_send()


def test_truncated_record_mid_stream_split_at_every_offset():
    """A record whose header announces more bytes than have arrived, the rest coming in a
    later receive_data: no event and no alert until it is whole, then the same events as
    the unsplit stream, at every cut (headers and bodies alike)."""
    expected = [ApplicationData(b"one"), ApplicationData(b"two" * 100)]
    _, s, wire = _connected_pair_and_two_records()
    s.receive_data(wire)
    assert drain(s) == expected
    first_record = 5 + int.from_bytes(wire[3:5], "big")
    for cut in range(1, len(wire)):
        _, s, again = _connected_pair_and_two_records()
        assert again == wire  # deterministic pair: the same bytes every time
        s.receive_data(wire[:cut])
        before = drain(s)
        assert before == expected[: 1 if cut >= first_record else 0], cut
        assert s.state is ServerState.CONNECTED and s.data_to_send() == b""
        s.receive_data(wire[cut:])
        assert before + drain(s) == expected, cut


def test_truncated_record_mid_stream_then_eof_is_decode_error():
    _, s, wire = _connected_pair_and_two_records()
    s.receive_data(wire[:-1])
    assert drain(s) == [ApplicationData(b"one")]
    expect_alert(s, DecodeError, b"")


def test_oversized_record_mid_stream_is_record_overflow():
    # protected: a good record, then a header claiming 2^14 + 257 with a few body bytes
    _, s, wire = _connected_pair_and_two_records()
    s.receive_data(wire[: 5 + int.from_bytes(wire[3:5], "big")])
    assert drain(s) == [ApplicationData(b"one")]
    expect_alert(s, RecordOverflow, b"\x17\x03\x03\x41\x01" + bytes(7))
    # exactly 2^14 + 256 is allowed: the server waits for the body
    _, s, wire = _connected_pair_and_two_records()
    s.receive_data(wire[: 5 + int.from_bytes(wire[3:5], "big")] + b"\x17\x03\x03\x41\x00")
    assert drain(s) == [ApplicationData(b"one")]
    assert s.state is ServerState.CONNECTED and s.data_to_send() == b""
    # plaintext: a ClientHello spanning records, its second record claiming 2^14 + 1
    c, s = make_pair()
    c.start_handshake()
    hello = c.data_to_send()[5:]
    s.receive_data(record(ContentType.HANDSHAKE, hello[:10]))
    assert s.next_event() is NEED_DATA
    expect_alert(s, RecordOverflow, b"\x16\x03\x03\x40\x01" + hello[10:])


def test_bad_record_mac():
    c, s = make_pair()
    handshake(c, s)
    c.send_application_data(b"hello")
    wire = bytearray(c.data_to_send())
    wire[-1] ^= 0x80
    expect_alert(s, BadRecordMac, bytes(wire))
    c, s = make_pair()
    handshake(c, s)
    expect_alert(s, BadRecordMac, b"\x17\x03\x03\x00\x05hello")  # shorter than a tag


def test_empty_plaintext_records():
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    expect_alert(s, UnexpectedMessage, b"\x16\x03\x01\x00\x00")


@pytest.mark.parametrize(
    "garbage, error",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 40000, UnexpectedMessage),
        (b"\x16\x03\x01\x40\x00" + b"\x01\xff\xff\xff" + bytes(2**14 - 4), DecodeError),
        (b"\x16\x03\x01\x40\x00" + b"\xfe" * 2**14, UnexpectedMessage),
        (b"\x80\x2e\x01\x03\x01" + bytes(4 * 2**20), UnexpectedMessage),  # SSLv2 hello
    ],
)
def test_megabytes_of_garbage_end_in_a_bounded_specific_error(garbage, error):
    s, _ = _server_in(ServerState.EXPECT_CLIENT_HELLO)
    s.receive_data(garbage)
    expect_alert(s, error)


def test_handshake_fragments_are_capped():
    s = ServerConnection(
        ServerConfig(psk_lookup=lookup_for({}), max_handshake_message=1024),
        rng=CountingRng(),
    )
    s.receive_data(record(ContentType.HANDSHAKE, b"\x01\x00\x04\x01"))  # claims 1025 bytes
    expect_alert(s, DecodeError)


def test_client_fails_closed_after_alert_and_sends_it_encrypted():
    c = _client_after_server_hello()
    expect_alert(c, UnexpectedMessage, protected(CCM, c._server_hs_secret, 0, 23, b"data"))
    # the alert went out under the client's handshake key: 5 + 2 + 1 + 16 bytes
    assert c.bytes_sent > 0


def test_server_hello_replaced_fields_via_dataclasses():
    # sanity for the helper itself: an unchanged rewrite still completes
    c = started()
    wire = rewrite_hello(c, PSK)
    s = server()
    s.receive_data(wire)
    drain(s)
    c.receive_data(s.data_to_send())
    assert isinstance(drain(c)[0], HandshakeComplete)
    assert dataclasses.is_dataclass(ServerHello)


def test_failing_psk_lookup_fails_closed_as_internal_error():
    def lookup(identity: bytes):
        raise ConnectionError("database down")

    c = started()
    s = ServerConnection(ServerConfig(psk_lookup=lookup), rng=CountingRng())
    error = expect_alert(s, InternalError, c.data_to_send())
    assert isinstance(error.__cause__, ConnectionError)


def test_no_key_material_in_logs(caplog):
    c = ClientConnection(ClientConfig(IDENTITY, b"\x55" * 16), rng=CountingRng(b"c"))
    c.start_handshake()
    s = server()
    with caplog.at_level("DEBUG", logger="ztp.tls"):
        expect_alert(s, DecryptError, c.data_to_send())
    text = caplog.text
    assert IDENTITY.hex() in text  # identities are logged as hex
    assert PSK.hex() not in text and (b"\x55" * 16).hex() not in text
