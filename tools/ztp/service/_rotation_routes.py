"""Operator API of OTA PSK rotation (docs/ota.md, "Operator view"; logic in ``_rotation.py``)."""

from __future__ import annotations

import re

from starlette.responses import Response

from ._audit import Actor
from ._auth import authenticate
from ._errors import BadRequest, Forbidden, NotFound, ServiceError
from ._http import Call, Param, _bearer, json_response, route
from ._rotation import (
    OPEN_STATES,
    batch_progress,
    cancel_rotation,
    get_rotation,
    last_batch,
    list_rotations,
    parse_policy,
    retry_rotation,
    run_due,
    start_rotations,
    transport_from_settings,
)
from ._schemas import parse_iccid

JSON = "application/json"
S_INT = {"type": "integer"}
S_STR = {"type": "string"}
ROTATION = {"type": "object", "properties": {
    "id": S_INT, "iccid": S_STR, "batch": S_STR,
    "state": {"enum": ["pending", "delivered", "confirmed", "retired", "failed",
                       "cancelled"]},
    "old_tag": S_STR, "new_tag": S_STR, "attempts": S_INT, "overdue": {"type": "boolean"},
    "next_due_ms": {"type": ["integer", "null"]}, "last_por": S_STR,
    "accepted_tags": {"type": "array", "items": S_STR}}}
PROGRESS = {"type": "object", "properties": {
    "batch": S_STR, "total": S_INT, "done": S_INT, "failed": S_INT, "cancelled": S_INT,
    "overdue": S_INT,
    "states": {"type": "object"}, "complete": {"type": "boolean"}}}
_BATCH = re.compile(r"[A-Za-z0-9_.-]{1,32}")
ICCIDS_MAX = 100_000

S_ICCID_ANY = {"type": "string", "pattern": "^[0-9]{18,20}$"}
POLICY_MAX = 10 * 365 * 86_400
POLICY = {"type": "object", "additionalProperties": False,
          "description": "every field optional: positive integers (seconds, counts)",
          "properties": {k: {"type": "integer", "minimum": 1, "maximum": POLICY_MAX}
                         for k in ("retry_after_s", "retry_backoff", "max_retry_interval_s",
                                   "max_attempts", "overdue_after_s")}}
POLICY["properties"]["max_attempts"] = {
    "anyOf": [POLICY["properties"]["max_attempts"], {"type": "null"}]}
QUEUE = {"type": "boolean", "description": "start even with no SMS centre configured: the "
         "rotations wait (pending) until one is and `POST /v1/rotations/run` sends them; "
         "without it, no SMS centre is a 503 before anything changes"}
START = {"oneOf": [
    {"type": "object", "additionalProperties": False, "required": ["iccids"], "properties": {
        "iccids": {"type": "array", "items": S_ICCID_ANY, "minItems": 1,
                   "maxItems": ICCIDS_MAX, "description": "an ICCID listed twice is a 409"},
        "all": {"const": False}, "policy": POLICY, "queue": QUEUE}},
    {"type": "object", "additionalProperties": False, "required": ["all"], "properties": {
        "all": {"const": True}, "policy": POLICY, "queue": QUEUE}},
], "description": "iccids (all or nothing), or all: true"}


@route("POST", "/v1/rotations", tx="write", scope="write", tags=("ota",), body_max=4 << 20,
       summary="Start OTA PSK rotations: {iccids: [...]} (all or nothing) or {all: true} "
               "(every active SIM with OTA keys; others skipped); a new PSK is generated and "
               "accepted beside the old one until the SIM confirms it. With no SMS centre "
               "configured: 503 before anything changes, unless queue: true",
       request={JSON: START},
       responses={"201": ("batch started", JSON, {"type": "object", "properties": {
           "batch": S_STR, "started": S_INT, "skipped": {"type": "array"},
           "queued": {"type": "boolean"},
           "rotations": {"type": "array", "items": ROTATION}}}),
                  "503": ("no SMS centre configured (and not queue: true)", JSON, None)})
def rotations_start(call: Call) -> Response:
    body = call.json_object({"iccids", "all", "policy", "queue"})
    queue = body.get("queue", False)
    if not isinstance(queue, bool):
        raise BadRequest("queue must be true or false")
    everything = body.get("all")
    iccids = body.get("iccids")
    if (everything is True) == (iccids is not None) or everything not in (None, True, False):
        raise BadRequest("give either iccids (a list) or all: true")
    if iccids is not None:
        if not isinstance(iccids, list) or not iccids or len(iccids) > ICCIDS_MAX:
            raise BadRequest(f"iccids must be a list of 1..{ICCIDS_MAX} ICCIDs")
        iccids = [parse_iccid(i, force=True) for i in iccids]
    policy = parse_policy(body.get("policy"))
    # Checked before anything changes (issue 16): a rotation that cannot be sent would leave
    # a new key and an open rotation behind, and the next attempt a 409 rotation_open.
    has_centre = getattr(call.settings, "sms_centre", None) not in (None, "")
    if not has_centre and not queue:
        raise _Unavailable(NO_CENTRE + "; nothing was changed (queue: true starts the "
                           "rotations anyway, to be sent once one is configured)")
    out = start_rotations(call.store, call.actor, iccids, policy=policy)
    out["queued"] = not has_centre
    return json_response(out, 201)


