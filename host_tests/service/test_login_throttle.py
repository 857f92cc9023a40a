"""The token endpoint is throttled (issue 13 item 4): after a burst of failed logins from one
address, that address gets 429 with Retry-After and no Argon2 work; other addresses log in;
one verification at a time. Injected clock, no sleeps."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from ztp.service import bootstrap_credentials, create_app
from ztp.service._errors import TooManyRequests
from ztp.service._throttle import LoginLimits, LoginThrottle

from .conftest import FakeClock, make_settings


def login(http: TestClient, client_id: str, secret: str):
    return http.post("/v1/auth/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})


def test_failed_logins_from_one_address_are_throttled_before_argon2(tmp_path: Path) -> None:
    clock = FakeClock()
    st = make_settings(f"sqlite:///{tmp_path / 'z.db'}", clock)
    creds = bootstrap_credentials(st)
    app = create_app(st)
    hasher = app.state.ztp.hasher
    verified = []
    real_verify = hasher.verify

    def counting_verify(stored_hash, secret):
        verified.append(1)
        return real_verify(stored_hash, secret)

    hasher.verify = counting_verify
    attacker = TestClient(app, client=("192.0.2.66", 40000))
    gateway = TestClient(app, client=("192.0.2.10", 40001))
    with attacker, gateway:
        # the report's run: 80 wrong-secret logins (here with the gateway's own client id)
        codes = [login(attacker, creds.gateway_id, "wrong").status_code for _ in range(80)]
        burst = st.login_limits.burst
        assert codes == [401] * burst + [429] * (80 - burst)
        assert len(verified) == burst  # the other 70 cost no Argon2 verification
        r = login(attacker, creds.gateway_id, "wrong")
        assert r.json()["error"] == "too_many_requests"
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 60
        # the gateway, from its own address, is not locked out of its credential
        assert login(gateway, creds.gateway_id, creds.gateway_secret).status_code == 200
        # even the right secret from the throttled address waits (it cannot be told apart
        # without the work the throttle saves)
        assert login(attacker, creds.admin_id, creds.admin_secret).status_code == 429
        clock.advance(retry)
        assert login(attacker, creds.admin_id, creds.admin_secret).status_code == 200
        # successes charge nothing
        for _ in range(3 * burst):
            assert login(gateway, creds.gateway_id, creds.gateway_secret).status_code == 200


def test_one_verification_at_a_time() -> None:
    throttle = LoginThrottle(LoginLimits(concurrent=1, wait_s=0.05))
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with throttle.turn():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    assert entered.wait(5)
    with pytest.raises(TooManyRequests) as info:
        with throttle.turn():
            pass
    assert info.value.retry_after_s == 1
    release.set()
    t.join(5)
    with throttle.turn():  # free again
        pass


def test_bucket_refills_and_is_bounded() -> None:
    throttle = LoginThrottle(LoginLimits(burst=2, per_minute=6, max_addresses=3))
    for _ in range(2):
        throttle.check("a", 0)
        throttle.failed("a", 0)
    with pytest.raises(TooManyRequests) as info:
        throttle.check("a", 0)
    assert info.value.retry_after_s == 10  # 6 per minute: one every 10 s
    throttle.check("a", 10_000)
    for i in range(10):
        throttle.failed(f"x{i}", 0)
    assert len(throttle) == 3
