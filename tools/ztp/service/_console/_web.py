"""HTTP security of the console pages (issue 18): headers, the session cookie, who is asking.

- Content-Security-Policy: only this origin's scripts and styles (no inline script or style,
  no eval), no frames of the console anywhere (``frame-ancestors 'none'``), forms post only
  here; plus ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  ``Cache-Control: no-store`` (pages hold operator data) and ``X-Frame-Options: DENY`` for
  browsers without CSP level 2.
- The session cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page
  sends it along: the first line against CSRF; the synchronizer token is the second), scoped
  to ``/console``, and Secure whenever the browser's request came over HTTPS: directly, or
  through a reverse proxy listed in ``ConsoleSettings.trusted_proxies`` that says so in
  ``X-Forwarded-Proto``. A proxy not listed is not believed (anyone can send that header).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["SECURITY_HEADERS", "client_address", "is_https", "set_cookie"]

SESSION_COOKIE = "ztp_console"
LOGIN_COOKIE = "ztp_console_login"  # the login form's CSRF token (double submit)
COOKIE_PATH = "/console"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _trusted(host: str | None, proxies: Sequence[str]) -> bool:
    if not host or not proxies:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(net) for net in proxies)


def is_https(request: Request, proxies: Sequence[str]) -> bool:
    """Did the browser's request come over HTTPS (directly, or via a trusted proxy)?"""
    if request.url.scheme == "https":
        return True
    host = request.client.host if request.client else None
    if _trusted(host, proxies):
        proto = request.headers.get("x-forwarded-proto", "")
        return proto.split(",")[0].strip().lower() == "https"
    return False


def client_address(request: Request, proxies: Sequence[str]) -> str:
    """The browser's address: the peer, or behind a trusted proxy the address the proxy saw
    (the last ``X-Forwarded-For`` entry: the one our proxy appended, not one a client made up)."""
    host = request.client.host if request.client else "unknown"
    if _trusted(host, proxies):
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                pass
    return host


def set_cookie(response: Response, name: str, value: str, *, secure: bool,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, secure=secure,
                        httponly=True, samesite="strict")


def clear_cookie(response: Response, name: str, *, secure: bool) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, secure=secure, httponly=True,
                           samesite="strict")
