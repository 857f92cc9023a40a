"""Secrets at rest: the versioned master key, sealing of per-SIM keys, credential hashing.

Per-SIM keys (the TLS PSK, and the OTA keys KIc/KID of ETSI TS 102 225 for a later issue) are
stored sealed with AES-256-GCM (NIST SP 800-38D) under a *master key version*. The associated
data binds the ciphertext to its row: ICCID, key kind, key tag and master key version, so a
sealed key copied into another SIM's row (or relabelled with another tag) fails to open.

Master keys come from ``ZTP_MASTER_KEY`` or a key file. Format (both): one or more entries
``<version>:<base64 of 32 bytes>`` separated by commas or newlines; ``#`` starts a comment.
The highest version seals new keys; older versions only open existing ones (rotation: add a
version, run ``ztp service rewrap``, then drop the old version).

Client secrets are hashed with Argon2id (RFC 9106) through argon2-cffi. Access tokens are
256-bit random strings; only their SHA-256 is stored (a token is as strong as a key, so a
slow hash adds nothing and would cost every request).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KeyIntegrityError",
    "MasterKeyError",
    "MasterKeyring",
    "SecretHasher",
    "new_token",
    "token_digest",
]

MASTER_KEY_LEN = 32
_NONCE_LEN = 12
_AAD_LABEL = b"ztp/sim-key/v1"


class MasterKeyError(ValueError):
    """The master key configuration is missing or malformed (the service refuses to start)."""


class KeyIntegrityError(Exception):
    """A sealed key failed to open: tampered, moved to another row, or wrong master key."""


def _aad(iccid: str, kind: str, tag: str, master_version: int) -> bytes:
    # NUL-separated: none of the fields can hold NUL (validated by the store).
    return b"\x00".join(
        (_AAD_LABEL, iccid.encode(), kind.encode(), tag.encode(), str(master_version).encode())
    )


@dataclass(frozen=True)
class MasterKeyring:
    """Master keys by version; the highest version is current.

    Build with :meth:`parse`, :meth:`from_file` or :meth:`generate`. ``repr`` never shows keys.
    """

    keys: tuple[tuple[int, bytes], ...]
    # AESGCM objects by version, made once (each holds an OpenSSL context).
    _aead: dict[int, AESGCM] = field(default_factory=dict, init=False, repr=False,
                                     compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise MasterKeyError("master keyring is empty")
        seen: set[int] = set()
        for version, key in self.keys:
            if version < 1 or version in seen:
                raise MasterKeyError(f"master key version {version} is invalid or repeated")
            if len(key) != MASTER_KEY_LEN:
                raise MasterKeyError(
                    f"master key version {version}: expected {MASTER_KEY_LEN} bytes, "
                    f"got {len(key)}"
                )
            seen.add(version)

    def __repr__(self) -> str:
        return f"MasterKeyring(versions={self.versions})"

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(v for v, _ in self.keys))

    @property
    def current_version(self) -> int:
        return max(v for v, _ in self.keys)

    def _key(self, version: int) -> bytes:
        for v, key in self.keys:
            if v == version:
                return key
        raise KeyIntegrityError(f"master key version {version} is not configured")

    def _aead_for(self, version: int) -> AESGCM:
        aead = self._aead.get(version)
        if aead is None:
            aead = self._aead[version] = AESGCM(self._key(version))
        return aead

    @classmethod
    def parse(cls, text: str) -> MasterKeyring:
        """Parse ``"1:<b64>,2:<b64>"`` (commas or newlines, ``#`` comments).

        Raises:
            MasterKeyError: an entry is not ``version:base64``, or a key is not 32 bytes.
        """
        entries: list[tuple[int, bytes]] = []
        for raw_line in text.replace(",", "\n").splitlines():
            line = raw_line.split("#", 1)[0].strip()
            if not line:
                continue
            version_text, sep, key_text = line.partition(":")
            if not sep or not version_text.strip().isdigit():
                raise MasterKeyError("master key entry must be '<version>:<base64 key>'")
            try:
                key = base64.b64decode(key_text.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise MasterKeyError(
                    f"master key version {version_text.strip()}: not base64"
                ) from None
            entries.append((int(version_text), key))
        return cls(tuple(entries))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MasterKeyring:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise MasterKeyError(f"cannot read master key file {path}: {exc}") from None
        return cls.parse(text)

    @classmethod
    def generate(cls, version: int = 1) -> MasterKeyring:
        return cls(((version, secrets.token_bytes(MASTER_KEY_LEN)),))

    def serialize(self) -> str:
        """The text form accepted by :meth:`parse` (this *is* the secret: write it 0600)."""
        return "".join(
            f"{v}:{base64.b64encode(k).decode()}\n" for v, k in sorted(self.keys)
        )

    def with_new_version(self) -> MasterKeyring:
        """A keyring with one more, freshly generated, current version."""
        new = (self.current_version + 1, secrets.token_bytes(MASTER_KEY_LEN))
        return MasterKeyring(self.keys + (new,))

    def write_file(self, path: str | os.PathLike[str]) -> None:
        """Write the keyring to ``path`` with mode 0600, refusing to overwrite."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(self.serialize())
            fh.flush()
            os.fsync(fh.fileno())  # every sealed key depends on this file surviving a crash

    def seal(self, key: bytes, *, iccid: str, kind: str, tag: str) -> tuple[int, bytes]:
        """Encrypt ``key`` for the row (iccid, kind, tag) under the current master version.

        Returns:
            ``(master_version, nonce || ciphertext || GCM tag)``.
        """
        version = self.current_version
        nonce = secrets.token_bytes(_NONCE_LEN)
        sealed = self._aead_for(version).encrypt(nonce, key, _aad(iccid, kind, tag, version))
        return version, nonce + sealed

    def open(
        self, sealed: bytes, *, iccid: str, kind: str, tag: str, master_version: int
    ) -> bytes:
        """Decrypt a sealed key; the row's fields must be those it was sealed for.

        Raises:
            KeyIntegrityError: wrong row, tampered data, or unknown master key version.
        """
        if len(sealed) < _NONCE_LEN + 16:
            raise KeyIntegrityError("sealed key is truncated")
        aead = self._aead_for(master_version)
        try:
            return aead.decrypt(
                sealed[:_NONCE_LEN], sealed[_NONCE_LEN:], _aad(iccid, kind, tag, master_version)
            )
        except InvalidTag:
            raise KeyIntegrityError("sealed key does not open for this row") from None


class SecretHasher:
    """Argon2id hashing of client secrets.

    ``fast=True`` picks small parameters for tests (never for a deployment).
    """

    def __init__(self, *, fast: bool = False) -> None:
        if fast:
            self._ph = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        else:
            self._ph = PasswordHasher()  # argon2-cffi defaults: RFC 9106 low-memory profile
        # Verified against when the client id is unknown, so both paths cost the same.
        self._dummy = self._ph.hash(secrets.token_urlsafe(16))

    def hash(self, secret: str) -> str:
        return self._ph.hash(secret)

    def verify(self, stored_hash: str | None, secret: str) -> bool:
        """Constant-work check; ``stored_hash=None`` (unknown client) verifies a dummy."""
        try:
            return self._ph.verify(stored_hash or self._dummy, secret) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def new_token() -> str:
    """A fresh opaque access token (256 bits, URL-safe)."""
    return "ztp_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
