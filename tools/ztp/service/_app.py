"""``create_app(settings)``: the Starlette ASGI application of the configuration service."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from ._console import console_routes
from ._db import Database, migrate
from ._docs import docs_page, index_page
from ._fleet_routes import rollouts_start  # noqa: F401  (registers its routes: see below)
from ._http import ROUTES, AppState, make_endpoint
from ._keys import MasterKeyError, SecretHasher
from ._metrics import ServiceMetrics
from ._models import SimKey
from ._openapi import openapi_document

# Importing a route module registers all of its routes (the @route decorator of _http); one
# handler of each is named, never the package itself (its __init__ imports this module).
from ._rotation_routes import rotations_start  # noqa: F401
from ._routes import health  # noqa: F401
from ._settings import Settings

__all__ = ["create_app"]

# what a gateway asks for on behalf of every device exchange (GET /v1/config/...)
_HOT_PATHS = ("/v1/config/{device_id_hex}", "/v1/gateway/psks/{identity_hex}",
              "/v1/data/{device_id_hex}")


def check_master_keys(state: AppState) -> None:
    """Fail closed: every master key version used in the database must be configured."""
    with state.db.read() as session:
        used = set(session.scalars(select(SimKey.master_version).distinct()))
    missing = used - set(state.settings.master_key.versions)
    if missing:
        raise MasterKeyError(
            f"the database holds keys sealed under master key version(s) "
            f"{sorted(missing)}, which are not configured"
        )


class _PathApp:
    """All of one path's methods (HEAD runs GET); any other method gets 405 with an Allow
    header listing them all (RFC 9110 §15.5.6). An ASGI class, not a function: Starlette's
    Route then matches every method and leaves the choice to us."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        self._endpoints = endpoints
        self.methods = frozenset(endpoints)  # as documented (HEAD, OPTIONS implied)
        allowed = set(endpoints) | ({"HEAD"} if "GET" in endpoints else set())
        self._allow = ", ".join(sorted(allowed))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        handler = self._endpoints.get(request.method)
        if handler is None and request.method == "HEAD":
            handler = self._endpoints.get("GET")
        if handler is None:
            response: Response = JSONResponse(
                {"error": "method_not_allowed",
                 "detail": f"{request.method} is not allowed here; allowed: {self._allow}"},
                status_code=405, headers={"Allow": self._allow})
        else:
            response = await handler(request)
        await response(scope, receive, send)


def _measured(metrics: ServiceMetrics, operation: str,
              endpoint: Callable[[Request], Awaitable[Response]]
              ) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` counted and timed in ``metrics`` under its operationId."""

    async def measured(request: Request) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await endpoint(request)
            status = response.status_code
            return response
        finally:
            metrics.observe(operation, status, time.perf_counter() - start)

    return measured


def create_app(settings: Settings, *, database: Database | None = None) -> Starlette:
    """Build the ASGI app. Migrates the schema (``settings.auto_migrate``) and checks the
    master keyring against the database before it serves anything.

    Raises:
        MasterKeyError: stored keys need a master key version that is not configured.
    """
    db = database or Database(settings.database_url)
    if settings.auto_migrate:
        migrate(db)
    state = AppState(settings=settings, db=db, hasher=SecretHasher(fast=settings.fast_hashing))
    check_master_keys(state)
    doc = openapi_document()
    docs_html = docs_page(doc)
    index_html = index_page(doc["info"]["title"], doc["info"]["version"])
    metrics = ServiceMetrics()

    async def openapi(_request: Request) -> Response:
        return JSONResponse(doc)

    async def docs(_request: Request) -> Response:
        return HTMLResponse(docs_html)

    async def index(_request: Request) -> Response:
        return HTMLResponse(index_html)

    async def metrics_endpoint(_request: Request) -> Response:
        # No identities in any label (_metrics.py), so no token is asked for, as for the
        # gateway's /metrics: a scraper holds no client credential.
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    by_path: dict[str, dict[str, Any]] = {
        "/openapi.json": {"GET": openapi}, "/docs": {"GET": docs}, "/": {"GET": index},
        "/metrics": {"GET": metrics_endpoint}}
    for spec in ROUTES:
        by_path.setdefault(spec.path, {})[spec.method] = _measured(
            metrics, spec.operation_id, make_endpoint(state, spec))
    # One route per path, answering every method itself: a 405 then lists all the path's
    # methods in Allow (RFC 9110 §15.5.6). Literal paths before templated ones, so that
    # PATCH /v1/sims/import is a 405 of the import route, not a SIM called "import".
    # The gateway's per-device paths go first (Starlette tries routes in order: 28 regex
    # matches cost about 25 us a request), which changes no answer: no other path fits
    # their patterns (checked here).
    paths = sorted(by_path, key=lambda path: (path not in _HOT_PATHS, path.count("{")))
    routes: list[Any] = [Route(path, _PathApp(by_path[path])) for path in paths]
    for hot in (r for r in routes if r.path in _HOT_PATHS):
        clash = [p for p in paths if p != hot.path and hot.path_regex.match(p)]
        assert not clash, f"{hot.path} would shadow {clash}"
    routes.append(Mount("/console", routes=console_routes(state)))  # docs/console.md

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "detail": str(exc.detail)},
                            status_code=exc.status_code, headers=exc.headers)

    async def internal_error(_request: Request, _exc: Exception) -> Response:
        # No exception text to the caller: it may hold internals.
        return JSONResponse({"error": "internal", "detail": "internal server error"},
                            status_code=500)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {}
        db.dispose()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: internal_error})
    app.state.ztp = state
    app.state.metrics = metrics
    return app
