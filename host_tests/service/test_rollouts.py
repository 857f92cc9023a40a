"""Staged rollouts over 100 virtual SIMs, driven through the HTTP API as the gateway drives
it: configuration requests and reports with the gateway's credential and identity headers
(issue 17; docs/service.md "Rollouts")."""

from __future__ import annotations

import pytest
from ztp.service import ServiceClientError
from ztp.service._stages import in_stage

from .conftest import PSK, Svc
from .fleet_helpers import Device, digest, make_iccid, report

LABEL = "fleet=pumps"
OLD = '{"configuration":{"action":"iot:Blink","n":1}}'
NEW = '{"configuration":{"action":"iot:Blink","n":2}}'
BAD = '{"configuration":{"action":"iot:Led"}}'
N = 100


def _fleet(svc: Svc) -> list[Device]:
    svc.admin.import_psks([{"iccid": make_iccid(i), "psk": PSK.hex(),
                            "labels": {"fleet": "pumps"}} for i in range(N)])
    svc.admin.set_label_config(LABEL, OLD, 10)
    devices = [Device(svc, make_iccid(i), f"{i:04x}") for i in range(N)]
    for d in devices:
        assert d.provision() == OLD.encode()
    return devices


def _rollout_actions(svc: Svc) -> list[str]:
    events = [e for a in ("start", "widen", "complete", "pause", "resume", "stop", "abort")
              for e in svc.admin.audit(action=f"rollout.{a}")]
    return [e["action"] for e in sorted(events, key=lambda e: e["id"])]


def _in(percent: int, d: Device) -> bool:
    return in_stage(percent, (), d.iccid, d.device_id)


def test_stage_confirmed_widens_until_complete(svc: Svc) -> None:
    devices = _fleet(svc)
    assert {d["state"] for d in svc.admin.devices(limit=1000)} == {"in_sync"}
    started = svc.admin.start_rollout(LABEL, NEW, stages=[10, 50, 100], max_failures=2)
    rid = started["id"]
    assert (started["state"], started["stage"], started["stages"]) == ("running", 0,
                                                                      [10, 50, 100])
    stage1 = [d for d in devices if _in(10, d)]
    assert 3 <= len(stage1) <= 20 and started["counts"]["in_stage"] == len(stage1)
    # only the stage gets the new body; the others keep the old one
    got = {d.device_id: d.get_config()[1] for d in devices}
    assert {k for k, v in got.items() if v == NEW.encode()} == {d.device_id for d in stage1}
    pending = svc.admin.devices(state="pending", limit=1000)
    assert {d["device_id"] for d in pending} == {d.device_id for d in stage1}
    # applied is not enough: no widening until confirmed (after mark_good)
    for d in stage1:
        d.provision(confirm=False)
    assert svc.admin.rollout(rid)["stage"] == 0
    for d in stage1[:-1]:
        assert d.post(report("confirmed", NEW)).status_code == 204
    assert svc.admin.rollout(rid)["stage"] == 0  # one still unconfirmed
    assert stage1[-1].post(report("confirmed", NEW)).status_code == 204
    status = svc.admin.rollout(rid)
    assert (status["state"], status["stage"]) == ("running", 1)
    stage2 = [d for d in devices if _in(50, d)]
    for d in stage2:
        d.provision()
    status = svc.admin.rollout(rid)
    assert (status["state"], status["stage"]) == ("running", 2)
    for d in devices:
        d.provision()
    status = svc.admin.rollout(rid)
    assert status["state"] == "completed" and status["counts"]["confirmed"] == N
    assert svc.admin.label_config(LABEL)["body"] == NEW
    assert {d["state"] for d in svc.admin.devices(limit=1000)} == {"in_sync"}
    assert _rollout_actions(svc) == ["rollout.start", "rollout.widen", "rollout.widen",
                                     "rollout.complete"]


