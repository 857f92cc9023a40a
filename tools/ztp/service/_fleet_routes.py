"""Endpoints of device state, label (fleet) configurations and staged rollouts (issue 17;
docs/service.md "Devices, fleets and rollouts"). The device reports come in through the
telemetry route (``_routes.device_data``)."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from ._devices import DEVICE_STATES, Devices
from ._errors import BadRequest
from ._fleet import PRIORITY_MAX, LabelConfigs, parse_label
from ._http import Call, Param, json_response, route
from ._rollouts import Rollouts
from ._routes import ID_MAX, P_LIMIT
from ._schemas import (
    JSON,
    S_BOOL,
    S_COMMENT,
    S_INT,
    S_STR,
    config_body,
    obj,
    parse_bool,
    parse_comment,
    parse_device_id,
    parse_iccid,
)
from ._stages import STAGES_MAX

__all__: list[str] = []

S_LABEL = {"type": "string", "pattern": "^[a-z0-9_.-]{1,32}=[A-Za-z0-9_.:@-]{1,64}$",
           "description": "key=value of a SIM label"}
S_PRIORITY = {"type": "integer", "minimum": 0, "maximum": PRIORITY_MAX,
              "description": "unique among label configurations; the highest matching wins"}
S_DEVICE_ENTRY = {"type": "string", "pattern": "^[0-9]{18,20}(/([0-9a-fA-F]{2}){1,64})?$",
                  "description": "ICCID (every device of the SIM) or ICCID/DEVICEID"}
S_DIGEST_OR_NULL = {"type": ["string", "null"]}
DEVICE = obj({"iccid": S_STR, "device_id": S_STR, "state": {"enum": list(DEVICE_STATES)},
              "labels": {"type": "object"}, "desired": {"type": ["object", "null"]},
              "delivered": {"type": ["object", "null"]},
              "reported": {"type": ["object", "null"]}, "first_seen_ms": S_INT,
              "last_seen_ms": S_INT}, ("iccid", "device_id", "state"))
LABEL_CONFIG = obj({"label": S_STR, "priority": S_INT, "version": S_INT,
                    "require_json": S_BOOL, "body": {"type": ["string", "null"]},
                    "digest": S_DIGEST_OR_NULL, "rollout": {"type": ["integer", "null"]}},
                   ("label", "priority", "version"))
ROLLOUT = obj({"id": S_INT, "label": S_STR, "state": {"enum": [
    "running", "paused", "stopped", "completed", "aborted"]}, "stage": S_INT,
    "stages": {"type": "array", "items": S_INT}, "devices": {"type": "array"},
    "from_version": S_INT, "to_version": S_INT, "digest": S_STR, "max_failures": S_INT,
    "reason": S_STR, "counts": {"type": "object"}}, ("id", "label", "state", "stage"))
P_LABEL_FILTER = Param("label", {"type": "string", "pattern": "="}, False, "key=value")


def _label_filter(call: Call) -> tuple[str, str] | None:
    text = call.query("label")
    if text is None:
        return None
    key, sep, value = text.partition("=")
    if not sep:
        raise BadRequest("label filter must be key=value")
    return key, value


def _int_field(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not lo <= value <= hi:
        raise BadRequest(f"{name} must be an integer {lo}..{hi}")
    return value


def _ops(call: Call) -> tuple[Devices, LabelConfigs, Rollouts]:
    store = call.store
    record = store.audit.record
    return (Devices(store.s, store.now_ms, record), LabelConfigs(store.s, store.now_ms, record),
            Rollouts(store.s, store.now_ms, record))


# ---------------------------------------------------------------------------- devices


@route("GET", "/v1/devices", scope="read", tags=("devices",),
       summary="Devices the service has seen, with what they should hold (desired), got "
               "(delivered) and reported, and their state: in_sync, pending, failed, "
               "unmanaged",
       query=(Param("state", {"enum": list(DEVICE_STATES)}), P_LABEL_FILTER,
              Param("after", {"type": "string",
                              "pattern": "^[0-9]{18,20}/([0-9a-fA-F]{2}){1,64}$"}, False,
                    "ICCID/DEVICEID to continue after"), P_LIMIT),
       responses={"200": ("devices", JSON, obj({"devices": {"type": "array",
                                                            "items": DEVICE}}))})
def devices_list(call: Call) -> Response:
    state = call.query("state")
    if state is not None and state not in DEVICE_STATES:
        raise BadRequest(f"state must be one of {', '.join(DEVICE_STATES)}")
    after_text = call.query("after")
    after = None
    if after_text is not None:
        iccid, sep, device = after_text.partition("/")
        if not sep or not re.fullmatch(r"[0-9]{18,20}", iccid):
            raise BadRequest("after must be ICCID/DEVICEID")
        after = (iccid, parse_device_id(device))
    limit = call.query_int("limit", 100, 1, 1000)
    devices, _, _ = _ops(call)
    return json_response({"devices": devices.list(state=state, label=_label_filter(call),
                                                  after=after, limit=limit)})


@route("GET", "/v1/devices/{iccid}/{device_id_hex}", scope="read", tags=("devices",),
       summary="One device: desired, delivered and reported configuration, and its state",
       responses={"200": ("device", JSON, DEVICE)})
def devices_get(call: Call) -> Response:
    iccid = parse_iccid(call.path("iccid"), force=True)
    device = parse_device_id(call.path("device_id_hex"))
    devices, _, _ = _ops(call)
    return json_response(devices.show(iccid, device))


# ---------------------------------------------------------------------------- label configs

LABEL_SET = config_body({"priority": S_PRIORITY, "comment": S_COMMENT}, ("body", "priority"))


def _label(call: Call) -> tuple[str, str]:
    return parse_label(call.path("label"))


def _raw_body(call: Call, body: dict[str, Any], configs: LabelConfigs,
              label: tuple[str, str]) -> tuple[bytes, bool | None]:
    """The body and the request's require_json (``LabelConfigs.checked_body``)."""
    rj = parse_bool(body.get("require_json"), "require_json")
    raw = configs.checked_body(label, body.get("body"), require_json=rj,
                               service_json=call.settings.require_json)
    return raw, rj


