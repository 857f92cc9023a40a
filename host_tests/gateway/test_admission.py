"""ztp.gateway._admission: the connection cap shared fairly between addresses, the per-address
rate consulted before it, and the log throttle (issue 13 item 1). Injected clock, no sockets."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ztp.gateway import (
    Admitted,
    ConnectionAdmission,
    LogThrottle,
    RateLimit,
    Refused,
    address_key,
)

LOOSE = RateLimit(per_second=1e6, burst=10**6)


def fill(adm: ConnectionAdmission, address: str, n: int, start: int = 0) -> list[str]:
    conns = [f"{address}#{i}" for i in range(start, start + n)]
    for c in conns:
        assert adm.admit(c, address, 0.0) == Admitted()
    return conns


def test_below_the_cap_one_address_may_take_every_slot():
    # thousands of SIMs behind one carrier-NAT address are one address
    adm = ConnectionAdmission(8, LOOSE)
    fill(adm, "10.0.0.1", 8)
    assert adm.active == 8
    # at the cap the same address is refused: it never evicts itself (a storm retries)
    assert adm.admit("x", "10.0.0.1", 0.0) == Refused("max_connections")
    assert adm.active == 8


def test_at_the_cap_the_biggest_holder_loses_its_oldest_unfinished_handshake():
    adm = ConnectionAdmission(4, LOOSE)
    flood = fill(adm, "10.0.0.1", 4)
    got = adm.admit("sim", "10.0.0.2", 1.0)
    assert got == Admitted(evict=flood[0], evict_address="10.0.0.1")
    assert adm.active == 4
    assert adm.pending("10.0.0.1") == 3 and adm.pending("10.0.0.2") == 1
    # the flooder's next connection is refused: the cap holds, it is still the bigger holder
    assert adm.admit("again", "10.0.0.1", 1.0) == Refused("max_connections")
    # releasing the evicted handle again (its handler ends later) changes nothing
    adm.release(flood[0])
    assert adm.active == 4


def test_shares_converge_to_equal_and_stop_there():
    adm = ConnectionAdmission(10, LOOSE)
    fill(adm, "a", 10)
    n = 0
    while isinstance(adm.admit(f"b{n}", "b", 0.0), Admitted):
        n += 1
    assert (adm.pending("a"), adm.pending("b")) == (5, 5)
    assert adm.admit("a-new", "a", 0.0) == Refused("max_connections")


def test_verified_connections_are_never_evicted():
    adm = ConnectionAdmission(3, LOOSE)
    conns = fill(adm, "a", 3)
    for c in conns:
        adm.handshake_done(c)
    assert adm.pending("a") == 0
    assert adm.admit("b0", "b", 0.0) == Refused("max_connections")
    # one of them still in its handshake: that one goes, not the verified ones
    adm.release(conns[0])
    assert adm.admit("a3", "a", 0.0) == Admitted()
    assert adm.admit("b1", "b", 0.0) == Refused("max_connections")  # a holds 1, b 0: 1 <= 0+1
    adm.release(conns[1])
    assert adm.admit("a4", "a", 0.0) == Admitted()
    assert adm.admit("b2", "b", 0.0) == Admitted(evict="a3", evict_address="a")


def test_address_rate_is_consulted_before_the_cap():
    adm = ConnectionAdmission(2, RateLimit(per_second=1.0, burst=2))
    fill(adm, "a", 2)
    # at the cap, out of tokens: refused for its rate (was: the cap's answer only)
    assert adm.admit("a2", "a", 0.0) == Refused("address_rate")
    # another address at the cap, with tokens: evicts
    assert isinstance(adm.admit("b0", "b", 0.0), Admitted)


def test_refusals_take_no_token():
    # the SIMs of a NAT address refused at the cap retry later and need their tokens then
    adm = ConnectionAdmission(1, RateLimit(per_second=1.0, burst=2))
    fill(adm, "a", 1)
    for i in range(50):
        assert adm.admit(f"r{i}", "a", 0.0) == Refused("max_connections")
    adm.release("a#0")
    assert adm.admit("a1", "a", 0.0) == Admitted()  # the second token is still there


def test_admitting_twice_is_a_bug():
    adm = ConnectionAdmission(2, LOOSE)
    adm.admit("c", "a", 0.0)
    with pytest.raises(ValueError):
        adm.admit("c", "a", 0.0)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans(), st.booleans()), max_size=200))
def test_invariants_under_any_sequence(ops):
    """The cap is never exceeded, counts match, no address evicts itself."""
    adm = ConnectionAdmission(5, LOOSE)
    live: dict[int, str] = {}
    for n, (address, verify, end) in enumerate(ops):
        got = adm.admit(n, address, 0.0)
        if isinstance(got, Admitted):
            if got.evict is not None:
                assert got.evict_address != address
                del live[got.evict]
            live[n] = address
            if verify:
                adm.handshake_done(n)
        if end and live:
            oldest = next(iter(live))
            adm.release(oldest)
            del live[oldest]
        assert adm.active == len(live) <= 5


def test_address_key():
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    # one IPv6 subscriber holds a /64: all of it is one address
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("?") == "?"


def test_log_throttle_once_per_key_and_interval():
    t = LogThrottle(interval_s=10.0)
    assert t.allow("a", 0.0) == 0
    assert [t.allow("a", s) for s in (1.0, 2.0, 9.9)] == [None, None, None]
    assert t.allow("b", 5.0) == 0  # keys are independent
    assert t.allow("a", 10.0) == 3  # the next line reports what was held back
    assert t.allow("a", 10.5) is None


def test_log_throttle_bounded():
    t = LogThrottle(interval_s=10.0, max_keys=100)
    for i in range(10_000):
        t.allow(i, 0.0)
    assert len(t) == 100
