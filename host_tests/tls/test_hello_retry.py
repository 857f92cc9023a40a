"""supported_groups/key_share pairing (RFC 8446 §9.2) and the HelloRetryRequest (§4.1.4,
§4.2.8, §4.2.11.2), issue 13 item 7. Client and server cores in memory.

The server asks for an x25519 share only when the client offers psk_dhe_ke, lists x25519 in
supported_groups, sends no x25519 share and offers no psk_ke the server would choose;
otherwise psk_ke (if both allow it) or handshake_failure, as before.
"""

from __future__ import annotations

import dataclasses

import pytest
from ztp.tls import (
    ApplicationData,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    ConnectionClosed,
    DecryptError,
    HandshakeComplete,
    HandshakeFailure,
    IllegalParameter,
    KeyExchangeMode,
    MissingExtension,
    PskCandidate,
    PskRequest,
    ServerConfig,
    ServerConnection,
    ServerState,
    UnexpectedMessage,
)
from ztp.tls._buffer import Buffer
from ztp.tls._key_schedule import compute_binder, message_hash
from ztp.tls._messages import (
    HRR_RANDOM,
    ClientHello,
    Group,
    KeyShareEntry,
    ServerHello,
    pull_client_hello,
    pull_server_hello,
    push_client_hello,
    push_server_hello,
)
from ztp.tls._record import ContentType

from .helpers import IDENTITY, PSK, CountingRng, drain, lookup_for
from .test_negative import expect_alert, server
from .wire import record, rewrite_hello

CCM = CipherSuite.TLS_AES_128_CCM_SHA256
GCM = CipherSuite.TLS_AES_128_GCM_SHA256
DHE = KeyExchangeMode.PSK_DHE_KE
KE = KeyExchangeMode.PSK_KE
SECP256R1 = 0x0017  # a group we do not implement
P256_SHARE = KeyShareEntry(SECP256R1, b"\x04" + bytes(range(64)))


def client(**kwargs) -> ClientConnection:
    kwargs.setdefault("key_exchange_modes", (DHE,))
    kwargs.setdefault("empty_key_share", True)
    return ClientConnection(ClientConfig(IDENTITY, PSK, **kwargs), rng=CountingRng(b"client"))


def records(wire: bytes) -> list[tuple[int, bytes]]:
    out = []
    while wire:
        length = int.from_bytes(wire[3:5], "big")
        out.append((wire[0], wire[5 : 5 + length]))
        wire = wire[5 + length :]
    return out


def hello_retry(wire: bytes) -> ServerHello:
    (ct, body), *_ = records(wire)
    assert ct == ContentType.HANDSHAKE
    hrr = pull_server_hello(Buffer(body))
    assert hrr.is_hello_retry_request
    return hrr


def finish(c: ClientConnection, s: ServerConnection, from_server: bytes) -> list:
    """Complete the handshake after the server's HRR; exchange one message each way."""
    c.receive_data(from_server)
    assert drain(c) == []  # ClientHello2 queued
    s.receive_data(c.data_to_send())
    events = drain(s)
    if events and isinstance(events[0], PskRequest):
        s.supply_psks({IDENTITY: [PskCandidate(PSK, "1")]})
        events = drain(s)
    c.receive_data(s.data_to_send())
    [done] = drain(c)
    assert isinstance(done, HandshakeComplete)
    s.receive_data(c.data_to_send())
    events += drain(s)
    c.send_application_data(b"ping")
    s.receive_data(c.data_to_send())
    events += drain(s)
    s.send_application_data(b"pong")
    c.receive_data(s.data_to_send())
    assert drain(c) == [ApplicationData(b"pong")]  # keys match crosswise
    return events


# -- RFC 8446 §9.2: supported_groups and key_share go together --------------------------------


@pytest.mark.parametrize("modes", [(DHE,), (KE,), (DHE, KE)])
def test_supported_groups_without_key_share_is_missing_extension(modes):
    # was: handshake_failure for psk_dhe_ke, and a completed psk_ke handshake otherwise
    c = client(key_exchange_modes=modes, empty_key_share=False)
    c.start_handshake()
    wire = rewrite_hello(c, PSK, supported_groups=(Group.X25519,), key_share=None)
    err = expect_alert(server(), MissingExtension, wire)
    assert "supported_groups without key_share" in str(err)


def test_key_share_without_supported_groups_is_missing_extension():
    c = client(empty_key_share=False)
    c.start_handshake()
    wire = rewrite_hello(c, PSK, supported_groups=None)
    expect_alert(server(), MissingExtension, wire)


# -- when the server sends a HelloRetryRequest -------------------------------------------------


