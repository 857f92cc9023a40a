"""Bounded work for a hostile peer: KeyUpdate / change_cipher_spec floods, plaintext alerts
once keys are set, equal binder work whatever the identity, server policy knobs, and loops
over ``next_event()`` that end when the peer closes."""

from __future__ import annotations

import hashlib

import pytest
from ztp.tls import (
    AlertReceived,
    ApplicationData,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    ConnectionClosed,
    DecryptError,
    HandshakeComplete,
    HandshakeFailure,
    KeyExchangeMode,
    PskCandidate,
    PskRequest,
    ServerConfig,
    ServerConnection,
    UnexpectedMessage,
)
from ztp.tls import _connection as engine
from ztp.tls._buffer import Buffer
from ztp.tls._key_schedule import (
    BinderSecretCache,
    binder_secrets,
    compute_binder,
    early_secret,
    hmac_sha256,
    next_traffic_secret,
)
from ztp.tls._messages import KeyUpdate, OfferedPsks, PskIdentity, push_key_update
from ztp.tls._record import ContentType

from .helpers import IDENTITY, PSK, CountingRng, drain, handshake, lookup_for, make_pair
from .test_negative import expect_alert
from .wire import record, rewrite_hello

SAFE2 = ClientConfig(IDENTITY, PSK)  # psk_ke, TLS_AES_128_CCM_SHA256, no key_share
HANDSHAKE_FAILURE = 40


def _send_key_update(conn, request_update: bool) -> None:
    """Queue a KeyUpdate from ``conn`` and move its write key on, as the engine would."""
    buf = Buffer()
    push_key_update(buf, KeyUpdate(request_update))
    conn._send(ContentType.HANDSHAKE, buf.data)
    conn._set_write_cipher(next_traffic_secret(conn._records.write_cipher.secret))


def _records(wire: bytes) -> list[bytes]:
    out = []
    while wire:
        n = 5 + int.from_bytes(wire[3:5], "big")
        out.append(wire[:n])
        wire = wire[n:]
    return out


# -- KeyUpdate and change_cipher_spec ---------------------------------------------------------


def test_key_update_requests_answered_once_before_next_data():
    client, server = make_pair()
    handshake(client, server)
    for _ in range(5):
        _send_key_update(client, True)
    server.receive_data(client.data_to_send())
    assert drain(server) == []
    assert server.data_to_send() == b""  # nothing until the server has data to send
    server.send_application_data(b"reply")
    server.send_application_data(b"more")
    wire = server.data_to_send()
    assert len(_records(wire)) == 3  # one KeyUpdate, then the two data records
    client.receive_data(wire)
    assert drain(client) == [ApplicationData(b"reply"), ApplicationData(b"more")]
    # both directions moved on: the client's data still reaches the server
    client.send_application_data(b"ok")
    server.receive_data(client.data_to_send())
    assert drain(server) == [ApplicationData(b"ok")]


def test_key_updates_beyond_the_bound_are_unexpected_message():
    client, server = make_pair()
    handshake(client, server)
    for _ in range(engine.MAX_KEY_UPDATES):
        _send_key_update(client, False)
    server.receive_data(client.data_to_send())
    assert drain(server) == []
    _send_key_update(client, True)
    expect_alert(server, UnexpectedMessage, client.data_to_send())


def test_second_change_cipher_spec_is_unexpected_message():
    client, server = make_pair(ClientConfig(IDENTITY, PSK, middlebox_compat=True))
    handshake(client, server)  # the compatibility mode's one change_cipher_spec is fine
    assert server.state.name == "CONNECTED"

    client, server = make_pair()
    client.start_handshake()
    ccs = record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    server.receive_data(client.data_to_send())
    drain(server)
    server.receive_data(ccs * engine.MAX_CHANGE_CIPHER_SPECS)
    assert drain(server) == []
    expect_alert(server, UnexpectedMessage, ccs)


# -- plaintext alerts once keys are set -------------------------------------------------------


