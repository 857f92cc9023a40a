"""HTTP plumbing: the route table (which also drives /openapi.json), request context, errors.

A route handler is a plain function ``handler(call) -> Response`` run in the app's thread
pool (``AppState.handlers``) inside one database transaction (read or write); the async
wrapper reads the body (with a size cap) and converts :class:`ServiceError` into a JSON
``{"error", "detail"}`` answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._audit import Actor
from ._auth import Principal, TokenCache, authenticate
from ._db import Database
from ._errors import (
    BadRequest,
    Conflict,
    Forbidden,
    PayloadTooLarge,
    ServiceError,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)
from ._keys import SecretHasher
from ._settings import Settings
from ._store import Store
from ._throttle import LoginThrottle

__all__ = ["ROUTES", "Call", "RouteSpec", "WouldWait", "error_response", "header_map", "route",
           "single_query"]

DEFAULT_BODY_MAX = 64 * 1024
IMPORT_BODY_MAX = 8 * 1024 * 1024


# Handlers run in threads of the app's own pool, as many as Starlette's (anyio's default of
# 40). A plain executor, not Starlette's run_in_threadpool: anyio's capacity limiter,
# cancel scope and context copy cost about 30 us per request on the device hot path, and
# the handlers need none of them (they use no context variables, and a request whose client
# went away still runs to its commit, as with anyio). The pool lives as long as the app (an
# app may be started and stopped again: tests); its idle threads end with the process, and
# the server answers every request in flight before it stops.
HANDLER_THREADS = 40


@dataclass
class AppState:
    settings: Settings
    db: Database
    hasher: SecretHasher
    tokens: TokenCache = field(default=None)  # type: ignore[assignment]
    logins: LoginThrottle = field(default=None)  # type: ignore[assignment]
    handlers: ThreadPoolExecutor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.tokens is None:
            self.tokens = TokenCache(self.settings.token_cache_s)
        if self.logins is None:
            self.logins = LoginThrottle(self.settings.login_limits)
        if self.handlers is None:
            self.handlers = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="ztp-handler")


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: Callable[[Call], Response]
    operation_id: str
    summary: str
    scope: str | None
    tx: str  # "read" | "write" | "none" (the handler opens its own transactions)
    body_max: int
    request: dict[str, Any] | None  # {"content-type": schema}
    request_required: bool  # False: the body may be left out
    query: tuple[Param, ...]
    headers: tuple[Param, ...]
    responses: dict[str, tuple[str, str | None, dict[str, Any] | None]]
    tags: tuple[str, ...]
    fast: FastHandler | None = None


# A route's optional fast path: (state, request, principal from the token cache, now_ms,
# wait) -> the response, or None to run the route as usual (``_run``). It answers only the
# common case, and declines anything else before writing: the usual path then gives the
# answer (errors, alerts, refusals) exactly as it would have without the fast path. On
# SQLite the event loop tries it first with ``wait=False`` (no thread handoffs: two context
# switches a request); it raises :class:`WouldWait` instead of waiting for the write lock,
# and a handler thread then runs it with ``wait=True``.
FastHandler = Callable[["AppState", Request, Principal, int, bool], "Response | None"]


class WouldWait(Exception):
    """A fast path called with ``wait=False`` would have had to wait (for the write lock)."""


ROUTES: list[RouteSpec] = []


def route(
    method: str,
    path: str,
    *,
    summary: str,
    scope: str | None,
    tx: str = "read",
    body_max: int = DEFAULT_BODY_MAX,
    request: dict[str, Any] | None = None,
    request_required: bool = True,
    query: tuple[Param, ...] = (),
    headers: tuple[Param, ...] = (),
    responses: dict[str, tuple[str, str | None, dict[str, Any] | None]] | None = None,
    tags: tuple[str, ...] = (),
    fast: FastHandler | None = None,
) -> Callable[[Callable[[Call], Response]], Callable[[Call], Response]]:
    """Register a handler in :data:`ROUTES` (the app and the OpenAPI document use it)."""

    def deco(fn: Callable[[Call], Response]) -> Callable[[Call], Response]:
        ROUTES.append(RouteSpec(
            method=method, path=path, handler=fn, operation_id=fn.__name__, summary=summary,
            scope=scope, tx=tx, body_max=body_max, request=request,
            request_required=request_required, query=query,
            headers=headers, responses=responses or {"200": ("OK", None, None)}, tags=tags,
            fast=fast,
        ))
        return fn

    return deco


@dataclass
class Call:
    """What a handler sees of one request."""

    request: Request
    body: bytes
    state: AppState
    now_ms: int
    principal: Principal | None = None
    store: Store = field(default=None)  # type: ignore[assignment]

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def actor(self) -> Actor:
        assert self.principal is not None
        return Actor(self.principal.client_id)

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        values = self.request.query_params.getlist(name)
        if len(values) > 1:
            raise BadRequest(f"query parameter {name!r} given more than once")
        return values[0] if values else None

    def query_int(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.query(name)
        if raw is None or raw == "":
            return default
        if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 19:
            raise BadRequest(f"query parameter {name!r} must be an integer")
        value = int(raw)
        if not lo <= value <= hi:
            raise BadRequest(f"query parameter {name!r} must be within {lo}..{hi}")
        return value

    def query_bool(self, name: str) -> bool:
        raw = self.query(name)
        if raw in (None, "", "false", "0"):
            return False
        if raw in ("true", "1"):
            return True
        raise BadRequest(f"query parameter {name!r} must be true or false")

    def content_type(self) -> str:
        return self.request.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        ctype = self.content_type()
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise UnsupportedMediaType(f"expected application/json, got {ctype}")
        if not self.body:
            raise BadRequest("request body is empty; expected JSON")
        try:
            # JSON Schema (and so /openapi.json) counts 3.0 as an integer: so do we
            return json.loads(self.body, parse_float=_parse_float)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None

    def json_object(self, allowed: set[str] | None = None) -> dict[str, Any]:
        value = self.json()
        if not isinstance(value, dict):
            raise BadRequest("request body must be a JSON object")
        if allowed is not None:
            unknown = set(value) - allowed
            if unknown:
                raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
            # an optional field is left out, never null (as /openapi.json says)
            nulls = sorted(k for k, v in value.items() if v is None)
            if nulls:
                raise BadRequest(f"null is not a value of {', '.join(nulls)}: leave it out")
        return value


def _parse_float(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and abs(value) <= 2**53 else value


def error_response(exc: ServiceError) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.code, "detail": exc.detail}
    headers = {}
    if exc.status == 401:
        body["error_description"] = exc.detail  # RFC 6749 §5.2 / RFC 6750 §3
        headers["WWW-Authenticate"] = f'Bearer error="{exc.code}"'
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after_s)  # RFC 9110 §10.2.3
    return JSONResponse(body, status_code=exc.status, headers=headers)


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization: Bearer <token> header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """Client credentials from HTTP Basic (RFC 6749 §2.3.1), if that header is used."""
    header = request.headers.get("authorization")
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials", code="invalid_client") from None
    cid, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials", code="invalid_client")
    return cid, secret


def _run(state: AppState, spec: RouteSpec, request: Request, body: bytes) -> Response:
    now_ms = state.settings.clock_ms()
    call = Call(request=request, body=body, state=state, now_ms=now_ms)
    if spec.tx == "none":
        return spec.handler(call)
    factory = state.db.write if spec.tx == "write" else state.db.read
    store: Store | None = None
    try:
        with factory() as session:
            if spec.scope is not None:
                call.principal = authenticate(session, _bearer(request), now_ms, state.tokens)
                if not call.principal.has(spec.scope):
                    raise Forbidden(f"this operation needs scope {spec.scope!r}",
                                    code="insufficient_scope")
            store = call.store = Store(session, state.settings.master_key, now_ms)
            return spec.handler(call)
    except IntegrityError:
        # A unique key taken by a concurrent request between our check and our insert
        # (PostgreSQL; SQLite writers are serialized): the request changed nothing.
        raise Conflict("conflicting concurrent change; retry", code="conflict") from None
    except ServiceError:
        if store is not None and store.audit.kept:
            with state.db.write() as session:
                Store(session, state.settings.master_key, now_ms).audit.replay(store.audit.kept)
        raise


def _cached_principal(state: AppState, request: Request, now_ms: int,
                      scope: str | None) -> Principal | None:
    """The caller's principal if its bearer token is in the token cache and holds ``scope``;
    None for anything else (no or malformed header, a miss, a revoked or expired token, a
    missing scope): then ``_run`` authenticates and answers as usual."""
    header = header_map(request).get("authorization")
    if not header or scope is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        principal = state.tokens.get(token, now_ms)
    except Unauthorized:
        return None
    return principal if principal is not None and principal.has(scope) else None


def _fast(state: AppState, spec: RouteSpec, request: Request, wait: bool) -> Response | None:
    """The route's fast path for a caller whose token is cached, else None.

    Raises:
        WouldWait: ``wait`` is False and the fast path would have waited.
    """
    assert spec.fast is not None
    now_ms = state.settings.clock_ms()
    principal = _cached_principal(state, request, now_ms, spec.scope)
    if principal is None:
        return None
    return spec.fast(state, request, principal, now_ms, wait)


def _run_fast(state: AppState, spec: RouteSpec, request: Request, body: bytes) -> Response:
    """The route's fast path when it takes the request, else :func:`_run` (in a thread)."""
    response = _fast(state, spec, request, wait=True)
    return response if response is not None else _run(state, spec, request, body)


