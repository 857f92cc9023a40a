"""The gateway-facing API of docs/INTERFACES.md, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from ztp.service import ServiceClientError

from .conftest import ICCID, IDENTITY_HEX, PSK, Svc


def test_psk_lookup_returns_all_usable_keys(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.add_key(ICCID, "psk", key=b"\x11" * 16, tag="2")
    out = svc.gateway.gateway_psks(IDENTITY_HEX)
    assert out == {"identity": IDENTITY_HEX, "iccid": ICCID,
                   "keys": [{"tag": "1", "psk": PSK.hex()}, {"tag": "2", "psk": "11" * 16}]}
    svc.admin.set_key_state(ICCID, "psk", "1", "retired")
    assert [k["tag"] for k in svc.gateway.gateway_psks(IDENTITY_HEX)["keys"]] == ["2"]
    # upper-case hex is the same identity
    assert svc.gateway.gateway_psks(IDENTITY_HEX.upper())["identity"] == IDENTITY_HEX


def test_psk_lookup_unknown_and_suspended_are_404(svc: Svc) -> None:
    with pytest.raises(ServiceClientError) as err:
        svc.gateway.gateway_psks(IDENTITY_HEX)
    assert err.value.status == 404
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.suspend_sim(ICCID)
    with pytest.raises(ServiceClientError) as err:
        svc.gateway.gateway_psks(IDENTITY_HEX)
    assert err.value.status == 404


def test_psk_lookup_bad_identity_is_400(svc: Svc) -> None:
    for bad in ("98440552908136983", "zz4405529081369836f5", "9844055290813698A6F5"):
        with pytest.raises(ServiceClientError) as err:
            svc.gateway.gateway_psks(bad)
        assert err.value.status in (400, 404), bad


def test_psk_changes_feed(svc: Svc) -> None:
    start = svc.gateway.psk_changes(0)
    assert start == {"last": 0, "identities": []}
    svc.admin.create_sim(ICCID, psk=PSK)
    after_create = svc.gateway.psk_changes(0)
    assert after_create["identities"] == [IDENTITY_HEX] and after_create["last"] >= 1
    assert svc.gateway.psk_changes(after_create["last"]) == {
        "last": after_create["last"], "identities": []}
    svc.admin.suspend_sim(ICCID)
    changed = svc.gateway.psk_changes(after_create["last"])
    assert changed["identities"] == [IDENTITY_HEX] and changed["last"] > after_create["last"]


def test_operator_token_cannot_use_gateway_api(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    with pytest.raises(ServiceClientError) as err:
        svc.admin.gateway_psks(IDENTITY_HEX)
    assert (err.value.status, err.value.code) == (403, "insufficient_scope")
    svc.admin.set_config(ICCID, "default", "x")
    r = svc.http.get("/v1/config/00112233", params={"iccid": IDENTITY_HEX},
                     headers={"Authorization": f"Bearer {svc.admin.token}",
                              "X-ZTP-Identity": IDENTITY_HEX})
    assert r.status_code == 403


def test_device_config_delivery_and_audit(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    r = svc.device_get()
    assert r.status_code == 404 and r.json()["error"] == "unknown_config"
    svc.admin.set_config(ICCID, "default", '{"d":1}')
    r = svc.device_get()
    assert r.status_code == 200 and r.content == b'{"d":1}'
    assert r.headers["content-type"] == "application/octet-stream"
    svc.admin.set_config(ICCID, "00112233", '{"own":2}')
    r = svc.device_get()
    assert r.content == b'{"own":2}' and r.headers["x-ztp-config-version"] == "1"
    assert svc.device_get("aabb").content == b'{"d":1}'  # another device: the default
    deliveries = svc.admin.audit(action="config.deliver")
    assert [(e["device_id"], e["version"], e["gateway"], e["actor"]) for e in deliveries] == [
        ("00112233", 1, "gw-test", "gateway"),
        ("00112233", 1, "gw-test", "gateway"),
        ("aabb", 1, "gw-test", "gateway"),
    ]
    assert deliveries[1]["detail"]["slot"] == "00112233"
    assert deliveries[0]["detail"]["key_tag"] == "1"


def test_device_iccid_mismatch_is_403_and_alerted(svc: Svc) -> None:
    other = "8944502509186389643"
    from ztp.iccid import iccid_to_hex

    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.set_config(ICCID, "default", "x")
    r = svc.device_get(iccid_hex=iccid_to_hex(other))
    assert r.status_code == 403 and r.json()["error"] == "iccid_mismatch"
    alerts = svc.admin.audit(severity="alert")
    assert [a["action"] for a in alerts] == ["device.iccid_mismatch"]


def test_device_suspended_is_403_unknown_404(svc: Svc) -> None:
    assert svc.device_get().status_code == 404
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.set_config(ICCID, "default", "x")
    svc.admin.suspend_sim(ICCID)
    r = svc.device_get()
    assert r.status_code == 403 and r.json()["error"] == "sim_suspended"


def test_device_request_needs_identity_header(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    r = svc.http.get("/v1/config/00112233", params={"iccid": IDENTITY_HEX},
                     headers={"Authorization": f"Bearer {svc.gateway.token}"})
    assert r.status_code == 400 and "X-ZTP-Identity" in r.json()["detail"]
    r = svc.http.get("/v1/config/00112233", params={"iccid": IDENTITY_HEX},
                     headers={"X-ZTP-Identity": IDENTITY_HEX})
    assert r.status_code == 401


def test_first_device_binding_alerts_and_refuses(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK, bind_first_device=True)
    svc.admin.set_config(ICCID, "default", "x")
    assert svc.device_get("0a0b").status_code == 200
    assert svc.admin.get_sim(ICCID)["bound_device_id"] == "0a0b"
    r = svc.device_get("0c0d")
    assert r.status_code == 403 and r.json()["error"] == "device_mismatch"
    alerts = svc.admin.audit(severity="alert")
    assert [(a["action"], a["device_id"]) for a in alerts] == [("sim.moved", "0c0d")]
    svc.admin.update_sim(ICCID, clear_binding=True)
    assert svc.device_get("0c0d").status_code == 200


def test_device_moved_without_binding_is_alerted_but_served(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.set_config(ICCID, "default", "x")
    assert svc.device_get("0a0b").status_code == 200
    assert svc.device_get("0c0d").status_code == 200
    assert [a["action"] for a in svc.admin.audit(severity="alert")] == ["sim.moved"]


def _post_data(svc: Svc, body: bytes, device: str = "00112233"):
    return svc.http.post(f"/v1/data/{device}", params={"iccid": IDENTITY_HEX}, content=body,
                         headers={"Authorization": f"Bearer {svc.gateway.token}",
                                  "X-ZTP-Identity": IDENTITY_HEX, "X-ZTP-Key-Tag": "1",
                                  "Content-Type": "application/json"})


def test_telemetry_stored_bounded_and_limited(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    assert _post_data(svc, b'{"t":21.5}').status_code == 204
    assert _post_data(svc, b"x" * 1024).status_code == 204
    r = _post_data(svc, b"x" * 1025)
    assert r.status_code == 413
    rows = svc.admin.telemetry(ICCID)
    assert [r["body"] for r in rows] == ["x" * 1024, '{"t":21.5}']
    keep = svc.settings.telemetry_keep_per_sim
    for i in range(keep + 5):
        assert _post_data(svc, b'{"n":%d}' % i).status_code == 204
    rows = svc.admin.telemetry(ICCID, limit=1000)
    assert len(rows) == keep and rows[0]["body"] == f'{{"n":{keep + 4}}}'


def test_gateway_event_is_audited(svc: Svc) -> None:
    svc.gateway.gateway_event("iccid_mismatch", IDENTITY_HEX, {"asked": "x"})
    ev = svc.admin.audit(action="gateway.iccid_mismatch")
    assert len(ev) == 1 and ev[0]["iccid"] == ICCID and ev[0]["severity"] == "alert"
    assert ev[0]["detail"] == {"identity": IDENTITY_HEX, "asked": "x"}
    with pytest.raises(ServiceClientError) as err:
        svc.gateway.gateway_event("Bad Kind!")
    assert err.value.status == 400


def test_gateway_revokes_its_own_token(svc: Svc) -> None:
    r = svc.http.post("/v1/gateway/revoke", json={"token": svc.gateway.token},
                      headers={"Authorization": f"Bearer {svc.gateway.token}"})
    assert r.status_code == 200 and r.json() == {"revoked": True}
    with pytest.raises(ServiceClientError) as err:
        svc.gateway.psk_changes(0)
    assert err.value.status == 401
