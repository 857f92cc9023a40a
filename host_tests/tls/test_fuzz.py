"""Property-based tests of every parser and of both cores (bounded: profile "tls-ci").

Any bytes either parse or raise an ``Alert`` (never another exception, never
``InternalError``); ``pull(push(x)) == x``; random splits of a valid stream give the same
events.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ztp.tls import (
    NEED_DATA,
    Alert,
    ClientConfig,
    ClientConnection,
    HandshakeComplete,
    InternalError,
    PskCandidate,
    ServerConfig,
    ServerConnection,
)
from ztp.tls._buffer import Buffer
from ztp.tls._messages import (
    ClientHello,
    EncryptedExtensions,
    KeyShareEntry,
    KeyUpdate,
    NewSessionTicket,
    OfferedPsks,
    PskIdentity,
    ServerHello,
    pull_client_hello,
    pull_encrypted_extensions,
    pull_finished,
    pull_key_update,
    pull_new_session_ticket,
    pull_server_hello,
    push_client_hello,
    push_encrypted_extensions,
    push_key_update,
    push_new_session_ticket,
    push_server_hello,
)
from ztp.tls._record import RecordLayer

from .helpers import IDENTITY, PSK, CountingRng, drain, lookup_for

settings.load_profile("tls-ci")

PULLERS = [
    pull_client_hello,
    pull_server_hello,
    pull_encrypted_extensions,
    pull_finished,
    pull_new_session_ticket,
    pull_key_update,
]


def parse_or_alert(puller, data: bytes) -> None:
    try:
        puller(Buffer(data))
    except Alert as exc:
        assert not isinstance(exc, InternalError)


@pytest.mark.parametrize("puller", PULLERS, ids=lambda p: p.__name__)
@given(data=st.binary(max_size=300))
def test_parsers_on_random_bytes(puller, data):
    parse_or_alert(puller, data)


@pytest.mark.parametrize("puller", PULLERS, ids=lambda p: p.__name__)
@given(body=st.binary(max_size=200), msg_type=st.sampled_from([1, 2, 4, 8, 20, 24]))
def test_parsers_on_well_framed_random_bodies(puller, body, msg_type):
    parse_or_alert(puller, bytes([msg_type]) + len(body).to_bytes(3, "big") + body)


small = st.binary(min_size=1, max_size=12)
u16 = st.integers(0, 0xFFFF)
host = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=20)
raw_types = u16.filter(lambda t: t not in {0, 1, 10, 28, 41, 42, 43, 45, 51})

client_hellos = st.builds(
    ClientHello,
    random=st.binary(min_size=32, max_size=32),
    legacy_session_id=st.binary(max_size=32),
    cipher_suites=st.lists(u16, min_size=1, max_size=4).map(tuple),
    legacy_version=u16,
    legacy_compression_methods=st.binary(min_size=1, max_size=3),
    server_name=st.none() | host,
    max_fragment_length=st.none() | st.integers(1, 4),
    supported_groups=st.none() | st.lists(u16, min_size=1, max_size=3).map(tuple),
    record_size_limit=st.none() | st.integers(64, 0xFFFF),
    early_data=st.booleans(),
    supported_versions=st.none() | st.lists(u16, min_size=1, max_size=3).map(tuple),
    psk_key_exchange_modes=st.none()
    | st.lists(st.integers(0, 255), min_size=1, max_size=3).map(tuple),
    key_share=st.none()
    | st.lists(
        st.builds(KeyShareEntry, group=u16, key_exchange=small),
        max_size=3,
        unique_by=lambda e: e.group,
    ).map(tuple),
    other_extensions=st.lists(
        st.tuples(raw_types, st.binary(max_size=8)), max_size=3, unique_by=lambda e: e[0]
    ).map(tuple),
    pre_shared_key=st.none()
    | st.integers(1, 3).flatmap(
        lambda n: st.builds(
            OfferedPsks,
            identities=st.lists(
                st.builds(
                    PskIdentity, identity=small, obfuscated_ticket_age=st.integers(0, 2**32 - 1)
                ),
                min_size=n,
                max_size=n,
            ).map(tuple),
            binders=st.lists(st.binary(min_size=32, max_size=48), min_size=n, max_size=n).map(
                tuple
            ),
        )
    ),
)


@given(client_hellos)
def test_client_hello_roundtrip(hello):
    buf = Buffer()
    push_client_hello(buf, hello)
    parsed = pull_client_hello(Buffer(buf.data))
    assert parsed == hello
    again = Buffer()
    push_client_hello(again, parsed)
    assert again.data == buf.data


@given(client_hellos)
def test_parsed_client_hello_is_the_one_init_builds(hello):
    """pull_client_hello builds its ClientHello without the dataclass __init__ (issue 14):
    the same object all the same (fields, equality, hash, repr, frozen), and the cursor ends
    after the message when bytes follow it."""
    buf = Buffer()
    push_client_hello(buf, hello)
    reader = Buffer(b"xy" + buf.data + b"\x16\x03")
    reader.pull_bytes(2)
    parsed = pull_client_hello(reader)
    assert reader.position == 2 + len(buf.data)
    built = ClientHello(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(parsed)})
    assert parsed == built and hash(parsed) == hash(built) and repr(parsed) == repr(built)
    assert vars(parsed) == vars(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.random = bytes(32)  # type: ignore[misc]
    # read back from the writer itself (a bytearray inside): the fields are bytes all the same
    from_writer = pull_client_hello(buf)
    assert from_writer == hello and type(from_writer.random) is bytes
    if from_writer.pre_shared_key is not None:
        assert all(type(p.identity) is bytes for p in from_writer.pre_shared_key.identities)


server_hellos = st.builds(
    ServerHello,
    random=st.binary(min_size=32, max_size=32),
    legacy_session_id_echo=st.binary(max_size=32),
    cipher_suite=u16,
    legacy_version=u16,
    legacy_compression_method=st.integers(0, 255),
    supported_versions=u16,  # extensions<6..2^16-1>: never empty
    key_share=st.none() | st.builds(KeyShareEntry, group=u16, key_exchange=small),
    pre_shared_key=st.none() | u16,
)


@given(server_hellos)
def test_server_hello_roundtrip(hello):
    buf = Buffer()
    push_server_hello(buf, hello)
    assert pull_server_hello(Buffer(buf.data)) == hello


@given(
    st.builds(
        EncryptedExtensions,
        server_name=st.booleans(),
        max_fragment_length=st.none() | st.integers(1, 4),
        supported_groups=st.none() | st.lists(u16, min_size=1, max_size=3).map(tuple),
        record_size_limit=st.none() | st.integers(64, 0xFFFF),
        early_data=st.booleans(),
    )
)
def test_encrypted_extensions_roundtrip(ee):
    buf = Buffer()
    push_encrypted_extensions(buf, ee)
    assert pull_encrypted_extensions(Buffer(buf.data)) == ee


@given(
    st.builds(
        NewSessionTicket,
        ticket_lifetime=st.integers(0, 2**32 - 1),
        ticket_age_add=st.integers(0, 2**32 - 1),
        ticket_nonce=st.binary(max_size=8),
        ticket=small,
        extensions=st.lists(
            st.tuples(u16, st.binary(max_size=4)), max_size=2, unique_by=lambda e: e[0]
        ).map(tuple),
    ),
    st.booleans(),
)
def test_new_session_ticket_and_key_update_roundtrip(nst, request_update):
    buf = Buffer()
    push_new_session_ticket(buf, nst)
    assert pull_new_session_ticket(Buffer(buf.data)) == nst
    buf = Buffer()
    push_key_update(buf, KeyUpdate(request_update))
    assert pull_key_update(Buffer(buf.data)) == KeyUpdate(request_update)


@given(st.binary(max_size=400), st.booleans())
def test_record_layer_random_bytes(data, eof):
    layer = RecordLayer()
    layer.feed(data)
    if eof:
        layer.feed(b"")
    try:
        while layer.next_record() is not None:
            pass
    except Alert as exc:
        assert not isinstance(exc, InternalError)


# -- whole cores ----------------------------------------------------------------------------


def _server() -> ServerConnection:
    return ServerConnection(
        ServerConfig(psk_lookup=lookup_for({IDENTITY: [PskCandidate(PSK, "1")]})),
        rng=CountingRng(b"s"),
    )


def _client_hello_wire() -> bytes:
    client = ClientConnection(
        ClientConfig(IDENTITY, PSK, server_name="gw", send_key_share=True, middlebox_compat=True),
        rng=CountingRng(b"c"),
    )
    client.start_handshake()
    return client.data_to_send()


CLIENT_HELLO_WIRE = _client_hello_wire()


def feed_or_alert(conn, data: bytes) -> list:
    conn.receive_data(data)
    try:
        return drain(conn)
    except Alert as exc:
        assert not isinstance(exc, InternalError), repr(exc.__cause__)
        assert conn.data_to_send()  # the alert was queued
        return ["alert"]


@given(st.binary(max_size=600))
def test_server_on_random_bytes(data):
    feed_or_alert(_server(), data)


@given(st.data())
def test_server_on_mutated_client_hello(data):
    wire = bytearray(CLIENT_HELLO_WIRE)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] = data.draw(st.integers(0, 255))
    feed_or_alert(_server(), bytes(wire))


def _server_flight() -> tuple[ClientConnection, bytes]:
    client = ClientConnection(
        ClientConfig(IDENTITY, PSK, server_name="gw", middlebox_compat=True), rng=CountingRng(b"c")
    )
    client.start_handshake()
    server = _server()
    server.receive_data(client.data_to_send())
    drain(server)
    return client, server.data_to_send()


@given(st.data())
def test_client_on_mutated_server_flight(data):
    client, flight = _server_flight()
    wire = bytearray(flight)
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] ^= data.draw(st.integers(1, 255))
    events = feed_or_alert(client, bytes(wire))
    # only bytes the protocol ignores may change without an alert: the legacy record
    # versions of unprotected records (RFC 8446 §5.1); anything else breaks the transcript,
    # a length (a longer record length leaves the client waiting), or an AEAD tag
    if events != ["alert"]:
        assert [type(e) for e in events] in ([HandshakeComplete], [])


@given(st.lists(st.integers(1, 60), max_size=30))
def test_random_splits_give_the_same_events(cuts):
    client, flight = _server_flight()
    reference_client, _ = _server_flight()
    reference_client.receive_data(flight)
    expected = drain(reference_client)
    events = []
    pos = 0
    for cut in cuts:
        if flight[pos : pos + cut]:
            client.receive_data(flight[pos : pos + cut])
            events += drain(client)
        pos += cut
    if flight[pos:]:  # b"" would mean EOF
        client.receive_data(flight[pos:])
        events += drain(client)
    assert events == expected
    assert client.data_to_send() == reference_client.data_to_send()
    assert client.next_event() is NEED_DATA
