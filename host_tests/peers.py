"""What a test needs from the machine (interop peers, PostgreSQL, a C compiler for the
benchmarks' load generators).

Outside the test command a missing tool skips the test with the reason. `./run test` installs
every one of them and sets ZTP_REQUIRE_PEERS=1, so there a missing tool fails the test instead:
an interop claim must never pass because nothing ran.
"""

from __future__ import annotations

import os
import shutil

import pytest


def missing(reason: str) -> None:
    """Skip (or, under the test command, fail) the running test for want of `reason`."""
    if os.environ.get("ZTP_REQUIRE_PEERS"):
        pytest.fail(f"{reason}; ./run test installs it, so this is a broken install step")
    pytest.skip(reason)


def need(*tools: str) -> None:
    """The first of `tools` found on PATH is enough."""
    if not any(shutil.which(t) for t in tools):
        missing(f"{' or '.join(tools)} not installed")
