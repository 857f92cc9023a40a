"""Smoke tests: each benchmark runs with tiny sizes and yields the expected rows.

Timings are never asserted (STYLE.md §5: speed lives in benchmarks). A benchmark whose
reference tool is missing here is skipped with the reason the benchmark itself gives.
"""

from __future__ import annotations

from ztp.bench import BenchError

from .. import peers


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except BenchError as exc:
        peers.missing(f"benchmark cannot run here: {exc}")


def test_tls_rows() -> None:
    from ztp.bench._tls import run

    table = _run(run, 5, cpu=None)
    assert [row[:2] for row in table.rows] == [
        ["ztp.tls", "psk_ke/CCM"],
        [table.rows[1][0], "psk_ke/CCM"],
        ["ztp.tls", "psk_dhe_ke/x25519/CCM"],
        [table.rows[3][0], "psk_dhe_ke/x25519/CCM"],
    ]
    assert table.rows[1][0].startswith("OpenSSL")
    assert all(row[-1].endswith("x") for row in table.rows)


def test_gateway_rows() -> None:
    peers.need("stunnel4", "stunnel")
    peers.need("openssl")
    from ztp.bench._gateway import run

    table = _run(
        run, seconds=0.5, threads=2, identities=3, warmup=0.3, server_cpu=None, client_cpu=None
    )
    servers = [row[0] for row in table.rows]
    assert servers[:2] == ["ztp gateway", "ztp gateway"]
    assert servers[2].startswith("stunnel") and servers[3].startswith("stunnel")
    assert servers[4].startswith("openssl s_server")
    # both client stacks drive every server
    assert [row[1] for row in table.rows] == ["openssl", "gnutls"] * 3
    assert [row[10] for row in table.rows] == ["0"] * 6  # no failed exchanges
    assert all(row[3].endswith("x") or row[3] == "refused" for row in table.rows)


def test_firmware_rows() -> None:
    from ztp.bench._firmware import run

    table = _run(run, skip_heap=True)
    rows = [row[0] for row in table.rows]
    # the board's image first (flash, RAM), the .mpy sizes only as secondary lines
    assert "RAM: GC heap" in rows
    assert rows[-3:] == [".mpy files, -O3 (secondary)", ".mpy files, -O0 (secondary)", "UART"]
    assert table.data["uart"]["apdus"] >= 8  # type: ignore[index]


def test_service_rows() -> None:
    from ztp.bench._service import run

    table = _run(run, sims=5, lookups=5, batch=3, databases=("sqlite",))
    assert [row[0] for row in table.rows] == ["SQLite"]
    assert table.rows[0][-1] == "0"  # every lookup answered 200, sampled bodies checked
