"""Client and server cores driven against each other in memory (STYLE §5)."""

from __future__ import annotations

import pytest
from ztp.tls import (
    NEED_DATA,
    AlertReceived,
    ApplicationData,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    ClientState,
    ConnectionClosed,
    HandshakeComplete,
    KeyExchangeMode,
    LocalProtocolError,
    PskCandidate,
    PskRequest,
    ServerConfig,
    ServerConnection,
    ServerState,
)

from .helpers import IDENTITY, PSK, CountingRng, drain, handshake, lookup_for, make_pair

CCM = CipherSuite.TLS_AES_128_CCM_SHA256
GCM = CipherSuite.TLS_AES_128_GCM_SHA256
PSK_KE = KeyExchangeMode.PSK_KE
PSK_DHE_KE = KeyExchangeMode.PSK_DHE_KE


def _keys_match(client: ClientConnection, server: ServerConnection) -> None:
    # crosswise: what one writes with, the other reads with
    assert client._records.write_cipher.secret == server._records.read_cipher.secret
    assert server._records.write_cipher.secret == client._records.read_cipher.secret


@pytest.mark.parametrize(
    "suite, modes, send_key_share, expected_mode",
    [
        (CCM, (PSK_KE,), False, PSK_KE),  # the SAFE2 SIM profile
        (CCM, (PSK_KE,), True, PSK_KE),  # psk_ke with a key_share, as common stacks do
        (GCM, (PSK_DHE_KE,), False, PSK_DHE_KE),
        (CCM, (PSK_KE, PSK_DHE_KE), False, PSK_DHE_KE),  # server prefers psk_dhe_ke
    ],
)
def test_handshake_and_data(suite, modes, send_key_share, expected_mode):
    client, server = make_pair(
        ClientConfig(
            IDENTITY,
            PSK,
            server_name="gw.example",
            cipher_suites=(suite,),
            key_exchange_modes=modes,
            send_key_share=send_key_share,
        )
    )
    client.start_handshake()
    assert client.state is ClientState.EXPECT_SERVER_HELLO
    server.receive_data(client.data_to_send())
    assert server.next_event() is NEED_DATA
    assert server.state is ServerState.EXPECT_FINISHED
    client.receive_data(server.data_to_send())
    (done,) = drain(client)
    assert client.state is ClientState.CONNECTED
    assert done == HandshakeComplete(IDENTITY, "", expected_mode, suite, "gw.example")
    server.receive_data(client.data_to_send())
    (server_done,) = drain(server)
    assert server.state is ServerState.CONNECTED
    assert server_done == HandshakeComplete(IDENTITY, "1", expected_mode, suite, "gw.example")
    _keys_match(client, server)

    client.send_application_data(b"GET /v1/config/00 HTTP/1.1\r\n\r\n")
    server.receive_data(client.data_to_send())
    assert drain(server) == [ApplicationData(b"GET /v1/config/00 HTTP/1.1\r\n\r\n")]
    server.send_application_data(b"HTTP/1.1 200 OK\r\n\r\n")
    server.close()
    client.receive_data(server.data_to_send())
    assert drain(client) == [ApplicationData(b"HTTP/1.1 200 OK\r\n\r\n"), ConnectionClosed(True)]
    assert client.state is ClientState.CLOSED
    assert client.bytes_sent == server.bytes_received
    assert server.bytes_sent == client.bytes_received


def test_psk_ke_without_key_share_sends_no_groups():
    client, server = make_pair()
    client.start_handshake()
    hello = client.data_to_send()
    from ztp.tls._buffer import Buffer
    from ztp.tls._messages import pull_client_hello

    parsed = pull_client_hello(Buffer(hello[5:]))
    assert parsed.key_share is None and parsed.supported_groups is None
    assert parsed.psk_key_exchange_modes == (0,)
    server.receive_data(hello)
    drain(server)
    assert server._complete.key_exchange_mode is PSK_KE


def test_server_suite_preference_and_client_order():
    client, server = make_pair(
        ClientConfig(IDENTITY, PSK, cipher_suites=(GCM, CCM)),
        ServerConfig(psk_lookup=lookup_for({IDENTITY: [PskCandidate(PSK)]})),
    )
    client_events, server_events = handshake(client, server)
    assert client_events[0].cipher_suite is CCM  # server preference wins
    assert server_events[0].server_name is None


