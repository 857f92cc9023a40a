"""Parallel writers against a real server (uvicorn) on SQLite and PostgreSQL: nothing lost,
versions gap-free and in each writer's order."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ztp.iccid import iccid_to_hex, luhn_check_digit
from ztp.service import ServiceClient, bootstrap_credentials, create_app

from .conftest import ICCID, PSK, FakeClock, make_settings, serve_app

WRITERS = 6
WRITES = 8


def _iccid(n: int) -> str:
    payload = f"894450250918{n:06d}"
    return payload + luhn_check_digit(payload)


def test_parallel_writers(db_url: str) -> None:
    st = make_settings(db_url, FakeClock())
    creds = bootstrap_credentials(st)
    with serve_app(create_app(st)) as url:
        with ServiceClient(url) as admin:
            admin.login(creds.admin_id, creds.admin_secret)
            admin.create_sim(ICCID, psk=PSK)

            def writer(w: int) -> list[int]:
                versions = []
                with ServiceClient(url) as c:
                    c.login(creds.admin_id, creds.admin_secret)
                    for i in range(WRITES):
                        # one shared configuration, one per-writer device, one new SIM each
                        versions.append(c.set_config(ICCID, "default", f"w{w}-{i}")["version"])
                        c.set_config(ICCID, f"{w:02x}", f"own{i}")
                        c.create_sim(_iccid(w * 100 + i), psk=bytes([w, i]) * 8)
                return versions

            seen: set[str] = set()
            done = threading.Event()

            def poller() -> None:
                # A gateway following the PSK change feed while writers commit must never
                # skip an identity (ids are taken in commit order).
                last = 0
                with ServiceClient(url) as g:
                    g.login(creds.gateway_id, creds.gateway_secret)
                    while True:
                        finished = done.is_set()
                        out = g.psk_changes(last)
                        seen.update(out["identities"])
                        last = out["last"]
                        if finished:
                            return

            with ThreadPoolExecutor(WRITERS + 1) as pool:
                poll = pool.submit(poller)
                results = list(pool.map(writer, range(WRITERS)))
                done.set()
                poll.result()
            expected = {iccid_to_hex(_iccid(w * 100 + i)) for w in range(WRITERS)
                        for i in range(WRITES)}
            assert expected <= seen

            total = WRITERS * WRITES
            hist = admin.history(ICCID, "default", limit=1000)
            assert [h["version"] for h in hist] == list(range(total, 0, -1))  # gap-free
            bodies = [h["body"] for h in reversed(hist)]
            assert sorted(bodies) == sorted(f"w{w}-{i}" for w in range(WRITERS)
                                            for i in range(WRITES))  # nothing lost
            for w in range(WRITERS):  # each writer's versions are increasing, in its order
                mine = [b for b in bodies if b.startswith(f"w{w}-")]
                assert mine == [f"w{w}-{i}" for i in range(WRITES)]
                assert results[w] == sorted(results[w])
                assert admin.get_config(ICCID, f"{w:02x}")["version"] == WRITES
            assert len(admin.list_sims(limit=1000)) == 1 + total
            assert sorted(v for r in results for v in r) == list(range(1, total + 1))
            audit_sets = admin.audit(action="config.set", limit=1000)
            assert len(audit_sets) == 2 * total
            # the PSK change feed saw every new SIM exactly in commit order
            feed = admin.request("GET", "/v1/audit", params={"action": "key.add",
                                                             "limit": 1000}).json()
            assert len(feed["events"]) == 1 + total


def test_parallel_imports_in_opposite_orders_do_not_deadlock(db_url: str) -> None:
    st = make_settings(db_url, FakeClock())
    creds = bootstrap_credentials(st)
    sims = [_iccid(900 + n) for n in range(6)]
    with serve_app(create_app(st)) as url:
        with ServiceClient(url) as admin:
            admin.login(creds.admin_id, creds.admin_secret)
            for iccid in sims:
                admin.create_sim(iccid, psk=PSK)

            def importer(w: int) -> None:
                order = sims if w % 2 else list(reversed(sims))
                with ServiceClient(url) as c:
                    c.login(creds.admin_id, creds.admin_secret)
                    for round_ in range(3):
                        tag = f"w{w}r{round_}"
                        c.import_psks([{"iccid": i, "psk": bytes([w, round_]).hex() * 8,
                                        "tag": tag} for i in order])
                        c.import_configs([{"iccid": i, "device_id": "default",
                                           "body": tag} for i in order])
                        c.suspend_sim(order[0])
                        c.update_sim(order[0], state="active")

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(importer, range(4)))  # any 5xx or 409 raises here
            for iccid in sims:
                tags = [k["tag"] for k in admin.get_sim(iccid)["keys"]]
                assert len(tags) == 1 + 4 * 3
                assert admin.get_config(iccid, "default")["version"] == 4 * 3
