"""The device and PSK lookup fast paths and the token cache (SQLite and PostgreSQL).

The fast paths must give the same answers and audit records as the full (locking) path;
the token cache must let a revocation through this process act at once and one made
elsewhere act within ``token_cache_s``.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from ztp.service import ServiceClientError
from ztp.service._auth import Principal, TokenCache
from ztp.service._db import Database, migrate
from ztp.service._errors import Unauthorized

from .conftest import ICCID, IDENTITY_HEX, PSK, Svc


class Mono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_token_cache_bounds() -> None:
    mono = Mono()
    cache = TokenCache(1.0, mono)
    p = Principal("gw", frozenset({"gateway"}), 1)
    assert cache.get("tok", 0) is None
    cache.put("tok", p, expires_ms=5000)
    assert cache.get("tok", 0) is p
    with pytest.raises(Unauthorized, match="expired"):
        cache.get("tok", 5000)  # the token's own expiry, whatever the cache age
    mono.t += 1.01
    assert cache.get("tok", 0) is None  # older than ttl_s: ask the database again
    cache.put("tok", p, expires_ms=5000)
    cache.revoked("tok")
    with pytest.raises(Unauthorized, match="revoked"):
        cache.get("tok", 0)
    cache.put("tok", p, expires_ms=5000)  # a request that read the row before the revocation
    with pytest.raises(Unauthorized, match="revoked"):
        cache.get("tok", 0)
    cache.put("tok2", p, expires_ms=5000)
    cache.disabled("gw")
    assert cache.get("tok2", 0) is None
    cache.put("tok2", p, expires_ms=5000)
    assert cache.get("tok2", 0) is None
    assert TokenCache(0).get("tok", 0) is None


def test_revocation_elsewhere_acts_within_the_cache_bound(svc: Svc) -> None:
    mono = Mono()
    svc.app.state.ztp.tokens._now = mono  # type: ignore[attr-defined]
    svc.admin.create_sim(ICCID, psk=PSK)
    assert svc.gateway.gateway_psks(IDENTITY_HEX)["iccid"] == ICCID  # now cached
    # Another process sharing the database disables the gateway's tokens.
    engine = create_engine(svc.settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE token SET revoked_ms = 1"))
    engine.dispose()
    assert svc.gateway.gateway_psks(IDENTITY_HEX)["iccid"] == ICCID  # within the bound
    mono.t += svc.settings.token_cache_s + 0.01
    with pytest.raises(ServiceClientError) as err:
        svc.gateway.gateway_psks(IDENTITY_HEX)
    assert err.value.status == 401


def test_revocation_through_the_service_acts_at_once(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.gateway.gateway_psks(IDENTITY_HEX)
    svc.admin.revoke(svc.gateway.token)
    with pytest.raises(ServiceClientError) as err:
        svc.gateway.gateway_psks(IDENTITY_HEX)
    assert err.value.status == 401


def test_fast_delivery_records_what_the_full_path_does(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.set_config(ICCID, "default", "d")
    assert svc.device_get("0a0b").content == b"d"  # first device: noted (compare-and-set)
    assert svc.admin.get_sim(ICCID)["last_device_id"] == "0a0b"
    assert svc.device_get("0a0b").content == b"d"  # same device: one SELECT + the audit
    svc.admin.set_config(ICCID, "0a0b", "own")
    r = svc.device_get("0a0b")
    assert r.content == b"own" and r.headers["x-ztp-config-slot"] == "0a0b"
    svc.admin.delete_config(ICCID, "0a0b")  # a deletion version: back to the default
    assert svc.device_get("0a0b").content == b"d"
    events = svc.admin.audit(action="config.deliver")
    assert [(e["device_id"], e["version"], e["detail"]["slot"], e["gateway"], e["severity"])
            for e in events] == [("0a0b", 1, "default", "gw-test", "info")] * 2 + [
        ("0a0b", 1, "0a0b", "gw-test", "info"), ("0a0b", 1, "default", "gw-test", "info")]
    svc.admin.delete_config(ICCID, "default")
    assert svc.device_get("0a0b").status_code == 404
    assert [e["detail"] for e in svc.admin.audit(action="config.miss")] == [{"key_tag": "1"}]
    # a move still takes the full path: served and alerted
    assert svc.device_get("0c0d").status_code == 404
    assert [a["action"] for a in svc.admin.audit(severity="alert")] == ["sim.moved"]


def test_fast_psk_lookup_audits_tags(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.add_key(ICCID, "psk", key=b"\x22" * 16, tag="7")
    assert [k["tag"] for k in svc.gateway.gateway_psks(IDENTITY_HEX)["keys"]] == ["1", "7"]
    (event,) = svc.admin.audit(action="psk.lookup")
    assert event["detail"] == {"tags": ["1", "7"]} and event["iccid"] == ICCID


def test_the_event_loop_never_waits_for_the_write_lock(tmp_path: Path) -> None:
    """``write_connection(wait=False)`` (the event loop's attempt at the device fast path)
    yields None at once while another writer holds the lock, of this process or of another
    one sharing the SQLite file; then a handler thread runs the request as before."""
    db = Database(f"sqlite:///{tmp_path}/ztp.db")
    migrate(db)
    try:
        other = sqlite3.connect(tmp_path / "ztp.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's writer
        with db.write_connection(wait=False) as tx:
            assert tx is None
        other.execute("ROLLBACK")
        other.close()
        holding, release = threading.Event(), threading.Event()

        def writer() -> None:  # a handler thread of this process in a write transaction
            with db.write():
                holding.set()
                release.wait(30)

        thread = threading.Thread(target=writer)
        thread.start()
        assert holding.wait(30)
        with db.write_connection(wait=False) as tx:
            assert tx is None
        release.set()
        thread.join(30)
        with db.write_connection(wait=False) as tx:
            assert tx is not None
            tx.dbapi_connection.execute("DELETE FROM audit_event")
        with db.write_connection(wait=False) as tx:  # committed, and the lock released
            assert tx is not None
    finally:
        db.dispose()
