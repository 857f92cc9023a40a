"""The console's list queries read indexes, never every row (issue 18: at 1M SIMs a label
filter must not decode JSON per row). SQLite's EXPLAIN QUERY PLAN of each statement the SIM
and audit pages run: no full scan of ``sim`` or ``audit_event``, no sort of them
(``USE TEMP B-TREE FOR ORDER BY``). Timings are the benchmark's job
(``host_tests/console/bench_search.py``); this pins the plans."""

from __future__ import annotations

import re

from sqlalchemy import event

from .conftest import ConsoleApp

PAGES = [
    {}, {"after": "8944502509186389635"}, {"q": "894450"}, {"label": "fleet=north"},
    {"label": "fleet=north", "after": "8944502509186389635"}, {"state": "suspended"},
    {"label": "fleet=north", "state": "active", "q": "8944"},
    {"label": "fleet=north", "state": "suspended", "after": "8944502509186389635"},
]
AUDIT = [
    {}, {"actor": "olga"}, {"iccid": "8944502509186389635"}, {"action": "config.set"},
    {"action": "config."}, {"since": "2026-01-01T00:00", "until": "2027-01-01T00:00"},
    {"actor": "olga", "before": "100"},
]


def _plans(console: ConsoleApp, http, path: str, params: dict) -> list[str]:
    engine = console.app.state.ztp.db.engine
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and (
                "FROM sim" in statement or "FROM audit_event" in statement):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert http.get(path, params=params).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            plans.append("\n".join(r[-1] for r in rows))
    assert plans, f"no list query captured for {path} {params}"
    return plans


def test_sim_pages_use_indexes(console: ConsoleApp) -> None:
    http = console.signed_in("olga", "viewer")
    for params in PAGES:
        for plan in _plans(console, http, "/console/sims", params):
            assert not re.search(r"^SCAN (sim|sim_label)\b(?! USING)", plan, re.M), \
                (params, plan)
            assert "TEMP B-TREE" not in plan, (params, plan)


def test_audit_pages_use_indexes(console: ConsoleApp) -> None:
    http = console.signed_in("olga", "viewer")
    for params in AUDIT:
        for plan in _plans(console, http, "/console/audit", params):
            assert "TEMP B-TREE" not in plan, (params, plan)
            # a filter reads its index; the plain page and an action family ("config.")
            # walk the log newest first, stopping at a page of matches
            if params and not params.get("action", "").endswith("."):
                assert re.search(r"USING (COVERING )?INDEX|USING INTEGER PRIMARY KEY", plan), \
                    (params, plan)
