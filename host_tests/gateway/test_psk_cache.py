"""ztp.gateway._psk_cache: TTLs, single flight, invalidation races, the change watcher."""

import asyncio

import pytest
from ztp.gateway import PskCache, PskChangeWatcher, PskKey

A = bytes.fromhex("984405529081369836f5")
B = bytes.fromhex("98440552908136983604")
K1 = PskKey("1", bytes(range(16)))
K2 = PskKey("2", bytes(range(1, 17)))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Source:
    def __init__(self):
        self.keys = {A: (K1,)}
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def fetch(self, identity):
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("service down")
        return self.keys.get(identity)


def test_pskkey_hides_key_and_checks_length():
    assert bytes(range(16)).hex() not in repr(K1)
    with pytest.raises(ValueError):
        PskKey("x", b"short")


def test_known_and_unknown_identities_cached_alike():
    # issue 13 item 2: one TTL, so how long an entry lives does not tell whether it exists
    async def main():
        src, clock = Source(), Clock()
        cache = PskCache(src.fetch, ttl_s=10, clock=clock)
        assert await cache.lookup(A) == (K1,)
        assert await cache.lookup(B) is None
        assert src.calls == 2
        clock.now = 9.9
        assert await cache.lookup(A) == (K1,)
        assert await cache.lookup(B) is None
        assert (src.calls, cache.hits) == (2, 2)
        clock.now = 10
        await cache.lookup(A)
        await cache.lookup(B)
        assert src.calls == 4  # both expired together

    asyncio.run(main())


def test_gateway_caches_unknown_identities_as_long_as_known_ones():
    # the probe of the report: both kinds looked up, then again 35 s later. It was: known
    # ones cached 300 s, unknown ones 30 s, so the second probe told them apart.
    from ztp.gateway import Gateway, ServiceClient

    async def main():
        src, clock = Source(), Clock()
        service = ServiceClient("http://127.0.0.1:9", "t", "gw")
        service.get_psks = src.fetch  # the service, answering as Source does
        gw = Gateway(service, clock=clock)
        assert await gw.psk_cache.lookup(A) == (K1,)
        assert await gw.psk_cache.lookup(B) is None
        clock.now = 35
        hits = gw.psk_cache.hits
        assert await gw.psk_cache.lookup(A) == (K1,)
        assert await gw.psk_cache.lookup(B) is None
        assert gw.psk_cache.hits - hits == 2  # both answered from the cache
        await gw.service.aclose()

    asyncio.run(main())


class SlowSource(Source):
    """The service's known-identity answer costs more (keys opened, lookup audited)."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    async def fetch(self, identity):
        self.clock.now += 0.004 if identity in self.keys else 0.001
        return await super().fetch(identity)


def test_a_miss_answers_at_the_floor_known_or_not():
    async def main():
        clock = Clock()
        src = SlowSource(clock)
        slept = []

        async def sleep(seconds):
            slept.append(seconds)
            clock.now += seconds

        cache = PskCache(src.fetch, miss_floor_s=0.05, clock=clock, sleep=sleep)
        took = {}
        for identity in (A, B):
            start = clock.now
            await cache.lookup(identity)
            took[identity] = clock.now - start
        assert took[A] == pytest.approx(0.05) and took[B] == pytest.approx(0.05)
        assert slept == [pytest.approx(0.046), pytest.approx(0.049)]
        # hits are not padded: cached known and unknown entries answer alike at once
        await cache.lookup(A)
        await cache.lookup(B)
        assert len(slept) == 2
        # a service slower than the floor is not delayed further
        src.keys[b"x" * 10] = (K1,)
        cache.miss_floor_s = 0.002
        start = clock.now
        await cache.lookup(b"x" * 10)
        assert clock.now - start == pytest.approx(0.004) and len(slept) == 2

    asyncio.run(main())


def test_imported_sim_leaves_the_unknown_cache_at_the_next_poll():
    # unknown identities now live as long as known ones: the change feed must end a negative
    # entry when the SIM is imported, or a newly imported SIM would wait out the TTL
    async def main():
        src = Source()
        cache = PskCache(src.fetch, ttl_s=300)
        feed = {"last": 1, "ids": ()}

        async def changes(after):
            return feed["last"], feed["ids"]

        watcher = PskChangeWatcher(cache, changes)
        await watcher.poll_once()
        assert await cache.lookup(B) is None
        src.keys[B] = (K2,)  # imported
        feed.update(last=2, ids=(B,))
        await watcher.poll_once()
        assert await cache.lookup(B) == (K2,)

    asyncio.run(main())


def test_single_flight_and_failure_not_cached():
    async def main():
        src = Source()
        cache = PskCache(src.fetch)
        src.gate = asyncio.Event()
        tasks = [asyncio.create_task(cache.lookup(A)) for _ in range(5)]
        await asyncio.sleep(0)
        src.gate.set()
        assert await asyncio.gather(*tasks) == [(K1,)] * 5
        assert src.calls == 1
        src.gate, src.fail = None, True
        with pytest.raises(ConnectionError):
            await cache.lookup(B)
        src.fail = False
        assert await cache.lookup(B) is None
        assert src.calls == 3

    asyncio.run(main())


def test_invalidation_during_fetch_is_not_stored():
    async def main():
        src = Source()
        cache = PskCache(src.fetch)
        src.gate = asyncio.Event()
        old = asyncio.create_task(cache.lookup(A))
        await asyncio.sleep(0)
        src.keys[A] = (K2,)  # rotated while the old answer is in flight...
        cache.invalidate([A])  # ...and the change feed says so
        src.gate.set()
        await old  # the in-flight answer is delivered to its waiter, not stored
        assert await cache.lookup(A) == (K2,)

    asyncio.run(main())


def test_watcher_invalidates_listed_identities_and_resets():
    async def main():
        src = Source()
        cache = PskCache(src.fetch)
        feed = {"last": 5, "ids": ()}

        async def changes(after):
            return feed["last"], feed["ids"]

        watcher = PskChangeWatcher(cache, changes)
        await watcher.poll_once()
        assert watcher.after == 5
        await cache.lookup(A)
        src.keys[A] = (K1, K2)
        feed.update(last=6, ids=(A,))
        assert await watcher.poll_once() == (A,)
        assert await cache.lookup(A) == (K1, K2)
        await cache.lookup(B)
        assert len(cache) == 2
        feed.update(last=1, ids=())  # feed went backwards: restored database
        await watcher.poll_once()
        assert len(cache) == 0

    asyncio.run(main())
