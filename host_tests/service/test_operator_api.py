"""Operator API on SQLite and PostgreSQL: auth, SIMs, keys, configurations, import/export."""

from __future__ import annotations

import base64
import json

import pytest
from ztp.iccid import luhn_check_digit
from ztp.service import ServiceClientError

from .conftest import ICCID, IDENTITY_HEX, PSK, Svc

ICCID2 = "89445025091863896" + "4" + luhn_check_digit("894450250918638964")
BAD_LUHN = "8944502509186389634"


def refused(fn, *args, **kw) -> ServiceClientError:
    with pytest.raises(ServiceClientError) as err:
        fn(*args, **kw)
    return err.value


# ---------------------------------------------------------------------------- auth


def test_no_token_is_401(svc: Svc) -> None:
    r = svc.http.get("/v1/sims")
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = svc.http.get("/v1/sims", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    r = svc.http.get("/v1/sims", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid access token"


def test_token_expires(svc: Svc) -> None:
    svc.admin.list_sims()
    svc.clock.advance(svc.settings.token_ttl_s - 1)
    svc.admin.list_sims()
    svc.clock.advance(1)
    err = refused(svc.admin.list_sims)
    assert (err.status, err.detail) == (401, "access token expired")


def test_token_revoked(svc: Svc) -> None:
    c = svc.client()
    tok = c.login(svc.creds.admin_id, svc.creds.admin_secret)
    c.list_sims()
    assert svc.admin.revoke(tok) is True
    err = refused(c.list_sims)
    assert (err.status, err.detail) == (401, "access token revoked")
    assert svc.admin.revoke("ztp_unknown") is False
    # revoking one's own token
    assert c.login(svc.creds.admin_id, svc.creds.admin_secret)
    assert c.revoke(c.token) is True
    assert refused(c.list_sims).status == 401


def test_scopes(svc: Svc) -> None:
    secret = svc.admin.create_client("reader", ["read"])
    reader = svc.client()
    reader.login("reader", secret)
    reader.list_sims()
    err = refused(reader.create_sim, ICCID)
    assert (err.status, err.code) == (403, "insufficient_scope")
    assert refused(reader.create_client, "x", ["read"]).status == 403
    # a reader cannot revoke someone else's token
    assert refused(reader.revoke, svc.admin.token).status == 403
    # a write token may not manage clients; it may ask for a narrower scope only
    wsecret = svc.admin.create_client("writer", ["write"])
    writer = svc.client()
    writer.login("writer", wsecret, scope="read")
    assert refused(writer.create_sim, ICCID).status == 403
    err = refused(writer.login, "writer", wsecret, scope="admin")
    assert (err.status, err.code) == (400, "invalid_scope")
    # gateway tokens have no operator rights
    assert refused(svc.gateway.list_sims).status == 403
    # gateway and operator scopes never mix
    err = refused(svc.admin.create_client, "mixed", ["gateway", "read"])
    assert err.code == "invalid_scope"


def test_token_endpoint_errors(svc: Svc) -> None:
    def post(data=None, **kw):
        return svc.http.post("/v1/auth/token", data=data, **kw)

    r = post({"grant_type": "client_credentials", "client_id": "admin", "client_secret": "x"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = post({"grant_type": "client_credentials", "client_id": "ghost", "client_secret": "x"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = post({"grant_type": "password", "client_id": "admin", "client_secret": "x"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = post({"grant_type": "client_credentials"})
    assert r.status_code == 401
    r = post({"grant_type": "client_credentials", "client_id": "admin",
              "client_secret": svc.creds.admin_secret, "scope": "root"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    # HTTP Basic client authentication (RFC 6749 §2.3.1) and a JSON body also work
    basic = base64.b64encode(f"admin:{svc.creds.admin_secret}".encode()).decode()
    r = post({"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
    assert r.headers["cache-control"] == "no-store"
    r = svc.http.post("/v1/auth/token", json={"grant_type": "client_credentials",
                                              "client_id": "admin",
                                              "client_secret": svc.creds.admin_secret})
    assert r.status_code == 200 and r.json()["scope"] == "admin"
    issued = svc.admin.audit(action="token.issue")
    assert issued and issued[-1]["actor"] == "admin" and issued[-1]["detail"]["scopes"] == [
        "admin"]
    assert r.json()["access_token"] not in json.dumps(svc.admin.audit(limit=1000))


def test_disabled_client_tokens_die(svc: Svc) -> None:
    secret = svc.admin.create_client("temp", ["write"])
    c = svc.client()
    c.login("temp", secret)
    c.list_sims()
    svc.admin.disable_client("temp")
    assert refused(c.list_sims).status == 401
    assert refused(c.login, "temp", secret).status == 401
    assert refused(svc.admin.create_client, "temp", ["read"]).status == 409
    clients = {c["client_id"]: c for c in svc.admin.request("GET", "/v1/clients").json()[
        "clients"]}
    assert clients["temp"]["disabled"] is True and clients["gateway"]["scopes"] == ["gateway"]
    assert "secret" not in json.dumps(clients).replace("client_secret", "")
    assert refused(svc.admin.disable_client, "ghost").status == 404


# ---------------------------------------------------------------------------- SIMs and keys


def test_sim_registration_validates_iccid(svc: Svc) -> None:
    err = refused(svc.admin.create_sim, BAD_LUHN)
    assert (err.status, err.code) == (400, "invalid_iccid") and "Luhn" in err.detail
    assert refused(svc.admin.create_sim, "12345").status == 400
    assert refused(svc.admin.create_sim, "89445025091863896x5").status == 400
    forced = svc.admin.create_sim(BAD_LUHN, force=True)
    assert forced["identity"] == "984405529081369836f4"
    assert refused(svc.admin.create_sim, BAD_LUHN, force=True).status == 409


def test_sim_create_get_list_labels(svc: Svc) -> None:
    out = svc.admin.create_sim(ICCID, psk=PSK, labels={"fleet": "a"})
    assert out["identity"] == IDENTITY_HEX and out["state"] == "active"
    assert out["keys"][0]["tag"] == "1" and "psk" not in out  # an imported PSK is not echoed
    svc.admin.create_sim(ICCID2, labels={"fleet": "b"})
    assert [s["iccid"] for s in svc.admin.list_sims(label="fleet=b")] == [ICCID2]
    assert len(svc.admin.list_sims(limit=1)) == 1
    assert [s["iccid"] for s in svc.admin.list_sims(after=ICCID)] == [ICCID2]
    got = svc.admin.get_sim(ICCID)
    assert PSK.hex() not in json.dumps(got)
    assert refused(svc.admin.get_sim, ICCID2[:-1] + "0").status in (404,)
    err = refused(svc.admin.create_sim, ICCID, labels={"Bad Key": "x"})
    assert err.status == 400


def test_label_filter_follows_label_changes_and_combines_with_state(svc: Svc) -> None:
    # the filter reads the sim_label index the database keeps from labels_json: an update,
    # a suspension and a deletion through the API must show in the next page at once
    svc.admin.create_sim(ICCID, labels={"fleet": "a", "site": "x"})
    svc.admin.create_sim(ICCID2, labels={"fleet": "a"})
    assert [s["iccid"] for s in svc.admin.list_sims(label="fleet=a")] == [ICCID, ICCID2]
    svc.admin.update_sim(ICCID2, labels={"fleet": "b"})
    assert [s["iccid"] for s in svc.admin.list_sims(label="fleet=a")] == [ICCID]
    assert [s["iccid"] for s in svc.admin.list_sims(label="fleet=b")] == [ICCID2]
    assert [s["iccid"] for s in svc.admin.list_sims(label="site=x")] == [ICCID]
    svc.admin.suspend_sim(ICCID)
    assert svc.admin.list_sims(label="fleet=a", state="active") == []
    assert [s["iccid"] for s in svc.admin.list_sims(label="fleet=a", state="suspended")] == [ICCID]
    assert [s["iccid"] for s in svc.admin.list_sims(label="fleet=a", limit=1)] == [ICCID]
    svc.admin.delete_sim(ICCID)
    assert svc.admin.list_sims(label="fleet=a") == []
    assert svc.admin.list_sims(label="site=x") == []


def test_generated_psk_is_shown_once(svc: Svc) -> None:
    out = svc.admin.create_sim(ICCID, generate_psk=True)
    psk = out["psk"]
    assert len(bytes.fromhex(psk)) == 16
    assert psk not in json.dumps(svc.admin.get_sim(ICCID))
    assert psk not in json.dumps(svc.admin.list_sims())
    assert psk not in json.dumps(svc.admin.audit())
    assert svc.gateway.gateway_psks(IDENTITY_HEX)["keys"][0]["psk"] == psk


def test_keys_rotation_and_validation(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    k2 = svc.admin.add_key(ICCID)  # generated, next numeric tag
    assert k2["tag"] == "2" and len(bytes.fromhex(k2["key"])) == 16
    assert [k["tag"] for k in svc.gateway.gateway_psks(IDENTITY_HEX)["keys"]] == ["1", "2"]
    assert refused(svc.admin.add_key, ICCID, "psk", PSK, "1").code == "key_exists"
    assert refused(svc.admin.add_key, ICCID, "psk", b"short", "9").status == 400
    assert refused(svc.admin.add_key, ICCID, "nope").status == 400
    ota = svc.admin.add_key(ICCID, "kic", b"\x01" * 16, "ota1")
    assert ota["kind"] == "kic" and "key" not in ota
    # OTA keys are not PSKs
    assert [k["tag"] for k in svc.gateway.gateway_psks(IDENTITY_HEX)["keys"]] == ["1", "2"]
    svc.admin.set_key_state(ICCID, "psk", "1", "retired")
    assert [k["tag"] for k in svc.gateway.gateway_psks(IDENTITY_HEX)["keys"]] == ["2"]
    svc.admin.request("DELETE", f"/v1/sims/{ICCID}/keys/psk/2")
    assert refused(svc.gateway.gateway_psks, IDENTITY_HEX).status == 404
    assert refused(svc.admin.set_key_state, ICCID, "psk", "2", "active").status == 404


def test_import_key_file_csv_and_json_all_or_nothing(svc: Svc) -> None:
    csv_text = f"iccid,psk,tag\n{ICCID},{PSK.hex()},v1\n{ICCID2},{'22' * 16},v1\n"
    assert svc.admin.import_psks(csv_text) == {"sims_created": 2, "psks_added": 2, "unchanged": 0}
    # rotation by import: a new tag for a known SIM
    out = svc.admin.import_psks([{"iccid": ICCID, "psk": "33" * 16, "tag": "v2"}])
    assert out == {"sims_created": 0, "psks_added": 1, "unchanged": 0}
    third = "89445025091863896" + "5" + luhn_check_digit("894450250918638965")
    before = svc.admin.audit()
    # one bad row: nothing is applied
    for rows in (
        [{"iccid": third, "psk": "44" * 16}, {"iccid": BAD_LUHN, "psk": "44" * 16}],
        [{"iccid": third, "psk": "44" * 16}, {"iccid": ICCID, "psk": "44" * 16, "tag": "v1"}],
        [{"iccid": third, "psk": "44" * 16}, {"iccid": third, "psk": "55" * 16}],
        [{"iccid": third, "psk": "4" * 31}],
    ):
        err = refused(svc.admin.import_psks, rows)
        assert err.status in (400, 409) and "row" in err.detail, err
    assert refused(svc.admin.get_sim, third).status == 404
    assert svc.admin.audit() == before
    assert refused(svc.admin.import_psks, "iccid,key\n1,2\n").status == 400
    assert refused(svc.admin.import_psks, f"iccid,psk\n{third}\n").status == 400
    assert refused(svc.admin.import_psks, []).status == 400
    # forced import accepts a wrong Luhn digit
    assert svc.admin.import_psks([{"iccid": BAD_LUHN, "psk": PSK.hex()}], force=True)


def test_sim_suspend_activate_delete(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.set_config(ICCID, "default", "x")
    assert svc.admin.suspend_sim(ICCID)["state"] == "suspended"
    assert svc.admin.update_sim(ICCID, state="active")["state"] == "active"
    assert refused(svc.admin.update_sim, ICCID, state="deleted").status == 400
    assert refused(svc.admin.update_sim, ICCID, colour="red").status == 400
    svc.admin.delete_sim(ICCID)
    assert refused(svc.admin.get_sim, ICCID).status == 404
    assert refused(svc.admin.delete_sim, ICCID).status == 404
    assert refused(svc.gateway.gateway_psks, IDENTITY_HEX).status == 404
    assert [e["action"] for e in svc.admin.audit(iccid=ICCID)][-1] == "sim.delete"
    svc.admin.create_sim(ICCID)  # re-registration starts clean
    assert svc.admin.list_configs(ICCID) == []


# ---------------------------------------------------------------------------- configurations


def test_config_body_limits(svc: Svc) -> None:
    svc.admin.create_sim(ICCID)
    svc.admin.set_config(ICCID, "default", "a" * 254)
    err = refused(svc.admin.set_config, ICCID, "default", "a" * 255)
    assert (err.status, err.code) == (400, "body_too_long")
    # bytes of UTF-8 count, not characters: 127 two-byte characters = 254 bytes
    svc.admin.set_config(ICCID, "default", "é" * 127)
    assert refused(svc.admin.set_config, ICCID, "default", "é" * 128).code == "body_too_long"
    assert refused(svc.admin.set_config, ICCID, "default", "").status == 400

def test_config_require_json(svc: Svc) -> None:
    svc.admin.create_sim(ICCID)
    err = refused(svc.admin.set_config, ICCID, "default", "{bad", require_json=True)
    assert (err.status, err.code) == (400, "invalid_json")
    svc.admin.set_config(ICCID, "default", '{"ok":true}', require_json=True)
    # the requirement sticks to the configuration until turned off
    assert refused(svc.admin.set_config, ICCID, "default", "plain").code == "invalid_json"
    svc.admin.set_config(ICCID, "default", "plain", require_json=False)


def test_config_unknown_sim_and_bad_device(svc: Svc) -> None:
    err = refused(svc.admin.set_config, ICCID, "default", "x")
    assert (err.status, err.code) == (404, "unknown_sim")
    svc.admin.create_sim(ICCID)
    assert refused(svc.admin.set_config, ICCID, "xyz", "x").status == 400
    assert refused(svc.admin.set_config, ICCID, "abc", "x").status == 400  # odd hex
    assert refused(svc.admin.get_config, ICCID, "default").code == "unknown_config"


def test_config_versions_history_rollback_delete(svc: Svc) -> None:
    svc.admin.create_sim(ICCID)
    dev = "0011223344556677"
    for i in range(1, 4):
        out = svc.admin.set_config(ICCID, dev.upper(), f"v{i}", comment=f"c{i}")
        assert (out["version"], out["device_id"]) == (i, dev)
    err = refused(svc.admin.set_config, ICCID, dev, "v4", if_version=2)
    assert (err.status, err.code) == (409, "version_conflict")
    assert svc.admin.set_config(ICCID, dev, "v4", if_version=3)["version"] == 4
    rb = svc.admin.rollback(ICCID, dev, 2)
    assert (rb["version"], rb["body"], rb["rolled_back_to"]) == (5, "v2", 2)
    assert svc.admin.get_config(ICCID, dev)["body"] == "v2"
    hist = svc.admin.history(ICCID, dev)
    assert [(h["version"], h["body"]) for h in hist] == [
        (5, "v2"), (4, "v4"), (3, "v3"), (2, "v2"), (1, "v1")]
    assert hist[-1]["comment"] == "c1" and hist[0]["created_by"] == "admin"
    assert refused(svc.admin.rollback, ICCID, dev, 99).code == "unknown_version"
    svc.admin.delete_config(ICCID, dev)
    assert refused(svc.admin.get_config, ICCID, dev).status == 404
    assert refused(svc.admin.delete_config, ICCID, dev).status == 404
    assert svc.admin.history(ICCID, dev)[0]["deleted"] is True
    assert svc.admin.rollback(ICCID, dev, 3)["body"] == "v3"
    assert [e["version"] for e in svc.admin.audit(action="config.set")] == [1, 2, 3, 4]


def test_configs_export_import(svc: Svc) -> None:
    svc.admin.create_sim(ICCID)
    svc.admin.create_sim(ICCID2)
    svc.admin.set_config(ICCID, "default", "d1")
    svc.admin.set_config(ICCID, "aa", '{"x":1}', require_json=True)
    exported = svc.admin.export_configs()
    assert [(r["iccid"], r["device_id"], r["body"]) for r in exported] == [
        (ICCID, "aa", '{"x":1}'), (ICCID, "default", "d1")]
    rows = [{"iccid": ICCID2, "device_id": "default", "body": "imported"},
            {"iccid": ICCID, "device_id": "aa", "body": '{"x":2}'}]
    assert svc.admin.import_configs(rows) == {"imported": 2}
    assert svc.admin.get_config(ICCID, "aa")["version"] == 2
    # all or nothing: a bad row (too long, not JSON where required, unknown SIM) changes nothing
    third = "89445025091863896" + "5" + luhn_check_digit("894450250918638965")
    for bad in ({"iccid": ICCID2, "device_id": "bb", "body": "z" * 255},
                {"iccid": ICCID, "device_id": "aa", "body": "nojson", "require_json": True},
                {"iccid": third, "device_id": "bb", "body": "z"}):
        err = refused(svc.admin.import_configs,
                      [{"iccid": ICCID2, "device_id": "default", "body": "changed"}, bad])
        assert err.status in (400, 404) and "row 2" in err.detail
    assert svc.admin.get_config(ICCID2, "default")["body"] == "imported"


# ---------------------------------------------------------------------------- HTTP errors


def test_bad_requests_get_json_reasons(svc: Svc) -> None:
    h = {"Authorization": f"Bearer {svc.admin.token}"}
    r = svc.http.post("/v1/sims", content=b"{not json", headers=h)
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = svc.http.post("/v1/sims", content=b"[]", headers=h)
    assert r.status_code == 400 and r.json()["detail"] == "request body must be a JSON object"
    r = svc.http.post("/v1/sims", content=b"<x/>", headers={**h, "Content-Type": "text/xml"})
    assert r.status_code == 415
    r = svc.http.post("/v1/sims", json={"iccid": ICCID, "psk": PSK.hex(), "extra": 1},
                      headers=h)
    assert r.status_code == 400 and "extra" in r.json()["detail"]
    r = svc.http.get("/v1/sims", params={"limit": "lots"}, headers=h)
    assert r.status_code == 400
    r = svc.http.get("/v1/nowhere", headers=h)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = svc.http.put("/v1/sims", headers=h)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    r = svc.http.post("/v1/sims", content=b"x" * (65 * 1024), headers=h)
    assert r.status_code == 413


def test_health_and_openapi_need_no_token(svc: Svc) -> None:
    assert svc.http.get("/healthz").json() == {"status": "ok"}
    assert svc.http.get("/openapi.json").json()["openapi"].startswith("3.")


def test_rollback_keeps_require_json(svc: Svc) -> None:
    svc.admin.create_sim(ICCID)
    dev = "default"
    svc.admin.set_config(ICCID, dev, "plain")  # v1: not JSON, slot not JSON-only yet
    svc.admin.set_config(ICCID, dev, '{"a":1}', require_json=True)  # v2
    svc.admin.set_config(ICCID, dev, '{"a":2}')  # v3
    rb = svc.admin.rollback(ICCID, dev, 2)
    assert (rb["version"], rb["require_json"]) == (4, True)
    assert svc.admin.get_config(ICCID, dev)["require_json"] is True
    # the slot still refuses a body that is not JSON
    assert refused(svc.admin.set_config, ICCID, dev, "plain again").code == "invalid_json"
    # and a rollback to the non-JSON version 1 is refused too, changing nothing
    assert refused(svc.admin.rollback, ICCID, dev, 1).code == "invalid_json"
    got = svc.admin.get_config(ICCID, dev)
    assert (got["version"], got["body"], got["require_json"]) == (4, '{"a":1}', True)
