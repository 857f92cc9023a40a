"""The modem with the project's real virtual SIM (ztp.sim.VirtualSim), through pyserial."""

from __future__ import annotations

import re

import pytest
from ztp.modem import VirtualModem

from .test_modem import Host, run

sim_mod = pytest.importorskip("ztp.sim")

ICCID = "8944502509186389635"
SELECT_SAFE2 = "01A4040C0CF0706F646773616665320101"


def test_csim_pass_through_with_virtual_sim() -> None:
    state = sim_mod.CardState.create(ICCID, bytes(range(16)), "127.0.0.1", 9)
    sim = sim_mod.VirtualSim(state)

    async def main() -> None:
        async with VirtualModem(sim, apply_card_cost=False) as modem:
            host = Host(f"socket://{':'.join(map(str, await modem.serve_tcp()))}")
            try:
                await host.command(b"ATE0")
                assert await host.command(b"AT+CCID") == b"\r\n+CCID: %s\r\n\r\nOK\r\n" % (
                    ICCID.encode())
                reply = await host.command(b'AT+CSIM=10,"0070000001"')
                assert re.fullmatch(rb'\r\n\+CSIM: 6,"01(9000|91[0-9A-F]{2})"\r\n\r\nOK\r\n',
                                    reply), reply
                reply = await host.command(b'AT+CSIM=%d,"%s"' % (len(SELECT_SAFE2),
                                                                   SELECT_SAFE2.encode()))
                assert re.fullmatch(rb'\r\n\+CSIM: 4,"(9000|91[0-9A-F]{2})"\r\n\r\nOK\r\n',
                                    reply), reply
            finally:
                host.close()

    run(main)
