"""The service's endpoints: auth, clients, SIMs and keys, configurations, audit, gateway.

The gateway-facing part is the contract of docs/INTERFACES.md (do not change it alone).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from ._audit import Actor
from ._auth import (
    Principal,
    check_client,
    create_client,
    disable_client,
    issue_token,
    list_clients,
    parse_scopes,
    revoke_token,
    validate_client_id,
)
from ._delivery import deliver_fast
from ._errors import BadRequest, NotFound, PayloadTooLarge, ServiceError, Unauthorized
from ._http import (
    IMPORT_BODY_MAX,
    AppState,
    Call,
    Param,
    WouldWait,
    basic_credentials,
    error_response,
    header_map,
    json_response,
    route,
    single_query,
)
from ._reports import REPORT_SCHEMA, parse_report
from ._schemas import (
    CONFIG,
    ERROR,
    JSON,
    KEY,
    KEY_KINDS,
    S_BOOL,
    S_CLIENT_ID,
    S_COMMENT,
    S_DEVICE_OR_DEFAULT,
    S_GATEWAY_NAME,
    S_HEX_OTA_KEY,
    S_HEX_PSK,
    S_ICCID,
    S_ICCID_ANY,
    S_IDENT,
    S_INT,
    S_LABELS,
    S_SCOPE_TEXT,
    S_STR,
    S_TAG,
    S_TOKEN,
    SIM,
    VERSION,
    config_body,
    obj,
    parse_bool,
    parse_comment,
    parse_device_id,
    parse_gateway_name,
    parse_iccid,
    parse_identity_hex,
    parse_key_hex,
    parse_labels,
    parse_tag,
    req,
)
from ._settings import TELEMETRY_BODY_MAX
from ._sims import key_view
from ._store import Store

__all__: list[str] = []  # importing the module registers its routes (_http.route)


ID_MAX = 2**31 - 1  # ids are 32-bit INTEGER columns (PostgreSQL int4)
P_LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, False, "page size")
P_AFTER_ID = Param("after", {"type": "integer", "minimum": 0, "maximum": ID_MAX}, False,
                   "return ids after this")


# ---------------------------------------------------------------------------- health


@route("GET", "/healthz", summary="Liveness: the service answers and its database too",
       scope=None, responses={"200": ("OK", JSON, obj({"status": S_STR}))}, tags=("meta",))
def health(call: Call) -> Response:
    call.store.s.execute(text("SELECT 1"))  # the database answers
    return json_response({"status": "ok"})


# ---------------------------------------------------------------------------- auth

TOKEN_REQUEST = obj({"grant_type": {"enum": ["client_credentials"]}, "client_id": S_STR,
                     "client_secret": S_STR, "scope": S_SCOPE_TEXT}, ("grant_type",))


@route("POST", "/v1/auth/token", tx="none", scope=None, tags=("auth",),
       summary="OAuth2 client-credentials grant (RFC 6749 §4.4): credentials -> bearer token; "
               "429 with Retry-After after too many failed logins from one address",
       request={"application/x-www-form-urlencoded": TOKEN_REQUEST, JSON: TOKEN_REQUEST},
       responses={"200": ("token", JSON, obj({"access_token": S_STR, "token_type": S_STR,
                                              "expires_in": S_INT, "scope": S_STR},
                                             ("access_token", "token_type", "expires_in")))})
def token(call: Call) -> Response:
    ctype = call.content_type()
    if ctype == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qs

        try:
            form = parse_qs(call.body.decode("ascii"), strict_parsing=False,
                            keep_blank_values=True, max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("malformed form body") from None
        if any(len(v) > 1 for v in form.values()):
            raise BadRequest("a form field is repeated")
        fields: dict[str, Any] = {k: v[0] for k, v in form.items()}
    else:
        fields = call.json_object()
    if fields.get("grant_type") != "client_credentials":
        raise BadRequest("grant_type must be client_credentials", code="unsupported_grant_type")
    basic = basic_credentials(call.request)
    if basic is not None:
        cid, secret = basic
    else:
        cid, secret = fields.get("client_id"), fields.get("client_secret")
    if not isinstance(cid, str) or not isinstance(secret, str) or not cid or not secret:
        raise Unauthorized("client_id and client_secret are required", code="invalid_client")
    requested = parse_scopes(fields.get("scope") or None)
    db, st = call.state.db, call.settings
    # Throttled before any Argon2 work: failed logins per client address, and one
    # verification at a time (issue 13; _throttle.py)
    address = call.request.client.host if call.request.client else "?"
    logins = call.state.logins
    logins.check(address, call.now_ms)
    with logins.turn(), db.read() as session:  # Argon2 verify outside any write lock
        try:
            client_pk, granted = check_client(session, call.state.hasher, cid, secret)
        except Unauthorized:
            logins.failed(address, call.now_ms)
            raise
    with db.write() as session:
        tok, scopes = issue_token(session, client_pk, granted, requested, call.now_ms,
                                  st.token_ttl_s)
        Store(session, st.master_key, call.now_ms).audit.record(
            Actor(cid), "token.issue",
            detail={"scopes": sorted(scopes), "expires_in": st.token_ttl_s})
    resp = json_response({"access_token": tok, "token_type": "Bearer",
                          "expires_in": st.token_ttl_s, "scope": " ".join(sorted(scopes))})
    resp.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    return resp


@route("POST", "/v1/auth/revoke", tx="write", scope="read", tags=("auth",),
       summary="Revoke a token (RFC 7009): one's own, or any with scope admin",
       request={JSON: req({"token": S_TOKEN}, ("token",))},
       responses={"200": ("revoked (or unknown)", JSON, obj({"revoked": S_BOOL}))})
def revoke(call: Call) -> Response:
    body = call.json_object({"token"})
    tok = body.get("token")
    if not isinstance(tok, str) or not tok or len(tok) > 200:
        raise BadRequest("token must be a non-empty string")
    assert call.principal is not None
    found = revoke_token(call.store.s, call.principal, tok, call.now_ms)
    if found:
        call.state.tokens.revoked(tok)  # at once in this process (see TokenCache)
    call.store.audit.record(call.actor, "token.revoke", detail={"found": found})
    return json_response({"revoked": found})


# Gateway tokens may revoke themselves too.
@route("POST", "/v1/gateway/revoke", tx="write", scope="gateway", tags=("auth",),
       summary="Revoke the gateway's own token",
       request={JSON: req({"token": S_TOKEN}, ("token",))},
       responses={"200": ("revoked (or unknown)", JSON, obj({"revoked": S_BOOL}))})
def gateway_revoke(call: Call) -> Response:
    return revoke(call)


@route("POST", "/v1/clients", tx="write", scope="admin", tags=("auth",),
       summary="Create a client credential (operator or gateway); the secret is shown once",
       request={JSON: req({"client_id": S_CLIENT_ID, "scopes": {"oneOf": [
           {"type": "array", "minItems": 1, "items": {"enum": ["read", "write", "admin"]}},
           {"type": "array", "minItems": 1, "items": {"const": "gateway"}}],
           "description": "operator scopes, or gateway alone"}}, ("client_id", "scopes"))},
       responses={"201": ("created", JSON, obj({"client_id": S_STR, "client_secret": S_STR,
                                                "scopes": {"type": "array"}}))})
def clients_create(call: Call) -> Response:
    body = call.json_object({"client_id", "scopes"})
    cid = validate_client_id(body.get("client_id"))
    scopes_in = body.get("scopes")
    if not isinstance(scopes_in, list):
        raise BadRequest("scopes must be a list of scope names")
    scopes = parse_scopes(scopes_in)
    secret = create_client(call.store.s, call.state.hasher, cid, scopes, call.now_ms)
    call.store.audit.record(call.actor, "client.create", detail={"client_id": cid,
                                                                 "scopes": sorted(scopes)})
    return json_response({"client_id": cid, "client_secret": secret,
                          "scopes": sorted(scopes)}, 201)


@route("GET", "/v1/clients", scope="admin", tags=("auth",), summary="List client credentials",
       responses={"200": ("clients", JSON, obj({"clients": {"type": "array"}}))})
def clients_list(call: Call) -> Response:
    return json_response({"clients": list_clients(call.store.s)})


@route("DELETE", "/v1/clients/{client_id}", tx="write", scope="admin", tags=("auth",),
       summary="Disable a client and revoke all its tokens",
       responses={"204": ("disabled", None, None)})
def clients_disable(call: Call) -> Response:
    cid = validate_client_id(call.path("client_id"))
    disable_client(call.store.s, cid, call.now_ms)
    call.state.tokens.disabled(cid)
    call.store.audit.record(call.actor, "client.disable", detail={"client_id": cid})
    return Response(status_code=204)


# ---------------------------------------------------------------------------- SIMs


def _iccid(call: Call) -> str:
    return parse_iccid(call.path("iccid"), force=True)


SIM_CREATE = {**req({
    "iccid": S_ICCID, "force": S_BOOL, "psk": S_HEX_PSK,
    "generate_psk": S_BOOL, "tag": S_TAG, "labels": S_LABELS,
    "state": {"enum": ["active", "suspended"]}, "bind_first_device": S_BOOL,
}, ("iccid",)), "not": {"required": ["psk", "generate_psk"],
                        "properties": {"generate_psk": {"const": True}}},
    "description": "psk or generate_psk: true, not both"}


@route("POST", "/v1/sims", tx="write", scope="write", tags=("sims",),
       summary="Register a SIM (ICCID validated, Luhn unless force); optional PSK import or "
               "generation (a generated PSK is returned once, here only)",
       request={JSON: SIM_CREATE},
       responses={"201": ("created", JSON, SIM)})
def sims_create(call: Call) -> Response:
    body = call.json_object(set(SIM_CREATE["properties"]))
    force = bool(parse_bool(body.get("force"), "force", False))
    iccid = parse_iccid(body.get("iccid"), force=force)
    generate = bool(parse_bool(body.get("generate_psk"), "generate_psk", False))
    psk = parse_key_hex(body["psk"], "psk") if body.get("psk") is not None else None
    if psk is not None and generate:
        raise BadRequest("give psk or generate_psk, not both")
    tag = parse_tag(body["tag"]) if body.get("tag") is not None else None
    labels = parse_labels(body.get("labels"))
    state = body.get("state", "active")
    bind = bool(parse_bool(body.get("bind_first_device"), "bind_first_device", False))
    if not isinstance(state, str):
        raise BadRequest("state must be a string")
    sim = call.store.sims.create(call.actor, iccid, state=state, labels=labels,
                                 bind_first_device=bind)
    generated = None
    if psk is not None or generate:
        _, generated = call.store.keys.add(call.actor, iccid, "psk", key=psk, tag=tag, sim=sim)
    out = call.store.sims.get(iccid)
    if generated is not None:
        out["psk"] = generated.hex()  # the only time a PSK leaves the service to an operator
    return json_response(out, 201)


@route("GET", "/v1/sims", scope="read", tags=("sims",), summary="List SIMs",
       query=(Param("state", {"enum": ["active", "suspended"]}),
              Param("label", {"type": "string", "pattern": "="}, False, "key=value"),
              Param("after", {"type": "string", "pattern": "^[0-9]{1,20}$"}, False,
                    "ICCID to continue after"), P_LIMIT),
       responses={"200": ("SIMs", JSON, obj({"sims": {"type": "array", "items": SIM}}))})
def sims_list(call: Call) -> Response:
    state = call.query("state")
    if state not in (None, "active", "suspended"):
        raise BadRequest("state must be active or suspended")
    label_text = call.query("label")
    label = None
    if label_text is not None:
        k, sep, v = label_text.partition("=")
        if not sep:
            raise BadRequest("label filter must be key=value")
        label = (k, v)
    after = call.query("after")
    if after is not None and not (after.isascii() and after.isdigit() and len(after) <= 20):
        raise BadRequest("after must be an ICCID (digits)")
    limit = call.query_int("limit", 100, 1, 1000)
    return json_response({"sims": call.store.sims.find(state=state, label=label, after=after,
                                                       limit=limit)})


IMPORT_ROW = req({"iccid": S_ICCID, "psk": S_HEX_PSK,
                  "tag": {"anyOf": [S_TAG, {"const": ""}, {"type": "null"}]},
                  "labels": {"anyOf": [S_LABELS, {"type": "null"}]},
                  "kic": {"anyOf": [S_HEX_OTA_KEY, {"const": ""}, {"type": "null"}]},
                  "kid": {"anyOf": [S_HEX_OTA_KEY, {"const": ""}, {"type": "null"}]}},
                 ("iccid", "psk"))
IMPORT_ROWS = {"type": "array", "minItems": 1, "items": IMPORT_ROW,
               "description": "an ICCID (and tag) listed twice is a 409"}


@route("POST", "/v1/sims/import", tx="write", scope="write", tags=("sims",),
       body_max=IMPORT_BODY_MAX,
       summary="Import the SIM vendor's key file (CSV with header iccid,psk[,tag,kic,kid] or "
               "JSON list of {iccid, psk, tag?, labels?}); all rows or none",
       query=(Param("force", S_BOOL, False, "accept ICCIDs with a wrong Luhn digit"),),
       request={JSON: {"oneOf": [IMPORT_ROWS, req({"sims": IMPORT_ROWS}, ("sims",))]},
                "text/csv": {"type": "string", "format": "key-file-csv",
                             "description": "header iccid,psk[,tag,kic,kid], then one row "
                                            "per SIM and key"}},
       responses={"200": ("imported (unchanged: PSKs the SIMs already held, same tag and "
                          "bytes: a re-import changes nothing)", JSON,
                          obj({"sims_created": S_INT, "psks_added": S_INT,
                               "unchanged": S_INT}))})
def sims_import(call: Call) -> Response:
    force = call.query_bool("force")
    if call.content_type() == "text/csv":
        rows = _parse_csv(call.body)
    else:
        data = call.json()
        if isinstance(data, dict) and set(data) == {"sims"}:
            data = data["sims"]
        if not isinstance(data, list):
            raise BadRequest("expected a JSON list of SIM rows (or {\"sims\": [...]})")
        rows = data
    if not rows:
        raise BadRequest("key file holds no rows")
    return json_response(call.store.imports.sims(call.actor, rows, force=force))


def _parse_csv(raw: bytes) -> list[dict[str, Any]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("CSV key file is not UTF-8") from None
    try:
        reader = csv.DictReader(io.StringIO(text))
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "iccid" not in fields or "psk" not in fields:
            raise BadRequest("CSV key file needs a header with columns iccid and psk")
        unknown = set(fields) - {"iccid", "psk", "tag", "kic", "kid"}
        if unknown:
            raise BadRequest(f"CSV key file: unknown column(s) {', '.join(sorted(unknown))}")
        reader.fieldnames = fields
        rows = []
        for n, row in enumerate(reader, 1):
            if None in row or any(v is None for v in row.values()):
                raise BadRequest(f"row {n}: wrong number of columns")
            rows.append({k: v.strip() for k, v in row.items()})
        return rows
    except csv.Error as exc:
        raise BadRequest(f"CSV key file is malformed: {exc}") from None


@route("GET", "/v1/sims/{iccid}", scope="read", tags=("sims",),
       summary="One SIM with its key list (never key material)",
       responses={"200": ("SIM", JSON, SIM)})
def sims_get(call: Call) -> Response:
    return json_response(call.store.sims.get(_iccid(call)))


SIM_PATCH = req({"state": {"enum": ["active", "suspended"]}, "labels": S_LABELS,
                 "bind_first_device": S_BOOL, "clear_binding": S_BOOL})


@route("PATCH", "/v1/sims/{iccid}", tx="write", scope="write", tags=("sims",),
       summary="Suspend/activate a SIM, set labels, device binding",
       request={JSON: SIM_PATCH}, responses={"200": ("SIM", JSON, SIM)})
def sims_patch(call: Call) -> Response:
    iccid = _iccid(call)
    body = call.json_object(set(SIM_PATCH["properties"]))
    state = body.get("state")
    if state is not None and not isinstance(state, str):
        raise BadRequest("state must be a string")
    labels = parse_labels(body["labels"]) if "labels" in body else None
    return json_response(call.store.sims.update(
        call.actor, iccid, state=state, labels=labels,
        bind_first_device=parse_bool(body.get("bind_first_device"), "bind_first_device"),
        clear_binding=bool(parse_bool(body.get("clear_binding"), "clear_binding", False)),
    ))


@route("DELETE", "/v1/sims/{iccid}", tx="write", scope="write", tags=("sims",),
       summary="Remove a SIM with its keys, configurations and telemetry (the audit stays)",
       responses={"204": ("removed", None, None)})
def sims_delete(call: Call) -> Response:
    call.store.sims.delete(call.actor, _iccid(call))
    return Response(status_code=204)


KEY_CREATE = {"oneOf": [
    req({"kind": {"const": "psk"}, "tag": S_TAG, "key": S_HEX_PSK}, ("kind",)),
    req({"kind": {"enum": ["kic", "kid"]}, "tag": S_TAG, "key": S_HEX_OTA_KEY}, ("kind",)),
], "description": "key: hex, omit to generate"}


@route("POST", "/v1/sims/{iccid}/keys", tx="write", scope="write", tags=("sims",),
       summary="Add a key (psk, or OTA kic/kid) to a SIM: imported or generated; several "
               "active keys of a kind may coexist (rotation)",
       request={JSON: KEY_CREATE}, responses={"201": ("created", JSON, KEY)})
def keys_create(call: Call) -> Response:
    iccid = _iccid(call)
    body = call.json_object({"kind", "tag", "key"})
    kind = body.get("kind")
    if kind not in KEY_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KEY_KINDS)}")
    key = parse_key_hex(body["key"], kind) if body.get("key") is not None else None
    tag = parse_tag(body["tag"]) if body.get("tag") is not None else None
    row, generated = call.store.keys.add(call.actor, iccid, kind, key=key, tag=tag)
    out = key_view(row)
    if generated is not None:
        out["key"] = generated.hex()
    return json_response(out, 201)


def _kind_tag(call: Call) -> tuple[str, str]:
    kind = call.path("kind")
    if kind not in KEY_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KEY_KINDS)}")
    return kind, parse_tag(call.path("tag"))


@route("PATCH", "/v1/sims/{iccid}/keys/{kind}/{tag}", tx="write", scope="write",
       tags=("sims",), summary="Retire or re-activate a key",
       request={JSON: req({"state": {"enum": ["active", "retired"]}}, ("state",))},
       responses={"200": ("key", JSON, KEY)})
def keys_patch(call: Call) -> Response:
    iccid = _iccid(call)
    kind, tag = _kind_tag(call)
    state = call.json_object({"state"}).get("state")
    if not isinstance(state, str):
        raise BadRequest("state must be active or retired")
    return json_response(key_view(call.store.keys.set_state(call.actor, iccid, kind, tag,
                                                            state)))


@route("DELETE", "/v1/sims/{iccid}/keys/{kind}/{tag}", tx="write", scope="write",
       tags=("sims",), summary="Delete a key", responses={"204": ("deleted", None, None)})
def keys_delete(call: Call) -> Response:
    iccid = _iccid(call)
    kind, tag = _kind_tag(call)
    call.store.keys.delete(call.actor, iccid, kind, tag)
    return Response(status_code=204)


@route("GET", "/v1/sims/{iccid}/telemetry", scope="read", tags=("sims",),
       summary="Latest telemetry records of a SIM (storage keeps a bounded number)",
       query=(P_LIMIT,),
       responses={"200": ("records", JSON, obj({"telemetry": {"type": "array"}}))})
def telemetry_list(call: Call) -> Response:
    iccid = _iccid(call)
    limit = call.query_int("limit", 100, 1, 1000)
    return json_response({"telemetry": call.store.delivery.list_telemetry(iccid, limit)})


# ---------------------------------------------------------------------------- configurations


def _device(call: Call) -> str:
    return parse_device_id(call.path("device_id"), allow_default=True)


CONFIG_PUT = {**config_body({"if_version": {"type": "integer", "minimum": 0,
                                            "maximum": ID_MAX},
                             "comment": S_COMMENT}, ("body",)),
              "description": "require_json: true needs a JSON body; a configuration that "
                             "requires JSON answers a body that is not 409 invalid_json"}


@route("GET", "/v1/sims/{iccid}/configs", scope="read", tags=("configs",),
       summary="Current configurations of a SIM (per DeviceID and default)",
       responses={"200": ("configs", JSON, obj({"configs": {"type": "array",
                                                            "items": CONFIG}}))})
def configs_list(call: Call) -> Response:
    return json_response({"configs": call.store.configs.list_current(_iccid(call))})


@route("PUT", "/v1/sims/{iccid}/configs/{device_id}", tx="write", scope="write",
       tags=("configs",),
       summary="Set the configuration of a SIM in a device (DeviceID hex, or 'default'): a new "
               "version; body <= 254 bytes UTF-8; if_version for optimistic locking",
       request={JSON: CONFIG_PUT}, responses={"200": ("new version", JSON, CONFIG)})
def configs_put(call: Call) -> Response:
    iccid, device = _iccid(call), _device(call)
    body = call.json_object({"body", "require_json", "if_version", "comment"})
    if_version = body.get("if_version")
    if if_version is not None and (not isinstance(if_version, int)
                                   or isinstance(if_version, bool)
                                   or not 0 <= if_version <= ID_MAX):
        raise BadRequest("if_version must be a non-negative integer")
    text = body.get("body")
    if not isinstance(text, str):
        raise BadRequest("body must be a string")
    return json_response(call.store.configs.set(
        call.actor, iccid, device, text,
        require_json=parse_bool(body.get("require_json"), "require_json",
                                True if call.settings.require_json else None),
        if_version=if_version, comment=parse_comment(body.get("comment")),
    ))


@route("GET", "/v1/sims/{iccid}/configs/{device_id}", scope="read", tags=("configs",),
       summary="Current configuration", responses={"200": ("config", JSON, CONFIG)})
def configs_get(call: Call) -> Response:
    return json_response(call.store.configs.get(_iccid(call), _device(call)))


@route("DELETE", "/v1/sims/{iccid}/configs/{device_id}", tx="write", scope="write",
       tags=("configs",), summary="Delete a configuration (a deletion version in history)",
       responses={"200": ("deletion version", JSON, CONFIG)})
def configs_delete(call: Call) -> Response:
    return json_response(call.store.configs.set(call.actor, _iccid(call), _device(call), None))


@route("GET", "/v1/sims/{iccid}/configs/{device_id}/history", scope="read",
       tags=("configs",), summary="Versions, newest first", query=(P_LIMIT,),
       responses={"200": ("history", JSON, obj({"versions": {"type": "array",
                                                             "items": VERSION}}))})
def configs_history(call: Call) -> Response:
    limit = call.query_int("limit", 100, 1, 1000)
    versions = call.store.configs.history(_iccid(call), _device(call), limit)
    return json_response({"versions": versions})


@route("POST", "/v1/sims/{iccid}/configs/{device_id}/rollback", tx="write", scope="write",
       tags=("configs",), summary="Make an old version current again (as a new version)",
       request={JSON: req({"version": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
                           "comment": S_COMMENT},
                          ("version",))},
       responses={"200": ("new version", JSON, CONFIG)})
def configs_rollback(call: Call) -> Response:
    iccid, device = _iccid(call), _device(call)
    body = call.json_object({"version", "comment"})
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= ID_MAX:
        raise BadRequest("version must be a positive integer")
    return json_response(call.store.configs.rollback(call.actor, iccid, device, version,
                                                     parse_comment(body.get("comment"))))


@route("GET", "/v1/configs/export", scope="read", tags=("configs",),
       summary="Every current configuration (input for /v1/configs/import)",
       responses={"200": ("configs", JSON, obj({"configs": {"type": "array"}}))})
def configs_export(call: Call) -> Response:
    return json_response({"configs": call.store.configs.export()})


@route("POST", "/v1/configs/import", tx="write", scope="write", tags=("configs",),
       body_max=IMPORT_BODY_MAX,
       summary="Set many configurations, all or nothing: {configs: [{iccid, device_id, body, "
               "require_json?, comment?}]}",
       request={JSON: req({"configs": {
           "type": "array", "minItems": 1,
           "description": "an (ICCID, device) listed twice is a 409",
           "items": config_body({"iccid": S_ICCID_ANY, "device_id": S_DEVICE_OR_DEFAULT,
                                 "comment": S_COMMENT}, ("iccid", "body"))}},
           ("configs",))},
       responses={"200": ("imported", JSON, obj({"imported": S_INT}))})
def configs_import(call: Call) -> Response:
    body = call.json_object({"configs"})
    rows = body.get("configs")
    if not isinstance(rows, list) or not rows:
        raise BadRequest("configs must be a non-empty list")
    return json_response(call.store.imports.configs(call.actor, rows))


# ---------------------------------------------------------------------------- audit


@route("GET", "/v1/audit", scope="read", tags=("audit",),
       summary="Audit log: every change and delivery (who, when, version, gateway)",
       query=(Param("iccid", S_ICCID_ANY),
              Param("action", {"type": "string", "pattern": "^[a-z0-9_.]{1,64}$"}),
              Param("severity", {"enum": ["info", "alert"]}), P_AFTER_ID, P_LIMIT),
       responses={"200": ("events", JSON, obj({"events": {"type": "array"}, "last": S_INT}))})
def audit_list(call: Call) -> Response:
    iccid = call.query("iccid")
    if iccid is not None:
        iccid = parse_iccid(iccid, force=True)
    severity = call.query("severity")
    if severity not in (None, "info", "alert"):
        raise BadRequest("severity must be info or alert")
    action = call.query("action")
    if action is not None and not re.fullmatch(r"[a-z0-9_.]{1,64}", action):
        raise BadRequest("action filter must match [a-z0-9_.]{1,64}")
    after = call.query_int("after", 0, 0, ID_MAX)
    limit = call.query_int("limit", 100, 1, call.settings.audit_page_max)
    events = call.store.audit.events(iccid=iccid, action=action, severity=severity,
                                     after=after, limit=limit)
    return json_response({"events": events, "last": events[-1]["id"] if events else after})


# ---------------------------------------------------------------------------- gateway

H_IDENTITY = Param("X-ZTP-Identity", S_IDENT, True, "hex of the PSK identity the gateway verified")
H_KEY_TAG = Param("X-ZTP-Key-Tag", S_TAG, False, "tag of the key whose binder verified")
H_GATEWAY = Param("X-ZTP-Gateway", S_GATEWAY_NAME, False,
                  "gateway name (default: its client id)")
Q_ICCID_HEX = Param("iccid", S_IDENT, True, "hex of the EF_ICCID bytes")


@route("GET", "/v1/gateway/psks/{identity_hex}", tx="write", scope="gateway",
       tags=("gateway",), headers=(H_GATEWAY,),
       summary="Usable PSKs of a SIM by PSK identity (hex of EF_ICCID); 404 unknown/suspended",
       responses={"200": ("keys", JSON, obj({
           "identity": S_STR, "iccid": S_STR,
           "keys": {"type": "array", "items": obj({"tag": S_STR, "psk": S_STR})}},
           ("identity", "iccid", "keys")))})
def gateway_psks(call: Call) -> Response:
    identity = parse_identity_hex(call.path("identity_hex"))
    return json_response(call.store.delivery.psks(_gateway_actor(call), identity))


@route("GET", "/v1/gateway/psk-changes", scope="gateway", tags=("gateway",),
       summary="Identities whose keys changed after event N (gateway cache invalidation)",
       query=(Param("after", {"type": "integer", "minimum": 0, "maximum": ID_MAX}, False),),
       responses={"200": ("changes", JSON, obj({"last": S_INT, "identities": {
           "type": "array", "items": S_STR}}, ("last", "identities")))})
def gateway_psk_changes(call: Call) -> Response:
    return json_response(call.store.feed.changes(call.query_int("after", 0, 0, ID_MAX)))


@route("POST", "/v1/gateway/events", tx="write", scope="gateway", tags=("gateway",),
       headers=(H_GATEWAY,),
       summary="Record a gateway event (e.g. iccid_mismatch) in the audit log",
       request={JSON: req({"kind": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
                           "identity": S_IDENT, "detail": {"type": "object"}}, ("kind",))},
       responses={"204": ("recorded", None, None)})
def gateway_events(call: Call) -> Response:
    body = call.json_object({"kind", "identity", "detail"})
    call.store.delivery.event(_gateway_actor(call), body.get("kind"), body.get("identity"),
                              body.get("detail"))
    return Response(status_code=204)


def _gateway_actor(call: Call) -> Actor:
    assert call.principal is not None
    return _gateway_actor_of(call.request, call.principal)


def _gateway_actor_of(request: Request, principal: Principal) -> Actor:
    name = header_map(request).get("x-ztp-gateway")
    gateway = parse_gateway_name(name) if name is not None else principal.client_id
    return Actor(principal.client_id, gateway)


def _device_headers(call: Call) -> tuple[Actor, str, str, str, str]:
    assert call.principal is not None
    return _device_headers_of(call.request, call.principal)


def _device_headers_of(request: Request, principal: Principal
                       ) -> tuple[Actor, str, str, str, str]:
    """(actor, identity, iccid param, device, key tag) of a device request, checked.

    Raises:
        BadRequest: a header, the iccid parameter or the device id is missing or malformed.
    """
    actor = _gateway_actor_of(request, principal)
    headers = header_map(request)
    ident = headers.get("x-ztp-identity")
    if ident is None:
        raise BadRequest("missing X-ZTP-Identity header (the verified PSK identity)")
    identity = parse_identity_hex(ident, "X-ZTP-Identity")
    tag_header = headers.get("x-ztp-key-tag")
    tag = parse_tag(tag_header) if tag_header is not None else ""
    iccid_params = single_query(request, "iccid")
    if len(iccid_params) > 1:
        raise BadRequest("query parameter 'iccid' given more than once")
    if not iccid_params:
        raise BadRequest("missing query parameter iccid")
    # the usual request names the SIM twice, the same way: checked once
    iccid_hex = identity if iccid_params[0] == ident else parse_identity_hex(iccid_params[0],
                                                                             "iccid")
    device = parse_device_id(request.path_params["device_id_hex"])
    return actor, identity, iccid_hex, device, tag


def _config_response(device: str, found: tuple[bytes, int, str] | None) -> Response:
    if found is None:
        # Returned, not raised: the miss and any first-device binding still commit.
        return error_response(NotFound(f"no configuration for device {device}",
                                       code="unknown_config"))
    body, version, slot = found
    return Response(body, media_type="application/octet-stream",
                    headers={"X-ZTP-Config-Version": str(version), "X-ZTP-Config-Slot": slot})


def device_config_fast(state: AppState, request: Request, principal: Principal,
                       now_ms: int, wait: bool) -> Response | None:
    """The usual configuration request (well-formed, the SIM named as the gateway verified
    it, a configuration of its own or default) in one driver transaction; None otherwise,
    and then nothing was written (:func:`~._delivery.deliver_fast`).

    Raises:
        WouldWait: ``wait`` is False and the write lock is taken.
    """
    try:
        actor, identity, iccid_hex, device, tag = _device_headers_of(request, principal)
    except ServiceError:
        return None  # answered by the usual path
    if iccid_hex != identity:
        return None  # an alert: the usual path records it
    with state.db.write_connection(wait=wait) as tx:
        if tx is None:
            raise WouldWait
        found = deliver_fast(tx, now_ms, actor, identity, device, tag)
        if not isinstance(found, tuple):
            tx.rollback()  # e.g. a first-device UPDATE before a label configuration
            return None
    return _config_response(device, found)


@route("GET", "/v1/config/{device_id_hex}", tx="write", scope="gateway", tags=("device",),
       summary="A device's configuration, as the SIM asks for it through the gateway",
       query=(Q_ICCID_HEX,), headers=(H_IDENTITY, H_KEY_TAG, H_GATEWAY),
       responses={"200": ("the body bytes", "application/octet-stream", S_STR)},
       fast=device_config_fast)
def device_config(call: Call) -> Response:
    actor, identity, iccid_hex, device, tag = _device_headers(call)
    found = call.store.delivery.deliver_config(actor, identity, iccid_hex, device, tag)
    return _config_response(device, found)


@route("POST", "/v1/data/{device_id_hex}", tx="write", scope="gateway", tags=("device",),
       body_max=TELEMETRY_BODY_MAX,
       summary="Telemetry from a device (body <= 1024 bytes, else 413); stored, bounded per "
               "SIM. A JSON object with a member v (or a body starting {\"v\") is the "
               "device's report of its configuration: parsed strictly (400 invalid_report, "
               "nothing recorded), recorded as device state and audited device.report",
       query=(Q_ICCID_HEX,), headers=(H_IDENTITY, H_KEY_TAG, H_GATEWAY),
       request={"application/json": {
                    "description": "any JSON of at most 1024 bytes; an object with a member "
                                   "v is a device report",
                    "anyOf": [REPORT_SCHEMA, {"not": {"type": "object", "required": ["v"]}}]},
                "application/octet-stream": {"type": "string", "format": "binary",
                                             "maxLength": 1024}},
       request_required=False,  # an empty body is a (stored) empty record
       responses={"204": ("stored", None, None),
                  "413": ("body over 1024 bytes", JSON, ERROR)})
def device_data(call: Call) -> Response:
    actor, identity, iccid_hex, device, tag = _device_headers(call)
    if len(call.body) > TELEMETRY_BODY_MAX:
        raise PayloadTooLarge(f"telemetry is at most {TELEMETRY_BODY_MAX} bytes")
    report = parse_report(call.body)  # before any write: a bad report records nothing
    if report is not None:
        call.store.delivery.record_report(actor, identity, iccid_hex, device, tag, report)
        return Response(status_code=204)
    call.store.delivery.store_telemetry(actor, identity, iccid_hex, device, tag, call.body,
                                        call.settings.telemetry_keep_per_sim)
    return Response(status_code=204)