def test_client_rejects_plaintext_alert_after_server_hello():
    client, server = make_pair()
    client.start_handshake()
    server.receive_data(client.data_to_send())
    drain(server)
    server_hello, *_ = _records(server.data_to_send())
    client.receive_data(server_hello)
    assert drain(client) == []  # handshake keys set, handshake not complete
    # RFC 8446 §5: the server encrypts everything after ServerHello; a clear alert is forged
    expect_alert(client, UnexpectedMessage, record(ContentType.ALERT, b"\x02\x28"))


def test_server_accepts_clear_alert_from_client_that_rejects_server_hello():
    client, server = make_pair()
    client.start_handshake()
    server.receive_data(client.data_to_send())
    drain(server)
    # a client that refuses our ServerHello has no handshake keys yet: its alert is in clear
    server.receive_data(record(ContentType.ALERT, b"\x02\x28"))
    assert drain(server) == [AlertReceived(HANDSHAKE_FAILURE), ConnectionClosed(clean=False)]


# -- binder work does not depend on the identity ----------------------------------------------


@pytest.fixture
def binder_calls(monkeypatch):
    """The keys whose binder the engine computes: every binder starts from its key's Early
    Secret and binder finished key, ``binder_secrets(psk)`` (cached per key), the one step
    that sees the key (the server keeps the Early Secret of the key that verified, so the
    count is the binders' alone)."""
    calls: list[bytes] = []

    def counting(psk):
        calls.append(psk)
        return binder_secrets(psk)

    monkeypatch.setattr(engine, "binder_secrets", counting)
    return calls


OTHER_KEY = bytes(range(16, 32))


def _server_binders(client, server, binder_calls) -> list:
    """Run the handshake; return the server's events. ``binder_calls`` keeps only the
    server's binder computations (the client computes one in start_handshake)."""
    client.start_handshake()
    binder_calls.clear()
    server.receive_data(client.data_to_send())
    events = drain(server)
    client.receive_data(server.data_to_send())
    drain(client)
    server.receive_data(client.data_to_send())
    return events + drain(server)


@pytest.mark.parametrize(
    ("keys", "client_psk", "completes"),
    [
        ([], PSK, False),  # unknown identity
        ([PskCandidate(PSK, "1")], PSK, True),
        ([PskCandidate(OTHER_KEY, "1")], PSK, False),  # wrong key
        ([PskCandidate(OTHER_KEY, "2"), PskCandidate(PSK, "1")], PSK, True),  # rotation
        ([PskCandidate(OTHER_KEY, "2"), PskCandidate(OTHER_KEY, "1")], PSK, False),
    ],
)
@pytest.mark.parametrize("max_candidates", [None, 3])
def test_same_binder_count_for_every_identity(
    binder_calls, keys, client_psk, completes, max_candidates
):
    kwargs = {} if max_candidates is None else {"max_psk_candidates": max_candidates}
    server_config = ServerConfig(psk_lookup=lookup_for({IDENTITY: keys}), **kwargs)
    client, server = make_pair(ClientConfig(IDENTITY, client_psk), server_config)
    if completes:
        server_events = _server_binders(client, server, binder_calls)
        assert any(isinstance(e, HandshakeComplete) for e in server_events)
    else:
        client.start_handshake()
        binder_calls.clear()
        expect_alert(server, DecryptError, client.data_to_send())
    assert len(binder_calls) == (max_candidates or 2)
    # the dummy keys never authenticate, and are not the real ones
    real = {k.key for k in keys}
    assert len([k for k in binder_calls if k not in real]) == (max_candidates or 2) - len(keys)


def test_same_binder_count_through_psk_request(binder_calls):
    for supplied in ({}, {IDENTITY: [PskCandidate(PSK, "1")]}):
        binder_calls.clear()
        client = ClientConnection(SAFE2, rng=CountingRng(b"client"))
        server = ServerConnection(ServerConfig(), rng=CountingRng(b"server"))
        client.start_handshake()
        binder_calls.clear()
        server.receive_data(client.data_to_send())
        assert isinstance(server.next_event(), PskRequest)
        server.supply_psks(supplied)
        try:
            drain(server)
        except DecryptError:
            pass
        assert len(binder_calls) == 2


