"""The OpenAPI 3.1 document, generated from the route table (so it cannot miss a route)."""

from __future__ import annotations

import re
from typing import Any

from .. import __version__
from ._http import ROUTES, RouteSpec
from ._schemas import SCHEMAS

__all__ = ["openapi_document"]

_PATH_PARAMS = {
    "iccid": {"type": "string", "pattern": "^[0-9]{18,20}$"},
    # EF_ICCID: swapped BCD, an F filler only at the end (18-20 digits)
    "identity_hex": {"type": "string", "pattern": "^[0-9]{18}([0-9]{2}|[fF][0-9]|[fF]{2})$"},
    "device_id_hex": {"type": "string", "pattern": "^([0-9a-fA-F]{2}){1,64}$"},
    "device_id": {"type": "string", "pattern": "^(default|([0-9a-fA-F]{2}){1,64})$"},
    "kind": {"enum": ["psk", "kic", "kid"]},
    "tag": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"},
    "client_id": {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"},
    "label": {"type": "string", "pattern": "^[a-z0-9_.-]{1,32}=[A-Za-z0-9_.:@-]{1,64}$",
              "description": "key=value of a SIM label"},
    "rollout_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "batch": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$",
              "description": "a batch id, or latest"},
}


def _operation(spec: RouteSpec) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": _PATH_PARAMS.get(name, {"type": "string"})}
        for name in re.findall(r"{(\w+)}", spec.path)
    ]
    params += [{"name": p.name, "in": "query", "required": p.required, "schema": p.schema,
                "description": p.description} for p in spec.query]
    params += [{"name": p.name, "in": "header", "required": p.required, "schema": p.schema,
                "description": p.description} for p in spec.headers]
    responses: dict[str, Any] = {}
    for status, (desc, ctype, schema) in spec.responses.items():
        entry: dict[str, Any] = {"description": desc}
        if ctype is not None:
            entry["content"] = {ctype: {"schema": schema or {}}}
        responses[status] = entry
    responses["4XX"] = {"description": "refused; the reason is in detail",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Error"}}}}
    op: dict[str, Any] = {"operationId": spec.operation_id, "summary": spec.summary,
                          "tags": list(spec.tags), "parameters": params,
                          "responses": responses}
    if spec.request is not None:
        op["requestBody"] = {"required": spec.request_required, "content": {
            ctype: {"schema": schema} for ctype, schema in spec.request.items()}}
    if spec.scope is not None:
        op["security"] = [{"bearer": [spec.scope]}]
        op["description"] = f"Needs a bearer token with scope `{spec.scope}`."
    return op


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for spec in ROUTES:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec)
    paths["/openapi.json"] = {"get": {"operationId": "openapi", "summary": "This document",
                                      "tags": ["meta"],
                                      "responses": {"200": {"description": "OpenAPI",
                                                            "content": {"application/json": {
                                                                "schema": {}}}}}}}
    for path, op_id, summary, ctype in (
            ("/", "index", "Index: links to the reference, document, metrics", "text/html"),
            ("/docs", "docs", "This document as an HTML reference (self-contained, no "
                              "scripts)", "text/html"),
            ("/metrics", "metrics", "Prometheus metrics (text exposition format): requests "
                                    "and latency by operation, PSK lookups, configuration "
                                    "deliveries; no identities",
             "text/plain")):
        paths[path] = {"get": {"operationId": op_id, "summary": summary, "tags": ["meta"],
                               "responses": {"200": {"description": summary, "content": {
                                   ctype: {"schema": {"type": "string"}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ZTP configuration service", "version": __version__,
                 "description": "Operator API (SIMs, keys, configurations, audit) and the "
                                "gateway-facing API of the SAFE2 zero touch provisioning "
                                "stack. See docs/service.md."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {
                "type": "oauth2",
                "description": "Bearer token from the client-credentials grant",
                "flows": {"clientCredentials": {
                    "tokenUrl": "/v1/auth/token",
                    "scopes": {"read": "read SIMs, configurations, audit",
                               "write": "change SIMs, keys, configurations (implies read)",
                               "admin": "manage clients and tokens (implies write)",
                               "gateway": "gateway endpoints and device requests"}}}}},
        },
    }
