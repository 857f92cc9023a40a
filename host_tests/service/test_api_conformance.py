"""The findings of issue 13 item 6, one by one (Schemathesis covers them broadly in
test_schemathesis.py): 405 answers carry Allow, PATCH /v1/sims/import is a 405, a null detail
in a gateway event is refused, integral floats are integers, nulls are left out."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient
from ztp.service import bootstrap_credentials, create_app

from .conftest import ICCID, IDENTITY_HEX, PSK, FakeClock, make_settings


def client(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    st = make_settings(f"sqlite:///{tmp_path / 'z.db'}", FakeClock())
    creds = bootstrap_credentials(st)
    http = TestClient(create_app(st))
    tokens = {}
    for who, cid, secret in (("admin", creds.admin_id, creds.admin_secret),
                             ("gateway", creds.gateway_id, creds.gateway_secret)):
        r = http.post("/v1/auth/token", data={"grant_type": "client_credentials",
                                              "client_id": cid, "client_secret": secret})
        tokens[who] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return http, tokens


def test_405_lists_every_method_of_the_path(tmp_path: Path) -> None:
    http, auth = client(tmp_path)
    with http:
        r = http.options(f"/v1/sims/{ICCID}", headers=auth["admin"])
        assert r.status_code == 405
        assert r.headers["Allow"] == "DELETE, GET, HEAD, PATCH"  # was: one route's method
        assert r.json()["error"] == "method_not_allowed"
        # the literal path wins over /v1/sims/{iccid}: a 405 (was: 400 for a SIM "import")
        r = http.patch("/v1/sims/import", headers=auth["admin"], json={})
        assert (r.status_code, r.headers["Allow"]) == (405, "POST")
        r = http.put("/v1/gateway/events", headers=auth["gateway"], json={})
        assert (r.status_code, r.headers["Allow"]) == (405, "POST")


def test_gateway_event_detail_null_is_refused(tmp_path: Path) -> None:
    http, auth = client(tmp_path)
    with http:
        for body in ({"kind": "iccid_mismatch", "detail": None},
                     {"kind": "iccid_mismatch", "identity": None}):
            r = http.post("/v1/gateway/events", headers=auth["gateway"], json=body)
            assert r.status_code == 400 and "null" in r.json()["detail"], r.text
        ok = {"kind": "iccid_mismatch", "identity": IDENTITY_HEX, "detail": {}}
        assert http.post("/v1/gateway/events", headers=auth["gateway"], json=ok).status_code == 204
        assert http.post("/v1/gateway/events", headers=auth["gateway"],
                         json={"kind": "probe"}).status_code == 204  # both left out


def test_integral_floats_are_integers_and_nulls_are_left_out(tmp_path: Path) -> None:
    http, auth = client(tmp_path)
    with http:
        r = http.post("/v1/sims", headers=auth["admin"], json={"iccid": ICCID, "psk": PSK.hex()})
        assert r.status_code == 201
        put = http.put(f"/v1/sims/{ICCID}/configs/default", headers=auth["admin"],
                       json={"body": "{}", "if_version": 0.0})  # JSON Schema: an integer
        assert put.status_code == 200 and put.json()["version"] == 1
        r = http.put(f"/v1/sims/{ICCID}/configs/default", headers=auth["admin"],
                     json={"body": "{}", "if_version": None})
        assert r.status_code == 400 and "null" in r.json()["detail"]
        r = http.post(f"/v1/sims/{ICCID}/configs/default/rollback", headers=auth["admin"],
                      json={"version": 1.0})
        assert r.status_code == 200 and r.json()["version"] == 2
        r = http.post(f"/v1/sims/{ICCID}/configs/default/rollback", headers=auth["admin"],
                      json={"version": 1.5})
        assert r.status_code == 400