def test_key_rotation_binder_picks_the_candidate():
    old, new = PskCandidate(b"\x01" * 16, "1"), PskCandidate(PSK, "2")
    client, server = make_pair(
        server_config=ServerConfig(psk_lookup=lookup_for({IDENTITY: [old, new]}))
    )
    _, server_events = handshake(client, server)
    assert server_events[0].psk_tag == "2"


def test_psk_request_flow():
    client, server = make_pair(server_config=ServerConfig())
    client.start_handshake()
    server.receive_data(client.data_to_send())
    assert server.next_event() == PskRequest((IDENTITY,))
    assert server.state is ServerState.WAIT_PSKS
    assert server.next_event() is NEED_DATA
    assert server.data_to_send() == b""
    server.supply_psks({IDENTITY: [PskCandidate(PSK, "7")]})
    with pytest.raises(LocalProtocolError):
        server.supply_psks({})
    assert server.next_event() is NEED_DATA
    client.receive_data(server.data_to_send())
    assert isinstance(drain(client)[0], HandshakeComplete)
    server.receive_data(client.data_to_send())
    assert drain(server)[0].psk_tag == "7"


def test_middlebox_compat_session_id_echoed_and_ccs_tolerated():
    client, server = make_pair(ClientConfig(IDENTITY, PSK, middlebox_compat=True))
    client.start_handshake()
    server.receive_data(client.data_to_send())
    drain(server)
    flight = server.data_to_send()
    # ServerHello record, then the dummy change_cipher_spec record
    sh_len = int.from_bytes(flight[3:5], "big")
    assert flight[5 + sh_len : 5 + sh_len + 6] == b"\x14\x03\x03\x00\x01\x01"
    client.receive_data(flight)
    assert isinstance(drain(client)[0], HandshakeComplete)
    second = client.data_to_send()
    assert second.startswith(b"\x14\x03\x03\x00\x01\x01")
    server.receive_data(second)
    assert isinstance(drain(server)[0], HandshakeComplete)


@pytest.mark.parametrize("split", ["whole", "bytewise", "trailing"])
def test_input_split_anywhere(split):
    client, server = make_pair(ClientConfig(IDENTITY, PSK, middlebox_compat=True))
    client.start_handshake()
    hello = client.data_to_send()
    if split == "bytewise":
        for i in range(len(hello) - 1):
            server.receive_data(hello[i : i + 1])
            assert server.next_event() is NEED_DATA
            assert server.state is ServerState.EXPECT_CLIENT_HELLO
        server.receive_data(hello[-1:])
    else:
        server.receive_data(hello)
    drain(server)
    flight = server.data_to_send()
    if split == "bytewise":
        events = []
        for i in range(len(flight)):
            client.receive_data(flight[i : i + 1])
            events += drain(client)
    else:
        client.receive_data(flight)
        events = drain(client)
    assert [type(e) for e in events] == [HandshakeComplete]
    second = client.data_to_send()
    client.send_application_data(b"one")
    client.send_application_data(b"two")
    server.receive_data(second + client.data_to_send())
    assert drain(server)[1:] == [ApplicationData(b"one"), ApplicationData(b"two")]


def test_record_size_limit_fragments_application_data():
    client, server = make_pair(ClientConfig(IDENTITY, PSK, record_size_limit=256))
    handshake(client, server)
    assert server._records.max_fragment_out == 255
    server.send_application_data(bytes(1000))
    wire = server.data_to_send()
    assert len(wire) == 4 * 5 + 1000 + 4 * 17  # 255+255+255+235, each +type+tag
    client.receive_data(wire)
    assert b"".join(e.data for e in drain(client)) == bytes(1000)


@pytest.mark.parametrize("size", [512, 1024, 2048, 4096])
def test_max_fragment_length(size):
    client, server = make_pair(ClientConfig(IDENTITY, PSK, max_fragment_length=size))
    handshake(client, server)
    assert server._records.max_fragment_out == size
    assert client._records.max_fragment_out == size
    client.send_application_data(bytes(size + 1))
    assert client.data_to_send().count(b"\x17\x03\x03") >= 2
    server.send_application_data(bytes(3 * size))
    client.receive_data(server.data_to_send())
    assert sum(len(e.data) for e in drain(client)) == 3 * size


