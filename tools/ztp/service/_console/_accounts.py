"""Operator accounts and console sessions (issue 18), on a SQLAlchemy session (no HTTP).

Roles map onto the API's operator scopes (``_auth``): ``admin`` -> admin (write, read),
``operator`` -> write (read), ``viewer`` -> read. Passwords are Argon2id (the service's
``SecretHasher``, as client secrets); an unknown username costs a dummy verification too.

Sessions live in the database: the browser holds a random 256-bit token (``_keys.new_token``)
and only its SHA-256 is stored, so a copy of the database opens no session. A session ends at
logout, after ``idle_s`` without a request, ``max_s`` after the login whatever happens, and at
once for every session of a user who is disabled (``disable_user``) or whose password changes.
Each session has its own CSRF synchronizer token, compared in constant time.
"""

from __future__ import annotations

import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .._auth import expand_scopes
from .._errors import BadRequest, Conflict, NotFound, Unauthorized
from .._keys import SecretHasher, new_token, token_digest
from .._models import Client
from ._models import ConsoleSession, OperatorUser

__all__ = [
    "ROLES",
    "ConsoleUser",
    "SessionLimits",
    "check_csrf",
    "create_user",
    "disable_user",
    "end_session",
    "list_users",
    "resolve_session",
    "set_password",
    "sign_in",
]

# role -> the API scope it holds (each implies the ones below it, as in _auth)
ROLES: dict[str, str] = {"admin": "admin", "operator": "write", "viewer": "read"}
_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.@-]{0,63}")
PASSWORD_MIN = 12
PASSWORD_MAX = 256  # Argon2 takes any length; a cap keeps one login's cost bounded