@pytest.mark.parametrize("lookup", ["table", "psk_request"])
def test_empty_key_share_gets_hello_retry_request_then_psk_dhe_ke(lookup):
    c = client()
    config = ServerConfig(
        psk_lookup=lookup_for({IDENTITY: [PskCandidate(PSK, "1")]}) if lookup == "table" else None
    )
    s = ServerConnection(config, rng=CountingRng(b"server"))
    c.start_handshake()
    s.receive_data(c.data_to_send())
    assert drain(s) == []  # no PSK work before the second ClientHello
    assert s.state is ServerState.EXPECT_SECOND_CLIENT_HELLO
    out = s.data_to_send()
    hrr = hello_retry(out)
    assert hrr.selected_group == Group.X25519
    assert hrr.cipher_suite == CipherSuite.TLS_AES_128_CCM_SHA256
    assert hrr.pre_shared_key is None and hrr.key_share is None
    events = finish(c, s, out)
    done = events[0]
    assert isinstance(done, HandshakeComplete)
    assert done.key_exchange_mode is DHE and done.psk_tag == "1"
    assert events[1:] == [ApplicationData(b"ping")]


def test_key_share_only_in_an_unsupported_group_gets_hello_retry_request():
    # was: handshake_failure
    c = client()
    c.start_handshake()
    groups = (SECP256R1, Group.X25519)
    wire = rewrite_hello(c, PSK, supported_groups=groups, key_share=(P256_SHARE,))
    s = server()
    s.receive_data(wire)
    assert drain(s) == []
    out = s.data_to_send()
    assert hello_retry(out).selected_group == Group.X25519
    events = finish(c, s, out)
    assert events[0].key_exchange_mode is DHE


def test_middlebox_compat_one_change_cipher_spec_after_the_hrr():
    c = client(middlebox_compat=True)
    s = server()
    c.start_handshake()
    s.receive_data(c.data_to_send())
    drain(s)
    out = s.data_to_send()
    assert [ct for ct, _ in records(out)] == [ContentType.HANDSHAKE, ContentType.CHANGE_CIPHER_SPEC]
    assert hello_retry(out).legacy_session_id_echo == c._session_id
    c.receive_data(out)
    drain(c)
    s.receive_data(c.data_to_send())
    drain(s)
    second_flight = [ct for ct, _ in records(s.data_to_send())]
    assert ContentType.CHANGE_CIPHER_SPEC not in second_flight  # sent once, after the HRR


@pytest.mark.parametrize(
    "changes, error",
    [
        # psk_ke is offered and ours: chosen, no second round trip
        ({"psk_key_exchange_modes": (DHE, KE)}, None),
        # x25519 not among the client's groups: nothing to ask for
        ({"supported_groups": (SECP256R1,), "key_share": (P256_SHARE,)}, HandshakeFailure),
        ({"supported_groups": (SECP256R1,), "key_share": ()}, HandshakeFailure),
    ],
)
def test_no_hello_retry_request(changes, error):
    c = client()
    c.start_handshake()
    wire = rewrite_hello(c, PSK, **changes)
    s = server()
    if error is not None:
        expect_alert(s, error, wire)
        return
    s.receive_data(wire)
    assert drain(s) == []
    (_, body), *_ = records(s.data_to_send())
    hello = pull_server_hello(Buffer(body))
    assert not hello.is_hello_retry_request and hello.key_share is None  # psk_ke


def test_hello_retry_request_does_not_depend_on_the_identity():
    # no PSK work happens before the HRR: known and unknown identities get the same bytes
    out = []
    for identity in (IDENTITY, b"\x98" * 10):
        c = ClientConnection(
            ClientConfig(identity, PSK, key_exchange_modes=(DHE,), empty_key_share=True),
            rng=CountingRng(b"client"),
        )
        s = server()
        c.start_handshake()
        s.receive_data(c.data_to_send())
        drain(s)
        out.append(s.data_to_send())
    assert out[0] == out[1]


def test_unknown_identity_after_hrr_is_decrypt_error():
    c = ClientConnection(
        ClientConfig(b"\x98" * 10, PSK, key_exchange_modes=(DHE,), empty_key_share=True),
        rng=CountingRng(b"client"),
    )
    s = server()
    c.start_handshake()
    s.receive_data(c.data_to_send())
    drain(s)
    c.receive_data(s.data_to_send())
    drain(c)
    expect_alert(s, DecryptError, c.data_to_send())


# -- the second ClientHello on the server (RFC 8446 §4.1.2, §4.2.8, §4.2.11.2) ---------------


def server_waiting_for_second_hello() -> tuple[ServerConnection, bytes, bytes, ClientHello]:
    """A server that sent its HRR; returns (server, CH1, HRR, the client's CH2 object)."""
    c = client()
    s = server()
    c.start_handshake()
    ch1 = c.data_to_send()[5:]
    s.receive_data(record(ContentType.HANDSHAKE, ch1, 0x0301))
    drain(s)
    hrr = s.data_to_send()[5:]
    c.receive_data(record(ContentType.HANDSHAKE, hrr))
    drain(c)
    ch2 = pull_client_hello(Buffer(c.data_to_send()[5:]))
    return s, ch1, hrr, ch2


def signed(hello: ClientHello, prefix: bytes) -> bytes:
    buf = Buffer()
    push_client_hello(buf, hello)
    message = buf.data
    truncated = message[: len(message) - 35]
    return record(ContentType.HANDSHAKE, message[:-32] + compute_binder(PSK, prefix + truncated))