def test_record_size_limit_wins_over_max_fragment_length():
    client, server = make_pair(
        ClientConfig(IDENTITY, PSK, max_fragment_length=512, record_size_limit=1000)
    )
    handshake(client, server)
    assert server._records.max_fragment_out == 999


def test_key_update_both_directions():
    from ztp.tls._buffer import Buffer
    from ztp.tls._messages import KeyUpdate, push_key_update
    from ztp.tls._record import ContentType

    client, server = make_pair()
    handshake(client, server)
    buf = Buffer()
    push_key_update(buf, KeyUpdate(True))
    client._send(ContentType.HANDSHAKE, buf.data)
    from ztp.tls._key_schedule import next_traffic_secret

    client._set_write_cipher(next_traffic_secret(client._records.write_cipher.secret))
    client.send_application_data(b"after")
    server.receive_data(client.data_to_send())
    assert drain(server) == [ApplicationData(b"after")]
    # RFC 8446 §4.6.3: the answer goes out before the server's next application data record
    assert server.data_to_send() == b""
    server.send_application_data(b"back")
    client.receive_data(server.data_to_send())
    assert drain(client) == [ApplicationData(b"back")]
    _keys_match(client, server)


def test_client_discards_new_session_ticket():
    from ztp.tls._buffer import Buffer
    from ztp.tls._messages import NewSessionTicket, push_new_session_ticket
    from ztp.tls._record import ContentType

    client, server = make_pair()
    handshake(client, server)
    buf = Buffer()
    push_new_session_ticket(
        buf, NewSessionTicket(7200, 1, b"\x00", b"ticket", ((42, b"\0\0\0\0"),))
    )
    server._send(ContentType.HANDSHAKE, buf.data)
    server.send_application_data(b"x")
    client.receive_data(server.data_to_send())
    assert drain(client) == [ApplicationData(b"x")]


def test_peer_alert_and_eof():
    client, server = make_pair()
    handshake(client, server)
    from ztp.tls._alerts import AlertDescription, AlertLevel

    server._send_alert(AlertLevel.FATAL, AlertDescription.INTERNAL_ERROR)
    client.receive_data(server.data_to_send())
    assert drain(client) == [AlertReceived(80), ConnectionClosed(clean=False)]
    assert client.state is ClientState.CLOSED
    with pytest.raises(LocalProtocolError):
        client.send_application_data(b"x")

    client, server = make_pair()
    handshake(client, server)
    server.receive_data(b"")
    assert drain(server) == [ConnectionClosed(clean=False)]
    assert server.next_event() == ConnectionClosed(clean=False)


def test_local_misuse():
    client, server = make_pair()
    with pytest.raises(LocalProtocolError):
        client.send_application_data(b"early")
    client.start_handshake()
    with pytest.raises(LocalProtocolError):
        client.start_handshake()
    with pytest.raises(LocalProtocolError):
        server.supply_psks({})
    client.close()
    client.close()
    assert client.data_to_send().endswith(b"\x15\x03\x03\x00\x02\x01\x00")


def test_config_validation_and_no_secret_in_repr():
    with pytest.raises(ValueError):
        ClientConfig(b"", PSK)
    with pytest.raises(ValueError):
        ClientConfig(IDENTITY, PSK, cipher_suites=())
    with pytest.raises(ValueError):
        ClientConfig(IDENTITY, PSK, record_size_limit=63)
    with pytest.raises(ValueError):
        ClientConfig(IDENTITY, PSK, max_fragment_length=100)
    with pytest.raises(ValueError):
        ServerConfig(cipher_suites=(0x1302,))
    assert PSK.hex() not in repr(ClientConfig(IDENTITY, PSK))
    assert PSK.hex() not in repr(PskCandidate(PSK)) and "16 bytes" in repr(PskCandidate(PSK))


def test_deterministic_with_injected_rng():
    def run():
        client = ClientConnection(ClientConfig(IDENTITY, PSK), rng=CountingRng(b"c"))
        client.start_handshake()
        return client.data_to_send()

    assert run() == run()
