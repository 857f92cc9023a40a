"""``ServiceClient``: a small typed client of the service's HTTP API (httpx), and
``bootstrap_credentials`` for tests and the demo (first admin + a gateway credential)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from ._auth import create_client
from ._db import Database, migrate
from ._keys import SecretHasher
from ._settings import Settings

__all__ = ["Credentials", "ServiceClient", "ServiceClientError", "bootstrap_credentials",
           "create_admin"]


class ServiceClientError(Exception):
    """The service refused a request: ``status``, ``code`` and ``detail`` say why."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class ServiceClient:
    """Client of the operator and gateway APIs.

    Args:
        base_url: e.g. ``http://127.0.0.1:8080``.
        token: bearer token (see :meth:`login`).
        http: an ``httpx.Client`` (with its own ``base_url``) to use instead of a new one,
            e.g. Starlette's ``TestClient`` for an in-process app.

    Every method raises :class:`ServiceClientError` on a 4xx/5xx answer.
    """

    def __init__(
        self, base_url: str = "http://127.0.0.1:8080", token: str | None = None, *,
        http: httpx.Client | None = None, timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._own = http is None
        self.expires_in = 0  # seconds the last login's token lasts (0: no login yet)

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
        content: bytes | str | None = None, headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {self.token}"
        resp = self._http.request(method, path, json=json, params=params, content=content,
                                  headers=hdrs)
        if resp.status_code >= 400:
            try:
                err = resp.json()
                code, detail = str(err.get("error")), str(err.get("detail"))
            except ValueError:
                code, detail = "http_error", resp.text[:200]
            raise ServiceClientError(resp.status_code, code, detail)
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.request(method, path, **kw)
        return resp.json() if resp.content else None

    # ------------------------------------------------------------------ auth

    def login(self, client_id: str, client_secret: str, scope: str | None = None) -> str:
        """Client-credentials grant; stores and returns the access token."""
        data = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": client_secret}
        if scope:
            data["scope"] = scope
        resp = self._http.post("/v1/auth/token", data=data)
        if resp.status_code >= 400:
            err = resp.json()
            raise ServiceClientError(resp.status_code, err.get("error", "?"),
                                     err.get("detail", ""))
        out = resp.json()
        self.token = out["access_token"]
        self.expires_in = int(out.get("expires_in") or 0)  # seconds; 0: not said
        return self.token

    def revoke(self, token: str) -> bool:
        return bool(self._json("POST", "/v1/auth/revoke", json={"token": token})["revoked"])

    def create_client(self, client_id: str, scopes: list[str]) -> str:
        """Create a client credential (admin); returns its secret."""
        out = self._json("POST", "/v1/clients", json={"client_id": client_id, "scopes": scopes})
        return str(out["client_secret"])

    def create_gateway(self, name: str) -> str:
        """Create a gateway credential named ``name`` (admin); returns its secret."""
        return self.create_client(name, ["gateway"])

    def disable_client(self, client_id: str) -> None:
        self.request("DELETE", f"/v1/clients/{client_id}")

    # ------------------------------------------------------------------ SIMs and keys

    def create_sim(
        self, iccid: str, *, psk: bytes | None = None, generate_psk: bool = False,
        tag: str | None = None, labels: dict[str, str] | None = None, force: bool = False,
        state: str = "active", bind_first_device: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"iccid": iccid, "force": force, "state": state,
                                "bind_first_device": bind_first_device}
        if psk is not None:
            body["psk"] = psk.hex()
        if generate_psk:
            body["generate_psk"] = True
        if tag is not None:
            body["tag"] = tag
        if labels:
            body["labels"] = labels
        return dict(self._json("POST", "/v1/sims", json=body))

    def import_psks(
        self, rows: list[dict[str, Any]] | str, *, force: bool = False
    ) -> dict[str, int]:
        """Import a key file: a list of ``{iccid, psk(hex), tag?}`` rows, or CSV text."""
        params = {"force": "true"} if force else None
        if isinstance(rows, str):
            return dict(self._json("POST", "/v1/sims/import", content=rows.encode(),
                                   params=params, headers={"Content-Type": "text/csv"}))
        return dict(self._json("POST", "/v1/sims/import", json=rows, params=params))

    def get_sim(self, iccid: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/sims/{iccid}"))

    def list_sims(self, **params: Any) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/sims", params=params)["sims"])

    def update_sim(self, iccid: str, **fields: Any) -> dict[str, Any]:
        return dict(self._json("PATCH", f"/v1/sims/{iccid}", json=fields))

    def suspend_sim(self, iccid: str) -> dict[str, Any]:
        return self.update_sim(iccid, state="suspended")

    def delete_sim(self, iccid: str) -> None:
        self.request("DELETE", f"/v1/sims/{iccid}")

    def add_key(
        self, iccid: str, kind: str = "psk", key: bytes | None = None, tag: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind}
        if key is not None:
            body["key"] = key.hex()
        if tag is not None:
            body["tag"] = tag
        return dict(self._json("POST", f"/v1/sims/{iccid}/keys", json=body))

    def set_key_state(self, iccid: str, kind: str, tag: str, state: str) -> dict[str, Any]:
        return dict(self._json("PATCH", f"/v1/sims/{iccid}/keys/{kind}/{tag}",
                               json={"state": state}))

    def telemetry(self, iccid: str, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/v1/sims/{iccid}/telemetry",
                               params={"limit": limit})["telemetry"])

    # ------------------------------------------------------------------ configurations

    def set_config(
        self, iccid: str, device_id: str, body: str, *, require_json: bool | None = None,
        if_version: int | None = None, comment: str | None = None,
    ) -> dict[str, Any]:
        """Set the configuration for ``device_id`` (hex, or ``"default"``)."""
        payload: dict[str, Any] = {"body": body}
        if require_json is not None:
            payload["require_json"] = require_json
        if if_version is not None:
            payload["if_version"] = if_version
        if comment is not None:
            payload["comment"] = comment
        return dict(self._json("PUT", f"/v1/sims/{iccid}/configs/{device_id}", json=payload))

    def get_config(self, iccid: str, device_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/sims/{iccid}/configs/{device_id}"))

    def list_configs(self, iccid: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/v1/sims/{iccid}/configs")["configs"])

    def delete_config(self, iccid: str, device_id: str) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/v1/sims/{iccid}/configs/{device_id}"))

    def history(self, iccid: str, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/v1/sims/{iccid}/configs/{device_id}/history",
                               params={"limit": limit})["versions"])

    def rollback(self, iccid: str, device_id: str, version: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/sims/{iccid}/configs/{device_id}/rollback",
                               json={"version": version}))

    def export_configs(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/configs/export")["configs"])

    def import_configs(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        return dict(self._json("POST", "/v1/configs/import", json={"configs": rows}))

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/audit", params=params)["events"])

    # ------------------------------------------------------------------ devices, fleets

    def devices(self, **params: Any) -> list[dict[str, Any]]:
        """Device states; params: state (in_sync|pending|failed|unmanaged), label (k=v)."""
        return list(self._json("GET", "/v1/devices", params=params)["devices"])

    def device(self, iccid: str, device_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/devices/{iccid}/{device_id}"))

    def set_label_config(self, label: str, body: str, priority: int, *,
                         require_json: bool | None = None, comment: str | None = None,
                         ) -> dict[str, Any]:
        data: dict[str, Any] = {"body": body, "priority": priority}
        if require_json is not None:
            data["require_json"] = require_json
        if comment:
            data["comment"] = comment
        return dict(self._json("PUT", f"/v1/label-configs/{label}", json=data))

    def label_configs(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/label-configs")["configs"])

    def label_config(self, label: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/label-configs/{label}"))

    def delete_label_config(self, label: str) -> None:
        self.request("DELETE", f"/v1/label-configs/{label}")

    def start_rollout(self, label: str, body: str, **fields: Any) -> dict[str, Any]:
        """fields: stages, devices, max_failures, priority, require_json, comment."""
        data = {"label": label, "body": body,
                **{k: v for k, v in fields.items() if v is not None}}
        return dict(self._json("POST", "/v1/rollouts", json=data))

    def rollouts(self, **params: Any) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/rollouts", params=params)["rollouts"])

    def rollout(self, rollout_id: int, action: str | None = None) -> dict[str, Any]:
        """A rollout's status; action pause, resume or abort changes it first."""
        if action is None:
            return dict(self._json("GET", f"/v1/rollouts/{rollout_id}"))
        return dict(self._json("POST", f"/v1/rollouts/{rollout_id}/{action}"))

    # ------------------------------------------------------------------ gateway side

    def gateway_psks(self, identity_hex: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/gateway/psks/{identity_hex}"))

    def psk_changes(self, after: int = 0) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/gateway/psk-changes", params={"after": after}))

    def gateway_event(self, kind: str, identity_hex: str | None = None,
                      detail: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"kind": kind, "detail": detail or {}}
        if identity_hex is not None:
            body["identity"] = identity_hex
        self.request("POST", "/v1/gateway/events", json=body)


@dataclass(frozen=True)
class Credentials:
    """Client credentials made by :func:`bootstrap_credentials` (secrets: keep them safe)."""

    admin_id: str
    admin_secret: str
    gateway_id: str
    gateway_secret: str

    def __repr__(self) -> str:
        return f"Credentials(admin_id={self.admin_id!r}, gateway_id={self.gateway_id!r})"


def create_admin(settings: Settings, client_id: str = "admin",
                 scopes: tuple[str, ...] = ("admin",)) -> str:
    """Create a client directly in the database (the first admin); returns its secret.

    Raises:
        ztp.service.ServiceError: bad id, or the client exists (Conflict).
    """
    db = Database(settings.database_url)
    try:
        migrate(db)
        hasher = SecretHasher(fast=settings.fast_hashing)
        with db.write() as session:
            return create_client(session, hasher, client_id, set(scopes), settings.clock_ms())
    finally:
        db.dispose()


def bootstrap_credentials(
    settings: Settings, admin_id: str = "admin", gateway_id: str = "gateway"
) -> Credentials:
    """An admin and a gateway credential, straight into the database (tests, demo)."""
    admin_secret = create_admin(settings, admin_id)
    gateway_secret = create_admin(settings, gateway_id, ("gateway",))
    return Credentials(admin_id, admin_secret, gateway_id, gateway_secret)
