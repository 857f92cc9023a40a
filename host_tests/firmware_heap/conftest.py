"""The board-faithful heap run (tools/ztp/firmware/_heap*.py, firmware/host): the 32-bit unix
MicroPython with the board's configuration, built once per cache (~20 s on 2 cores the first
time). No 32-bit C toolchain skips these tests, or fails them under ./run test
(ZTP_REQUIRE_PEERS=1)."""

from __future__ import annotations

import pytest
from ztp.firmware._heap_build import HeapBuildError, HostBuild, build_host, toolchain

from ..peers import missing


@pytest.fixture(scope="session")
def host_build() -> HostBuild:
    try:
        toolchain()
    except HeapBuildError as e:
        missing(str(e))
    return build_host()
