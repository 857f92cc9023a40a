"""``GET /docs``: the API reference as one self-contained HTML page, generated from the
OpenAPI document (so it cannot drift from ``/openapi.json``), and ``GET /``: an index.

No JavaScript and nothing fetched from elsewhere: the service often runs where there is no
internet (Swagger UI and ReDoc load from a CDN). Every value from the document is escaped.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["docs_page", "index_page"]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:72rem;margin:1rem auto;padding:0 1rem;
line-height:1.4;color:#222}
code,pre{font-family:ui-monospace,monospace;font-size:.9em}
pre{background:#f5f5f5;padding:.5rem;overflow-x:auto}
.op{border-top:1px solid #ccc;padding:.5rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:bold}
.get{color:#06c}.post{color:#080}.put,.patch{color:#a60}.delete{color:#c00}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;
text-align:left;vertical-align:top}
nav a{margin-right:1rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _schema(value: Any) -> str:
    return _e(json.dumps(value, indent=1, sort_keys=True))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    anchor = _e(op.get("operationId", f"{method}-{path}"))
    out = [f'<div class="op" id="{anchor}"><div><span class="m {_e(method)}">'
           f'{_e(method.upper())}</span> <code>{_e(path)}</code></div>',
           f"<p>{_e(op.get('summary', ''))}</p>"]
    if op.get("description"):
        out.append(f"<p><em>{_e(op['description'])}</em></p>")
    params = op.get("parameters") or []
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>required</th>"
                   "<th>schema</th><th>description</th></tr>")
        for p in params:
            out.append(f"<tr><td><code>{_e(p.get('name'))}</code></td><td>{_e(p.get('in'))}"
                       f"</td><td>{'yes' if p.get('required') else 'no'}</td><td><code>"
                       f"{_e(json.dumps(p.get('schema', {}), sort_keys=True))}</code></td>"
                       f"<td>{_e(p.get('description') or '')}</td></tr>")
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        for ctype, media in body.get("content", {}).items():
            out.append(f"<details><summary>request body <code>{_e(ctype)}</code>"
                       f"{'' if body.get('required') else ' (optional)'}</summary>"
                       f"<pre>{_schema(media.get('schema', {}))}</pre></details>")
    out.append("<table><tr><th>status</th><th>response</th></tr>")
    for status, resp in op.get("responses", {}).items():
        content = resp.get("content") or {}
        schemas = "".join(f"<details><summary><code>{_e(ct)}</code></summary><pre>"
                          f"{_schema(m.get('schema', {}))}</pre></details>"
                          for ct, m in content.items() if m.get("schema"))
        out.append(f"<tr><td>{_e(status)}</td><td>{_e(resp.get('description', ''))}"
                   f"{schemas}</td></tr>")
    out.append("</table></div>")
    return "\n".join(out)


def docs_page(doc: dict[str, Any]) -> str:
    """The HTML reference of OpenAPI document ``doc``: operations grouped by tag."""
    info = doc.get("info", {})
    by_tag: dict[str, list[str]] = {}
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append(_operation(path, method, op))
    nav = "".join(f'<a href="#tag-{_e(t)}">{_e(t)}</a>' for t in by_tag)
    sections = "".join(f'<h2 id="tag-{_e(t)}">{_e(t)}</h2>' + "\n".join(ops)
                       for t, ops in by_tag.items())
    auth = doc.get("components", {}).get("securitySchemes", {}).get("bearer", {})
    scopes = auth.get("flows", {}).get("clientCredentials", {}).get("scopes", {})
    scope_rows = "".join(f"<tr><td><code>{_e(k)}</code></td><td>{_e(v)}</td></tr>"
                         for k, v in scopes.items())
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(info.get('title', 'API'))}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{_e(info.get('title', 'API'))} <small>{_e(info.get('version', ''))}"
            f"</small></h1><p>{_e(info.get('description', ''))}</p>"
            f"<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI "
            f"{_e(doc.get('openapi', ''))}). Tokens: <code>POST /v1/auth/token</code> "
            f"(client credentials), then <code>Authorization: Bearer ...</code>.</p>"
            f"<table><tr><th>scope</th><th>allows</th></tr>{scope_rows}</table>"
            f"<nav>{nav}</nav>{sections}</body></html>")


def index_page(title: str, version: str) -> str:
    """``GET /``: what this server is and where to go."""
    links = "".join(f'<li><a href="{href}">{href}</a>: {what}</li>' for href, what in (
        ("/console", "operator console (sign in)"),
        ("/docs", "API reference (HTML)"), ("/openapi.json", "OpenAPI document"),
        ("/metrics", "Prometheus metrics"), ("/healthz", "liveness")))
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(title)} <small>{_e(version)}</small></h1><ul>{links}</ul>"
            f"<p>Command line: <code>ztp login</code>, <code>ztp sims</code>, "
            f"<code>ztp configs</code>, <code>ztp audit</code>.</p></body></html>")