def test_identity_with_more_keys_than_the_bound_still_works(binder_calls):
    keys = [PskCandidate(bytes([i]) * 16, str(i)) for i in (1, 2)] + [PskCandidate(PSK, "3")]
    client, server = make_pair(server_config=ServerConfig(psk_lookup=lookup_for({IDENTITY: keys})))
    server_events = _server_binders(client, server, binder_calls)
    assert [e.psk_tag for e in server_events if isinstance(e, HandshakeComplete)] == ["3"]
    assert len(binder_calls) == 3


@pytest.mark.parametrize(
    "keys",
    [
        [PskCandidate(OTHER_KEY, "1")],  # a known identity, a wrong key
        [PskCandidate(OTHER_KEY, "2"), PskCandidate(bytes(16), "1")],  # two wrong keys
    ],
)
def test_same_hashing_for_known_and_unknown_identities(monkeypatch, keys):
    """Binder work, counted in SHA-256 computations of the key schedule: a known identity
    (its keys cached from an earlier handshake) costs what an unknown one (dummy keys from
    the pool, cached the same way) does. Both fail at the binder, so all of it is binder
    work."""
    from ztp.tls import _key_schedule

    real_sha256 = _key_schedule._sha256
    count = [0]

    def counting(data=b""):
        count[0] += 1
        return real_sha256(data)

    def binder_hashing(table) -> int:
        for _ in range(2):  # the first run fills the cache; the second is counted
            client = ClientConnection(SAFE2)
            server = ServerConnection(ServerConfig(psk_lookup=lookup_for(table)))
            client.start_handshake()
            count[0] = 0
            monkeypatch.setattr(_key_schedule, "_sha256", counting)
            expect_alert(server, DecryptError, client.data_to_send())
            monkeypatch.setattr(_key_schedule, "_sha256", real_sha256)
        return count[0]

    unknown = binder_hashing({})
    assert unknown == binder_hashing({IDENTITY: keys}) > 0


def test_binder_secret_cache_is_bounded_keyed_by_key_and_hides_secrets():
    cache = BinderSecretCache(max_entries=3)
    truncated = bytes(range(40))
    truncated_hash = hashlib.sha256(truncated).digest()
    keys = [bytes([i]) * 16 for i in range(5)]
    for key in keys:
        early, binder_finished_key = cache.secrets(key)
        assert early == early_secret(key)
        # the binder from the cached finished key is RFC 8446 §4.2.11.2's
        assert hmac_sha256(binder_finished_key, truncated_hash) == compute_binder(key, truncated)
        assert len(cache) <= 3
    # a rotated key (new bytes) gets its own entry, never the old one's
    assert cache.secrets(keys[4]) != cache.secrets(keys[3])
    shown = repr(cache) + str(cache)
    assert "3/3" in shown
    for key in keys:
        early, binder_finished_key = cache.secrets(key)
        for secret in (key, early, binder_finished_key):
            assert secret.hex() not in shown and repr(secret) not in shown
    with pytest.raises(ValueError):
        BinderSecretCache(max_entries=0)


def test_max_psk_candidates_validated():
    with pytest.raises(ValueError):
        ServerConfig(max_psk_candidates=0)


# -- server policy knobs against a SAFE2 client -----------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        {"key_exchange_modes": (KeyExchangeMode.PSK_DHE_KE,)},
        {"cipher_suites": (CipherSuite.TLS_AES_128_GCM_SHA256,)},
    ],
    ids=["no_psk_ke", "no_ccm"],
)
def test_server_policy_refuses_safe2_client(policy):
    server_config = ServerConfig(psk_lookup=lookup_for({IDENTITY: [PskCandidate(PSK)]}), **policy)
    client, server = make_pair(SAFE2, server_config)
    client.start_handshake()
    expect_alert(server, HandshakeFailure, client.data_to_send())


