import asyncio
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "gateway",
    max_examples=int(os.environ.get("ZTP_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# The modules that run the gateway's asyncio code in this process run on both event loops a
# gateway may use: asyncio's and uvloop's (what `ztp gateway` picks when it is installed).
# The subprocess tests (test_cli, test_serve) run `ztp gateway` as users do: uvloop there.
_BOTH_LOOPS = {
    "test_connection",
    "test_flood",
    "test_gateway",
    "test_interop",
    "test_psk_cache",
    "test_service_client",
    "test_shutdown",
    "test_upstream",
    "test_with_service",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in _BOTH_LOOPS and "event_loop_kind" in metafunc.fixturenames:
        metafunc.parametrize("event_loop_kind", ["asyncio", "uvloop"], indirect=True)


@pytest.fixture(autouse=True)
def event_loop_kind(request: pytest.FixtureRequest):
    """``asyncio.run`` in the test makes the loop named by the test's parameter (asyncio's
    when the module is not parametrized)."""
    kind = getattr(request, "param", "asyncio")
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield kind
    finally:
        asyncio.set_event_loop_policy(None)
