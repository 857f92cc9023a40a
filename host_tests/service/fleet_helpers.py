"""Helpers of the device-state and rollout tests: a device as the gateway presents it.

A report goes as the SIM posts C1 telemetry through the gateway: ``POST /v1/data/{DEVICEID}``
with the gateway's token and the identity headers (docs/INTERFACES.md).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from ztp.iccid import iccid_to_hex, luhn_check_digit

from .conftest import Svc


def digest(body: str | bytes) -> str:
    raw = body.encode() if isinstance(body, str) else body
    return f"crc32:{zlib.crc32(raw):08x}"


def report(outcome: str, body: str | None, code: int = 0, **extra: object) -> bytes:
    """The firmware's report document (lib/apply.py build_report)."""
    doc: dict[str, object] = {"v": 1, "digest": digest(body) if body is not None else None,
                              "outcome": outcome, "code": code, **extra}
    return json.dumps(doc, separators=(",", ":")).encode()


def make_iccid(n: int) -> str:
    payload = f"894450250918{n:06d}"
    return payload + luhn_check_digit(payload)


@dataclass
class Device:
    svc: Svc
    iccid: str
    device_id: str = "00112233"

    @property
    def identity(self) -> str:
        return iccid_to_hex(self.iccid)

    def _headers(self, identity: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.svc.gateway.token}",
                "X-ZTP-Identity": identity or self.identity, "X-ZTP-Key-Tag": "1",
                "X-ZTP-Gateway": "gw-test"}

    def get_config(self) -> tuple[int, bytes]:
        r = self.svc.http.get(f"/v1/config/{self.device_id}", params={"iccid": self.identity},
                              headers=self._headers())
        return r.status_code, r.content

    def post(self, body: bytes, *, identity: str | None = None, iccid_hex: str | None = None,
             device_id: str | None = None):
        return self.svc.http.post(f"/v1/data/{device_id or self.device_id}",
                                  params={"iccid": iccid_hex or self.identity}, content=body,
                                  headers=self._headers(identity))

    def provision(self, *, confirm: bool = True, reject_code: int = 0) -> bytes | None:
        """Ask for the configuration and report as the firmware does: applied (then
        confirmed after mark_good), unchanged, or rejected with ``reject_code``."""
        status, body = self.get_config()
        if status != 200:
            return None
        state = self.svc.admin.device(self.iccid, self.device_id)
        held = state["reported"]["digest"] if state["reported"] else None
        if held == digest(body):
            assert self.post(report("unchanged", body.decode(), 1)).status_code == 204
            return body
        if reject_code:  # the old body stays in force: its digest is reported
            doc = json.dumps({"v": 1, "digest": held, "outcome": "rejected",
                              "code": reject_code, "rejected": digest(body)},
                             separators=(",", ":")).encode()
            assert self.post(doc).status_code == 204
            return body
        assert self.post(report("applied", body.decode())).status_code == 204
        if confirm:
            assert self.post(report("confirmed", body.decode())).status_code == 204
        return body