@dataclass(frozen=True)
class SessionLimits:
    """How long a console session lives: ``idle_s`` without a request, ``max_s`` at most."""

    idle_s: int = 30 * 60
    max_s: int = 12 * 3600


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in operator of one console request."""

    username: str
    role: str
    scopes: frozenset[str]
    session_id: int
    csrf_token: str

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def can_write(self) -> bool:
        return self.has("write")


def parse_username(value: object) -> str:
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        raise BadRequest("username must be 1-64 characters of a-z 0-9 _ . @ - "
                         "(starting with a letter or digit)")
    return value


def parse_role(value: object) -> str:
    if value not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    return str(value)


def parse_password(value: object) -> str:
    """A new password: 12-256 characters, no control characters (NFC-normalized, so the same
    password typed on two keyboards is the same)."""
    if not isinstance(value, str):
        raise BadRequest("password must be text")
    text = unicodedata.normalize("NFC", value)
    if not PASSWORD_MIN <= len(text) <= PASSWORD_MAX:
        raise BadRequest(f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise BadRequest("password must not contain control characters")
    return text


def create_user(session: Session, hasher: SecretHasher, username: str, role: str,
                password: str, now_ms: int) -> None:
    """Register an operator.

    Raises:
        BadRequest: a bad username, role or password. Conflict: the username exists.
    """
    username, role, password = parse_username(username), parse_role(role), \
        parse_password(password)
    if session.scalar(select(OperatorUser.id).where(OperatorUser.username == username)):
        raise Conflict(f"user {username!r} already exists")
    # the audit's actor names either: one name, one party
    if session.scalar(select(Client.id).where(Client.client_id == username)):
        raise Conflict(f"{username!r} is an API client id; pick another name for a person")
    session.add(OperatorUser(username=username, password_hash=hasher.hash(password),
                             role=role, disabled=False, created_ms=now_ms, updated_ms=now_ms))
    session.flush()


def _user(session: Session, username: str) -> OperatorUser:
    user = session.scalar(select(OperatorUser).where(OperatorUser.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def _end_all(session: Session, user_id: int, now_ms: int) -> int:
    return session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_ms.is_(None))
        .values(ended_ms=now_ms)).rowcount


def disable_user(session: Session, username: str, now_ms: int) -> int:
    """Disable an operator and end every one of their sessions at once.

    Returns:
        The number of sessions ended.
    Raises:
        NotFound: no such user.
    """
    user = _user(session, username)
    user.disabled = True
    user.updated_ms = now_ms
    return _end_all(session, user.id, now_ms)


def enable_user(session: Session, username: str, now_ms: int) -> None:
    user = _user(session, username)
    user.disabled = False
    user.updated_ms = now_ms


def set_password(session: Session, hasher: SecretHasher, username: str, password: str,
                 now_ms: int) -> int:
    """A new password; every session of the user ends (whoever knew the old one is out).

    Returns:
        The number of sessions ended.
    """
    password = parse_password(password)
    user = _user(session, username)
    user.password_hash = hasher.hash(password)
    user.updated_ms = now_ms
    return _end_all(session, user.id, now_ms)


def list_users(session: Session) -> list[dict[str, object]]:
    return [{"username": u.username, "role": u.role, "disabled": u.disabled,
             "created_ms": u.created_ms, "updated_ms": u.updated_ms}
            for u in session.scalars(select(OperatorUser).order_by(OperatorUser.username))]


def check_password(session: Session, hasher: SecretHasher, username: str,
                   password: str) -> OperatorUser:
    """The user whose password this is (Argon2id; the same work for an unknown name).

    Raises:
        Unauthorized: unknown or disabled user, or wrong password (one message for all).
    """
    user = session.scalar(select(OperatorUser).where(OperatorUser.username == username))
    ok = hasher.verify(user.password_hash if user else None,
                       unicodedata.normalize("NFC", password)[:PASSWORD_MAX + 1])
    if user is None or not ok or user.disabled:
        raise Unauthorized("wrong username or password", code="invalid_login")
    return user


def sign_in(session: Session, user: OperatorUser, now_ms: int,
            limits: SessionLimits | None = None) -> str:
    """Open a session for ``user``; returns the cookie token (stored only as its hash).

    Sessions past their absolute lifetime (by a day, so a late request still finds its row
    and ends it) are deleted here: the table holds the live ones and the last day's."""
    max_s = (limits or SessionLimits()).max_s
    session.execute(delete(ConsoleSession).where(
        ConsoleSession.created_ms < now_ms - (max_s + 86_400) * 1000))
    token = new_token()
    session.add(ConsoleSession(token_sha256=token_digest(token), user_id=user.id,
                               csrf_token=secrets.token_urlsafe(32), created_ms=now_ms,
                               last_seen_ms=now_ms, ended_ms=None))
    session.flush()
    return token


def resolve_session(session: Session, token: str, now_ms: int,
                    limits: SessionLimits) -> ConsoleUser | None:
    """The user of a session cookie, or None (no such session, ended, idle or past its
    lifetime, or the user is disabled). A live session's idle timer restarts; a timed-out
    one is ended for good (in the caller's transaction)."""
    if not token or len(token) > 200:
        return None
    row = session.execute(
        select(ConsoleSession, OperatorUser)
        .join(OperatorUser, ConsoleSession.user_id == OperatorUser.id)
        .where(ConsoleSession.token_sha256 == token_digest(token))).first()
    if row is None:
        return None
    sess, user = row
    if sess.ended_ms is not None or user.disabled:
        return None
    if (now_ms - sess.last_seen_ms >= limits.idle_s * 1000
            or now_ms - sess.created_ms >= limits.max_s * 1000):
        sess.ended_ms = now_ms
        return None
    sess.last_seen_ms = now_ms
    return ConsoleUser(user.username, user.role, expand_scopes({ROLES[user.role]}), sess.id,
                       sess.csrf_token)


def end_session(session: Session, session_id: int, now_ms: int) -> None:
    session.execute(update(ConsoleSession).where(ConsoleSession.id == session_id,
                                                 ConsoleSession.ended_ms.is_(None))
                    .values(ended_ms=now_ms))


def check_csrf(expected: str, given: object) -> bool:
    """The form's CSRF token is the session's (constant time: it is a secret)."""
    if not isinstance(given, str) or not given or len(given) > 200:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
