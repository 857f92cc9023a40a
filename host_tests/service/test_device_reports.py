"""Device reports through the telemetry route and the device state they make (issue 17):
strict parsing, refusals like any device request the gateway did not vouch for, the state
model (in_sync / pending / failed / unmanaged), ``GET /v1/devices``."""

from __future__ import annotations

import pytest
from ztp.service import ServiceClientError
from ztp.service._errors import BadRequest
from ztp.service._reports import Report, body_digest, parse_report

from .conftest import ICCID, IDENTITY_HEX, PSK, Svc
from .fleet_helpers import Device, digest, make_iccid, report

BODY = '{"configuration":{"action":"iot:Led"}}'


# ---------------------------------------------------------------------------- parsing


def test_report_parsed_as_the_firmware_writes_it() -> None:
    doc = b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,"version":"2021-05-31"}'
    assert parse_report(doc) == Report("crc32:1a2b3c4d", "applied", 0, None, "2021-05-31")
    rejected = (b'{"v":1,"digest":null,"outcome":"rejected","code":42,'
                b'"rejected":"crc32:00000000"}')
    assert parse_report(rejected) == Report(None, "rejected", 42, "crc32:00000000")
    assert parse_report(b'{"v":1,"digest":"crc32:0000000a","outcome":"unchanged","code":1}')


def test_digest_is_zlib_crc32_as_the_firmware_computes() -> None:
    assert body_digest(b"") == "crc32:00000000"
    assert body_digest(b"123456789") == "crc32:cbf43926"  # the CRC-32 check value


@pytest.mark.parametrize("body", [b"", b"hello", b'{"temp":21}', b"[1,2]", b"\xff\xfe",
                                  b'{"x":1', b' {"a":{"v":1}}'])
def test_plain_telemetry_is_not_a_report(body: bytes) -> None:
    assert parse_report(body) is None


