"""Label (fleet) configurations: the resolution order, unique priorities, the JSON rule and
the 254-byte limit (issue 17; docs/service.md "Resolution order")."""

from __future__ import annotations

import pytest
from ztp.service import ServiceClientError

from .conftest import ICCID, PSK, Svc
from .fleet_helpers import Device, make_iccid


def test_resolution_order_device_default_labels_by_priority(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK, labels={"fleet": "pumps", "site": "north"})
    dev = Device(svc, ICCID)
    assert dev.get_config()[0] == 404
    svc.admin.set_label_config("site=north", '{"site":1}', 5)
    assert dev.get_config() == (200, b'{"site":1}')
    svc.admin.set_label_config("fleet=pumps", '{"fleet":1}', 10)  # higher priority wins
    assert dev.get_config() == (200, b'{"fleet":1}')
    r = svc.http.get(f"/v1/config/{dev.device_id}", params={"iccid": dev.identity},
                     headers=dev._headers())
    assert r.headers["x-ztp-config-slot"] == "label:fleet=pumps"
    assert r.headers["x-ztp-config-version"] == "1"
    svc.admin.set_label_config("site=north", '{"site":2}', 20)  # priority raised
    assert dev.get_config() == (200, b'{"site":2}')
    svc.admin.set_config(ICCID, "default", '{"default":1}')  # the SIM's default first
    assert dev.get_config() == (200, b'{"default":1}')
    svc.admin.set_config(ICCID, dev.device_id, '{"own":1}')  # the device's own first of all
    assert dev.get_config() == (200, b'{"own":1}')
    assert svc.admin.device(ICCID, dev.device_id)["desired"]["source"] == "device"
    svc.admin.delete_config(ICCID, dev.device_id)
    svc.admin.delete_config(ICCID, "default")
    assert dev.get_config() == (200, b'{"site":2}')
    svc.admin.delete_label_config("site=north")  # falls to the next label
    assert dev.get_config() == (200, b'{"fleet":1}')
    # a SIM without the label gets none of it
    other = Device(svc, make_iccid(3))
    svc.admin.create_sim(other.iccid, psk=PSK, labels={"fleet": "fans"})
    assert other.get_config()[0] == 404
    slots = [e["detail"]["slot"] for e in svc.admin.audit(action="config.deliver")]
    assert "label:fleet=pumps" in slots and "label:site=north" in slots
    actions = [e["action"] for e in svc.admin.audit() if e["action"].startswith("fleet.")]
    assert actions == ["fleet.set", "fleet.set", "fleet.set", "fleet.delete"]


def test_priorities_are_unique_so_labels_never_tie(svc: Svc) -> None:
    svc.admin.set_label_config("fleet=pumps", "a", 10)
    with pytest.raises(ServiceClientError) as err:
        svc.admin.set_label_config("site=north", "b", 10)
    assert (err.value.status, err.value.code) == (409, "priority_taken")
    assert "fleet=pumps" in err.value.detail
    svc.admin.set_label_config("fleet=pumps", "a2", 10)  # its own priority: fine
    assert [c["label"] for c in svc.admin.label_configs()] == ["fleet=pumps"]
    assert svc.admin.label_config("fleet=pumps")["version"] == 2


def test_label_config_validation(svc: Svc) -> None:
    for label in ("fleet", "Fleet=x", "fleet=a/b", "fleet="):
        r = svc.http.put(f"/v1/label-configs/{label}", json={"body": "x", "priority": 1},
                         headers={"Authorization": f"Bearer {svc.admin.token}"})
        assert r.status_code in (400, 404), label
    with pytest.raises(ServiceClientError) as err:
        svc.admin.set_label_config("fleet=pumps", "é" * 128, 1)  # 256 bytes of UTF-8
    assert (err.value.status, err.value.code) == (400, "body_too_long")
    with pytest.raises(ServiceClientError) as err:
        svc.admin.set_label_config("fleet=pumps", "not json", 1, require_json=True)
    assert err.value.code == "invalid_json"
    svc.admin.set_label_config("fleet=pumps", '{"a":1}', 1, require_json=True)
    with pytest.raises(ServiceClientError) as err:  # the requirement sticks
        svc.admin.set_label_config("fleet=pumps", "not json", 1)
    assert (err.value.status, err.value.code) == (409, "invalid_json")
    r = svc.http.put("/v1/label-configs/fleet=pumps", json={"body": "x"},
                     headers={"Authorization": f"Bearer {svc.admin.token}"})
    assert r.status_code == 400 and "priority is required" in r.json()["detail"]
    with pytest.raises(ServiceClientError) as err:
        svc.admin.label_config("fleet=none")
    assert (err.value.status, err.value.code) == (404, "unknown_label")
