"""Bulk imports (SIM key files, configurations) on SQLite and PostgreSQL: the bulk statements
give the rows, versions, feed entries and audit records of the one-by-one path; a request is
all or nothing; a key file larger than a chunk is checked whole, then sent chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import pytest
from ztp.iccid import iccid_to_hex, luhn_check_digit
from ztp.service import ServiceClientError
from ztp.service._bulk import ImportError_, import_key_file
from ztp.service._imports import IMPORT_CHUNK

from .conftest import Svc


def _iccid(i: int) -> str:
    payload = f"8944{i:014d}"
    return payload + luhn_check_digit(payload)


def _refused(fn, *args, **kw) -> ServiceClientError:
    with pytest.raises(ServiceClientError) as err:
        fn(*args, **kw)
    return err.value


def test_bulk_sim_import_matches_one_by_one(svc: Svc) -> None:
    n = IMPORT_CHUNK + 3  # more than one chunk inside the request
    csv = "iccid,psk\n" + "".join(f"{_iccid(i)},{i:032x}\n" for i in range(n))
    assert svc.admin.import_psks(csv) == {"sims_created": n, "psks_added": n, "unchanged": 0}
    out = svc.gateway.gateway_psks(iccid_to_hex(_iccid(n - 1)))
    assert out["keys"] == [{"tag": "1", "psk": f"{n - 1:032x}"}]
    # known SIMs get another key: the next numeric tag; new ones are created; OTA keys too
    rows = [{"iccid": _iccid(0), "psk": "11" * 16},
            {"iccid": _iccid(n), "psk": "22" * 16, "kic": "33" * 16, "kid": "44" * 16,
             "labels": {"lot": "a"}}]
    assert svc.admin.import_psks(rows) == {"sims_created": 1, "psks_added": 2, "unchanged": 0}
    assert [k["tag"] for k in svc.gateway.gateway_psks(iccid_to_hex(_iccid(0)))["keys"]] == [
        "1", "2"]
    sim = svc.admin.get_sim(_iccid(n))
    assert sim["labels"] == {"lot": "a"}
    assert sorted((k["kind"], k["tag"]) for k in sim["keys"]) == [
        ("kic", "1"), ("kid", "1"), ("psk", "1")]
    events = svc.admin.audit(iccid=_iccid(n), limit=10)
    assert [e["action"] for e in events] == ["sim.create", "key.add", "key.add", "key.add"]
    assert events[1]["detail"] == {"kind": "psk", "tag": "1", "generated": False,
                                   "master_version": 1}
    (summary, _) = svc.admin.audit(action="sim.import", limit=10)
    assert summary["detail"] == {"created": n, "keys_added": n, "unchanged": 0}
    changed: set[str] = set()
    after = 0
    while True:  # the gateways' cache feed names every SIM that got a PSK
        page = svc.gateway.psk_changes(after)
        if page["last"] == after:
            break
        changed |= set(page["identities"])
        after = page["last"]
    assert changed == {iccid_to_hex(_iccid(i)) for i in range(n + 1)}


def test_bulk_sim_import_is_all_or_nothing(svc: Svc) -> None:
    svc.admin.import_psks([{"iccid": _iccid(1), "psk": "11" * 16, "tag": "a"}])
    rows = [{"iccid": _iccid(i), "psk": "22" * 16, "tag": "a"} for i in (5, 4, 1, 3)]
    err = _refused(svc.admin.import_psks, rows)
    assert err.status == 409 and err.code == "key_exists" and err.detail.startswith("row 3:")
    assert _refused(svc.admin.get_sim, _iccid(3)).status == 404  # nothing committed
    assert len(svc.admin.audit(action="key.add")) == 1


def test_bulk_config_import_versions_and_require_json(svc: Svc) -> None:
    svc.admin.import_psks([{"iccid": _iccid(i), "psk": "11" * 16} for i in range(3)])
    svc.admin.set_config(_iccid(0), "default", '{"a":1}', require_json=True)
    rows = [{"iccid": _iccid(i), "device_id": "default", "body": f'{{"v":{i}}}'}
            for i in range(3)] + [{"iccid": _iccid(1), "device_id": "0a0b", "body": "plain",
                                   "comment": "c"}]
    assert svc.admin.import_configs(rows) == {"imported": 4}
    assert svc.admin.get_config(_iccid(0), "default")["version"] == 2
    assert svc.admin.get_config(_iccid(2), "default")["version"] == 1
    got = svc.admin.get_config(_iccid(1), "0a0b")
    assert (got["body"], got["comment"], got["version"]) == ("plain", "c", 1)
    assert [v["version"] for v in svc.admin.history(_iccid(0), "default")] == [2, 1]
    events = svc.admin.audit(action="config.import")
    assert [(e["iccid"], e["device_id"], e["version"]) for e in events] == [
        (_iccid(0), "default", 2), (_iccid(1), "default", 1), (_iccid(1), "0a0b", 1),
        (_iccid(2), "default", 1)]
    # require_json sticks on the slot: a plain body for it refuses the whole request (409:
    # it conflicts with the configuration, the request alone is well formed)
    err = _refused(svc.admin.import_configs, [
        {"iccid": _iccid(2), "device_id": "default", "body": "x"},
        {"iccid": _iccid(0), "device_id": "default", "body": "not json"}])
    assert (err.status, err.code) == (409, "invalid_json") and err.detail.startswith("row 2:")
    assert svc.admin.get_config(_iccid(2), "default")["version"] == 1
    err = _refused(svc.admin.import_configs, [{"iccid": _iccid(9), "body": "x"}])
    assert err.status == 404 and err.code == "unknown_sim"


def test_key_file_in_chunks(svc: Svc, tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("iccid,psk\n" + "".join(f"{_iccid(i)},{i:032x}\n" for i in range(7)))
    seen: list[int] = []
    out = import_key_file(svc.admin, path, chunk_rows=3,
                          progress=lambda done, _t: seen.append(done))
    assert out == {"sims_created": 7, "psks_added": 7, "unchanged": 0, "requests": 3}
    assert seen == [3, 6, 7]
    # a bad row anywhere: nothing is sent
    bad = tmp_path / "bad.csv"
    bad.write_text("iccid,psk\n" + "".join(f"{_iccid(i)},{i:032x}\n" for i in range(10, 15))
                   + f"{_iccid(15)},zz\n")
    with pytest.raises(ImportError_, match="row 6: psk") as err:
        import_key_file(svc.admin, bad, chunk_rows=2)
    assert err.value.committed == 0
    assert _refused(svc.admin.get_sim, _iccid(10)).status == 404
    # what only the service knows (a tag already there) stops at its chunk, file row named
    tagged = tmp_path / "tagged.json"
    tagged.write_text('[' + ",".join(f'{{"iccid":"{_iccid(i)}","psk":"{"11" * 16}",'
                                     f'"tag":"t"}}' for i in (20, 21, 22, 0, 23)) + "]")
    svc.admin.import_psks([{"iccid": _iccid(0), "psk": "33" * 16, "tag": "t"}])
    with pytest.raises(ImportError_, match=r"row 4: .*2 row\(s\) from row 1 were imported") as err:
        import_key_file(svc.admin, tagged, chunk_rows=2)
    assert err.value.committed == 2
    assert svc.admin.get_sim(_iccid(21))["keys"][0]["tag"] == "t"
    assert _refused(svc.admin.get_sim, _iccid(22)).status == 404
    out = import_key_file(svc.admin, tagged, chunk_rows=2, start_row=5)
    assert out == {"sims_created": 1, "psks_added": 1, "unchanged": 0, "requests": 1}


def test_reimport_changes_nothing_and_every_clash_is_named(svc: Svc, tmp_path: Path) -> None:
    # issue 16 item 5: the same file twice used to be key_exists on its first row only, with
    # "resume with start row 1", which failed again
    path = tmp_path / "keys.csv"
    path.write_text("iccid,psk,tag\n" + "".join(f"{_iccid(i)},{i + 1:032x},1\n"
                                                for i in range(5)))
    assert import_key_file(svc.admin, path)["psks_added"] == 5
    events = len(svc.admin.audit(limit=1000))
    out = import_key_file(svc.admin, path, chunk_rows=2)
    assert out == {"sims_created": 0, "psks_added": 0, "unchanged": 5, "requests": 3}
    assert [e["action"] for e in svc.admin.audit(after=0, limit=1000)[events:]] == [
        "sim.import"] * 3  # no key.add: nothing changed
    untagged = tmp_path / "untagged.csv"  # without tags too: the same key is not added twice
    untagged.write_text("iccid,psk\n" + f"{_iccid(0)},{1:032x}\n")
    assert import_key_file(svc.admin, untagged)["unchanged"] == 1
    # different keys under tags the SIMs hold: every clashing row named, nothing imported
    path.write_text("iccid,psk,tag\n" + "".join(f"{_iccid(i)},{i + 9:032x},1\n"
                                                for i in (7, 1, 2, 8, 3)))
    with pytest.raises(ImportError_) as err:
        import_key_file(svc.admin, path)
    msg = str(err.value)
    assert msg.startswith("row 2: SIM ") and "; row 3: SIM " in msg and "; row 5: SIM " in msg
    assert "nothing was imported" in msg and "start row" not in msg
    assert _refused(svc.admin.get_sim, _iccid(7)).status == 404
