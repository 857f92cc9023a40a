"""HTTP client for the configuration service's gateway-facing API (docs/INTERFACES.md).

Every call carries ``Authorization: Bearer <gateway token>``. Device requests additionally
carry the verified identity (``X-ZTP-Identity``) and the tag of the key whose binder verified
(``X-ZTP-Key-Tag``); every call names the gateway (``X-ZTP-Gateway``), which the service
records in its audit rows. Answers are parsed strictly:
a malformed answer is a :class:`ServiceError`, never a half-understood key list.

The two calls on the per-connection path (key lookups and forwarding) go through
:class:`~._upstream.UpstreamPool` (httptools, keep-alive; see its module comment for why); the
rest through httpx. When a test injects an httpx ``transport``, or the environment sets an HTTP
proxy that httpx would use, everything goes through httpx.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._policy import ForwardRequest
from ._psk_cache import PskKey
from ._upstream import UpstreamError, UpstreamPool, UpstreamReply

__all__ = ["ServiceClient", "ServiceError", "UpstreamResponse"]

_HEX = re.compile(r"[0-9a-fA-F]*")
MAX_KEYS = 8  # candidates per identity (a rotation needs 2)


class ServiceError(Exception):
    """The service could not be reached, refused the gateway, or answered malformed data.

    Attributes:
        status: HTTP status to give the SIM for a forwarded request: 502 (bad answer or
            unreachable) or 504 (timed out).
    """

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    body: bytes = field(default=b"", repr=False)  # a config body may hold device secrets
    content_type: str | None = None


def _unhex(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) % 2 or not _HEX.fullmatch(value):
        raise ServiceError(f"service answered a malformed {what} (expected hex)")
    return bytes.fromhex(value)


def _proxied(base_url: str) -> bool:
    """Whether httpx (trust_env) would send requests for ``base_url`` through a proxy."""
    proxies = urllib.request.getproxies_environment()
    if not any(k in proxies for k in ("http", "https", "all")):
        return False
    host = httpx.URL(base_url).host
    return not urllib.request.proxy_bypass_environment(host, proxies)


class ServiceClient:
    """Async client of the service; one per gateway process (keeps a connection pool)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        gateway_name: str,
        *,
        credentials: tuple[str, str] | None = None,
        timeout_s: float = 10.0,
        max_response: int = 64 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if token is None and credentials is None:
            raise ValueError("need a gateway token or client credentials")
        if token is not None and (not token or any(c in token for c in "\r\n")):
            raise ValueError("gateway token must be a non-empty single line")
        self.gateway_name = gateway_name
        self._credentials = credentials
        self._token = token
        self._login_lock = asyncio.Lock()
        self.max_response = max_response
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            transport=transport,
            follow_redirects=False,
        )
        self._pool: UpstreamPool | None = None
        if transport is None and not _proxied(base_url):
            https = base_url.startswith("https:")
            self._pool = UpstreamPool(
                base_url,
                timeout_s=timeout_s,
                # the same trust store and environment (SSL_CERT_FILE, ...) as httpx
                ssl_context=httpx.create_ssl_context(verify=True, trust_env=True)
                if https
                else None,
            )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        await self._client.aclose()

    async def _login(self, stale: str | None) -> None:
        """Client-credentials grant (RFC 6749 §4.4) for a fresh token, once per expiry."""
        assert self._credentials is not None
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return  # another request already refreshed it
            client_id, secret = self._credentials
            form = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": "gateway",
            }
            resp = await self._send("POST", "/v1/auth/token", [], None, {"data": form})
            if resp.status != 200:
                raise ServiceError(
                    f"POST /v1/auth/token: gateway login refused ({resp.status})"
                )
            token = self._json(resp, "POST /v1/auth/token").get("access_token")
            if not isinstance(token, str) or not token or "\n" in token:
                raise ServiceError("POST /v1/auth/token: no access_token in the answer")
            self._token = token

    async def _request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]] | None = None,
        content: bytes | None = None,
        **kwargs: Any,
    ) -> UpstreamReply:
        """``method url`` with the gateway's token and name; a 401 with client credentials
        logs in again and retries once. ``kwargs`` (httpx's ``params``, ``json``, ``data``)
        send it through httpx; without them it goes through the keep-alive pool."""
        if self._token is None:
            await self._login(None)
        token = self._token
        # every call names this gateway: the service records it in the audit rows' gateway
        # column (the credential's client id goes in the actor column)
        sent = [
            *(headers or ()),
            ("Authorization", f"Bearer {token}"),
            ("X-ZTP-Gateway", self.gateway_name),
        ]
        resp = await self._send(method, url, sent, content, kwargs)
        if resp.status == 401 and self._credentials is not None:
            await self._login(token)  # expired: log in again and retry once
            sent[-2] = ("Authorization", f"Bearer {self._token}")
            resp = await self._send(method, url, sent, content, kwargs)
        return resp

    async def _send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        content: bytes | None,
        kwargs: dict[str, Any],
    ) -> UpstreamReply:
        if self._pool is not None and not kwargs:
            try:
                return await self._pool.request(
                    method, url, headers, content, self.max_response
                )
            except UpstreamError as exc:
                raise ServiceError(str(exc), 504 if exc.timed_out else 502) from None
        where = f"{method} {url.split('?')[0]}"
        try:
            async with self._client.stream(
                method, url, headers=headers, content=content, **kwargs
            ) as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_response:
                        raise ServiceError(f"{where}: answer exceeds {self.max_response} bytes")
                return UpstreamReply(
                    resp.status_code, resp.headers.get("content-type"), bytes(body)
                )
        except httpx.TimeoutException as exc:
            raise ServiceError(f"{where}: timed out ({exc.__class__.__name__})", 504) from None
        except httpx.HTTPError as exc:
            raise ServiceError(f"{where}: {exc.__class__.__name__}: {exc}") from None

    def _json(self, resp: UpstreamReply, what: str) -> dict[str, Any]:
        try:
            data = json.loads(resp.body)
        except ValueError:
            raise ServiceError(f"{what}: answer is not JSON") from None
        if not isinstance(data, dict):
            raise ServiceError(f"{what}: answer is not a JSON object")
        return data

    async def get_psks(self, identity: bytes) -> tuple[PskKey, ...] | None:
        """Candidate keys for ``identity``; None when unknown or suspended (404).

        Raises:
            ServiceError: unreachable, refused (401/403: wrong gateway token) or malformed.
        """
        what = f"GET /v1/gateway/psks/{identity.hex()}"
        resp = await self._request("GET", f"/v1/gateway/psks/{identity.hex()}")
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise ServiceError(f"{what}: expected 200 or 404, got {resp.status}")
        data = self._json(resp, what)
        if _unhex(data.get("identity"), "identity") != identity:
            raise ServiceError(f"{what}: answer is for another identity")
        keys = data.get("keys")
        if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
            raise ServiceError(f"{what}: expected 1-{MAX_KEYS} keys")
        out = []
        for item in keys:
            if not isinstance(item, dict) or not isinstance(item.get("tag"), str):
                raise ServiceError(f"{what}: key entry without a string tag")
            try:
                out.append(PskKey(item["tag"], _unhex(item.get("psk"), "psk")))
            except ValueError as exc:
                raise ServiceError(f"{what}: {exc}") from None
        return tuple(out)

    async def psk_changes(self, after: int) -> tuple[int, tuple[bytes, ...]]:
        """(last event number, identities whose keys changed after event ``after``)."""
        what = "GET /v1/gateway/psk-changes"
        resp = await self._request("GET", "/v1/gateway/psk-changes", params={"after": after})
        if resp.status != 200:
            raise ServiceError(f"{what}: expected 200, got {resp.status}")
        data = self._json(resp, what)
        last, identities = data.get("last"), data.get("identities")
        if not isinstance(last, int) or isinstance(last, bool) or last < 0:
            raise ServiceError(f"{what}: 'last' must be a non-negative integer")
        if not isinstance(identities, list):
            raise ServiceError(f"{what}: 'identities' must be a list")
        return last, tuple(_unhex(i, "identity") for i in identities)

    async def post_event(self, kind: str, identity: bytes, detail: dict[str, Any]) -> None:
        """Audit an event (e.g. ``iccid_mismatch``) through ``POST /v1/gateway/events``; the
        gateway's name travels as ``X-ZTP-Gateway`` (the audit row's gateway column)."""
        resp = await self._request(
            "POST",
            "/v1/gateway/events",
            json={"kind": kind, "identity": identity.hex(), "detail": detail},
        )
        if not 200 <= resp.status < 300:
            raise ServiceError(f"POST /v1/gateway/events: got {resp.status}")

    async def forward(
        self, request: ForwardRequest, identity: bytes, key_tag: str
    ) -> UpstreamResponse:
        """Send the SIM's (checked) request to the service with the verified identity.

        Returns the service's answer for 2xx and 4xx statuses.

        Raises:
            ServiceError: unreachable (502), timed out (504), 401 (the gateway's own token was
                refused: not the SIM's fault, 502) or a 5xx (502).
        """
        headers = [("X-ZTP-Identity", identity.hex()), ("X-ZTP-Key-Tag", key_tag)]
        if request.content_type:
            headers.append(("Content-Type", request.content_type))
        resp = await self._request(
            request.method,
            request.path,
            headers,
            request.body if request.method == "POST" else None,
        )
        if resp.status == 401 or resp.status >= 500 or resp.status < 200:
            where = f"{request.method} {request.path.split('?')[0]}"
            raise ServiceError(f"{where}: service answered {resp.status}")
        return UpstreamResponse(resp.status, resp.body, resp.content_type)
