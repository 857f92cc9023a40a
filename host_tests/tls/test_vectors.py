"""RFC 8448 vectors for the key schedule steps, the binder and the record protection.

RFC 8448 uses a resumption PSK with psk_dhe_ke and AES-128-GCM, so these cover the
derivations (with ``res binder``); ``ext binder``, psk_ke and CCM are proven by interop.
"""

from __future__ import annotations

import hashlib

from ztp.tls import CipherSuite
from ztp.tls._buffer import Buffer
from ztp.tls._key_schedule import (
    KeySchedule,
    compute_binder,
    derive_secret,
    empty_hash,
    finished_key,
    hkdf_expand_label,
    hkdf_extract,
    traffic_keys,
)
from ztp.tls._messages import PskIdentity, pull_client_hello, push_client_hello
from ztp.tls._record import ContentType, Record, RecordCipher, RecordLayer


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# RFC 8448 §3 (Simple 1-RTT Handshake)
S3_EARLY_SECRET = h("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
S3_DERIVED = h("6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba")
S3_SHARED_SECRET = h("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d")
S3_HANDSHAKE_SECRET = h("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
S3_HASH_CH_SH = h("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
S3_C_HS_TRAFFIC = h("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
S3_S_HS_TRAFFIC = h("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
S3_MASTER_SECRET = h("18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")
S3_HASH_CH_SERVER_FINISHED = h("9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13")
S3_C_AP_TRAFFIC = h("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
S3_S_AP_TRAFFIC = h("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
S3_HASH_CH_CLIENT_FINISHED = h("209145a96ee8e2a122ff810047cc952684658d6049e86429426db87c54ad143d")
S3_RES_MASTER = h("7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c")
# §3 {client} send handshake record: Finished under c hs traffic, sequence 0
S3_CLIENT_FINISHED = h("14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61")
S3_CLIENT_FINISHED_RECORD = h(
    "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384"
    "bd1caeacab6867d726c40546"
)
# §3 {client} send application_data record: 50 bytes 00..31 under c ap traffic, sequence 0
S3_CLIENT_APP_RECORD = h(
    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a2044"
    "1e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4"
)

# RFC 8448 §4 (Resumed 0-RTT Handshake)
S4_PSK = h("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")
S4_EARLY_SECRET = h("9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c")
S4_BINDER_KEY = h("69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256")
S4_BINDER_FINISHED_KEY = h("5588673e72cb59c87d220caffe94f2dea9a3b1609f7d50e90a48227db9ed7eaa")
S4_TRUNCATED_HASH = h("63224b2e4573f2d3454ca84b9d009a04f6be9e05711a8396473aefa01e924a14")
S4_BINDER = h("3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d")
S4_CLIENT_HELLO_RECORD = h(
    """
16 03 01 02 00 01 00 01 fc 03 03 1b
c3 ce b6 bb e3 9c ff 93 83 55 b5 a5 0a db 6d b2 1b 7a 6a f6 49
d7 b4 bc 41 9d 78 76 48 7d 95 00 00 06 13 01 13 03 13 02 01 00
01 cd 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01 00 01
00 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02
01 03 01 04 00 33 00 26 00 24 00 1d 00 20 e4 ff b6 8a c0 5f 8d
96 c9 9d a2 66 98 34 6c 6b e1 64 82 ba dd da fe 05 1a 66 b4 f1
8d 66 8f 0b 00 2a 00 00 00 2b 00 03 02 03 04 00 0d 00 20 00 1e
04 03 05 03 06 03 02 03 08 04 08 05 08 06 04 01 05 01 06 01 02
01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00 1c 00 02 40 01
00 15 00 57 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00 29 00 dd 00 b8 00 b2 2c 03 5d 82 93 59
ee 5f f7 af 4e c9 00 00 00 00 26 2a 64 94 dc 48 6d 2c 8a 34 cb
33 fa 90 bf 1b 00 70 ad 3c 49 88 83 c9 36 7c 09 a2 be 78 5a bc
55 cd 22 60 97 a3 a9 82 11 72 83 f8 2a 03 a1 43 ef d3 ff 5d d3
6d 64 e8 61 be 7f d6 1d 28 27 db 27 9c ce 14 50 77 d4 54 a3 66
4d 4e 6d a4 d2 9e e0 37 25 a6 a4 da fc d0 fc 67 d2 ae a7 05 29
51 3e 3d a2 67 7f a5 90 6c 5b 3f 7d 8f 92 f2 28 bd a4 0d da 72
14 70 f9 fb f2 97 b5 ae a6 17 64 6f ac 5c 03 27 2e 97 07 27 c6
21 a7 91 41 ef 5f 7d e6 50 5e 5b fb c3 88 e9 33 43 69 40 93 93
4a e4 d3 57 fa d6 aa cb 00 21 20 3a dd 4f b2 d8 fd f8 22 a0 ca
3c f7 67 8e f5 e8 8d ae 99 01 41 c5 92 4d 57 bb 6f a3 1b 9e 5f
9d
"""
)
# §4 {client} derive write traffic keys for early application data, and the 0-RTT record
S4_C_E_TRAFFIC = h("3fbbe6a60deb66c30a32795aba0eff7eaa10105586e7be5c09678d63b6caab62")
S4_EARLY_KEY = h("920205a5b7bf2115e6fc5c2942834f54")
S4_EARLY_IV = h("6d475f0993c8e564610db2b9")
S4_EARLY_RECORD = h("1703030017ab1df420e75c457a7cc5d2844f76d5aee4b4edbf049be0")


class FixedTranscript(KeySchedule):
    """The RFC prints transcript hashes; feed them in instead of the messages."""

    transcript_value = b""

    def transcript_hash(self) -> bytes:
        return self.transcript_value


def test_rfc8448_s3_key_schedule_steps():
    ks = FixedTranscript()
    assert ks.early_secret(bytes(32)) == S3_EARLY_SECRET  # no PSK: IKM of zeros
    assert derive_secret(S3_EARLY_SECRET, b"derived", empty_hash()) == S3_DERIVED
    assert ks.handshake_secret(S3_SHARED_SECRET) == S3_HANDSHAKE_SECRET
    ks.transcript_value = S3_HASH_CH_SH
    assert ks.client_handshake_traffic_secret() == S3_C_HS_TRAFFIC
    assert ks.server_handshake_traffic_secret() == S3_S_HS_TRAFFIC
    assert ks.master_secret() == S3_MASTER_SECRET
    ks.transcript_value = S3_HASH_CH_SERVER_FINISHED
    assert ks.client_application_traffic_secret() == S3_C_AP_TRAFFIC
    assert ks.server_application_traffic_secret() == S3_S_AP_TRAFFIC
    # the client's Finished covers CH..server Finished, keyed by c hs traffic
    assert ks.finished_verify_data(S3_C_HS_TRAFFIC) == S3_CLIENT_FINISHED[4:]
    ks.transcript_value = S3_HASH_CH_CLIENT_FINISHED
    assert ks.resumption_master_secret() == S3_RES_MASTER
    # §3 {server} generate resumption secret "tls13 resumption" with ticket_nonce 00 00
    assert hkdf_expand_label(S3_RES_MASTER, b"resumption", b"\x00\x00", 32) == S4_PSK


def test_rfc8448_s3_record_protection():
    # write: the client's first application data record
    layer = RecordLayer()
    layer.write_cipher = RecordCipher(CipherSuite.TLS_AES_128_GCM_SHA256, S3_C_AP_TRAFFIC)
    assert layer.protect(ContentType.APPLICATION_DATA, bytes(range(50))) == S3_CLIENT_APP_RECORD
    # read: the client's Finished as the server sees it
    layer = RecordLayer()
    layer.read_cipher = RecordCipher(CipherSuite.TLS_AES_128_GCM_SHA256, S3_C_HS_TRAFFIC)
    layer.feed(S3_CLIENT_FINISHED_RECORD)
    assert layer.next_record() == Record(ContentType.HANDSHAKE, S3_CLIENT_FINISHED, True)
    assert layer.next_record() is None


def test_rfc8448_s4_early_secret_and_binder():
    assert hkdf_extract(bytes(32), S4_PSK) == S4_EARLY_SECRET
    ks = KeySchedule()
    assert ks.early_secret(S4_PSK) == S4_EARLY_SECRET
    # resumption label here; our external PSKs use b"ext binder" (proven by interop)
    assert derive_secret(S4_EARLY_SECRET, b"res binder", empty_hash()) == S4_BINDER_KEY
    assert finished_key(S4_BINDER_KEY) == S4_BINDER_FINISHED_KEY

    message = S4_CLIENT_HELLO_RECORD[5:]
    hello = pull_client_hello(Buffer(message))
    assert hello.pre_shared_key is not None
    truncated = message[: len(message) - hello.pre_shared_key.binders_length()]
    assert hashlib.sha256(truncated).digest() == S4_TRUNCATED_HASH
    assert compute_binder(S4_PSK, truncated, b"res binder") == S4_BINDER
    assert hello.pre_shared_key.binders == (S4_BINDER,)
    assert compute_binder(S4_PSK, truncated) != S4_BINDER  # ext binder differs


def test_rfc8448_s4_client_hello_parses_and_rebuilds_byte_for_byte():
    message = S4_CLIENT_HELLO_RECORD[5:]
    hello = pull_client_hello(Buffer(message))
    assert hello.server_name == "server"
    assert hello.cipher_suites == (0x1301, 0x1303, 0x1302)
    assert hello.early_data is True
    assert hello.supported_versions == (0x0304,)
    assert hello.psk_key_exchange_modes == (1,)
    assert hello.record_size_limit == 0x4001
    assert [e.group for e in hello.key_share] == [0x001D]
    (identity,) = hello.pre_shared_key.identities
    assert len(identity.identity) == 0xB2 and identity.obfuscated_ticket_age == 0xFAD6AACB
    assert isinstance(identity, PskIdentity)
    assert [t for t, _ in hello.other_extensions] == [0xFF01, 0x000D, 0x0015]
    out = Buffer()
    push_client_hello(out, hello)
    assert out.data == message


def test_rfc8448_s4_early_traffic_keys_and_record():
    assert traffic_keys(S4_C_E_TRAFFIC) == (S4_EARLY_KEY, S4_EARLY_IV)
    layer = RecordLayer()
    layer.write_cipher = RecordCipher(CipherSuite.TLS_AES_128_GCM_SHA256, S4_C_E_TRAFFIC)
    assert layer.protect(ContentType.APPLICATION_DATA, b"ABCDEF") == S4_EARLY_RECORD
