"""What a verified SIM may ask the service: the gateway's request policy (pure functions).

SAFE2-PROTOCOL.md "HTTP requests the SIM sends through the tunnel": a SIM asks
``GET /v1/config/{DEVICEID}?iccid={ICCID}`` or ``POST /v1/data/{DEVICEID}?iccid={ICCID}``,
DeviceID and ICCID as hex of their bytes (ICCID = the 10 raw EF_ICCID bytes, which are also the
PSK identity). The gateway knows which identity's binder verified, so a request naming another
ICCID is refused here (403, audited by the caller) and never reaches the service. Anything else
the SIM might send is refused too: the gateway forwards only these two routes, rebuilt from the
parsed parts (lowercase hex, only the ``iccid`` query parameter), never the raw target.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field

from ._http import Request

__all__ = ["ForwardRequest", "RequestRejected", "check_request", "MAX_DEVICE_ID_BYTES"]

MAX_DEVICE_ID_BYTES = 64  # MKR: 16-byte unique id; leave room for other boards
_ROUTES = {"config": "GET", "data": "POST"}
_PATH = re.compile(r"/v1/(config|data)/([0-9A-Fa-f]+)")
_HEX20 = re.compile(r"[0-9A-Fa-f]{20}")


@dataclass(frozen=True)
class ForwardRequest:
    """A request the gateway may forward: rebuilt, normalized, bound to the verified identity."""

    method: str
    path: str  # "/v1/config/<device hex>?iccid=<identity hex>", lowercase
    device_id_hex: str
    iccid_hex: str
    body: bytes = b""
    content_type: str | None = None


@dataclass
class RequestRejected(Exception):
    """The request is refused without forwarding.

    Attributes:
        status: the HTTP status for the SIM (400, 403, 404, 405).
        kind: a short machine name (``iccid_mismatch``, ``bad_route``, ...); ``iccid_mismatch``
            is what the gateway audits through ``POST /v1/gateway/events``.
        reason: human-readable text for logs (no secrets: paths and hex identities only).
        detail: JSON-able details for the audit event.
    """

    status: int
    kind: str
    reason: str
    detail: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.kind}: {self.reason}"


def check_request(request: Request, identity: bytes) -> ForwardRequest:
    """Check a SIM's request against its verified PSK identity and rebuild it for forwarding.

    Args:
        request: the parsed request from the tunnel.
        identity: the raw PSK identity whose binder verified (10 EF_ICCID bytes).

    Returns:
        The normalized request to forward.

    Raises:
        RequestRejected: 404 unknown path, 405 wrong method, 400 missing/malformed ``iccid`` or
            device id, 403 ``iccid_mismatch`` when the ``iccid`` is not the verified identity.
    """
    path, _, query = request.target.partition("?")
    m = _PATH.fullmatch(path)
    if m is None:
        raise RequestRejected(404, "bad_route", f"no such route {path[:80]!r}")
    route, device_hex = m.groups()
    if request.method != _ROUTES[route]:
        raise RequestRejected(
            405, "bad_method", f"{route} expects {_ROUTES[route]}, got {request.method}"
        )
    if len(device_hex) % 2 or len(device_hex) > 2 * MAX_DEVICE_ID_BYTES:
        raise RequestRejected(
            400,
            "bad_device_id",
            f"device id must be 1-{MAX_DEVICE_ID_BYTES} bytes of hex, got {len(device_hex)} chars",
        )
    iccids = [v for k, _, v in (p.partition("=") for p in query.split("&") if p) if k == "iccid"]
    if len(iccids) != 1:
        raise RequestRejected(
            400, "bad_iccid", f"expected one iccid query parameter, got {len(iccids)}"
        )
    iccid_hex = iccids[0]
    if not _HEX20.fullmatch(iccid_hex):
        raise RequestRejected(
            400, "bad_iccid", f"iccid must be 20 hex characters (EF_ICCID), got {iccid_hex[:40]!r}"
        )
    requested = bytes.fromhex(iccid_hex)
    if not hmac.compare_digest(requested, identity):
        raise RequestRejected(
            403,
            "iccid_mismatch",
            f"request names iccid {requested.hex()}, verified identity is {identity.hex()}",
            {"requested_iccid": requested.hex(), "route": route, "device_id": device_hex.lower()},
        )
    device_hex = device_hex.lower()
    iccid_hex = identity.hex()
    if route == "data":
        content_type = request.header("content-type")
        return ForwardRequest(
            request.method,
            f"/v1/data/{device_hex}?iccid={iccid_hex}",
            device_hex,
            iccid_hex,
            request.body,
            content_type.decode("latin-1") if content_type else None,
        )
    return ForwardRequest(
        request.method, f"/v1/config/{device_hex}?iccid={iccid_hex}", device_hex, iccid_hex
    )