@route("PUT", "/v1/label-configs/{label}", tx="write", scope="write", tags=("fleets",),
       summary="Set the configuration of every SIM with label key=value (at once: for a "
               "staged one, POST /v1/rollouts); priority required when it is new, unique "
               "(409 priority_taken)",
       request={JSON: LABEL_SET}, responses={"200": ("set", JSON, LABEL_CONFIG)})
def label_configs_put(call: Call) -> Response:
    label = _label(call)
    body = call.json_object({"body", "priority", "require_json", "comment"})
    if body.get("priority") is None:
        raise BadRequest("priority is required (the highest matching label wins; repeat "
                         "the current one to keep it)")
    _, configs, _ = _ops(call)
    raw, rj = _raw_body(call, body, configs, label)
    return json_response(configs.set(
        call.actor, *label, raw, priority=_int_field(body, "priority", 0, PRIORITY_MAX),
        require_json=rj, comment=parse_comment(body.get("comment"))))


@route("GET", "/v1/label-configs", scope="read", tags=("fleets",),
       summary="Label configurations, highest priority first",
       responses={"200": ("label configurations", JSON,
                          obj({"configs": {"type": "array", "items": LABEL_CONFIG}}))})
def label_configs_list(call: Call) -> Response:
    _, configs, _ = _ops(call)
    return json_response({"configs": configs.list()})


@route("GET", "/v1/label-configs/{label}", scope="read", tags=("fleets",),
       summary="One label configuration", responses={"200": ("it", JSON, LABEL_CONFIG)})
def label_configs_get(call: Call) -> Response:
    _, configs, _ = _ops(call)
    return json_response(configs.get(*_label(call)))


@route("GET", "/v1/label-configs/{label}/history", scope="read", tags=("fleets",),
       summary="Versions of a label configuration, newest first (rollout bodies included)",
       query=(P_LIMIT,),
       responses={"200": ("versions", JSON, obj({"versions": {"type": "array"}}))})
def label_configs_history(call: Call) -> Response:
    _, configs, _ = _ops(call)
    return json_response({"versions": configs.history(
        *_label(call), call.query_int("limit", 100, 1, 1000))})


@route("DELETE", "/v1/label-configs/{label}", tx="write", scope="write", tags=("fleets",),
       summary="Remove a label configuration (its devices fall to the next matching label); "
               "409 while a rollout is open", responses={"204": ("removed", None, None)})
def label_configs_delete(call: Call) -> Response:
    _, configs, _ = _ops(call)
    configs.delete(call.actor, *_label(call))
    return Response(status_code=204)


# ---------------------------------------------------------------------------- rollouts

ROLLOUT_FIELDS = {
    "label": S_LABEL, "priority": {**S_PRIORITY, "description": "needed when the label "
                                   "has no configuration yet (else 404 unknown_label)"},
    "stages": {"type": "array", "minItems": 1, "maxItems": STAGES_MAX,
               "items": {"type": "integer", "minimum": 1, "maximum": 100},
               "description": "cumulative percentages of the label's devices; sorted, "
                              "duplicates dropped, 100 added last (default [10, 50, 100])"},
    "devices": {"type": "array", "maxItems": 1000, "items": S_DEVICE_ENTRY,
                "description": "devices that go first (a stage of their own)"},
    "max_failures": {"type": "integer", "minimum": 0, "maximum": 100000,
                     "description": "stop when more devices than this fail (default 0)"},
    "comment": S_COMMENT}