@pytest.mark.parametrize(("body", "why"), [
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied"', "not valid JSON"),
    (b'{"v":1,"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0}', "twice"),
    (b'{"v":2,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0}', "v must be 1"),
    (b'{"v":true,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0}', "v must be 1"),
    (b'{"v":1,"digest":"crc32:1A2B3C4D","outcome":"applied","code":0}', "digest"),
    (b'{"v":1,"digest":null,"outcome":"applied","code":0}', "digest"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"done","code":0}', "outcome"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":42}', "code"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"rejected","code":1}', "code"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,"extra":1}', "unknown"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied"}', "missing"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,'
     b'"rejected":"crc32:1a2b3c4d"}', "only given with outcome rejected"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,"version":"a\\"b"}',
     "version"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,"version":null}',
     "version"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,"version":"'
     + b"x" * 33 + b'"}', "version"),
    (b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0}' + b" " * 200,
     "at most 255"),
    (b'{"v":NaN}', "not valid JSON"),
])
def test_bad_reports_are_refused_with_the_reason(body: bytes, why: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_report(body)
    assert err.value.code == "invalid_report" and why in err.value.detail


# ---------------------------------------------------------------------------- the route


def _setup(svc: Svc, body: str = BODY) -> Device:
    svc.admin.create_sim(ICCID, psk=PSK, labels={"fleet": "pumps"})
    svc.admin.set_config(ICCID, "default", body)
    return Device(svc, ICCID)


def test_report_recorded_audited_and_in_sync(svc: Svc) -> None:
    dev = _setup(svc)
    assert svc.admin.devices() == []
    assert dev.get_config() == (200, BODY.encode())
    state = svc.admin.device(ICCID, dev.device_id)
    assert state["state"] == "pending" and state["reported"] is None
    assert state["desired"] == {"source": "default", "version": 1, "digest": digest(BODY),
                                "rollout": None}
    assert state["delivered"]["digest"] == digest(BODY)
    svc.clock.advance(5)
    assert dev.post(report("applied", BODY, version="7")).status_code == 204
    state = svc.admin.device(ICCID, dev.device_id)
    assert state["state"] == "in_sync"
    assert state["reported"] == {"digest": digest(BODY), "version": "7", "outcome": "applied",
                                 "code": 0, "rejected": None, "confirmed": False,
                                 "at_ms": svc.clock.now_ms}
    assert dev.post(report("confirmed", BODY)).status_code == 204
    assert dev.post(report("unchanged", BODY, 1)).status_code == 204
    assert svc.admin.device(ICCID, dev.device_id)["reported"]["confirmed"] is True
    events = svc.admin.audit(action="device.report")
    assert [e["detail"]["outcome"] for e in events] == ["applied", "confirmed", "unchanged"]
    assert events[0]["gateway"] == "gw-test" and events[0]["device_id"] == dev.device_id
    assert svc.admin.telemetry(ICCID) == []  # a report is device state, not telemetry


def test_rejected_configuration_shows_failed_with_its_code(svc: Svc) -> None:
    dev = _setup(svc)
    dev.provision()
    svc.admin.set_config(ICCID, "default", '{"configuration":{"action":"iot:Nope"}}')
    dev.provision(reject_code=42)
    state = svc.admin.device(ICCID, dev.device_id)
    assert state["state"] == "failed"
    assert (state["reported"]["outcome"], state["reported"]["code"]) == ("rejected", 42)
    assert state["reported"]["digest"] == digest(BODY)  # the old body is still in force
    assert [d["device_id"] for d in svc.admin.devices(state="failed")] == [dev.device_id]
    assert svc.admin.devices(state="in_sync") == []
    # the operator goes back to the old body: the device holds it, so it is in sync
    svc.admin.set_config(ICCID, "default", BODY)
    assert svc.admin.device(ICCID, dev.device_id)["state"] == "in_sync"


def test_rolled_back_at_boot_is_failed(svc: Svc) -> None:
    dev = _setup(svc)
    dev.provision()
    new = '{"configuration":{"b":2}}'
    svc.admin.set_config(ICCID, "default", new)
    dev.provision(confirm=False)
    assert svc.admin.device(ICCID, dev.device_id)["state"] == "in_sync"
    assert dev.post(report("rolled_back", BODY)).status_code == 204
    assert svc.admin.device(ICCID, dev.device_id)["state"] == "failed"


def test_bad_report_is_400_and_records_nothing(svc: Svc) -> None:
    dev = _setup(svc)
    before = svc.admin.audit()
    r = dev.post(b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":42}')
    assert r.status_code == 400 and r.json()["error"] == "invalid_report"
    assert "code must be an integer 0 with outcome applied" in r.json()["detail"]
    assert dev.post(b'{"v":1,"digest":').status_code == 400
    assert svc.admin.audit() == before
    assert svc.admin.devices() == [] and svc.admin.telemetry(ICCID) == []


def test_report_for_another_sim_or_device_is_refused(svc: Svc) -> None:
    dev = _setup(svc)
    svc.admin.update_sim(ICCID, bind_first_device=True)
    dev.provision()
    other = make_iccid(1)
    svc.admin.create_sim(other, psk=PSK)
    # the gateway verified ICCID's PSK, the request names another SIM: refused, alerted
    r = dev.post(report("applied", BODY), iccid_hex=Device(svc, other).identity)
    assert (r.status_code, r.json()["error"]) == (403, "iccid_mismatch")
    # another device on a bound SIM
    r = dev.post(report("applied", BODY), device_id="aabbccdd")
    assert (r.status_code, r.json()["error"]) == (403, "device_mismatch")
    svc.admin.suspend_sim(ICCID)
    r = dev.post(report("applied", BODY))
    assert (r.status_code, r.json()["error"]) == (403, "sim_suspended")
    alerts = {e["action"] for e in svc.admin.audit(severity="alert")}
    assert {"device.iccid_mismatch", "sim.moved"} <= alerts
    assert len(svc.admin.audit(action="device.report")) == 2  # the two of provision()
    # an operator token is not a gateway
    r = svc.http.post(f"/v1/data/{dev.device_id}", params={"iccid": IDENTITY_HEX},
                      content=report("applied", BODY),
                      headers={"Authorization": f"Bearer {svc.admin.token}",
                               "X-ZTP-Identity": IDENTITY_HEX})
    assert r.status_code == 403


def test_plain_telemetry_still_stored(svc: Svc) -> None:
    dev = _setup(svc)
    assert dev.post(b'{"temp":21}').status_code == 204
    assert [t["body"] for t in svc.admin.telemetry(ICCID)] == ['{"temp":21}']


def test_device_list_filters(svc: Svc) -> None:
    dev = _setup(svc)
    dev.provision()
    other = Device(svc, make_iccid(2))
    svc.admin.create_sim(other.iccid, psk=PSK, labels={"fleet": "fans"})
    assert other.get_config()[0] == 404
    states = {d["iccid"]: d["state"] for d in svc.admin.devices()}
    assert states == {ICCID: "in_sync", other.iccid: "unmanaged"}
    assert [d["iccid"] for d in svc.admin.devices(label="fleet=fans")] == [other.iccid]
    assert svc.admin.devices(state="pending") == []
    with pytest.raises(ServiceClientError) as err:
        svc.admin.devices(state="sideways")
    assert err.value.status == 400
    with pytest.raises(ServiceClientError) as err:
        svc.admin.device(ICCID, "ffff")
    assert (err.value.status, err.value.code) == (404, "unknown_device")
