"""ztp.gateway._policy: a verified SIM may fetch its config and post its data, nothing else."""

import pytest
from ztp.gateway import Request, RequestRejected, check_request
from ztp.iccid import build_ef_iccid

IDENTITY = build_ef_iccid("8944502509186389635")  # 98 44 05 52 90 81 36 98 36 F5
OTHER = build_ef_iccid("8944502509186389643")


def req(method: str, target: str, body: bytes = b"", headers=()) -> Request:
    return Request(method, target, "1.1", tuple(headers), body)


def test_config_request_rebuilt_lowercase():
    fwd = check_request(req("GET", "/v1/config/00AABB?iccid=984405529081369836F5&x=1"), IDENTITY)
    assert IDENTITY.hex() == "984405529081369836f5"
    assert fwd.method == "GET"
    assert fwd.path == "/v1/config/00aabb?iccid=984405529081369836f5"
    assert fwd.body == b""


def test_data_request_keeps_body_and_type():
    fwd = check_request(
        req(
            "POST",
            f"/v1/data/01?iccid={IDENTITY.hex()}",
            b"{}",
            [("content-type", b"application/json")],
        ),
        IDENTITY,
    )
    assert (fwd.body, fwd.content_type) == (b"{}", "application/json")


def test_iccid_mismatch_is_403_with_audit_detail():
    with pytest.raises(RequestRejected) as exc:
        check_request(req("GET", f"/v1/config/01?iccid={OTHER.hex()}"), IDENTITY)
    rej = exc.value
    assert (rej.status, rej.kind) == (403, "iccid_mismatch")
    assert rej.detail["requested_iccid"] == OTHER.hex()


@pytest.mark.parametrize(
    ("method", "target", "status", "kind"),
    [
        ("GET", "/v1/gateway/psks/984405529081369836f5", 404, "bad_route"),
        ("GET", "/v1/config/../admin?iccid=984405529081369836f5", 404, "bad_route"),
        ("POST", "/v1/config/01?iccid=984405529081369836f5", 405, "bad_method"),
        ("GET", "/v1/config/012?iccid=984405529081369836f5", 400, "bad_device_id"),
        ("GET", "/v1/config/01", 400, "bad_iccid"),
        ("GET", "/v1/config/01?iccid=98&iccid=984405529081369836f5", 400, "bad_iccid"),
        ("GET", "/v1/config/01?iccid=8944502509186389635", 400, "bad_iccid"),
    ],
)
def test_refused_without_forwarding(method, target, status, kind):
    with pytest.raises(RequestRejected) as exc:
        check_request(req(method, target), IDENTITY)
    assert (exc.value.status, exc.value.kind) == (status, kind)