def test_failing_body_stops_at_the_threshold_and_aborts(svc: Svc) -> None:
    devices = _fleet(svc)
    started = svc.admin.start_rollout(LABEL, BAD, stages=[20, 100], max_failures=2)
    rid = started["id"]
    stage1 = [d for d in devices if _in(20, d)]
    assert len(stage1) > 3
    for n, d in enumerate(stage1[:3]):
        d.provision(reject_code=42)
        state = svc.admin.rollout(rid)["state"]
        assert state == ("running" if n < 2 else "stopped")
    status = svc.admin.rollout(rid)
    assert status["counts"]["failed"] == 3 and "max_failures 2" in status["reason"]
    assert svc.admin.audit(action="rollout.stop")[0]["severity"] == "alert"
    # stopped: no widening, whatever the rest of the stage does
    for d in stage1[3:]:
        d.provision()
    assert svc.admin.rollout(rid)["stage"] == 0
    # the rest never received it
    for d in devices:
        d.get_config()
    outside = [d for d in devices if not _in(20, d)]
    for d in outside:
        assert svc.admin.device(d.iccid, d.device_id)["delivered"]["digest"] == digest(OLD)
    failed = svc.admin.devices(state="failed", limit=1000)
    assert {(f["iccid"], f["reported"]["code"]) for f in failed} == {
        (d.iccid, 42) for d in stage1[:3]}
    with pytest.raises(ServiceClientError) as err:
        svc.admin.rollout(rid, "resume")
    assert (err.value.status, err.value.code) == (409, "rollout_state")
    # abort = stop + roll back: the old body is desired again everywhere
    assert svc.admin.rollout(rid, "abort")["state"] == "aborted"
    for d in devices:
        assert d.get_config() == (200, OLD.encode())
    assert svc.admin.label_config(LABEL)["body"] == OLD
    for d in stage1[:3]:  # they kept the old body: in sync again
        assert svc.admin.device(d.iccid, d.device_id)["state"] == "in_sync"
    deliveries, after = [], 0
    while page := svc.admin.audit(action="config.deliver", after=after, limit=1000):
        deliveries += [e for e in page if e["detail"].get("rollout") == rid]
        after = page[-1]["id"]
    assert deliveries and {e["iccid"] for e in deliveries} <= {d.iccid for d in stage1}


def test_listed_devices_first_pause_resume(svc: Svc) -> None:
    devices = _fleet(svc)[:10]
    first = devices[0]
    r = svc.admin.start_rollout(LABEL, NEW, stages=[100],
                                devices=[f"{first.iccid}/{first.device_id}"])
    assert r["stages"] == [0, 100]
    assert first.get_config()[1] == NEW.encode()
    assert devices[1].get_config()[1] == OLD.encode()
    with pytest.raises(ServiceClientError) as err:  # one open rollout per label
        svc.admin.start_rollout(LABEL, BAD)
    assert (err.value.status, err.value.code) == (409, "rollout_open")
    with pytest.raises(ServiceClientError) as err:  # and no direct change under it
        svc.admin.set_label_config(LABEL, BAD, 10)
    assert err.value.code == "rollout_open"
    assert svc.admin.rollout(r["id"], "pause")["state"] == "paused"
    first.provision()
    assert svc.admin.rollout(r["id"])["stage"] == 0  # paused: not widened
    assert first.get_config()[1] == NEW.encode()  # and the stage keeps the body
    resumed = svc.admin.rollout(r["id"], "resume")
    assert (resumed["state"], resumed["stage"]) == ("running", 1)
    assert _rollout_actions(svc) == ["rollout.start", "rollout.pause", "rollout.resume",
                                     "rollout.widen"]


def test_stage_membership_is_stable_and_about_the_percentage() -> None:
    members = [in_stage(10, (), make_iccid(i), "00") for i in range(2000)]
    assert 120 < sum(members) < 280
    assert members == [in_stage(10, (), make_iccid(i), "00") for i in range(2000)]
    # cumulative: a device in the 10 % stage is in the 50 % one
    assert all(in_stage(50, (), make_iccid(i), "00") for i in range(2000) if members[i])
