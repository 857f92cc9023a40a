"""PSKs and OTA keys at rest: sealed (AES-GCM) under a versioned master key, bound to their row."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient
from ztp.service import (
    Database,
    KeyIntegrityError,
    MasterKeyError,
    MasterKeyring,
    ServiceClient,
    create_app,
)
from ztp.service._models import Sim, SimKey
from ztp.service._rewrap import rewrap

from .conftest import ICCID, IDENTITY_HEX, PSK, FakeClock, Svc, make_settings
from .test_operator_api import ICCID2, refused

PSK2 = bytes.fromhex("a5" * 16)


def store_secrets(st):  # type: ignore[no-untyped-def]
    """One SIM with an imported PSK, a generated PSK and an OTA key, through the API.
    Returns (credentials, the generated PSK)."""
    from ztp.service import bootstrap_credentials

    creds = bootstrap_credentials(st)
    with TestClient(create_app(st)) as http:
        c = ServiceClient(http=http)
        c.login(creds.admin_id, creds.admin_secret)
        c.create_sim(ICCID, psk=PSK)
        generated = bytes.fromhex(c.add_key(ICCID)["key"])
        c.add_key(ICCID, "kid", PSK2, "ota")
    return creds, generated


def test_psk_unreadable_in_sqlite_file(tmp_path: Path) -> None:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path / 'z.db'}"
    creds, generated = store_secrets(make_settings(url, clock))
    st_db = Database(url)
    st_db.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("z.db"))
    assert raw, "database files exist"
    for secret in (PSK, generated, PSK2):
        assert secret not in raw
        assert secret.hex().encode() not in raw
        assert secret.hex().upper().encode() not in raw
    assert creds.admin_secret.encode() not in raw  # client secrets are Argon2 hashes


@pytest.mark.postgres
def test_psk_unreadable_in_postgres(pg_cluster) -> None:  # type: ignore[no-untyped-def]
    """The PostgreSQL variant: every table's contents, as pg_dump writes them and as SQL reads
    them, hold no PSK / OTA key (raw, hex either case, base64) and no client secret."""
    import base64
    import subprocess

    import psycopg

    from .conftest import _create_pg_db, _pg_bin

    clock = FakeClock()
    url = _create_pg_db(pg_cluster)
    dbname = url.rsplit("/", 1)[1]
    creds, generated = store_secrets(make_settings(url, clock))
    bindir = _pg_bin()
    assert bindir is not None
    dump = subprocess.run(
        [str(bindir / "pg_dump"), "-h", pg_cluster.host, "-p", str(pg_cluster.port),
         "-U", "postgres", "--no-owner", dbname], check=True, capture_output=True).stdout
    rows = []
    with psycopg.connect(f"host={pg_cluster.host} port={pg_cluster.port} user=postgres "
                         f"dbname={dbname}") as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            # every row as text (bytea as \x hex) and every bytea column's raw bytes
            rows += [str(r[0]).encode() for r in conn.execute(
                f'SELECT t::text FROM "{table}" t')]
            cols = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND data_type = 'bytea'", (table,))]
            for col in cols:
                rows += [bytes(v) for (v,) in conn.execute(f'SELECT "{col}" FROM "{table}"')
                         if v is not None]
    assert "sim_key" in tables and len(rows) > 3
    assert b"COPY public.sim_key" in dump and ICCID.encode() in dump  # the data is there
    for raw in (dump, b"\n".join(rows)):
        for secret in (PSK, generated, PSK2):
            for form in (secret, secret.hex().encode(), secret.hex().upper().encode(),
                         base64.b64encode(secret), base64.b64encode(secret).rstrip(b"=")):
                assert form not in raw
        assert creds.admin_secret.encode() not in raw  # client secrets are Argon2 hashes


def _swap_sealed(svc: Svc) -> None:
    db = Database(svc.settings.database_url)
    try:
        with db.write() as s:
            rows = {sim.iccid: key for key, sim in s.execute(
                select(SimKey, Sim).join(Sim, Sim.id == SimKey.sim_id))}
            a, b = rows[ICCID], rows[ICCID2]
            sa, va, sb, vb = a.sealed, a.master_version, b.sealed, b.master_version
            s.execute(update(SimKey).where(SimKey.id == a.id).values(sealed=sb,
                                                                     master_version=vb))
            s.execute(update(SimKey).where(SimKey.id == b.id).values(sealed=sa,
                                                                     master_version=va))
    finally:
        db.dispose()


def test_sealed_key_cannot_move_to_another_row(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.create_sim(ICCID2, psk=PSK2)
    _swap_sealed(svc)
    for ident in (IDENTITY_HEX, svc.admin.get_sim(ICCID2)["identity"]):
        err = refused(svc.gateway.gateway_psks, ident)
        assert err.status == 404  # the moved key is never used
    alerts = svc.admin.audit(severity="alert")
    assert {a["action"] for a in alerts} == {"key.integrity_failure"}
    assert {a["iccid"] for a in alerts} == {ICCID, ICCID2}
    assert PSK.hex() not in str(alerts) and PSK2.hex() not in str(alerts)


def test_sealed_key_tag_is_bound(svc: Svc) -> None:
    svc.admin.create_sim(ICCID, psk=PSK, tag="a")
    svc.admin.add_key(ICCID, "psk", PSK2, "b")
    db = Database(svc.settings.database_url)
    try:
        with db.write() as s:
            s.execute(update(SimKey).where(SimKey.tag == "a").values(tag="c"))
    finally:
        db.dispose()
    assert [k["tag"] for k in svc.gateway.gateway_psks(IDENTITY_HEX)["keys"]] == ["b"]


def test_keyring_seal_open_unit() -> None:
    ring = MasterKeyring.generate()
    version, sealed = ring.seal(PSK, iccid=ICCID, kind="psk", tag="1")
    assert ring.open(sealed, iccid=ICCID, kind="psk", tag="1", master_version=version) == PSK
    for kw in ({"iccid": ICCID2}, {"kind": "kic"}, {"tag": "2"}):
        args = {"iccid": ICCID, "kind": "psk", "tag": "1", **kw}
        with pytest.raises(KeyIntegrityError):
            ring.open(sealed, master_version=version, **args)
    with pytest.raises(KeyIntegrityError, match="not configured"):
        ring.open(sealed, iccid=ICCID, kind="psk", tag="1", master_version=2)
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    with pytest.raises(KeyIntegrityError):
        ring.open(flipped, iccid=ICCID, kind="psk", tag="1", master_version=version)
    with pytest.raises(KeyIntegrityError, match="truncated"):
        ring.open(sealed[:20], iccid=ICCID, kind="psk", tag="1", master_version=version)
    assert "versions" in repr(ring) and ring.serialize().split(":")[1][:8] not in repr(ring)


@pytest.mark.parametrize(("text", "match"), [
    ("", "empty"),
    ("1:" + "A" * 12, "expected 32 bytes"),
    ("x:AAAA", "version"),
    ("1:!!!", "not base64"),
    ("1:" + "A" * 43 + "=,1:" + "A" * 43 + "=", "repeated"),
])
def test_keyring_parse_errors(text: str, match: str) -> None:
    with pytest.raises(MasterKeyError, match=match):
        MasterKeyring.parse(text)


def test_master_key_rotation_and_fail_closed(db_url: str) -> None:
    clock = FakeClock()
    ring1 = MasterKeyring.generate()
    st = make_settings(db_url, clock, master_key=ring1)
    from ztp.service import bootstrap_credentials

    creds = bootstrap_credentials(st)
    with TestClient(create_app(st)) as http:
        c = ServiceClient(http=http)
        c.login(creds.admin_id, creds.admin_secret)
        c.create_sim(ICCID, psk=PSK)
    # a different keyring that lacks version 1: the service refuses to start
    with pytest.raises(MasterKeyError, match=r"version\(s\) \[1\]"):
        create_app(make_settings(db_url, clock, master_key=MasterKeyring.generate(2)))
    # rotation: add version 2, rewrap, then version 1 can go
    ring12 = ring1.with_new_version()
    db = Database(db_url)
    try:
        assert rewrap(db, ring12) == 1
        assert rewrap(db, ring12) == 0
        with db.read() as s:
            assert s.scalar(select(SimKey.master_version)) == 2
    finally:
        db.dispose()
    ring2 = MasterKeyring(tuple(k for k in ring12.keys if k[0] == 2))
    st2 = make_settings(db_url, clock, master_key=ring2)
    with TestClient(create_app(st2)) as http:
        g = ServiceClient(http=http)
        g.login(creds.gateway_id, creds.gateway_secret)
        assert g.gateway_psks(IDENTITY_HEX)["keys"] == [{"tag": "1", "psk": PSK.hex()}]


def test_settings_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ztp.service import Settings

    for var in ("ZTP_MASTER_KEY", "ZTP_MASTER_KEY_FILE", "ZTP_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MasterKeyError, match="no master key"):
        Settings.from_env(tmp_path)
    st = Settings.from_env(tmp_path, create_key=True)
    assert st.database_url == f"sqlite:///{tmp_path / 'ztp.db'}"
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    ring = MasterKeyring.generate(7)
    monkeypatch.setenv("ZTP_MASTER_KEY", ring.serialize().strip())
    assert Settings.from_env(tmp_path).master_key.current_version == 7
    monkeypatch.setenv("ZTP_MASTER_KEY", "garbage")
    with pytest.raises(MasterKeyError):
        Settings.from_env(tmp_path)
