"""`ztp rotate` / `ztp rotations` against the running stack (the CLI's HTTP path)."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner
from ztp.cli import main

from .harness import ICCID, OtaStack


def operator_cli(stack: OtaStack, tmp_path):
    """`ztp ...` as the stack's operator (token in the environment, no session file)."""
    env = {"ZTP_URL": stack.url, "ZTP_TOKEN": stack.admin.token,
           "ZTP_SESSION_FILE": str(tmp_path / "none.json"), "COLUMNS": "200"}
    runner = CliRunner()

    def cli(*args: str):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return cli


def test_rotate_and_rotations_commands(tmp_path):
    async def main_() -> None:
        async with OtaStack(tmp_path) as stack:
            cli = operator_cli(stack, tmp_path)

            got = await asyncio.to_thread(cli, "rotate", ICCID)
            assert got.exit_code == 0, got.output
            assert "1 rotation(s) started" in got.output and "PoR installed 1" in got.output
            assert "0/1 retired" in got.output and "delivered 1" in got.output
            got = await asyncio.to_thread(cli, "rotations", "--batch", "latest")
            assert got.exit_code == 0 and ICCID in got.output and "delivered" in got.output
            await stack.fetch()  # the SIM uses its new key: confirmed, old key retired
            got = await asyncio.to_thread(cli, "rotations", "show", ICCID)
            assert "retired (1 -> 2)" in got.output and "retire_old_key" in got.output
            got = await asyncio.to_thread(cli, "rotate", ICCID)  # nothing open: rotates again
            assert got.exit_code == 0 and "1 rotation(s) started" in got.output
            got = await asyncio.to_thread(cli, "rotate")
            assert got.exit_code == 2  # usage: ICCIDs or --all

    asyncio.run(main_())


def test_rotations_retry_and_cancel_commands(tmp_path):
    async def main_() -> None:
        async with OtaStack(tmp_path) as stack:
            cli = operator_cli(stack, tmp_path)

            stack.sim.state.psk_version = 5  # the applet refuses version 2 (verified PoR)
            got = await asyncio.to_thread(cli, "rotate", ICCID)
            assert got.exit_code == 0 and "failed 1" in got.output, got.output
            got = await asyncio.to_thread(cli, "rotations", "retry", ICCID)
            assert got.exit_code == 0 and "pending, will be sent" in got.output
            got = await asyncio.to_thread(cli, "rotations", "run")
            assert got.exit_code == 0 and "failed=1" in got.output
            got = await asyncio.to_thread(cli, "rotations", "cancel", ICCID, "--reason", "v5")
            assert got.exit_code == 0, got.output
            assert "cancelled (1 -> 2); accepted keys now 1" in got.output
            assert "key 2 retired" in got.output
            got = await asyncio.to_thread(cli, "rotations", "--state", "cancelled")
            assert got.exit_code == 0 and ICCID in got.output
            got = await asyncio.to_thread(cli, "rotations", "--batch", "latest")
            assert "cancelled 1" in got.output
            assert "rotation.cancel" in await stack.audit_actions()

    asyncio.run(main_())
