"""ztp.gateway._session driven in memory against the engine's client, time injected."""

from ztp.gateway import NEED_DATA, PskKey, SessionLimits
from ztp.gateway._session import (
    Authenticated,
    Closed,
    Forward,
    GatewaySession,
    PskLookup,
    Refuse,
    SessionState,
)
from ztp.tls import NEED_DATA as TLS_NEED_DATA
from ztp.tls import (
    ClientConfig,
    ClientConnection,
    ConnectionClosed,
    ServerConfig,
    ServerConnection,
)

IDENTITY = bytes.fromhex("984405529081369836f5")
PSK = bytes(range(16))
GET = f"GET /v1/config/0011?iccid={IDENTITY.hex()} HTTP/1.1\r\n\r\n".encode()
LIMITS = SessionLimits(handshake_timeout_s=30, idle_timeout_s=20, request_timeout_s=30)


def new_pair(now=0.0):
    client = ClientConnection(ClientConfig(identity=IDENTITY, psk=PSK))
    session = GatewaySession(ServerConnection(ServerConfig(psk_lookup=None)), now, LIMITS)
    client.start_handshake()
    return client, session


def drain(session, now):
    events = []
    while (ev := session.next_event()) is not NEED_DATA:
        events.append(ev)
        if isinstance(ev, Closed):
            break
    return events


def handshake(client, session, now=1.0):
    session.receive_data(client.data_to_send(), now)
    (lookup,) = drain(session, now)
    assert lookup == PskLookup((IDENTITY,))
    assert session.state is SessionState.WAIT_PSKS and session.timer() is None
    session.supply_psks({IDENTITY: (PskKey("1", PSK),)})
    assert drain(session, now) == []
    assert session.state is SessionState.EXPECT_FINISHED
    client.receive_data(session.data_to_send())
    while (ev := client.next_event()) is not TLS_NEED_DATA:
        # after a close next_event() never returns NEED_DATA again: stop, don't spin
        assert not isinstance(ev, ConnectionClosed), ev
    session.receive_data(client.data_to_send(), now)
    (auth,) = drain(session, now)
    assert isinstance(auth, Authenticated) and auth.psk_tag == "1"
    assert session.state is SessionState.EXPECT_REQUEST


def test_request_forwarded_and_answered():
    client, session = new_pair()
    handshake(client, session)
    client.send_application_data(GET)
    session.receive_data(client.data_to_send(), 2.0)
    (fwd,) = drain(session, 2.0)
    assert isinstance(fwd, Forward) and fwd.request.path.endswith(IDENTITY.hex())
    session.respond(200, b"{}", "application/octet-stream")
    assert isinstance(drain(session, 2.0)[0], Closed)
    client.receive_data(session.data_to_send())
    data = b""
    while (ev := client.next_event()) is not TLS_NEED_DATA:
        data += getattr(ev, "data", b"")
        if type(ev).__name__ == "ConnectionClosed":
            break
    assert data.endswith(b"Connection: close\r\n\r\n{}")


def test_silent_client_deadline_without_sleeping():
    _, session = new_pair(now=100.0)
    assert session.timer() == 120.0  # idle (20 s) comes before the handshake deadline (30 s)
    session.handle_timer(119.9)
    assert drain(session, 119.9) == []
    session.handle_timer(120.0)
    assert drain(session, 120.0) == [Closed("timeout", "EXPECT_CLIENT_HELLO")]
    assert session.data_to_send() == b""


def test_slow_client_hits_request_deadline_with_408():
    client, session = new_pair()
    handshake(client, session, now=1.0)
    t = 1.0
    for byte in GET[:-1]:  # a byte every 10 s: never idle for 20 s
        t += 10.0
        if session.timer() <= t:
            break
        client.send_application_data(bytes([byte]))
        session.receive_data(client.data_to_send(), t)
        assert drain(session, t) == []
    assert session.timer() == 31.0  # handshake at 1.0 + request_timeout 30
    session.handle_timer(31.0)
    assert drain(session, 31.0) == [Closed("timeout", "EXPECT_REQUEST")]
    assert session.response_status == 408
    assert session.data_to_send()  # the 408 and close_notify


def test_rate_limited_request_is_read_then_refused():
    client, session = new_pair()
    handshake(client, session)
    session.refuse_request(429, "rate_limited", "quota")
    client.send_application_data(GET)
    session.receive_data(client.data_to_send(), 2.0)
    (ev,) = drain(session, 2.0)
    assert isinstance(ev, Refuse) and ev.refusal.status == 429


def test_unknown_identity_ends_with_alert_event():
    client, session = new_pair()
    session.receive_data(client.data_to_send(), 1.0)
    drain(session, 1.0)
    session.supply_psks({})
    (closed,) = drain(session, 1.0)
    assert closed == Closed("alert", "EXPECT_FINISHED", "decrypt_error")
    assert session.data_to_send() == bytes.fromhex("15030300020233")


def test_rate_limited_iccid_mismatch_is_refused_as_a_mismatch():
    # past the limit a mismatch still reaches the audit (issue 13 item 5)
    client, session = new_pair()
    handshake(client, session)
    session.refuse_request(429, "rate_limited", "quota")
    other = "98440552908136983604"
    client.send_application_data(f"GET /v1/config/0011?iccid={other} HTTP/1.1\r\n\r\n".encode())
    session.receive_data(client.data_to_send(), 2.0)
    (ev,) = drain(session, 2.0)
    assert isinstance(ev, Refuse)
    assert (ev.refusal.status, ev.refusal.kind) == (403, "iccid_mismatch")
    assert ev.refusal.detail["requested_iccid"] == other
    assert ev.refusal.detail["rate_limited"] is True