ROLLOUT_START = config_body(ROLLOUT_FIELDS, ("label", "body"))
P_ROLLOUT = "/v1/rollouts/{rollout_id}"


def _stages(value: object) -> list[int]:
    if value is None:
        return [10, 50, 100]
    if not isinstance(value, list) or not value or len(value) > STAGES_MAX \
            or any(type(p) is not int or not 1 <= p <= 100 for p in value):
        raise BadRequest(f"stages must be 1-{STAGES_MAX} whole percentages 1..100")
    return sorted(set(value) | {100})


def _devices(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 1000:
        raise BadRequest("devices must be a list of at most 1000 ICCID or ICCID/DEVICEID")
    out = set()
    for entry in value:
        if not isinstance(entry, str):
            raise BadRequest("devices: each is ICCID or ICCID/DEVICEID")
        iccid, sep, device = entry.partition("/")
        iccid = parse_iccid(iccid, force=True)
        out.add(f"{iccid}/{parse_device_id(device)}" if sep else iccid)
    return sorted(out)


@route("POST", "/v1/rollouts", tx="write", scope="write", tags=("rollouts",),
       summary="Start a staged rollout of a new body of a label configuration (409 when one "
               "is open on that label, or the body is already its current one)",
       request={JSON: ROLLOUT_START}, responses={"201": ("started", JSON, ROLLOUT)})
def rollouts_start(call: Call) -> Response:
    body = call.json_object({*ROLLOUT_FIELDS, "body", "require_json"})
    label = parse_label(body.get("label"))
    _, configs, rollouts = _ops(call)
    raw, rj = _raw_body(call, body, configs, label)
    return json_response(rollouts.start(
        call.actor, *label, raw, stages=_stages(body.get("stages")),
        devices=_devices(body.get("devices")),
        max_failures=_int_field(body, "max_failures", 0, 100000) or 0,
        priority=_int_field(body, "priority", 0, PRIORITY_MAX), require_json=rj,
        comment=parse_comment(body.get("comment"))), 201)


@route("GET", "/v1/rollouts", scope="read", tags=("rollouts",),
       summary="Rollouts, newest first", query=(P_LABEL_FILTER, P_LIMIT),
       responses={"200": ("rollouts", JSON, obj({"rollouts": {"type": "array",
                                                              "items": ROLLOUT}}))})
def rollouts_list(call: Call) -> Response:
    _, _, rollouts = _ops(call)
    return json_response({"rollouts": rollouts.list(_label_filter(call),
                                                    call.query_int("limit", 100, 1, 1000))})


def _rollout_id(call: Call) -> int:
    raw = call.path("rollout_id")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 1 <= int(raw) <= ID_MAX:
        raise BadRequest("rollout id must be a positive integer")
    return int(raw)


@route("GET", P_ROLLOUT, scope="read", tags=("rollouts",),
       summary="A rollout's state with its device counts (per stage; the current stage's "
               "confirmed, failed, pending)", responses={"200": ("rollout", JSON, ROLLOUT)})
def rollouts_get(call: Call) -> Response:
    _, _, rollouts = _ops(call)
    return json_response(rollouts.status(_rollout_id(call)))


@route("POST", P_ROLLOUT + "/pause", tx="write", scope="write", tags=("rollouts",),
       summary="Pause a running rollout: no widening (its stage keeps the new body)",
       responses={"200": ("paused", JSON, ROLLOUT)})
def rollouts_pause(call: Call) -> Response:
    _, _, rollouts = _ops(call)
    return json_response(rollouts.pause(call.actor, _rollout_id(call)))


@route("POST", P_ROLLOUT + "/resume", tx="write", scope="write", tags=("rollouts",),
       summary="Resume a paused rollout (evaluated at once)",
       responses={"200": ("running", JSON, ROLLOUT)})
def rollouts_resume(call: Call) -> Response:
    _, _, rollouts = _ops(call)
    return json_response(rollouts.resume(call.actor, _rollout_id(call)))


@route("POST", P_ROLLOUT + "/abort", tx="write", scope="write", tags=("rollouts",),
       summary="Stop a rollout and roll back: the label's previous body is desired again "
               "for every device", responses={"200": ("aborted", JSON, ROLLOUT)})
def rollouts_abort(call: Call) -> Response:
    _, _, rollouts = _ops(call)
    return json_response(rollouts.abort(call.actor, _rollout_id(call)))
