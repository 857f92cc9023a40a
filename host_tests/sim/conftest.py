"""Virtual SIM tests. Hypothesis budgets are set per test (@settings), never globally, so
other parts' profiles are left alone."""

from __future__ import annotations

import random

import pytest
from ztp.sim import CardState, RetryPolicy, VirtualSim

ICCID = "8944502509186389635"
EF_ICCID = bytes.fromhex("984405529081369836F5")
PSK = bytes(range(16))
DEVICE_ID = bytes.fromhex("00112233445566778899aabbccddeeff")


def make_sim(host: str = "192.0.2.10", port: int = 8443, **kw) -> VirtualSim:
    rnd = random.Random(7)
    kw.setdefault("retry", RetryPolicy(max_attempts=3, base_s=2, cap_s=8, watchdog_s=30))
    return VirtualSim(
        CardState.create(ICCID, PSK, host, port), rng=lambda n: rnd.randbytes(n), **kw
    )


@pytest.fixture
def sim() -> VirtualSim:
    return make_sim()
