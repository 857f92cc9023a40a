"""TLS 1.3 key schedule for external PSKs (RFC 8446 §7.1, §4.2.11.2, §4.4.4, §7.2, §7.3).

HKDF (RFC 5869) is written out on HMAC-SHA-256, and HMAC (RFC 2104) on hashlib's SHA-256 (see
``hmac_sha256`` for why); both suites of the profile use SHA-256, so the hash is fixed.
``KeySchedule`` owns the transcript hash and the current secret, and has one method per §7.1
step:

    PSK -> HKDF-Extract = Early Secret    (early_secret)
        +-> Derive-Secret(., "ext binder", "")  (binder_key -> compute_binder)
    (EC)DHE -> HKDF-Extract = Handshake Secret  (handshake_secret)
        +-> "c hs traffic" / "s hs traffic" over CH..SH
    0 -> HKDF-Extract = Master Secret  (master_secret)
        +-> "c ap traffic" / "s ap traffic" over CH..server Finished
"""

from __future__ import annotations

import hashlib

HASH_LEN = 32  # SHA-256
BLOCK_LEN = 64  # SHA-256's block: HMAC pads its key to this
_ZEROS = bytes(HASH_LEN)
_IPAD = bytes(b ^ 0x36 for b in range(256))  # RFC 2104 ipad and opad, as bytes.translate tables
_OPAD = bytes(b ^ 0x5C for b in range(256))
_sha256 = hashlib.sha256


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """RFC 2104: HMAC(K, m) = H((K' ^ opad) | H((K' ^ ipad) | m)), K' = K zero-padded to a block
    (or H(K) first when longer), H = SHA-256.

    Written out on hashlib rather than calling ``hmac.digest``: with OpenSSL 3, the C one-shot
    HMAC() fetches the MAC and the digest algorithm on every call and costs ~20% more than
    these two SHA-256 calls, and a server handshake makes ~28 HMACs (issue 14). The RFC 4231
    and RFC 8448 vectors in host_tests/tls/test_vectors.py pin the result.
    """
    if len(key) > BLOCK_LEN:
        key = _sha256(key).digest()
    key = key.ljust(BLOCK_LEN, b"\x00")
    inner = _sha256(key.translate(_IPAD) + message).digest()
    return _sha256(key.translate(_OPAD) + inner).digest()


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM)."""
    return hmac_sha256(salt, ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 §2.3."""
    if not 0 < length <= 255 * HASH_LEN:
        raise ValueError(f"HKDF-Expand length {length}")
    if length <= HASH_LEN:  # every TLS 1.3 secret, key and IV here: T(1) alone
        return hmac_sha256(prk, info + b"\x01")[:length]
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac_sha256(prk, block + info + bytes([counter]))
        okm += block
        counter += 1
    return okm[:length]


