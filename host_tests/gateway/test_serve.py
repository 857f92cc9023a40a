"""`ztp serve`: service + gateway in one process, embedded defaults, restart loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from ztp.iccid import build_ef_iccid
from ztp.service import ServiceClient as AdminClient

from .harness import engine_fetch

ICCID = "8944502509186389635"
IDENTITY = build_ef_iccid(ICCID)
PSK = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
DEVICE = "0011223344556677"
GET = f"GET /v1/config/{DEVICE}?iccid={IDENTITY.hex()} HTTP/1.1\r\n\r\n".encode()


def start(data_dir) -> tuple[subprocess.Popen, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZTP_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ztp",
            "serve",
            "--data-dir",
            str(data_dir),
            "--service-listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    info: dict[str, str] = {}
    assert proc.stdout is not None
    while "gateway" not in info:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"ztp serve exited: {proc.wait()} {proc.stderr.read()}")
        key, _, value = line.strip().partition(": ")
        info[key] = value
    return proc, info


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_serve_first_start_and_restart(tmp_path):
    data_dir = tmp_path / "ztp-data"
    proc, info = start(data_dir)
    try:
        assert info["data directory"] == str(data_dir)
        assert info["credentials"].endswith("(created)")
        assert (data_dir / "ztp.db").exists() and (data_dir / "master.key").exists()
        creds_path = data_dir / "credentials.json"
        assert creds_path.stat().st_mode & 0o077 == 0
        creds = json.loads(creds_path.read_text())
        with AdminClient(info["service"]) as admin:
            admin.login(creds["admin_id"], creds["admin_secret"])
            admin.create_sim(ICCID, psk=PSK)
            admin.set_config(ICCID, DEVICE, '{"a":1}')
        port = int(info["gateway"].rpartition(":")[2])
        got = asyncio.run(engine_fetch(port, IDENTITY, PSK, GET))
        assert (got.status, got.body) == (200, b'{"a":1}')
    finally:
        stop(proc)

    proc, info = start(data_dir)  # same data: no new credentials, the SIM is still there
    try:
        assert not info["credentials"].endswith("(created)")
        port = int(info["gateway"].rpartition(":")[2])
        got = asyncio.run(engine_fetch(port, IDENTITY, PSK, GET))
        assert (got.status, got.body) == (200, b'{"a":1}')
    finally:
        stop(proc)
