"""
Tests for L{txgearman.store.interfaces.IQueueStore} implementations.

L{QueueStoreTestsMixin} is the contract every store must meet; each store's
test case mixes it in and says how to make a fresh, empty store.  Here, the
memory store's; the Redis store's, which needs a real Redis, is in
C{tests/test_store_redis.py}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from txgearman.store.interfaces import IQueueStore, StoredJob
from txgearman.store.memory import MemoryQueueStore


class QueueStoreTestsMixin:
    """
    The behaviour every L{IQueueStore} must have.

    Test cases using this define C{createStore()}, returning a started-able,
    empty store (or a Deferred of one), and C{reopenStore(store)},
    returning a store that reads what C{store} wrote, as a restarted server
    would.
    """

    store: IQueueStore

    def createStore(self) -> IQueueStore | Deferred[IQueueStore]:
        raise NotImplementedError()

    def reopenStore(self, store: IQueueStore) -> IQueueStore | Deferred[IQueueStore]:
        raise NotImplementedError()

    async def _fresh(self) -> IQueueStore:
        store = self.createStore()
        if isinstance(store, Deferred):
            store = await store
        await store.start()
        self.addCleanup(store.stop)  # type: ignore[attr-defined]
        return store

    async def _reopened(self, store: IQueueStore) -> IQueueStore:
        await store.stop()
        other = self.reopenStore(store)
        if isinstance(other, Deferred):
            other = await other
        await other.start()
        self.addCleanup(other.stop)  # type: ignore[attr-defined]
        return other

    async def _replayed(self, store: IQueueStore) -> list[tuple[object, StoredJob]]:
        seen: list[tuple[object, StoredJob]] = []
        count = await store.replay(lambda key, job: seen.append((key, job)))
        self.assertEqual(count, len(seen))  # type: ignore[attr-defined]
        return seen

    async def test_interface(self) -> None:
        """
        The store provides L{IQueueStore}.
        """
        store = await self._fresh()
        self.assertTrue(verifyObject(IQueueStore, store))  # type: ignore[attr-defined]

    async def test_emptyReplay(self) -> None:
        """
        A new store replays nothing.
        """
        store = await self._fresh()
        self.assertEqual(await self._replayed(store), [])  # type: ignore[attr-defined]

    async def test_addThenReplay(self) -> None:
        """
        Added jobs come back, after a reopen, exactly as they were stored:
        function names with dashes, empty and dashed uniques, binary data
        with NULs, every priority, epoch times and reducers.
        """
        store = await self._fresh()
        jobs = [
            StoredJob(b"my-func", b"uuid-1234-abcd", b"data1"),
            StoredJob(b"my-func", b"", b"first"),
            StoredJob(b"my-func", b"", b"second"),
            StoredJob(b"my", b"func-x", b"ab\x00cd\xff", priority=0),
            StoredJob(b"low", b"-", b"0123", priority=2),
            StoredJob(b"later", b"e", b"", when=4102444800),
            StoredJob(b"reduce", b"r", b"\x00", reducer=b"sum"),
        ]
        for job in jobs:
            await store.add(job)
        store = await self._reopened(store)
        replayed = [job for _, job in await self._replayed(store)]
        self.assertEqual(replayed, jobs)  # type: ignore[attr-defined]

    async def test_order(self) -> None:
        """
        Jobs replay in the order they were added.
        """
        store = await self._fresh()
        jobs = [
            StoredJob(b"f", b"%d" % i, b"%d" % i, priority=i % 3) for i in range(50)
        ]
        for job in jobs:
            await store.add(job)
        store = await self._reopened(store)
        replayed = [job for _, job in await self._replayed(store)]
        self.assertEqual(replayed, jobs)  # type: ignore[attr-defined]

    async def test_remove(self) -> None:
        """
        A removed job is not replayed; the others are.
        """
        store = await self._fresh()
        keys = [await store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(3)]
        store.remove(keys[1])
        await store.flush()
        store = await self._reopened(store)
        replayed = [job.data for _, job in await self._replayed(store)]
        self.assertEqual(replayed, [b"0", b"2"])  # type: ignore[attr-defined]

    async def test_replayKeysRemove(self) -> None:
        """
        The keys replay hands out remove the replayed jobs.
        """
        store = await self._fresh()
        await store.add(StoredJob(b"f", b"u", b"d"))
        store = await self._reopened(store)
        [(key, _)] = await self._replayed(store)
        store.remove(key)
        await store.flush()
        store = await self._reopened(store)
        self.assertEqual(await self._replayed(store), [])  # type: ignore[attr-defined]

    async def test_removeUnknown(self) -> None:
        """
        Removing a job twice is harmless.
        """
        store = await self._fresh()
        key = await store.add(StoredJob(b"f", b"u", b"d"))
        store.remove(key)
        await store.flush()
        store.remove(key)
        await store.flush()
        self.assertEqual(await self._replayed(store), [])  # type: ignore[attr-defined]

    async def test_removeAnswersNothing(self) -> None:
        """
        Nobody waits for a removal: C{remove} returns nothing.
        """
        store = await self._fresh()
        key = await store.add(StoredJob(b"f", b"u", b"d"))
        self.assertIsNone(store.remove(key))  # type: ignore[attr-defined,func-returns-value]
        await store.flush()

    async def test_flushIdle(self) -> None:
        """
        A flush with nothing to do fires at once.
        """
        store = await self._fresh()
        flushed = store.flush()
        self.assertIsInstance(flushed, Deferred)  # type: ignore[attr-defined]
        await flushed

    async def test_flushAnswersAdds(self) -> None:
        """
        By the time a flush fires, every add asked for before it has been
        answered.
        """
        store = await self._fresh()
        added = [store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(20)]
        await store.flush()
        self.assertEqual([d.called for d in added], [True] * 20)  # type: ignore[attr-defined]
        self.assertEqual(len(await self._replayed(store)), 20)  # type: ignore[attr-defined]

    async def test_distinctKeys(self) -> None:
        """
        Every add gets its own key, even for identical jobs.
        """
        store = await self._fresh()
        job = StoredJob(b"f", b"", b"same")
        keys = [await store.add(job) for _ in range(5)]
        self.assertEqual(len(set(keys)), 5)  # type: ignore[attr-defined]
        self.assertEqual(len(await self._replayed(store)), 5)  # type: ignore[attr-defined]


class MemoryQueueStoreTests(QueueStoreTestsMixin, unittest.TestCase):
    """
    L{MemoryQueueStore} meets the store contract; its jobs outlive a stop
    and start within one process.
    """

    def createStore(self) -> IQueueStore:
        return MemoryQueueStore()

    def reopenStore(self, store: IQueueStore) -> IQueueStore:
        return store