@route("GET", "/v1/rotations", scope="read", tags=("ota",),
       summary="Rotations (filter by batch, state, overdue), oldest first",
       query=(Param("batch", {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"}),
              Param("state", {"enum": list(OPEN_STATES) + ["retired", "cancelled"]}),
              Param("overdue", {"type": "boolean"}),
              Param("after", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}, False,
                    "ids after this"),
              Param("limit", {"type": "integer", "minimum": 1, "maximum": 10_000})),
       responses={"200": ("rotations", JSON, {"type": "object", "properties": {
           "rotations": {"type": "array", "items": ROTATION}}})})
def rotations_list(call: Call) -> Response:
    batch = call.query("batch")
    if batch is not None and not _BATCH.fullmatch(batch):
        raise BadRequest("batch must be 1-32 characters of A-Z a-z 0-9 _ . -")
    state = call.query("state")
    if state is not None and state not in (*OPEN_STATES, "retired", "cancelled"):
        raise BadRequest("state must be pending, delivered, confirmed, retired, failed or "
                         "cancelled")
    return json_response({"rotations": list_rotations(
        call.store, batch=batch, state=state, overdue=call.query_bool("overdue"),
        after=call.query_int("after", 0, 0, 2**31 - 1),
        limit=call.query_int("limit", 1000, 1, 10_000))})


@route("GET", "/v1/rotations/batches/{batch}", scope="read", tags=("ota",),
       summary="Progress of a batch ('latest' = the newest): counts per state, overdue, done",
       responses={"200": ("progress", JSON, PROGRESS)})
def rotations_batch(call: Call) -> Response:
    batch = call.path("batch")
    if batch == "latest":
        batch = last_batch(call.store) or ""
        if not batch:
            raise NotFound("no rotation batch yet", code="unknown_batch")
    if not _BATCH.fullmatch(batch):
        raise BadRequest("batch must be 1-32 characters of A-Z a-z 0-9 _ . - (or latest)")
    return json_response(batch_progress(call.store, batch))


@route("GET", "/v1/sims/{iccid}/rotation", scope="read", tags=("ota",),
       summary="The SIM's latest rotation with its history",
       responses={"200": ("rotation", JSON, ROTATION)})
def rotation_get(call: Call) -> Response:
    return json_response(get_rotation(call.store, parse_iccid(call.path("iccid"), force=True)))


@route("POST", "/v1/sims/{iccid}/rotation/retry", tx="write", scope="write", tags=("ota",),
       summary="Send a failed rotation again at the next run (pending again, a fresh attempt "
               "budget); a failed rotation is never resent otherwise",
       responses={"200": ("rotation", JSON, ROTATION)})
def rotation_retry(call: Call) -> Response:
    return json_response(retry_rotation(call.store, call.actor,
                                        parse_iccid(call.path("iccid"), force=True)))


@route("POST", "/v1/sims/{iccid}/rotation/cancel", tx="write", scope="write", tags=("ota",),
       summary="Close a failed or pending (stuck) rotation: the old key stays; the new key is "
               "retired only if the SIM's verified PoRs prove it does not hold it, else both "
               "stay accepted (new_key: retired | kept)",
       request={JSON: {"type": "object", "additionalProperties": False,
                       "properties": {"reason": {"type": "string", "maxLength": 200}}}},
       request_required=False,
       responses={"200": ("the cancelled rotation", JSON, {"allOf": [ROTATION, {
           "type": "object", "properties": {"new_key": {"enum": ["retired", "kept"]},
                                            "note": S_STR}}]}),
                  "409": ("the rotation is delivered or confirmed", JSON, None)})
def rotation_cancel(call: Call) -> Response:
    reason = ""
    if call.body:
        reason = call.json_object({"reason"}).get("reason", "")
        if not isinstance(reason, str) or len(reason) > 200:
            raise BadRequest("reason must be a string of at most 200 characters")
    return json_response(cancel_rotation(call.store, call.actor,
                                         parse_iccid(call.path("iccid"), force=True), reason))


@route("POST", "/v1/rotations/run", tx="none", scope="write", tags=("ota",),
       summary="Send every rotation packet due now (first sends and resends after the "
               "backoff) through the SMS centre and check the PoRs",
       request={JSON: {"type": "object", "additionalProperties": False, "properties": {
           "limit": {"type": "integer", "minimum": 1, "maximum": 100_000}}}},
       request_required=False,
       responses={"200": ("what happened", JSON, {"type": "object"}),
                  "503": ("no SMS centre configured", JSON, None)})
def rotations_run(call: Call) -> Response:
    state = call.state
    with state.db.read() as session:
        principal = authenticate(session, _bearer(call.request), call.now_ms)
    if not principal.has("write"):
        raise Forbidden("this operation needs scope 'write'", code="insufficient_scope")
    limit = 100_000
    if call.body:
        body = call.json_object({"limit"})
        value = body.get("limit", limit)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise BadRequest(f"limit must be 1..{limit}")
        limit = value
    transport = transport_from_settings(getattr(call.settings, "sms_centre", None))
    if transport is None:
        raise _Unavailable(NO_CENTRE)
    summary = run_due(state.db, state.settings.master_key, state.settings.clock_ms,
                      transport, actor=Actor(principal.client_id), limit=limit)
    return json_response(summary)


NO_CENTRE = "no SMS centre configured (ztp service serve --smsc-url / ZTP_SMSC_URL)"


class _Unavailable(ServiceError):
    status = 503
    code = "sms_centre_unavailable"