def test_server_policy_failure_reaches_the_client():
    server_config = ServerConfig(
        psk_lookup=lookup_for({IDENTITY: [PskCandidate(PSK)]}),
        key_exchange_modes=(KeyExchangeMode.PSK_DHE_KE,),
    )
    client, server = make_pair(SAFE2, server_config)
    client.start_handshake()
    server.receive_data(client.data_to_send())
    with pytest.raises(HandshakeFailure):
        drain(server)
    client.receive_data(server.data_to_send())
    assert drain(client) == [AlertReceived(HANDSHAKE_FAILURE), ConnectionClosed(clean=False)]


def _hello_with_identities(client: ClientConnection, identities: list[bytes]) -> bytes:
    """The client's ClientHello rewritten to offer ``identities``, each binder made with PSK
    (only the selected identity's binder is ever checked)."""
    offered = OfferedPsks(
        tuple(PskIdentity(i) for i in identities), tuple(bytes(32) for _ in identities)
    )
    wire = rewrite_hello(client, PSK, resign=False, pre_shared_key=offered)
    message = wire[5:]
    truncated = message[: len(message) - offered.binders_length()]
    binder = compute_binder(PSK, truncated)
    binders = (b"\x20" + binder) * len(identities)
    message = truncated + len(binders).to_bytes(2, "big") + binders
    return record(ContentType.HANDSHAKE, message)


@pytest.mark.parametrize(("limit", "accepted"), [(2, False), (3, True)])
def test_max_psk_identities(limit, accepted):
    looked_up: list[bytes] = []

    def lookup(identity):
        looked_up.append(identity)
        return [PskCandidate(PSK, "1")] if identity == IDENTITY else []

    client = ClientConnection(SAFE2, rng=CountingRng(b"client"))
    client.start_handshake()
    wire = _hello_with_identities(client, [b"unknown-1", b"unknown-2", IDENTITY])
    server = ServerConnection(
        ServerConfig(psk_lookup=lookup, max_psk_identities=limit), rng=CountingRng(b"s")
    )
    if accepted:
        server.receive_data(wire)
        assert drain(server) == []
        assert server.data_to_send()  # ServerHello selecting identity 2
    else:
        expect_alert(server, DecryptError, wire)
    assert looked_up == [b"unknown-1", b"unknown-2", IDENTITY][:limit]

    # without psk_lookup the PskRequest carries only the first max_psk_identities
    server = ServerConnection(ServerConfig(max_psk_identities=limit), rng=CountingRng(b"s"))
    server.receive_data(wire)
    assert server.next_event() == PskRequest((b"unknown-1", b"unknown-2", IDENTITY)[:limit])


# -- loops over next_event() end when the peer closes -----------------------------------------


class _Guarded:
    """A connection whose next_event() fails the test instead of looping forever."""

    def __init__(self, conn, budget: int = 100) -> None:
        self._conn = conn
        self._budget = budget

    def next_event(self):
        self._budget -= 1
        assert self._budget > 0, "the loop did not stop after the peer closed"
        return self._conn.next_event()


@pytest.mark.parametrize("closing", [b"", record(ContentType.ALERT, b"\x02\x28")])
def test_bench_drain_stops_when_the_peer_closes(closing):
    from ztp.bench._tls import drain as bench_drain

    server = ServerConnection(ServerConfig(psk_lookup=lookup_for({})))
    server.receive_data(closing)
    with pytest.raises(ConnectionError):
        bench_drain(_Guarded(server))
    # and the bench loops still see ordinary events up to NEED_DATA
    client, server = make_pair()
    client.start_handshake()
    server.receive_data(client.data_to_send())
    assert bench_drain(_Guarded(server)) == []
    client.receive_data(server.data_to_send())
    assert isinstance(bench_drain(_Guarded(client))[0], HandshakeComplete)
