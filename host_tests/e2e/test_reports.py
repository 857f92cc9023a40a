"""The device's configuration report, end to end (issue 17): the firmware's lib/ with reports
on (as the board runs it) stores a report after each run and sends it as SAFE2 telemetry before
the next fetch; the service records it as the device's state (docs/device-report.md,
docs/service.md "Devices, fleets and rollouts")."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import zlib
from typing import Any

import pytest
from ztp.demo import DEMO_CONFIG, Outcome, Stack

from .conftest import run

pytestmark = pytest.mark.timeout(120)

OK, UNCHANGED, E_NOT_APPLICABLE = 0, 1, 42

# a valid configuration with an action the host firmware has no handler for (it has
# iot:Alarm and settings): turned down with result 42 "no handler", nothing applied
NO_HANDLER_CONFIG = ('{"configuration":{"version":"2021-06-01","config":'
                     '[{"action":"iot:Led","effect":"On"}]}}')


def crc32_digest(body: bytes) -> str:
    return f"crc32:{zlib.crc32(body):08x}"


async def device_view(stack: Stack) -> dict[str, Any]:
    """``GET /v1/devices/{iccid}/{device_id}`` (the client blocks: off the loop's thread)."""
    return await asyncio.to_thread(stack.admin.device, stack.options.iccid,
                                   stack.options.device_id.hex())


def report_posts(outcome: Outcome) -> list[Any]:
    return [ex for ex in outcome.exchanges if ex.method == "POST"
            and ex.target.startswith("/v1/data/")]


def test_applied_then_reported_shows_in_sync_with_the_delivered_digest():
    async def body(stack: Stack) -> tuple[Outcome, dict, Outcome, dict]:
        first = await stack.provision(reports=True)
        before = await device_view(stack)
        second = await stack.provision(reports=True)
        return first, before, second, await device_view(stack)

    first, before, second, after = run(body)
    assert first.code == OK and first.config == DEMO_CONFIG.encode()
    assert report_posts(first) == []          # nothing pending before the first run
    assert before["state"] == "pending" and before["reported"] is None
    assert second.code == UNCHANGED
    [post] = report_posts(second)             # the first run's report, before the fetch
    assert post.http_status == 204           # the telemetry endpoint answers No Content
    digest = crc32_digest(DEMO_CONFIG.encode())
    assert after["state"] == "in_sync"
    assert after["delivered"]["digest"] == digest
    rep = after["reported"]
    assert (rep["outcome"], rep["code"], rep["digest"], rep["version"]) == (
        "applied", 0, digest, "2021-05-31")


def test_a_configuration_without_handler_shows_failed_with_result_42(tmp_path):
    async def body(stack: Stack) -> tuple[Outcome, Outcome, dict, subprocess.CompletedProcess]:
        first = await stack.provision(reports=True)
        second = await stack.provision(reports=True)
        view = await device_view(stack)
        env = dict(os.environ, ZTP_URL=stack.service_url, ZTP_TOKEN=stack.admin.token,
                   ZTP_SESSION_FILE=str(tmp_path / "session.json"))
        show = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "ztp", "devices", "show", "--json",
                             stack.options.iccid, stack.options.device_id.hex()],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        return first, second, view, show

    first, second, view, show = run(body, config_body=NO_HANDLER_CONFIG)
    assert first.code == E_NOT_APPLICABLE and first.config is None   # nothing half-applied
    assert second.code == E_NOT_APPLICABLE
    assert len(report_posts(second)) == 1
    rejected = crc32_digest(NO_HANDLER_CONFIG.encode())
    assert view["state"] == "failed"
    rep = view["reported"]
    assert (rep["outcome"], rep["code"], rep["digest"], rep["rejected"]) == (
        "rejected", E_NOT_APPLICABLE, None, rejected)
    assert view["desired"]["digest"] == rejected
    # the operator's command gives the same
    assert show.returncode == 0, show.stdout + show.stderr
    shown = json.loads(show.stdout)
    assert shown["state"] == "failed"
    assert shown["reported"]["code"] == E_NOT_APPLICABLE
    assert shown["reported"]["rejected"] == rejected


def test_a_report_lost_with_its_run_is_sent_on_a_later_run():
    async def body(stack: Stack) -> tuple[Outcome, Outcome, dict, bool, Outcome, dict]:
        first = await stack.provision(reports=True)
        await stack.stop_gateway()
        lost = await stack.provision(reports=True, attempts=1, poll_deadline_ms=30_000)
        during = await device_view(stack)
        kept = (stack.config_dir / "report.json").exists()
        await stack.start_gateway()
        later = await stack.provision(reports=True)
        return first, lost, during, kept, later, await device_view(stack)

    first, lost, during, kept, later, after = run(body)
    assert first.code == OK
    assert not lost.ok                           # the gateway was down: no answer
    assert during["reported"] is None and during["state"] == "pending"
    assert kept                                  # the report stays on the device's flash
    assert later.code == UNCHANGED
    assert len(report_posts(later)) == 1
    assert after["state"] == "in_sync"
    rep = after["reported"]
    assert (rep["outcome"], rep["code"], rep["digest"]) == (
        "applied", 0, crc32_digest(DEMO_CONFIG.encode()))