def test_second_hello_binder_covers_the_retry_transcript():
    s, ch1, hrr, ch2 = server_waiting_for_second_hello()
    # signed over Truncate(CH2) alone, as if there had been no HRR: does not verify
    expect_alert(s, DecryptError, signed(ch2, b""))
    s, ch1, hrr, ch2 = server_waiting_for_second_hello()
    s.receive_data(signed(ch2, message_hash(ch1) + hrr))
    assert drain(s) == []
    assert s.state is ServerState.EXPECT_FINISHED


@pytest.mark.parametrize(
    "changes",
    [
        {"key_share": ()},  # still no share
        {"key_share": (P256_SHARE,)},  # not the group asked for
        {"key_share": (KeyShareEntry(Group.X25519, b"\x09" * 32), P256_SHARE)},  # two
        {"early_data": True},
        {"cipher_suites": (CipherSuite.TLS_AES_128_GCM_SHA256,)},  # another suite
        {"server_name": "other.example"},  # "the same ClientHello without modification"
        {"random": b"\x01" * 32},
    ],
)
def test_second_hello_violations_are_illegal_parameter(changes):
    s, ch1, hrr, ch2 = server_waiting_for_second_hello()
    bad = dataclasses.replace(ch2, **changes)
    expect_alert(s, IllegalParameter, signed(bad, message_hash(ch1) + hrr))


def test_early_data_after_the_first_hello_is_skipped():
    c = client()
    c.start_handshake()
    wire = rewrite_hello(c, PSK, early_data=True)
    early = record(ContentType.APPLICATION_DATA, b"\x17" * 100)  # 0-RTT we cannot read
    s = server()
    s.receive_data(wire + early)
    assert drain(s) == []
    events = finish(c, s, s.data_to_send())
    assert events[0].key_exchange_mode is DHE


def test_early_data_skipping_is_bounded():
    c = client()
    c.start_handshake()
    wire = rewrite_hello(c, PSK, early_data=True)
    s = server(max_early_data_skip=150)
    early = record(ContentType.APPLICATION_DATA, b"\x17" * 100)
    expect_alert(s, UnexpectedMessage, wire + early + early)


# -- the HelloRetryRequest on the client -------------------------------------------------------


def hrr_record(c: ClientConnection, **changes) -> bytes:
    fields = dict(
        random=HRR_RANDOM,
        legacy_session_id_echo=c._session_id,
        cipher_suite=CipherSuite.TLS_AES_128_CCM_SHA256,
        supported_versions=0x0304,
        selected_group=Group.X25519,
    )
    fields.update(changes)
    buf = Buffer()
    push_server_hello(buf, ServerHello(**fields))
    return record(ContentType.HANDSHAKE, buf.data)


def test_client_answers_hrr_once():
    c = client()
    c.start_handshake()
    c.data_to_send()
    c.receive_data(hrr_record(c))
    assert drain(c) == []
    ch2 = pull_client_hello(Buffer(c.data_to_send()[5:]))
    assert [e.group for e in ch2.key_share or ()] == [Group.X25519]
    # "a second HelloRetryRequest in the same connection": unexpected_message
    expect_alert(c, UnexpectedMessage, hrr_record(c))


def test_client_echoes_the_cookie():
    c = client(empty_key_share=False)
    c.start_handshake()
    c.data_to_send()
    c.receive_data(hrr_record(c, selected_group=None, cookie=b"opaque state"))
    assert drain(c) == []
    ch2 = pull_client_hello(Buffer(c.data_to_send()[5:]))
    assert (44, b"\x00\x0copaque state") in ch2.other_extensions


@pytest.mark.parametrize(
    "changes",
    [
        {"selected_group": SECP256R1},  # not in our supported_groups
        {"cipher_suite": CipherSuite.TLS_AES_128_GCM_SHA256},  # not offered
        {"supported_versions": 0x0303},
        {"legacy_session_id_echo": b"\x01" * 32},
    ],
)
def test_client_rejects_bad_hrr(changes):
    c = client()
    c.start_handshake()
    c.data_to_send()
    expect_alert(c, IllegalParameter, hrr_record(c, **changes))


def test_client_rejects_hrr_for_the_group_it_already_sent():
    c = client(empty_key_share=False)
    c.start_handshake()
    c.data_to_send()
    expect_alert(c, IllegalParameter, hrr_record(c))


def test_server_hello_after_hrr_must_keep_the_suite():
    c = client(cipher_suites=(CCM, GCM))
    c.start_handshake()
    c.data_to_send()
    c.receive_data(hrr_record(c))
    drain(c)
    c.data_to_send()
    buf = Buffer()
    push_server_hello(buf, ServerHello(
        random=b"\x11" * 32, legacy_session_id_echo=c._session_id,
        cipher_suite=GCM, supported_versions=0x0304,
        key_share=KeyShareEntry(Group.X25519, b"\x09" * 32), pre_shared_key=0,
    ))  # fmt: skip
    expect_alert(c, IllegalParameter, record(ContentType.HANDSHAKE, buf.data))


def test_peer_closed_after_hrr():
    c = client()
    s = server()
    c.start_handshake()
    s.receive_data(c.data_to_send())
    drain(s)
    s.receive_data(b"")
    assert drain(s) == [ConnectionClosed(clean=False)]
