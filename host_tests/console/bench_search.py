"""Benchmark of the console's SIM list and search pages at scale (issue 18: at 1M SIMs each
list or search page answers in p95 < 200 ms).

Fills a SQLite database with N SIMs (plain inserts; the ``sim_label`` triggers index their
labels as they would for the API's), signs an operator in, and times whole console pages
over HTTP (session check, query, Jinja rendering): the first page, pages deep in the list
(keyset ``after``), ICCID prefixes, a common label (10% of the SIMs), a rare one (0.1%), a
label that matches nothing, suspended SIMs (1%), and a label with a state.

    PYTHONPATH=tools python -m host_tests.console.bench_search --sims 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient
from ztp.iccid import luhn_check_digit
from ztp.service import Database, Settings, create_app
from ztp.service._console import create_user
from ztp.service._keys import MasterKeyring, SecretHasher
from ztp.service._models import Sim

from .conftest import PASSWORD, login

_BASE = "89445025"


def iccid(n: int) -> str:
    body = f"{_BASE}{n:010d}"
    return body + luhn_check_digit(body)


def fill(db: Database, count: int, chunk: int = 50_000) -> float:
    """Insert ``count`` SIMs: fleet f0..f9, site s0..s999, every 100th suspended."""
    t0 = time.perf_counter()
    for start in range(0, count, chunk):
        rows = []
        for n in range(start, min(count, start + chunk)):
            i = iccid(n)
            rows.append(dict(
                iccid=i, identity_hex=f"{n:020d}", state="suspended" if n % 100 == 7
                else "active", labels_json=json.dumps({"fleet": f"f{n % 10}",
                                                      "site": f"s{n % 1000}"}),
                bind_first_device=False, bound_device_id=None, last_device_id=None,
                created_ms=0, updated_ms=0))
        with db.write() as session:
            session.connection().execute(Sim.__table__.insert(), rows)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=40, help="requests per kind of page")
    ap.add_argument("--db", type=Path, default=None, help="reuse this SQLite file")
    args = ap.parse_args()
    path = args.db or Path(tempfile.mkdtemp(prefix="ztp-bench-")) / "ztp.db"
    fresh = not path.exists()
    st = Settings(database_url=f"sqlite:///{path}", master_key=MasterKeyring.generate(),
                  fast_hashing=True)
    app = create_app(st)  # migrates
    db = Database(st.database_url)
    if fresh:
        print(f"filling {args.sims} SIMs: {fill(db, args.sims):.1f} s")
        with db.write() as session:
            create_user(session, SecretHasher(fast=True), "bench", "viewer", PASSWORD, 0)
    db.dispose()
    http = TestClient(app)
    assert login(http, "bench").status_code == 303
    rnd = random.Random(13)
    n = args.sims
    kinds = {
        "first page": lambda: {},
        "deep page (after)": lambda: {"after": iccid(rnd.randrange(n))},
        "ICCID prefix (12 digits)": lambda: {"q": iccid(rnd.randrange(n))[:12]},
        "ICCID prefix (16 digits)": lambda: {"q": iccid(rnd.randrange(n))[:16]},
        "label 10% (fleet)": lambda: {"label": f"fleet=f{rnd.randrange(10)}"},
        "label 10%, deep": lambda: {"label": f"fleet=f{rnd.randrange(10)}",
                                    "after": iccid(rnd.randrange(n))},
        "label 0.1% (site)": lambda: {"label": f"site=s{rnd.randrange(1000)}"},
        "label, no match": lambda: {"label": "fleet=none"},
        "state suspended (1%)": lambda: {"state": "suspended"},
        "label 10% + suspended": lambda: {"label": f"fleet=f{rnd.randrange(10)}",
                                          "state": "suspended"},
    }
    print(f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  rows")
    worst = 0.0
    for name, params in kinds.items():
        times = []
        rows = 0
        for _ in range(args.rounds):
            p = params()
            t0 = time.perf_counter()
            r = http.get("/console/sims", params=p)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text[:200]
            rows = r.text.count('<tr>\n      <td class="mono">')
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        worst = max(worst, p95)
        print(f"{name:<28} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}  {rows}")
    print(f"worst p95: {worst:.1f} ms ({'within' if worst < 200 else 'OVER'} 200 ms)")


if __name__ == "__main__":
    main()
