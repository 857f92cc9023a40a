"""A device as the gateway presents it to the service, for the console's device, fleet and
rollout tests: configuration requests and C1 reports with the gateway's token and identity
headers (docs/INTERFACES.md), as ``host_tests/service/fleet_helpers.py`` drives the API."""

from __future__ import annotations

import json
import zlib

from ztp.iccid import iccid_to_hex, luhn_check_digit


def digest(body: str) -> str:
    return f"crc32:{zlib.crc32(body.encode()):08x}"


def make_iccid(n: int) -> str:
    payload = f"894450250918{n:06d}"
    return payload + luhn_check_digit(payload)


def _headers(iccid: str) -> dict[str, str]:
    return {"X-ZTP-Identity": iccid_to_hex(iccid), "X-ZTP-Key-Tag": "1",
            "X-ZTP-Gateway": "gw-test"}


def get_config(console, iccid: str, device_id: str) -> bytes:
    r = console.gateway.request("GET", f"/v1/config/{device_id}",
                                params={"iccid": iccid_to_hex(iccid)}, headers=_headers(iccid))
    return r.content


def send_report(console, iccid: str, device_id: str, outcome: str, digest_hex: str | None,
                code: int = 0, **extra: object) -> None:
    """The firmware's report document (lib/apply.py build_report) as C1 telemetry."""
    doc = {"v": 1, "digest": digest_hex, "outcome": outcome, "code": code, **extra}
    console.gateway.request("POST", f"/v1/data/{device_id}",
                            params={"iccid": iccid_to_hex(iccid)},
                            content=json.dumps(doc, separators=(",", ":")).encode(),
                            headers=_headers(iccid))


def provision(console, iccid: str, device_id: str, *, reject_code: int = 0) -> str:
    """Ask for the configuration, apply and confirm it (after mark_good), or reject it with
    ``reject_code``: the old body stays in force, and its digest is reported."""
    body = get_config(console, iccid, device_id).decode()
    if reject_code:
        held = console.admin.device(iccid, device_id)["reported"]
        send_report(console, iccid, device_id, "rejected", held["digest"] if held else None,
                    reject_code, rejected=digest(body))
        return body
    send_report(console, iccid, device_id, "applied", digest(body))
    send_report(console, iccid, device_id, "confirmed", digest(body))
    return body
