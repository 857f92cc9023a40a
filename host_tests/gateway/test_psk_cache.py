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


def test_ttl_and_negative_ttl():
    async def main():
        src, clock = Source(), Clock()
        cache = PskCache(src.fetch, ttl_s=10, negative_ttl_s=2, clock=clock)
        assert await cache.lookup(A) == (K1,)
        assert await cache.lookup(A) == (K1,)
        assert await cache.lookup(B) is None
        assert await cache.lookup(B) is None
        assert src.calls == 2
        clock.now = 3
        assert await cache.lookup(B) is None  # negative entry expired
        assert src.calls == 3
        clock.now = 11
        await cache.lookup(A)
        assert src.calls == 4

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
