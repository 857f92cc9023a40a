"""OAuth2 client credentials (RFC 6749 §4.4) with opaque bearer tokens (RFC 6750).

Scopes: ``read`` < ``write`` < ``admin`` (each implies the ones before it) for operators, and
``gateway`` alone for gateways. A gateway credential cannot hold operator scopes and an
operator credential cannot hold ``gateway``: the identity headers a gateway sends are trusted
only from a gateway token, so no operator can impersonate a SIM.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ._errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from ._keys import SecretHasher, new_token, token_digest
from ._models import Client, Token

__all__ = [
    "OPERATOR_SCOPES",
    "SCOPES",
    "Principal",
    "TokenCache",
    "create_client",
    "issue_token",
]

SCOPES = ("read", "write", "admin", "gateway")
OPERATOR_SCOPES = ("read", "write", "admin")
_IMPLIED = {"admin": {"admin", "write", "read"}, "write": {"write", "read"}, "read": {"read"},
            "gateway": {"gateway"}}
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_TOKEN_MAX = 200


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    client_id: str
    scopes: frozenset[str]  # as granted, with implied scopes expanded
    token_id: int

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def expand_scopes(scopes: set[str] | frozenset[str]) -> frozenset[str]:
    out: set[str] = set()
    for s in scopes:
        out |= _IMPLIED[s]
    return frozenset(out)


def parse_scopes(text: str | list[str] | None) -> set[str]:
    """Parse a space-separated scope string (RFC 6749 §3.3) or list; refuse unknown scopes."""
    if text is None:
        return set()
    # RFC 6749 §3.3: scope-token *( SP scope-token ), one space between tokens
    items = (text.split(" ") if text else []) if isinstance(text, str) else list(text)
    for item in items:
        if not isinstance(item, str) or item not in SCOPES:
            raise BadRequest(f"unknown scope {item!r}; known: {' '.join(SCOPES)}",
                             code="invalid_scope")
    return set(items)


def validate_client_scopes(scopes: set[str]) -> None:
    if not scopes:
        raise BadRequest("a client needs at least one scope", code="invalid_scope")
    if "gateway" in scopes and scopes != {"gateway"}:
        raise BadRequest("scope 'gateway' cannot be combined with operator scopes",
                         code="invalid_scope")


def validate_client_id(client_id: object) -> str:
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise BadRequest("client_id must be 1-64 characters of A-Z a-z 0-9 _ . @ -")
    return client_id


def create_client(
    session: Session, hasher: SecretHasher, client_id: str, scopes: set[str], now_ms: int
) -> str:
    """Register a client and return its generated secret (shown once, stored hashed).

    Raises:
        BadRequest: bad id or scopes. Conflict: the id exists.
    """
    validate_client_id(client_id)
    validate_client_scopes(scopes)
    if session.scalar(select(Client.id).where(Client.client_id == client_id)) is not None:
        raise Conflict(f"client {client_id!r} already exists")
    secret = secrets.token_urlsafe(32)
    session.add(Client(client_id=client_id, secret_hash=hasher.hash(secret),
                       scopes=" ".join(sorted(scopes)), disabled=False, created_ms=now_ms))
    session.flush()
    return secret


def check_client(
    session: Session, hasher: SecretHasher, client_id: str, client_secret: str
) -> tuple[int, set[str]]:
    """Check client credentials (Argon2id verify; same work for an unknown id).

    Returns:
        ``(client primary key, granted scopes)``.

    Raises:
        Unauthorized: unknown or disabled client, or wrong secret (one message for all).
    """
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    ok = hasher.verify(client.secret_hash if client else None, client_secret)
    if client is None or not ok or client.disabled:
        raise Unauthorized("client authentication failed", code="invalid_client")
    return client.id, set(client.scopes.split())


def issue_token(
    session: Session, client_pk: int, granted: set[str], requested: set[str], now_ms: int,
    ttl_s: int,
) -> tuple[str, frozenset[str]]:
    """Store and return a new token for ``requested`` scopes (all granted ones if empty).

    Raises:
        BadRequest: a requested scope exceeds the client's grant (``invalid_scope``).
        Unauthorized: the client was disabled meanwhile.
    """
    client = session.get(Client, client_pk)
    if client is None or client.disabled:
        raise Unauthorized("client authentication failed", code="invalid_client")
    scopes = requested or granted
    allowed = expand_scopes(granted)
    if not scopes <= allowed:
        raise BadRequest(
            f"scope {' '.join(sorted(scopes - allowed))} not granted to this client",
            code="invalid_scope",
        )
    token = new_token()
    session.add(Token(token_sha256=token_digest(token), client_pk=client_pk,
                      scopes=" ".join(sorted(scopes)), issued_ms=now_ms,
                      expires_ms=now_ms + ttl_s * 1000, revoked_ms=None))
    session.flush()
    return token, frozenset(scopes)


def authenticate(
    session: Session, token: str, now_ms: int, cache: TokenCache | None = None
) -> Principal:
    """Resolve a bearer token (through ``cache`` first, when given).

    Raises:
        Unauthorized: unknown, expired or revoked token, or disabled client.
    """
    if not token or len(token) > _TOKEN_MAX:
        raise Unauthorized("invalid access token")
    if cache is not None:
        hit = cache.get(token, now_ms)
        if hit is not None:
            return hit
    row = session.execute(
        select(Token, Client).join(Client, Token.client_pk == Client.id)
        .where(Token.token_sha256 == token_digest(token))
    ).first()
    if row is None:
        raise Unauthorized("invalid access token")
    tok, client = row
    if tok.revoked_ms is not None:
        raise Unauthorized("access token revoked")
    if now_ms >= tok.expires_ms:
        raise Unauthorized("access token expired")
    if client.disabled:
        raise Unauthorized("client disabled")
    principal = Principal(client.client_id, expand_scopes(set(tok.scopes.split())), tok.id)
    if cache is not None:
        cache.put(token, principal, tok.expires_ms)
    return principal


class TokenCache:
    """Recently resolved bearer tokens, so a request does not look its token up every time.

    Bounds: an entry is believed for at most ``ttl_s`` seconds (monotonic clock) after it was
    read from the database, and never past the token's own expiry (checked against the
    request's ``now_ms`` on every hit). A revocation or client disabling done through this
    process takes effect at once: it is remembered as a negative entry for ``2 * ttl_s``,
    which no positive entry overrides (a request that read the token just before the
    revocation committed cannot re-cache it past the bound). One made elsewhere (another
    worker process sharing the database) takes effect within ``ttl_s``. ``ttl_s=0``
    disables the cache.
    """

    _MAX = 10_000  # entries; cleared when full (tokens are few: one per client session)

    def __init__(self, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._now = monotonic
        self._lock = threading.Lock()
        self._ok: dict[str, tuple[Principal, int, float]] = {}  # digest -> (p, expires_ms, t)
        self._revoked: dict[str, float] = {}  # digest -> until
        self._disabled: dict[str, float] = {}  # client_id -> until

    def get(self, token: str, now_ms: int) -> Principal | None:
        """The cached principal of ``token``, or None (then ask :func:`authenticate`).

        Raises:
            Unauthorized: the token was revoked or its client disabled through this process,
                or the cached token has expired.
        """
        if self.ttl_s <= 0:
            return None
        digest = token_digest(token)
        t = self._now()
        with self._lock:
            until = self._revoked.get(digest)
            hit = self._ok.get(digest)
            if hit is not None and (until is not None or t - hit[2] > self.ttl_s):
                del self._ok[digest]
                hit = None
            if until is not None:
                if t <= until:
                    raise Unauthorized("access token revoked")
                del self._revoked[digest]
            if hit is None:
                return None
            principal, expires_ms, _ = hit
            off = self._disabled.get(principal.client_id)
            if off is not None and t <= off:
                del self._ok[digest]
                raise Unauthorized("client disabled")
        if now_ms >= expires_ms:
            raise Unauthorized("access token expired")
        return principal

    def put(self, token: str, principal: Principal, expires_ms: int) -> None:
        if self.ttl_s <= 0:
            return
        digest = token_digest(token)
        t = self._now()
        with self._lock:
            if len(self._ok) >= self._MAX:
                self._ok.clear()
            off = self._disabled.get(principal.client_id)
            if digest in self._revoked or (off is not None and t <= off):
                return
            self._ok[digest] = (principal, expires_ms, t)

    def revoked(self, token: str) -> None:
        """``token`` was revoked (call before the revoking transaction commits)."""
        digest = token_digest(token)
        with self._lock:
            self._ok.pop(digest, None)
            self._revoked[digest] = self._now() + 2 * self.ttl_s
            self._prune()

    def disabled(self, client_id: str) -> None:
        """Every token of ``client_id`` was revoked."""
        with self._lock:
            for digest, (p, _, _) in list(self._ok.items()):
                if p.client_id == client_id:
                    del self._ok[digest]
            self._disabled[client_id] = self._now() + 2 * self.ttl_s
            self._prune()

    def _prune(self) -> None:
        t = self._now()
        for table in (self._revoked, self._disabled):
            if len(table) > 1000:
                for k in [k for k, until in table.items() if until < t]:
                    del table[k]


def revoke_token(session: Session, principal: Principal, token: str, now_ms: int) -> bool:
    """Revoke ``token`` (RFC 7009): one's own, or any with scope admin. Returns True if found."""
    tok = session.scalar(select(Token).where(Token.token_sha256 == token_digest(token)))
    if tok is None:
        return False  # RFC 7009 §2.2: an invalid token is not an error
    owner = session.get(Client, tok.client_pk)
    if not principal.has("admin") and (owner is None or owner.client_id != principal.client_id):
        raise Forbidden("only an admin may revoke another client's token")
    if tok.revoked_ms is None:
        tok.revoked_ms = now_ms
    return True


def disable_client(session: Session, client_id: str, now_ms: int) -> None:
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        raise NotFound(f"client {client_id!r} not found")
    client.disabled = True
    session.execute(update(Token).where(Token.client_pk == client.id,
                                        Token.revoked_ms.is_(None)).values(revoked_ms=now_ms))


def list_clients(session: Session) -> list[dict[str, object]]:
    return [
        {"client_id": c.client_id, "scopes": c.scopes.split(), "disabled": c.disabled,
         "created_ms": c.created_ms}
        for c in session.scalars(select(Client).order_by(Client.client_id))
    ]