def hkdf_expand_label(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """RFC 8446 §7.1: HKDF-Expand(Secret, HkdfLabel, Length), where HkdfLabel = uint16 length,
    opaque label<7..255> = "tls13 " + Label, opaque context<0..255>."""
    prefix = _LABEL_PREFIXES.get((label, length))
    if prefix is None:
        full_label = b"tls13 " + label
        prefix = length.to_bytes(2, "big") + bytes([len(full_label)]) + full_label
        if len(_LABEL_PREFIXES) < 64:  # the RFC's labels; a bound all the same
            _LABEL_PREFIXES[(label, length)] = prefix
    info = prefix + _CONTEXT_LENGTHS[len(context)] + context
    if 0 < length <= HASH_LEN:
        # Every secret, key and IV of TLS 1.3 with SHA-256: RFC 5869 §2.3's T(1) alone,
        # HMAC(PRK, info | 0x01), as one call (a server handshake makes ~20 of these).
        return hmac_sha256(secret, info + b"\x01")[:length]
    return hkdf_expand(secret, info, length)


# (label, length) -> the HkdfLabel bytes before the context: built once per label
_LABEL_PREFIXES: dict[tuple[bytes, int], bytes] = {}
# opaque context<0..255>: its length byte, by length (a context longer than 255 is an error)
_CONTEXT_LENGTHS = tuple(bytes([n]) for n in range(256))


def derive_secret(secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """RFC 8446 §7.1: Derive-Secret(Secret, Label, Messages), given Transcript-Hash(Messages)."""
    return hkdf_expand_label(secret, label, transcript_hash, HASH_LEN)


_EMPTY_HASH = hashlib.sha256(b"").digest()


def _expand_info(label: bytes, context: bytes, length: int) -> bytes:
    """HkdfLabel + T(1)'s counter byte 0x01: the HMAC message of ``hkdf_expand_label`` for
    ``length`` <= 32. Built once at import for the labels whose context is fixed, so their
    derivations are one ``hmac_sha256`` call with a constant message (issue 14: a server
    handshake makes 17 of them)."""
    full_label = b"tls13 " + label
    return (
        length.to_bytes(2, "big")
        + bytes([len(full_label)])
        + full_label
        + bytes([len(context)])
        + context
        + b"\x01"
    )


_INFO_EXT_BINDER = _expand_info(b"ext binder", _EMPTY_HASH, HASH_LEN)  # Derive-Secret(., ., "")
_INFO_DERIVED = _expand_info(b"derived", _EMPTY_HASH, HASH_LEN)
_INFO_FINISHED = _expand_info(b"finished", b"", HASH_LEN)
_INFO_KEY = _expand_info(b"key", b"", 16)  # AES-128: both suites of the profile
_INFO_IV = _expand_info(b"iv", b"", 12)


def _derive_info_prefix(label: bytes) -> bytes:
    """The HkdfLabel of Derive-Secret(., label, messages) up to its 32-byte context, the
    Transcript-Hash: ``KeySchedule._derive`` appends the hash and T(1)'s 0x01."""
    return _expand_info(label, bytes(HASH_LEN), HASH_LEN)[: -1 - HASH_LEN]


_PREFIX_C_HS = _derive_info_prefix(b"c hs traffic")
_PREFIX_S_HS = _derive_info_prefix(b"s hs traffic")
_PREFIX_C_AP = _derive_info_prefix(b"c ap traffic")
_PREFIX_S_AP = _derive_info_prefix(b"s ap traffic")
# HMAC keyed with HKDF-Extract's salt of zeros (the Early Secret's): its padded key is fixed
_ZEROS_IPAD = _ZEROS.ljust(BLOCK_LEN, b"\x00").translate(_IPAD)
_ZEROS_OPAD = _ZEROS.ljust(BLOCK_LEN, b"\x00").translate(_OPAD)


def empty_hash() -> bytes:
    return _EMPTY_HASH


def early_secret(psk: bytes) -> bytes:
    """RFC 8446 §7.1: Early Secret = HKDF-Extract(0, PSK): ``hmac_sha256(zeros, psk)`` with
    the salt's padded key computed once (every binder candidate, dummies too, starts here)."""
    return _sha256(_ZEROS_OPAD + _sha256(_ZEROS_IPAD + psk).digest()).digest()


def finished_key(base_key: bytes) -> bytes:
    """RFC 8446 §4.4.4."""
    return hmac_sha256(base_key, _INFO_FINISHED)


def traffic_keys(secret: bytes, key_length: int = 16, iv_length: int = 12) -> tuple[bytes, bytes]:
    """RFC 8446 §7.3: (write_key, write_iv)."""
    if key_length == 16 and iv_length == 12 and len(secret) <= BLOCK_LEN:
        # the profile's (AES-128): two ``hmac_sha256`` written out with the key padded once
        # and constant HkdfLabels (four record ciphers per handshake)
        key = secret.ljust(BLOCK_LEN, b"\x00")
        ipad, opad = key.translate(_IPAD), key.translate(_OPAD)
        return (
            _sha256(opad + _sha256(ipad + _INFO_KEY).digest()).digest()[:16],
            _sha256(opad + _sha256(ipad + _INFO_IV).digest()).digest()[:12],
        )
    return (
        hkdf_expand_label(secret, b"key", b"", key_length),
        hkdf_expand_label(secret, b"iv", b"", iv_length),
    )


def next_traffic_secret(secret: bytes) -> bytes:
    """RFC 8446 §7.2: application_traffic_secret_N+1 (KeyUpdate)."""
    return hkdf_expand_label(secret, b"traffic upd", b"", HASH_LEN)


class KeySchedule:
    """Transcript hash and the secrets of one connection (SHA-256)."""

    def __init__(self) -> None:
        self._transcript = hashlib.sha256()
        # Transcript-Hash of the messages so far, until the next update: the server needs the
        # same one for both handshake secrets, and again for both application secrets and
        # the client's Finished
        self._transcript_hash: bytes | None = None
        self.secret: bytes | None = None  # the current stage's secret

    # -- transcript -------------------------------------------------------------------------

    def update_transcript(self, message: bytes) -> None:
        self._transcript.update(message)
        self._transcript_hash = None

    def transcript_hash(self) -> bytes:
        if self._transcript_hash is None:
            self._transcript_hash = self._transcript.copy().digest()
        return self._transcript_hash

    # -- §7.1 steps --------------------------------------------------------------------------

    def early_secret(self, psk: bytes) -> bytes:
        """Early Secret = HKDF-Extract(0, PSK)."""
        return self.start_from_early_secret(early_secret(psk))

    def start_from_early_secret(self, secret: bytes) -> bytes:
        """The same step given the Early Secret: the server computed it already, for the
        binder of the key that verified (one HMAC less per handshake)."""
        self.secret = secret
        return secret

    def binder_key(self) -> bytes:
        """Derive-Secret(Early Secret, "ext binder", "") (external PSK, RFC 8446 §7.1)."""
        return hmac_sha256(self._need_secret(), _INFO_EXT_BINDER)

    def handshake_secret(self, shared_secret: bytes | None) -> bytes:
        """Handshake Secret = HKDF-Extract(Derive-Secret(early, "derived", ""), (EC)DHE or 0)."""
        salt = hmac_sha256(self._need_secret(), _INFO_DERIVED)  # Derive-Secret(., "derived", "")
        self.secret = hmac_sha256(salt, shared_secret if shared_secret is not None else _ZEROS)
        return self.secret

    def client_handshake_traffic_secret(self) -> bytes:
        return self._derive(_PREFIX_C_HS)  # Derive-Secret(., "c hs traffic", CH..SH)

    def server_handshake_traffic_secret(self) -> bytes:
        return self._derive(_PREFIX_S_HS)  # Derive-Secret(., "s hs traffic", CH..SH)

    def master_secret(self) -> bytes:
        """Master Secret = HKDF-Extract(Derive-Secret(handshake, "derived", ""), 0)."""
        salt = hmac_sha256(self._need_secret(), _INFO_DERIVED)  # Derive-Secret(., "derived", "")
        self.secret = hmac_sha256(salt, _ZEROS)
        return self.secret

    def client_application_traffic_secret(self) -> bytes:
        return self._derive(_PREFIX_C_AP)  # Derive-Secret(., "c ap traffic", CH..server Fin)

    def server_application_traffic_secret(self) -> bytes:
        return self._derive(_PREFIX_S_AP)  # Derive-Secret(., "s ap traffic", CH..server Fin)

    def exporter_master_secret(self) -> bytes:
        return derive_secret(self._need_secret(), b"exp master", self.transcript_hash())

    def resumption_master_secret(self) -> bytes:
        return derive_secret(self._need_secret(), b"res master", self.transcript_hash())

    def finished_verify_data(self, base_key: bytes) -> bytes:
        """RFC 8446 §4.4.4: HMAC(finished_key, Transcript-Hash(handshake context))."""
        return hmac_sha256(hmac_sha256(base_key, _INFO_FINISHED), self.transcript_hash())

    def _derive(self, info_prefix: bytes) -> bytes:
        """Derive-Secret(current secret, label, messages so far) given the label's HkdfLabel
        prefix (``_derive_info_prefix``): one HMAC with no label table lookup, for the four
        traffic secrets of every handshake (``_need_secret`` written out, issue 14)."""
        secret = self.secret
        if secret is None:
            raise RuntimeError("key schedule step out of order")
        return hmac_sha256(secret, info_prefix + self.transcript_hash() + b"\x01")

    def _need_secret(self) -> bytes:
        if self.secret is None:
            raise RuntimeError("key schedule step out of order")
        return self.secret


def message_hash(client_hello: bytes) -> bytes:
    """RFC 8446 §4.4.1: after a HelloRetryRequest, ClientHello1 is replaced in the transcript
    by this synthetic message: type message_hash (254), length 32, Hash(ClientHello1)."""
    return bytes([254, 0, 0, HASH_LEN]) + hashlib.sha256(client_hello).digest()


def compute_binder(
    psk: bytes, truncated_client_hello: bytes, label: bytes = b"ext binder"
) -> bytes:
    """RFC 8446 §4.2.11.2: HMAC(finished_key(binder_key), Transcript-Hash(Truncate(CH))).

    ``truncated_client_hello`` is the ClientHello handshake message up to, not including, the
    binders list (its 2-byte length excluded); its inner lengths already count the binders.
    After a HelloRetryRequest it is preceded by the transcript so far: ``message_hash(CH1) +
    HRR + Truncate(CH2)`` (§4.2.11.2). ``label`` is ``b"ext binder"`` for external PSKs;
    ``b"res binder"`` only for RFC 8448 vectors.
    """
    return binder_from_early_secret(
        early_secret(psk), hashlib.sha256(truncated_client_hello).digest(), label
    )


class BinderSecretCache:
    """PSK -> (Early Secret, the binder's finished key): the three HMACs of an external PSK's
    binder that depend on the key alone (RFC 8446 §7.1 Early Secret and "ext binder",
    §4.4.4 finished key), kept for keys seen before, so a candidate's binder is one HMAC
    over Transcript-Hash(Truncate(CH)) (issue 14: 4 -> 1 HMAC per candidate).

    The server looks up every candidate, its dummy keys too, in one of these: the dummies
    come from a fixed pool and go through the same lookup, so a known identity costs what an
    unknown one does. What stays: a key's first handshake (and the first after its entry
    was dropped) costs the three HMACs once, ~3 us, as every key did before; the gateway's
    own PSK cache miss (>= its 50 ms floor) hides that first one. An entry never
    authenticates anything by itself: only keys that ``psk_lookup`` returns are looked up.
    Keyed by the key bytes, so a rotated key never meets a stale entry; bounded (the oldest
    entry goes first once ``max_entries`` are held); its repr shows the size only.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[bytes, bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:  # never the keys or secrets
        return f"BinderSecretCache({len(self._entries)}/{self.max_entries} entries)"

    def secrets(self, psk: bytes) -> tuple[bytes, bytes]:
        """(Early Secret, finished_key(Derive-Secret(Early Secret, "ext binder", "")))."""
        if type(psk) is not bytes:  # e.g. a bytearray: not hashable, and could change later
            psk = bytes(psk)
        entries = self._entries
        found = entries.get(psk)
        if found is not None:
            return found
        early = early_secret(psk)
        found = (early, hmac_sha256(hmac_sha256(early, _INFO_EXT_BINDER), _INFO_FINISHED))
        if len(entries) >= self.max_entries:
            # the oldest; pop with a default: another thread may have taken it meanwhile
            entries.pop(next(iter(entries), b""), None)
        entries[psk] = found
        return found

    def clear(self) -> None:
        self._entries.clear()


# One per process, shared by every server: an entry depends on the key bytes only. Its bound
# matches the gateway's PSK cache (100,000 identities; ~24 MB when full, measured), so a key
# that the gateway holds is rarely cold here.
BINDER_SECRETS = BinderSecretCache(100_000)


def binder_secrets(psk: bytes) -> tuple[bytes, bytes]:
    """``BINDER_SECRETS.secrets(psk)``: what the server looks up for every binder candidate."""
    return BINDER_SECRETS.secrets(psk)


def binder_from_early_secret(
    early: bytes, truncated_hash: bytes, label: bytes = b"ext binder"
) -> bytes:
    """``compute_binder`` given the Early Secret and Transcript-Hash(Truncate(CH)): the server
    hashes the truncated ClientHello once for all its candidate keys, and keeps the Early
    Secret of the key that verified."""
    if label == b"ext binder":
        binder_key = hmac_sha256(early, _INFO_EXT_BINDER)  # Derive-Secret(., "ext binder", "")
    else:
        binder_key = derive_secret(early, label, _EMPTY_HASH)
    return hmac_sha256(hmac_sha256(binder_key, _INFO_FINISHED), truncated_hash)  # §4.4.4
