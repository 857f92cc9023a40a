"""`ztp gateway` as a process: --service, --token-file, --listen, --metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request
from pathlib import Path

import click
import pytest
from prometheus_client.parser import text_string_to_metric_families
from ztp.gateway.cli import parse_hostport, read_token_file

from .harness import TOKEN, engine_fetch, stub_service
from .test_gateway import CONFIG, IDENTITY, PSK, get, make_state


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        (":9108", ("127.0.0.1", 9108)),
        ("[::1]:0", ("::1", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
        ("9101", ("127.0.0.1", 9101)),  # a bare port (issue 16: `--metrics 9101`)
    ],
)
def test_parse_hostport(value, expected):
    assert parse_hostport(value) == expected


@pytest.mark.parametrize("value", ["", "65536", "host:", "host:x", "host:65536", "host:-1"])
def test_parse_hostport_rejects(value):
    with pytest.raises(click.BadParameter):
        parse_hostport(value)


def test_read_token_file(tmp_path: Path):
    path = tmp_path / "token"
    path.write_text(" tok-1 \n")
    path.chmod(0o600)
    assert read_token_file(path) == "tok-1"
    for bad in ("", "a\nb\n"):
        path.write_text(bad)
        with pytest.raises(click.ClickException):
            read_token_file(path)
    with pytest.raises(click.ClickException):
        read_token_file(tmp_path / "missing")


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _line(stream: asyncio.StreamReader, prefix: str, seen: list[str]) -> str:
    async with asyncio.timeout(30):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"ztp gateway exited early: {''.join(seen)}")
            line = raw.decode()
            seen.append(line)
            if line.startswith(prefix):
                return line.strip()


def test_gateway_command_serves_metrics_and_drains_on_sigterm(tmp_path: Path):
    token_file = tmp_path / "gateway.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)

    async def main():
        state = make_state()
        async with stub_service(state) as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("ZTP_")}
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ztp",
                "gateway",
                "--service",
                url,
                "--token-file",
                str(token_file),
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--name",
                "gw-cli",
                "--shutdown-grace",
                "20",
                "--log-level",
                "warning",
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            seen: list[str] = []
            try:
                assert proc.stderr is not None
                metrics_url = (await _line(proc.stderr, "metrics on ", seen)).split()[-1]
                listening = await _line(proc.stderr, "gateway gw-cli listening on ", seen)
                port = int(listening.rpartition(":")[2])

                got = await engine_fetch(port, IDENTITY, PSK, get())
                assert (got.status, got.body, got.closed_clean) == (200, CONFIG, True)
                assert state.forwarded[-1]["gateway"] == "gw-cli"

                m = await asyncio.to_thread(_metrics, metrics_url)
                assert m[("ztp_gateway_requests_total", (("status", "200"),))] == 1
                # the latency histograms observed the exchange
                assert m[("ztp_gateway_handshake_seconds_count", ())] == 1
                assert m[("ztp_gateway_request_seconds_count", ())] == 1
                assert m[("ztp_gateway_upstream_seconds_count", (("call", "forward"),))] == 1
                assert m[("ztp_gateway_upstream_seconds_count", (("call", "psk"),))] == 1
                assert m[("ztp_gateway_handshake_seconds_sum", ())] > 0

                # SIGTERM while a SIM waits for a slow service: it still gets its answer
                state.config_delay_s = 1.0
                state.config_started.clear()
                fetch = asyncio.create_task(engine_fetch(port, IDENTITY, PSK, get()))
                await asyncio.wait_for(state.config_started.wait(), 10)
                proc.send_signal(signal.SIGTERM)
                got = await fetch
                assert (got.status, got.body, got.closed_clean) == (200, CONFIG, True)
                assert await asyncio.wait_for(proc.wait(), 30) == 0
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection("127.0.0.1", port)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    asyncio.run(main())
