"""The gateway against other TLS stacks: openssl s_client and tlslite-ng (binary identity)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from ztp.iccid import parse_ef_iccid

from .. import peers
from .harness import running_gateway, stub_service
from .test_gateway import CONFIG, DEVICE, PSK, fast_config, get, make_state

pytestmark = pytest.mark.interop

# An EF_ICCID that is also a C string, for command-line tools: ASCII "1234567890" is
# 31 32 .. 39 30, every nibble a decimal digit (ICCID 13233343536373839303).
ASCII_IDENTITY = b"1234567890"
# A binary EF_ICCID holding 0x00 and 0x98 (ICCID 894400...): only tlslite-ng or a harness.
BINARY_IDENTITY = bytes.fromhex("98440052908136983600")


def test_identities_are_ef_iccid():
    assert parse_ef_iccid(ASCII_IDENTITY) == "13233343536373839303"
    assert parse_ef_iccid(BINARY_IDENTITY) == "89440025091863896300"


@pytest.mark.parametrize("suite", ["TLS_AES_128_CCM_SHA256", "TLS_AES_128_GCM_SHA256"])
def test_openssl_s_client_fetches_config(suite):
    peers.need("openssl")
    async def main():
        state = make_state()
        state.set_keys(ASCII_IDENTITY, [("1", PSK)])
        state.configs[(ASCII_IDENTITY, DEVICE)] = CONFIG
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            proc = await asyncio.create_subprocess_exec(
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-tls1_3",
                "-psk_identity",
                ASCII_IDENTITY.decode(),
                "-psk",
                PSK.hex(),
                "-ciphersuites",
                suite,
                "-servername",
                "ztp.example",
                "-quiet",
                "-ign_eof",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(
                proc.communicate(get(identity_hex=ASCII_IDENTITY.hex())), 30
            )
            assert out.startswith(b"HTTP/1.1 200 OK\r\n"), (out, err)
            assert out.endswith(b"\r\n\r\n" + CONFIG)
            assert state.forwarded[-1]["identity"] == ASCII_IDENTITY.hex()
            # openssl always offers psk_dhe_ke with a key share; the gateway prefers it
            m = gw.metrics.registry.get_sample_value
            assert m("ztp_gateway_handshakes_total", {"mode": "psk_dhe_ke", "suite": suite}) == 1

            # the same client with a wrong key gets nothing
            proc = await asyncio.create_subprocess_exec(
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-tls1_3",
                "-psk_identity",
                ASCII_IDENTITY.decode(),
                "-psk",
                "00" * 16,
                "-ciphersuites",
                suite,
                "-quiet",
                "-ign_eof",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(get()), 30)
            assert out == b""
            assert b"decrypt error" in err
            assert len(state.forwarded) == 1

    asyncio.run(main())


def _tlslite_fetch(
    port: int, identity: bytes, psk: bytes, request: bytes, modes: list[str]
) -> bytes:
    from tlslite import HandshakeSettings, TLSConnection

    settings = HandshakeSettings()
    settings.minVersion = (3, 4)
    settings.maxVersion = (3, 4)
    settings.cipherNames = ["aes128ccm"]
    settings.pskConfigs = [(identity, psk, "sha256")]
    settings.psk_modes = modes
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    conn = TLSConnection(sock)
    try:
        conn.handshakeClientCert(settings=settings, serverName="ztp.example")
        conn.sendall(request)
        data = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        conn.close()


@pytest.mark.parametrize("modes", [["psk_ke"], ["psk_dhe_ke"]])
def test_tlslite_binary_identity_fetches_config(modes):
    async def main():
        state = make_state()
        state.set_keys(BINARY_IDENTITY, [("7", PSK)])
        state.configs[(BINARY_IDENTITY, DEVICE)] = CONFIG
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            data = await asyncio.to_thread(
                _tlslite_fetch,
                port,
                BINARY_IDENTITY,
                PSK,
                get(identity_hex=BINARY_IDENTITY.hex()),
                modes,
            )
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            assert data.endswith(CONFIG)
            assert state.forwarded[-1]["identity"] == BINARY_IDENTITY.hex()
            assert state.forwarded[-1]["tag"] == "7"
            m = gw.metrics.registry.get_sample_value
            labels = {"mode": modes[0], "suite": "TLS_AES_128_CCM_SHA256"}
            assert m("ztp_gateway_handshakes_total", labels) == 1
            # wrong key: tlslite-ng reports the gateway's decrypt_error alert
            from tlslite.errors import TLSRemoteAlert

            with pytest.raises(TLSRemoteAlert, match="decrypt_error"):
                await asyncio.to_thread(
                    _tlslite_fetch, port, BINARY_IDENTITY, bytes(16), get(), modes
                )

    asyncio.run(main())
