"""The console's pages (issue 18): Starlette routes under ``/console``, server-rendered with
Jinja2 (autoescaped), plain forms, one small script for the byte counter.

Every request runs as the API's do: in the thread pool, the signed-in operator resolved from
the session cookie in a short write transaction (it restarts the idle timer), then the page
in a read transaction (GET) or the change in a write transaction (POST) through ``_domain``.
A POST is refused unless its form carries the session's CSRF token (403) and, for a change,
unless the operator's role holds the scope (403). A refused change rolls its transaction
back, and the page is drawn again from a fresh read with the reason.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .._audit import Actor
from .._errors import ServiceError, TooManyRequests, Unauthorized
from .._http import IMPORT_BODY_MAX, AppState
from .._settings import CONFIG_BODY_MAX
from .._store import Store
from .._throttle import LoginThrottle
from ._accounts import (
    ConsoleUser,
    SessionLimits,
    check_csrf,
    check_password,
    end_session,
    resolve_session,
    sign_in,
)
from ._web import (
    LOGIN_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    clear_cookie,
    client_address,
    is_https,
    set_cookie,
)

__all__ = ["Console", "Ctx", "page", "redirect"]

T = TypeVar("T")
_FORM_MAX = 64 * 1024
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}
# ?ok=<code> after a redirect: fixed messages (never text from the URL on the page)
MESSAGES = {
    "saved": "Configuration saved.", "rolled_back": "Rolled back: the old body is the new "
    "current version.", "active": "SIM activated.", "suspended": "SIM suspended.",
    "retried": "Rotation retried: it is sent at the next run.",
    "cancelled": "Rotation cancelled.", "signed_out": "Signed out.",
    "deleted": "Configuration deleted (a deletion version; the history stays).",
    "fleet_saved": "Label configuration saved: every matching device gets it at once.",
    "fleet_deleted": "Label configuration deleted: its devices fall to the next matching "
    "label.", "rollout_started": "Rollout started.", "rollout_pause": "Rollout paused.",
    "rollout_resume": "Rollout resumed.",
    "rollout_abort": "Rollout aborted: the label's previous body is desired again.",
}


@dataclass
class Ctx:
    """One console request as a page handler sees it."""

    console: Console
    request: Request
    now_ms: int
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    user: ConsoleUser | None = None

    @property
    def actor(self) -> Actor:
        assert self.user is not None
        return Actor(self.user.username)

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str:
        value = self.request.query_params.get(name, "")
        return value.strip()[:200]

    def read(self, fn: Callable[[Store], T]) -> T:
        with self.console.state.db.read() as session:
            return fn(Store(session, self.console.state.settings.master_key, self.now_ms))

    def write(self, fn: Callable[[Store], T]) -> T:
        """``fn`` in a write transaction; a refusal rolls it back, and the audit records the
        domain code keeps for refusals are written in their own transaction (as the API)."""
        store: Store | None = None
        try:
            with self.console.state.db.write() as session:
                store = Store(session, self.console.state.settings.master_key, self.now_ms)
                return fn(store)
        except ServiceError:
            if store is not None and store.audit.kept:
                with self.console.state.db.write() as session:
                    Store(session, self.console.state.settings.master_key,
                          self.now_ms).audit.replay(store.audit.kept)
            raise

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        ok = self.request.query_params.get("ok")
        html = self.console.templates.get_template(template).render(
            user=self.user, can_write=bool(self.user and self.user.can_write),
            csrf=self.user.csrf_token if self.user else "",
            message=MESSAGES.get(ok or ""), **values)
        return HTMLResponse(html, status_code=status)

    def error(self, exc: ServiceError) -> Response:
        return self.render("error.html", status=exc.status, refusal=exc)


def redirect(path: str, **query: object) -> Response:
    q = {k: v for k, v in query.items() if v not in (None, "")}
    return RedirectResponse(path + ("?" + urlencode(q) if q else ""), status_code=303)


def utc(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Page:
    method: str
    path: str
    handler: Callable[[Ctx], Response]
    scope: str | None  # None: no session needed (the login page)


PAGES: list[Page] = []


def page(method: str, path: str, scope: str | None = "read"
         ) -> Callable[[Callable[[Ctx], Response]], Callable[[Ctx], Response]]:
    def register(fn: Callable[[Ctx], Response]) -> Callable[[Ctx], Response]:
        PAGES.append(Page(method, path, fn, scope))
        return fn

    return register


class Console:
    """The console bound to one app: its templates, static files and login throttles."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        cfg = state.settings.console
        self.limits = SessionLimits(idle_s=cfg.idle_s, max_s=cfg.max_s)
        self.proxies = cfg.trusted_proxies
        self.by_address = LoginThrottle(cfg.address_limits)
        self.by_account = LoginThrottle(cfg.account_limits)
        root = resources.files(__package__)
        self.templates = Environment(
            loader=FileSystemLoader(str(root / "templates")),
            autoescape=select_autoescape(["html"], default_for_string=True),
            trim_blocks=True, lstrip_blocks=True)
        self.templates.globals.update(utc=utc, body_max=CONFIG_BODY_MAX, qs=urlencode)
        self.static = {p.name: p.read_bytes() for p in (root / "static").iterdir()
                       if p.suffix in _STATIC_TYPES}

    def routes(self) -> list[BaseRoute]:
        by_path: dict[str, dict[str, Page]] = {}
        for p in PAGES:
            by_path.setdefault(p.path, {})[p.method] = p
        routes: list[BaseRoute] = [Route("/static/{name}", self._static, methods=["GET"])]
        for path, pages in by_path.items():
            routes.append(Route(path, self._endpoint(pages), methods=list(pages)))
        return routes

    async def _static(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = self.static.get(name)
        if body is None:
            return Response("not found", status_code=404, headers=SECURITY_HEADERS)
        suffix = name[name.rfind("."):]
        return Response(body, media_type=_STATIC_TYPES[suffix], headers=SECURITY_HEADERS)

    def _endpoint(self, pages: dict[str, Page]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            spec = pages[request.method if request.method != "HEAD" else "GET"]
            form: dict[str, str] = {}
            files: dict[str, bytes] = {}
            if request.method == "POST":
                limit = IMPORT_BODY_MAX if spec.path == "/import" else _FORM_MAX
                declared = request.headers.get("content-length", "")
                if not declared.isdigit() or int(declared) > limit + 4096:
                    # browsers always declare a form's length: none is 411, too much 413
                    response: Response = HTMLResponse(
                        "request too large" if declared else "length required",
                        status_code=413 if declared else 411)
                    response.headers.update(SECURITY_HEADERS)
                    return response
                async with request.form(max_files=1, max_fields=32) as data:
                    for key, value in data.multi_items():
                        if isinstance(value, UploadFile):
                            files[key] = await value.read(limit + 1)
                        else:
                            form[key] = value
            response = await run_in_threadpool(self._run, spec, request, form, files)
            response.headers.update(SECURITY_HEADERS)
            return response

        return endpoint

    def _run(self, spec: Page, request: Request, form: dict[str, str],
             files: dict[str, bytes]) -> Response:
        ctx = Ctx(self, request, self.state.settings.clock_ms(), form, files)
        if spec.scope is not None:
            token = request.cookies.get(SESSION_COOKIE, "")
            with self.state.db.write() as session:
                ctx.user = resolve_session(session, token, ctx.now_ms, self.limits)
            if ctx.user is None:
                if request.method == "GET":
                    return redirect("/console/login")
                return ctx.render("error.html", status=401,
                                  refusal=Unauthorized("not signed in (or the session ended)"))
            if request.method == "POST" and not check_csrf(ctx.user.csrf_token,
                                                           form.get("csrf")):
                return ctx.render("error.html", status=403, refusal=ServiceError(
                    "the form's CSRF token is missing or wrong: reload the page and retry"))
            if not ctx.user.has(spec.scope):
                return ctx.render("error.html", status=403, refusal=ServiceError(
                    f"your role ({ctx.user.role}) may not do this"))
        try:
            return spec.handler(ctx)
        except ServiceError as exc:
            return ctx.error(exc)

    # ------------------------------------------------------------------ sign-in

    def login_form(self, ctx: Ctx, status: int = 200, error: str | None = None) -> Response:
        token = secrets.token_urlsafe(32)
        response = ctx.render("login.html", status=status, login_csrf=token, error=error)
        set_cookie(response, LOGIN_COOKIE, token, secure=is_https(ctx.request, self.proxies),
                   max_age=3600)
        return response

    def login(self, ctx: Ctx) -> Response:
        """Check the password (throttled per address and per account before any Argon2
        work), open a session and set its cookie."""
        cookie = ctx.request.cookies.get(LOGIN_COOKIE, "")
        given = ctx.form.get("csrf", "")
        if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
            return self.login_form(ctx, 403, "The form expired: sign in again.")
        username = ctx.form.get("username", "").strip().lower()[:64]
        password = ctx.form.get("password", "")
        address = client_address(ctx.request, self.proxies)
        try:
            self.by_address.check(address, ctx.now_ms)
            self.by_account.check(username, ctx.now_ms)
        except TooManyRequests as exc:
            response = self.login_form(ctx, 429, "Too many failed sign-ins: wait "
                                                 f"{exc.retry_after_s} s and retry.")
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        try:
            with self.state.logins.turn(), self.state.db.write() as session:
                user = check_password(session, self.state.hasher, username, password)
                token = sign_in(session, user, ctx.now_ms, self.limits)
                Store(session, self.state.settings.master_key, ctx.now_ms).audit.record(
                    Actor(user.username), "console.login",
                    detail={"address": address, "role": user.role})
        except Unauthorized:
            self.by_address.failed(address, ctx.now_ms)
            self.by_account.failed(username, ctx.now_ms)
            return self.login_form(ctx, 401, "Wrong username or password.")
        except TooManyRequests as exc:
            return self.login_form(ctx, 429, exc.detail)
        response = redirect("/console/sims")
        secure = is_https(ctx.request, self.proxies)
        set_cookie(response, SESSION_COOKIE, token, secure=secure)
        clear_cookie(response, LOGIN_COOKIE, secure=secure)
        return response

    def logout(self, ctx: Ctx) -> Response:
        assert ctx.user is not None
        user = ctx.user
        with self.state.db.write() as session:
            end_session(session, user.session_id, ctx.now_ms)
            Store(session, self.state.settings.master_key, ctx.now_ms).audit.record(
                Actor(user.username), "console.logout")
        response = redirect("/console/login", ok="signed_out")
        clear_cookie(response, SESSION_COOKIE, secure=is_https(ctx.request, self.proxies))
        return response
