"""Interop on loopback with independent TLS 1.3 implementations (STYLE §5).

Our server against `openssl s_client`, `gnutls-cli` and tlslite-ng (binary identity with 0x00
and 0x98); our client against `openssl s_server -nocert -psk` and `gnutls-serv` with a `#hex`
binary PSK username. The `ext binder` derivation is proven here: RFC 8448 only covers
`res binder`.
"""

from __future__ import annotations

import socket
import subprocess

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
    KeyExchangeMode,
    ProtocolVersion,
    PskCandidate,
    ServerConfig,
    ServerConnection,
)

from .. import peers
from .helpers import BINARY_IDENTITY, PSK, lookup_for
from .netutil import TIMEOUT_S, OneShotServer, run_client

pytestmark = pytest.mark.interop

CCM = CipherSuite.TLS_AES_128_CCM_SHA256
GCM = CipherSuite.TLS_AES_128_GCM_SHA256
PSK_KE = KeyExchangeMode.PSK_KE
PSK_DHE_KE = KeyExchangeMode.PSK_DHE_KE
TEXT_IDENTITY = b"Client_identity"  # command-line tools take C strings
SUITE_NAMES = {CCM: "TLS_AES_128_CCM_SHA256", GCM: "TLS_AES_128_GCM_SHA256"}
GNUTLS_PSK_ONLY = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM:+AES-128-GCM"
GNUTLS_PSK_DHE = (
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+PSK:-GROUP-ALL:+GROUP-X25519:"
    "-CIPHER-ALL:+AES-128-CCM:+AES-128-GCM"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_with(identity: bytes, key: bytes = PSK, **kwargs) -> OneShotServer:
    config = ServerConfig(psk_lookup=lookup_for({identity: [PskCandidate(key, "1")]}), **kwargs)
    captured = {}

    def make():
        conn = ServerConnection(config)
        original = conn._on_client_hello

        def spy(message: bytes) -> None:  # keep the peer's ClientHello for assertions
            from ztp.tls._buffer import Buffer
            from ztp.tls._messages import pull_client_hello

            captured["hello"] = pull_client_hello(Buffer(message))
            original(message)

        conn._on_client_hello = spy
        return conn

    server = OneShotServer(make)
    server.captured = captured
    return server


# -- our server -------------------------------------------------------------------------------


def s_client(port: int, suite: CipherSuite, *extra: str, key: bytes = PSK, data=b"hello\n"):
    peers.need("openssl")
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-quiet"]
    args += ["-psk", key.hex(), "-psk_identity", TEXT_IDENTITY.decode()]
    args += ["-ciphersuites", SUITE_NAMES[suite], "-servername", "gw.example", *extra]
    return subprocess.run(args, input=data, capture_output=True, timeout=TIMEOUT_S)


@pytest.mark.parametrize("suite", [CCM, GCM])
def test_openssl_client_psk_dhe_ke(suite):
    server = server_with(TEXT_IDENTITY)
    proc = s_client(server.port, suite)
    outcome = server.join()
    assert outcome.error is None
    assert proc.stdout == b"pong:hello\n"
    done = outcome.events[0]
    assert done == HandshakeComplete(TEXT_IDENTITY, "1", PSK_DHE_KE, suite, "gw.example")


@pytest.mark.parametrize("suite", [CCM, GCM])
def test_openssl_client_psk_ke_where_server_prefers_it(suite):
    # OpenSSL always offers psk_dhe_ke with a key_share; psk_ke only if our server prefers it
    server = server_with(TEXT_IDENTITY, key_exchange_modes=(PSK_KE, PSK_DHE_KE))
    proc = s_client(server.port, suite, "-allow_no_dhe_kex")
    outcome = server.join()
    assert outcome.error is None
    assert proc.stdout == b"pong:hello\n"
    assert outcome.events[0].key_exchange_mode is PSK_KE
    assert outcome.events[-1] == ConnectionClosed(clean=True)


def test_openssl_client_key_share_in_another_group_gets_hello_retry_request():
    # OpenSSL sends a share for its first group only (P-256, which we do not implement) and
    # lists X25519 too; without -allow_no_dhe_kex it offers psk_dhe_ke alone: our server asks
    # for an x25519 share (HelloRetryRequest, RFC 8446 §4.1.4) instead of handshake_failure
    server = server_with(TEXT_IDENTITY)
    proc = s_client(server.port, CCM, "-groups", "P-256:X25519")
    outcome = server.join()
    assert outcome.error is None, outcome.error
    assert proc.stdout == b"pong:hello\n"
    assert [e.group for e in server.captured["hello"].key_share] == [0x0017]
    assert outcome.events[0] == HandshakeComplete(TEXT_IDENTITY, "1", PSK_DHE_KE, CCM, "gw.example")


def test_openssl_client_wrong_key_gets_decrypt_error():
    server = server_with(TEXT_IDENTITY)
    proc = s_client(server.port, CCM, key=b"\x01" * 16)
    outcome = server.join()
    assert isinstance(outcome.error, DecryptError)
    assert b"decrypt error" in proc.stderr
    assert proc.returncode != 0


def test_openssl_tls12_client_gets_protocol_version():
    peers.need("openssl")
    server = server_with(TEXT_IDENTITY)
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_2", "-quiet"]
    args += ["-psk", PSK.hex(), "-psk_identity", TEXT_IDENTITY.decode()]
    proc = subprocess.run(args, input=b"", capture_output=True, timeout=TIMEOUT_S)
    outcome = server.join()
    assert isinstance(outcome.error, ProtocolVersion)
    assert b"protocol version" in proc.stderr


def gnutls_cli(port: int, priority: str, username: bytes = TEXT_IDENTITY):
    peers.need("gnutls-cli")
    args = ["gnutls-cli", "-p", str(port), "127.0.0.1", "--priority", priority]
    args += ["--pskusername", username.decode(), "--pskkey", PSK.hex()]
    args += ["--sni-hostname", "gw.example"]
    return subprocess.run(args, input=b"hello\n", capture_output=True, timeout=TIMEOUT_S)


def test_gnutls_client_psk_only_psk_ke():
    server = server_with(TEXT_IDENTITY)
    proc = gnutls_cli(server.port, GNUTLS_PSK_ONLY)
    outcome = server.join()
    assert outcome.error is None, proc.stderr
    assert b"pong:hello\n" in proc.stdout
    assert outcome.events[0] == HandshakeComplete(TEXT_IDENTITY, "1", PSK_KE, CCM, "gw.example")
    hello = server.captured["hello"]
    assert hello.psk_key_exchange_modes == (PSK_KE,)


def test_gnutls_client_ecdhe_psk():
    server = server_with(TEXT_IDENTITY)
    proc = gnutls_cli(server.port, GNUTLS_PSK_DHE)
    outcome = server.join()
    assert outcome.error is None, proc.stderr
    assert b"pong:hello\n" in proc.stdout
    assert outcome.events[0].key_exchange_mode is PSK_DHE_KE


@pytest.mark.parametrize(
    "modes, suite, key_shares",
    [
        (["psk_ke"], "aes128ccm", False),  # the SAFE2 SIM profile, no key_share
        (["psk_ke"], "aes128ccm", True),
        (["psk_dhe_ke", "psk_ke"], "aes128gcm", True),
    ],
)
def test_tlslite_client_binary_identity(modes, suite, key_shares):
    from tlslite.api import HandshakeSettings, TLSConnection

    assert b"\x00" in BINARY_IDENTITY and b"\x98" in BINARY_IDENTITY
    server = server_with(BINARY_IDENTITY)
    settings = HandshakeSettings()
    settings.minVersion = settings.maxVersion = (3, 4)
    settings.pskConfigs = [(BINARY_IDENTITY, PSK, "sha256")]
    settings.psk_modes = modes
    settings.cipherNames = [suite]
    if not key_shares:
        settings.keyShares = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        conn = TLSConnection(sock)
        conn.handshakeClientCert(settings=settings, serverName="gw.example")
        conn.write(b"hello\n")
        assert conn.read() == b"pong:hello\n"
        conn.close()
    outcome = server.join()
    assert outcome.error is None
    done = outcome.events[0]
    assert done.identity == BINARY_IDENTITY
    expected_mode = PSK_DHE_KE if "psk_dhe_ke" in modes else PSK_KE
    assert done.key_exchange_mode is expected_mode
    hello = server.captured["hello"]
    assert bool(hello.key_share) is key_shares


# -- our client -------------------------------------------------------------------------------


class Peer:
    def __init__(self, args: list[str], ready: bytes, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        # wait for the peer's own "listening" line (printed after listen()), no sleeping
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if ready in line:
                break
        else:
            raise RuntimeError("peer exited before listening")

    def stop(self) -> bytes:
        self.proc.kill()
        out, _ = self.proc.communicate(timeout=TIMEOUT_S)
        return out


def s_server(*extra: str) -> Peer:
    peers.need("openssl")
    port = free_port()
    args = ["openssl", "s_server", "-accept", str(port), "-nocert", "-tls1_3", "-naccept", "1"]
    args += ["-psk", PSK.hex(), "-psk_identity", TEXT_IDENTITY.decode(), "-rev"]
    args += ["-ciphersuites", "TLS_AES_128_CCM_SHA256:TLS_AES_128_GCM_SHA256", *extra]
    return Peer(args, b"ACCEPT", port)


def count_tickets(conn: ClientConnection) -> list:
    seen = []
    original = conn._on_new_session_ticket

    def spy(message: bytes) -> None:
        seen.append(message)
        original(message)

    conn._on_new_session_ticket = spy
    return seen


@pytest.mark.parametrize("modes, compat", [((PSK_KE,), False), ((PSK_DHE_KE,), True)])
@pytest.mark.parametrize("suite", [CCM, GCM])
def test_openssl_server(modes, compat, suite):
    peer = s_server("-allow_no_dhe_kex", "-num_tickets", "2")
    try:
        config = ClientConfig(
            TEXT_IDENTITY,
            PSK,
            server_name="localhost",
            cipher_suites=(suite,),
            key_exchange_modes=modes,
            middlebox_compat=compat,
        )
        client = ClientConnection(config)
        tickets = count_tickets(client)
        # "CLOSE" makes s_server -rev end the connection
        outcome = run_client(client, peer.port, b"hello\nCLOSE\n")
    finally:
        peer.stop()
    assert outcome.error is None
    assert outcome.events[0] == HandshakeComplete(TEXT_IDENTITY, "", modes[0], suite, "localhost")
    assert outcome.received.startswith(b"olleh\n")
    assert isinstance(outcome.events[-1], ConnectionClosed)
    assert len(tickets) >= 1  # OpenSSL sends one on a PSK handshake: parsed and discarded


def test_openssl_server_max_fragment_length():
    peer = s_server("-allow_no_dhe_kex")
    try:
        config = ClientConfig(TEXT_IDENTITY, PSK, max_fragment_length=512)
        client = ClientConnection(config)
        line = bytes(range(ord("a"), ord("z") + 1)) * 60
        outcome = run_client(client, peer.port, line + b"\nCLOSE\n")
    finally:
        peer.stop()
    assert outcome.error is None
    assert outcome.received.startswith(line[::-1] + b"\n")
    assert client._records.max_fragment_out == 512


@pytest.fixture
def gnutls_server(tmp_path):
    peers.need("gnutls-serv")
    started: list[Peer] = []

    def start(priority: str, *extra: str) -> Peer:
        psk_file = tmp_path / "psk.txt"
        # GnuTLS PSK file: a username starting with '#' is hex (binary identities)
        psk_file.write_text(f"#{BINARY_IDENTITY.hex()}:{PSK.hex()}\n")
        port = free_port()
        args = ["gnutls-serv", "-p", str(port), "--pskpasswd", str(psk_file), "--echo"]
        args += ["--priority", priority, "--disable-client-cert", *extra]
        peer = Peer(args, b"listening", port)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


@pytest.mark.parametrize(
    "priority, modes, expected",
    [
        (GNUTLS_PSK_ONLY, (PSK_KE,), PSK_KE),
        (GNUTLS_PSK_DHE, (PSK_DHE_KE, PSK_KE), PSK_DHE_KE),
    ],
)
@pytest.mark.parametrize("suite", [CCM, GCM])
def test_gnutls_server_binary_identity(gnutls_server, priority, modes, expected, suite):
    peer = gnutls_server(priority)
    config = ClientConfig(
        BINARY_IDENTITY,
        PSK,
        server_name="localhost",
        cipher_suites=(suite,),
        key_exchange_modes=modes,
    )
    outcome = run_client(ClientConnection(config), peer.port, b"hello\n", close=True)
    assert outcome.error is None
    assert outcome.events[0] == HandshakeComplete(BINARY_IDENTITY, "", expected, suite, "localhost")
    assert outcome.received == b"hello\n"
    assert outcome.events[-1] == ConnectionClosed(clean=True)


@pytest.mark.parametrize("limit, negotiated", [(512, True), (256, False)])
def test_gnutls_server_record_size_limit(gnutls_server, limit, negotiated):
    # GnuTLS answers record_size_limit >= 512 and then sends records within our limit (our
    # client would fail with record_overflow otherwise); it ignores smaller offers, and then
    # the limit is not in force (RFC 8449: both ends must send the extension).
    peer = gnutls_server(GNUTLS_PSK_ONLY)
    client = ClientConnection(ClientConfig(BINARY_IDENTITY, PSK, record_size_limit=limit))
    payload = b"x" * 2000 + b"\n"
    outcome = run_client(client, peer.port, payload, close=True)
    assert outcome.error is None
    assert outcome.received == payload
    records = [e for e in outcome.events if isinstance(e, ApplicationData)]
    if negotiated:
        assert client._records.max_inner_plaintext_in == limit
        assert max(len(r.data) for r in records) <= limit - 1
    else:
        assert client._records.max_inner_plaintext_in == 2**14 + 1


def test_gnutls_server_wrong_key_alert(gnutls_server, tmp_path):
    peer = gnutls_server(GNUTLS_PSK_ONLY)
    client = ClientConnection(ClientConfig(BINARY_IDENTITY, b"\x02" * 16))
    outcome = run_client(client, peer.port, b"hello\n")
    assert outcome.events and isinstance(outcome.events[0], AlertReceived)
    assert not any(isinstance(e, ApplicationData) for e in outcome.events)