def header_map(request: Request) -> dict[str, str]:
    """The request's headers by (lowercase) name, built once per request: the first of a
    repeated header, as ``request.headers.get`` answers (which scans the whole list on every
    call; the device hot path asks for five headers)."""
    found: dict[str, str] | None = request.scope.get("ztp.headers")
    if found is None:
        found = {}
        for name, value in request.scope["headers"]:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        request.scope["ztp.headers"] = found
    return found


def single_query(request: Request, name: str) -> list[str]:
    """``request.query_params.getlist(name)``, without parsing the query string into a
    multi-dict when it is the usual one, ``name=value`` with nothing to unquote."""
    raw: bytes = request.scope.get("query_string", b"")
    key, sep, value = raw.partition(b"=")
    if sep and key == name.encode() and not any(c in raw for c in b"&;%+"):
        return [value.decode("latin-1")]
    return request.query_params.getlist(name)


async def _read_body(request: Request, limit: int) -> bytes:
    headers = header_map(request)
    declared = headers.get("content-length")
    if declared is None and "transfer-encoding" not in headers \
            and request.scope["method"] in ("GET", "HEAD"):
        return b""  # no body (RFC 9112 §6.3: neither Content-Length nor Transfer-Encoding)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; at most {limit} allowed")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def make_endpoint(state: AppState, spec: RouteSpec) -> Callable[[Request], Any]:
    inline = spec.fast is not None and state.db.is_sqlite

    async def endpoint(request: Request) -> Response:
        try:
            body = await _read_body(request, spec.body_max)
            run = _run if spec.fast is None else _run_fast
            if inline:
                try:
                    response = _fast(state, spec, request, wait=False)
                except WouldWait:
                    pass  # a handler thread waits for the lock, then tries again
                else:
                    if response is not None:
                        return response
                    run = _run  # declined: the usual path
            return await asyncio.get_running_loop().run_in_executor(
                state.handlers, run, state, spec, request, body)
        except ServiceError as exc:
            return error_response(exc)

    endpoint.__name__ = spec.operation_id
    return endpoint
