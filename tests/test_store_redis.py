"""
Tests for L{txgearman.store.redis.RedisQueueStore} against a real
C{redis-server} that the tests start themselves.
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from tests.fixtures import RedisServer, sharedRedisServer, startRedis
from txgearman.store import redis as redisstore
from txgearman.store.interfaces import IQueueStore, StoredJob
from txgearman.store.redis import BATCH_SIZE, RedisQueueStore
from txgearman.store.redislayout import Layout, encodeRecord
from txgearman.test.test_store import QueueStoreTestsMixin

_prefixes = itertools.count()


def freshPrefix() -> str:
    """
    A prefix no other test uses, so tests can share one Redis.
    """
    return f"test{next(_prefixes)}"


def makeStore(server: RedisServer, prefix: str, **kwargs: Any) -> RedisQueueStore:
    options: dict[str, Any] = {"timeout": 2.0, "lockTTL": 10.0, "startTimeout": 5.0}
    options.update(kwargs)
    return RedisQueueStore(server.address, reactor, prefix=prefix, **options)


def commandCalls(server: RedisServer) -> dict[str, int]:
    """
    How often Redis ran each command since its statistics were reset.
    """
    text = server.command("INFO", "commandstats")
    assert isinstance(text, bytes)
    calls = {}
    for line in text.decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_") :].partition(":")
            stats = dict(field.split("=") for field in fields.split(","))
            calls[name] = int(stats["calls"])
    return calls


def catchLogs(case: unittest.TestCase) -> EventLoggingObserver:
    """
    Collect the events logged while a test runs.
    """
    return EventLoggingObserver.createWithCleanup(case, globalLogPublisher)


class RedisQueueStoreContractTests(QueueStoreTestsMixin, unittest.TestCase):
    """
    L{RedisQueueStore} meets the store contract, on a real Redis.
    """

    def setUp(self) -> None:
        self.server = sharedRedisServer()
        self.prefix = freshPrefix()

    def createStore(self) -> IQueueStore:
        return makeStore(self.server, self.prefix)

    def reopenStore(self, store: IQueueStore) -> IQueueStore:
        return makeStore(self.server, self.prefix)


class RedisLayoutTests(unittest.TestCase):
    """
    What the store writes to Redis is the documented layout, written in
    batches.
    """

    def setUp(self) -> None:
        self.server = sharedRedisServer()
        self.prefix = freshPrefix()
        self.layout = Layout(self.prefix.encode())

    async def started(self, **kwargs: Any) -> RedisQueueStore:
        store = makeStore(self.server, self.prefix, **kwargs)
        await store.start()
        self.addCleanup(store.stop)
        return store

    async def test_storedBeforeAcknowledged(self) -> None:
        """
        When C{add} fires, the record is in Redis under a job key, in the
        documented format.
        """
        store = await self.started()
        job = StoredJob(
            b"my-func", b"", b"a\x00b\r\n", priority=2, when=7, reducer=b"r"
        )
        number = await store.add(job)
        self.assertEqual(number, 1)
        key = self.layout.jobKey(1)
        self.assertEqual(self.server.command("GET", key), encodeRecord(job))
        self.assertEqual(self.server.command("GET", self.layout.version), b"1")
        self.assertEqual(self.server.command("GET", self.layout.seq), b"1")
        self.assertEqual(
            self.server.command("GET", self.layout.lock),
            store.owner,
            "the lock is ours",
        )
        ttl = self.server.command("PTTL", self.layout.lock)
        assert isinstance(ttl, int)
        self.assertTrue(0 < ttl <= 10000)

    async def test_callsTimed(self) -> None:
        """
        Each call to Redis that writes jobs is timed and counted, for the
        metrics; none failed.
        """
        store = await self.started()
        before = store.calls.count
        await store.add(StoredJob(b"f", b"u", b"d"))
        self.assertEqual(store.calls.count, before + 1)
        self.assertTrue(0 < store.calls.sum < 5)
        self.assertEqual(store.failedCalls, 0)
        self.assertEqual(store.stateName, "running")

    async def test_removed(self) -> None:
        """
        C{remove} deletes the record.
        """
        store = await self.started()
        number = await store.add(StoredJob(b"f", b"u", b"d"))
        self.assertEqual(self.server.command("EXISTS", self.layout.jobKey(1)), 1)
        store.remove(number)
        await store.flush()
        self.assertIsNone(self.server.command("GET", self.layout.jobKey(1)))

    async def test_removeForeignKey(self) -> None:
        """
        A key the store never handed out is logged as an error and ignored;
        the store goes on working.
        """
        catcher = catchLogs(self)
        store = await self.started()
        store.remove(b"job:1")
        store.remove(True)
        logged = "\n".join(formatEvent(event) for event in catcher)
        self.assertIn("Not a Redis job number, not removed: b'job:1'", logged)
        self.assertIn("Not a Redis job number, not removed: True", logged)
        number = await store.add(StoredJob(b"f", b"u", b"d"))
        store.remove(number)
        await store.flush()
        self.assertEqual(self.server.command("EXISTS", self.layout.jobKey(1)), 0)

    async def test_deletionsWait(self) -> None:
        """
        A deletion alone waits C{deleteInterval} after the last call; it
        goes at once with a new job, or on a flush.
        """
        store = await self.started(deleteInterval=30.0)
        first, second = [
            await store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(2)
        ]
        store.remove(first)
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(self.server.command("EXISTS", self.layout.jobKey(1)), 1)
        await store.add(StoredJob(b"f", b"", b"new"))
        self.assertEqual(self.server.command("EXISTS", self.layout.jobKey(1)), 0)
        store.remove(second)
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(self.server.command("EXISTS", self.layout.jobKey(2)), 1)
        await store.flush().addTimeout(5, reactor)
        self.assertEqual(self.server.command("EXISTS", self.layout.jobKey(2)), 0)

    async def test_oneCallPerTurn(self) -> None:
        """
        Jobs added in one reactor turn reach Redis in one script call; so do
        the removals of one turn.
        """
        server = startRedis(self)
        self.server = server
        store = await self.started()
        await store.add(StoredJob(b"warm", b"", b""))  # loads the script
        server.command("CONFIG", "RESETSTAT")
        keys = await gatherResults(
            [store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(300)]
        )
        calls = commandCalls(server)
        self.assertEqual(calls.get("evalsha", 0) + calls.get("eval", 0), 1, calls)
        server.command("CONFIG", "RESETSTAT")
        for key in keys:
            store.remove(key)
        await store.flush()
        calls = commandCalls(server)
        self.assertEqual(calls.get("evalsha", 0) + calls.get("eval", 0), 1, calls)
        self.assertEqual(calls.get("del"), 300, calls)

    async def test_largeBatch(self) -> None:
        """
        A turn with more jobs than one script call carries is split, and
        every job is stored.
        """
        store = await self.started()
        count = BATCH_SIZE * 2 + 5
        keys = await gatherResults(
            [store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(count)]
        )
        self.assertEqual(len(set(keys)), count)
        self.assertEqual(len(self.server.keys(self.layout.jobPrefix + b"*")), count)

    async def test_orderAcrossRestarts(self) -> None:
        """
        Job numbers keep growing across restarts, so that jobs added after a
        restart replay after the older ones and never overwrite them.
        """
        store = await self.started()
        await store.add(StoredJob(b"f", b"", b"old"))
        await store.stop()
        store = await self.started()
        number = await store.add(StoredJob(b"f", b"", b"new"))
        self.assertEqual(number, 2)
        await store.stop()
        store = await self.started()
        seen: list[bytes] = []
        await store.replay(lambda key, job: seen.append(job.data))
        self.assertEqual(seen, [b"old", b"new"])

    async def test_replayOrderManyJobs(self) -> None:
        """
        Thousands of jobs, added in many turns and read back through several
        SCAN steps, replay in the order they were added.
        """
        store = await self.started()
        jobs = [
            StoredJob(b"f%d" % (i % 7), b"", b"%d" % i, priority=i % 3)
            for i in range(12000)
        ]
        for start in range(0, len(jobs), 500):
            await gatherResults([store.add(job) for job in jobs[start : start + 500]])
        await store.stop()
        store = await self.started()
        seen: list[StoredJob] = []
        count = await store.replay(lambda key, job: seen.append(job))
        self.assertEqual(count, len(jobs))
        self.assertEqual(seen, jobs)

    async def test_largeRecords(self) -> None:
        """
        Records too large to read within one replay step's byte budget are
        read on their own, and replay in order with the others.
        """
        self.patch(redisstore, "REPLAY_BUDGET", 1000)
        store = await self.started()
        jobs = [
            StoredJob(b"f", b"", bytes([i]) * (100 if i % 3 else 700))
            for i in range(30)
        ]
        for job in jobs:
            await store.add(job)
        await store.stop()
        store = await self.started()
        seen: list[StoredJob] = []
        await store.replay(lambda key, job: seen.append(job))
        self.assertEqual(seen, jobs)

    async def test_foreignKeysSkipped(self) -> None:
        """
        Keys under the prefix that txgearman did not write, and corrupt
        records, are logged and skipped; the jobs around them replay, and
        the skipped keys are left alone.
        """
        store = await self.started()
        keys = [await store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(3)]
        await store.stop()
        prefix = self.layout.prefix
        foreign = {
            prefix + b":job:99": ("SADD", b"x"),
            prefix + b":job:98": ("SET", b"garbage"),
            prefix + b":job:97": ("SET", b"1\x009\x000\x00f\x00\x00\x00d"),
            prefix + b":job:abc": ("SET", encodeRecord(StoredJob(b"f", b"", b"x"))),
            prefix + b":other": ("SET", b"x"),
            prefix + b"2:job:1": (
                "SET",
                encodeRecord(StoredJob(b"f", b"", b"other prefix")),
            ),
        }
        for key, (command, value) in foreign.items():
            self.server.command(command, key, value)
        self.addCleanup(lambda: self.server.command("DEL", *foreign))
        catcher = catchLogs(self)
        store = await self.started()
        seen: list[tuple[object, bytes]] = []
        await store.replay(lambda key, job: seen.append((key, job.data)))
        self.assertEqual(seen, list(zip(keys, [b"0", b"1", b"2"], strict=True)))
        logged = "\n".join(formatEvent(event) for event in catcher)
        for key in list(foreign)[:5]:
            self.assertIn(key.decode(), logged)
        self.assertNotIn("other prefix", logged)
        for key in foreign:
            self.assertEqual(self.server.command("EXISTS", key), 1)
        # Job numbers go on after the highest job key seen, corrupt or not.
        self.assertEqual(await store.add(StoredJob(b"f", b"", b"n")), 100)

    async def test_corruptSequence(self) -> None:
        """
        A job counter key that does not hold a number is logged and
        ignored: replay finds the highest job number from the job keys.
        """
        store = await self.started()
        await store.add(StoredJob(b"f", b"", b"one"))
        await store.stop()
        self.server.command("SET", self.layout.seq, b"garbage")
        store = await self.started()
        await store.replay(lambda key, job: None)
        self.assertEqual(await store.add(StoredJob(b"f", b"", b"two")), 2)

    async def test_globPrefix(self) -> None:
        """
        A prefix with glob characters matches only itself at replay.
        """
        self.prefix = "q*[a]?"
        self.layout = Layout(self.prefix.encode())
        store = await self.started()
        await store.add(StoredJob(b"f", b"", b"mine"))
        self.server.command(
            "SET", b"qx[a]z:job:1", encodeRecord(StoredJob(b"f", b"", b"not mine"))
        )
        self.addCleanup(lambda: self.server.command("DEL", b"qx[a]z:job:1"))
        seen: list[bytes] = []
        await store.replay(lambda key, job: seen.append(job.data))
        self.assertEqual(seen, [b"mine"])
