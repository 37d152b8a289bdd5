"""
Tests for how L{txgearman.store.redis.RedisQueueStore} behaves when Redis
fails, and around the ownership of the queue, against real C{redis-server}
processes that the tests kill, pause, restart, flush and fail over.

The store runs with short timeouts here so that an outage shows within a
second; the bounds on time the tests assert leave seconds of slack for a
loaded machine, and every wait is a poll with a deadline.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest
from zope.interface import implementer

from tests.fixtures import (
    REDIS_NOT_READY,
    RedisServer,
    freePort,
    sharedRedisServer,
    startRedis,
    startSentinel,
    waitForAsync,
)
from txgearman.store.interfaces import IServerClaim, StoredJob, StoreError
from txgearman.store.redis import RedisQueueStore
from txgearman.store.redislayout import Layout, decodeRecord, encodeRecord, ownerToken

reactor: Any = _reactor

#: The store's settings in these tests: an outage shows within a second.
TIMEOUT = 1.0
LOCK_TTL = 2.0
START_TIMEOUT = 3.0
#: What a bound on time allows on top, for a loaded machine.
SLACK = 2.0
#: How long a test waits for the store to get over an outage by itself.
RECOVERY = 10.0
#: The prefix of the tests that have a Redis of their own.
PREFIX = "outage"


@implementer(IServerClaim)
class FakeClaim:
    """
    A claim whose freedom the test decides.
    """

    def __init__(self, name: str, free: bool) -> None:
        self.name = name
        self.free = free

    def isFree(self) -> bool:
        return self.free


def job(data: bytes) -> StoredJob:
    """
    A background job told apart from others by its data.
    """
    return StoredJob(b"outage-test", b"", data)


def uniquePrefix() -> str:
    """
    A prefix no other test on a shared Redis uses.
    """
    return f"outage-{os.getpid()}-{os.urandom(4).hex()}"


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


async def added(store: RedisQueueStore, stored: StoredJob) -> bytes:
    """
    Add C{stored} and return the Redis key of its record.
    """
    number = await store.add(stored)
    assert isinstance(number, int), number
    return store.layout.jobKey(number)


async def addWhenAccepted(
    store: RedisQueueStore, stored: StoredJob, timeout: float
) -> bytes:
    """
    Add C{stored} over and over until the store accepts it, as clients
    would resubmit a refused background job.

    @return: the key of the stored job.
    @raise unittest.FailTest: if the store still refuses after C{timeout} s.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            number = await store.add(stored)
        except StoreError as e:
            if time.monotonic() >= deadline:
                raise unittest.FailTest(
                    f"the store still refuses jobs after {timeout:g} s: {e}"
                ) from None
            await sleep(0.1)
        else:
            assert isinstance(number, int)
            return store.layout.jobKey(number)


def storedData(server: RedisServer, layout: Layout) -> list[bytes]:
    """
    The data of the job records under C{layout} in C{server}, in job number
    order.
    """
    keys = server.keys(layout.jobPrefix + b"*")
    numbered = sorted((layout.jobNumber(key), key) for key in keys)
    data = []
    for _number, key in numbered:
        value = server.command("GET", key)
        if value is not None:
            data.append(decodeRecord(value).data)
    return data


def logged(
    catcher: EventLoggingObserver, level: LogLevel, text: str
) -> list[dict[str, Any]]:
    """
    The events logged at C{level} whose text contains C{text}.
    """
    return [
        event
        for event in catcher
        if event.get("log_level") == level and text in formatEvent(event)
    ]


def makeStore(
    case: unittest.TestCase, address: str, prefix: str = PREFIX, **kwargs: Any
) -> RedisQueueStore:
    """
    A store with the tests' short timeouts, stopped when C{case} ends.
    """
    options: dict[str, Any] = {
        "timeout": TIMEOUT,
        "lockTTL": LOCK_TTL,
        "startTimeout": START_TIMEOUT,
    }
    options.update(kwargs)
    store = RedisQueueStore(address, reactor, prefix=prefix, **options)
    case.addCleanup(store.stop)
    return store


async def startedStore(
    case: unittest.TestCase, address: str, prefix: str = PREFIX, **kwargs: Any
) -> RedisQueueStore:
    store = makeStore(case, address, prefix, **kwargs)
    await store.start()
    return store


class OutageTests(unittest.TestCase):
    """
    The store while Redis is dead, frozen or wiped, and after it is back.
    """

    layout = Layout(PREFIX.encode())

    async def test_killedThenRestarted(self) -> None:
        """
        When Redis crashes, the store notices the lost connection: the
        next add fails at once, saying so, rather than waiting out the
        store's timeout; while Redis stays down, later adds are refused at
        once, saying why; once
        Redis is back on the same port the same store takes jobs again by
        itself, and the jobs acknowledged before the crash are still stored.
        """
        server = startRedis(self, appendonly=True, appendfsync="always")
        store = await startedStore(self, server.address)
        before = await added(store, job(b"before"))
        server.kill()
        await sleep(0.2)

        started = time.monotonic()
        with self.assertRaises(StoreError) as caught:
            await store.add(job(b"during"))
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertIn("the connection to Redis was lost", str(caught.exception))

        for _ in range(3):
            started = time.monotonic()
            with self.assertRaises(StoreError) as caught:
                await store.add(job(b"refused"))
            self.assertLess(time.monotonic() - started, 0.5)
            self.assertRegex(
                str(caught.exception),
                "the connection to Redis was lost|Redis did not answer|cannot connect",
            )
            await sleep(0.3)

        server.restart()
        after = await addWhenAccepted(store, job(b"after"), RECOVERY)
        self.assertEqual(server.command("GET", before), encodeRecord(job(b"before")))
        self.assertEqual(server.command("GET", after), encodeRecord(job(b"after")))
        self.assertEqual(storedData(server, self.layout), [b"before", b"after"])

    async def test_outageLoggedOncePerChange(self) -> None:
        """
        While Redis stays down, the log says so once, with the retry
        schedule, rather than once per connection attempt; and once when it
        is reachable again.
        """
        catcher = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        server = startRedis(self, appendonly=True, appendfsync="always")
        store = await startedStore(self, server.address)
        server.kill()
        # Several reconnection attempts: they come a second apart at most.
        await sleep(3.5)
        server.restart()
        await addWhenAccepted(store, job(b"after"), RECOVERY)

        retries = [
            e for e in catcher if "retry" in str(e.get("log_format", "")).lower()
        ]
        self.assertEqual(retries, [])
        cannot = logged(catcher, LogLevel.warn, "Cannot connect to Redis")
        self.assertEqual(len(cannot), 1, [formatEvent(e) for e in cannot])
        self.assertIn("trying again every second", formatEvent(cannot[0]))
        self.assertEqual(len(logged(catcher, LogLevel.info, "Connected to Redis")), 1)

    async def test_pausedThenResumed(self) -> None:
        """
        When Redis freezes, the add in flight fails within about the store's
        timeout, saying Redis did not answer; once Redis answers again, adds
        succeed again, and the record of the job whose add failed is gone
        from Redis even if the write landed after all (it does on Linux:
        the frozen server reads the script call when it thaws), so that a
        job its client was told had failed never runs.
        """
        server = startRedis(self)
        store = await startedStore(self, server.address)
        acknowledged = await added(store, job(b"acknowledged"))
        number = self.layout.jobNumber(acknowledged)
        assert number is not None
        failedKey = self.layout.jobKey(number + 1)

        server.pause()
        try:
            started = time.monotonic()
            with self.assertRaises(StoreError) as caught:
                await store.add(job(b"failed"))
            elapsed = time.monotonic() - started
        finally:
            server.resume()
        self.assertLess(elapsed, TIMEOUT + SLACK)
        self.assertIn("did not answer", str(caught.exception))

        after = await addWhenAccepted(store, job(b"after"), RECOVERY)
        self.assertNotEqual(after, failedKey)
        await waitForAsync(
            lambda: server.command("EXISTS", failedKey) == 0,
            RECOVERY,
            "the failed job's record to be deleted",
            ignoring=REDIS_NOT_READY,
        )
        self.assertEqual(storedData(server, self.layout), [b"acknowledged", b"after"])

    async def test_failedAddNotReplayedAfterQuickStop(self) -> None:
        """
        A job whose add failed is not replayed by the next server even when
        this one stops right after Redis answers again: the write that
        landed late is deleted by the stop, not left for the retry that the
        stop cancels.
        """
        server = startRedis(self)
        store = await startedStore(self, server.address)
        await store.add(job(b"acknowledged"))
        server.pause()
        try:
            with self.assertRaises(StoreError):
                await store.add(job(b"failed"))
        finally:
            server.resume()
        server.waitUntilReady()
        await store.stop()

        replayed: list[bytes] = []
        await (await startedStore(self, server.address)).replay(
            lambda key, stored: replayed.append(stored.data)
        )
        self.assertEqual(replayed, [b"acknowledged"])

    async def test_removeWhileDown(self) -> None:
        """
        A job removed while Redis is down stays to be removed: a flush does
        not fire while Redis is away, and once Redis is back the store
        deletes the record by itself and then fires it.
        """
        catcher = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        server = startRedis(self, appendonly=True, appendfsync="always")
        store = await startedStore(self, server.address)
        key = await added(store, job(b"finished"))
        server.kill()

        store.remove(store.layout.jobNumber(key))
        removed = store.flush()
        await waitForAsync(
            lambda: logged(catcher, LogLevel.error, "unavailable"),
            RECOVERY,
            "the store to notice that Redis is down",
            ignoring=REDIS_NOT_READY,
        )
        # Past the store's own retry (a second after the failure).
        await sleep(TIMEOUT + 0.5)
        self.assertFalse(removed.called, "the removal fired while Redis was down")

        server.restart()
        # Persisted: only the store, now, can delete it.
        self.assertEqual(server.command("EXISTS", key), 1)
        await waitForAsync(
            lambda: server.command("EXISTS", key) == 0,
            RECOVERY,
            "the record to be deleted",
            ignoring=REDIS_NOT_READY,
        )
        await waitForAsync(
            lambda: removed.called,
            RECOVERY,
            "the removal to fire",
            ignoring=REDIS_NOT_READY,
        )
        await removed

    async def test_dataLost(self) -> None:
        """
        When Redis loses its data under a running store (flushed, or
        restarted without persistence), the next write finds it out: the
        store logs it loudly and writes back every job the server still
        holds before it acknowledges the new one, so that a restart of the
        server loses nothing.
        """
        catcher = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        server = startRedis(self)
        # A long lock TTL keeps the lock's refresh out of the way: the add
        # is what finds the keys gone.
        store = await startedStore(self, server.address, lockTTL=30.0)
        held: dict[object, StoredJob] = {}
        store.setHoldings(lambda: list(held.items()))
        for n in range(1500):
            record = job(b"held-%d" % (n,))
            held[await store.add(record)] = record
        server.flushall()

        key = await added(store, job(b"new"))
        self.assertEqual(server.command("GET", key), encodeRecord(job(b"new")))
        self.assertTrue(logged(catcher, LogLevel.critical, "lost this queue's keys"))
        self.assertEqual(server.command("GET", self.layout.version), b"1")
        self.assertEqual(server.command("GET", self.layout.lock), store.owner)
        self.assertEqual(
            storedData(server, self.layout),
            [b"held-%d" % (n,) for n in range(1500)] + [b"new"],
        )
        self.assertEqual(int(server.command("GET", self.layout.seq)), 1501)


class RefusedTests(unittest.TestCase):
    """
    A Redis that refuses this server (a wrong password) fails the start at
    once, saying so, without the password.
    """

    async def test_wrongPassword(self) -> None:
        server = startRedis(self)
        server.command("ACL", "SETUSER", "gearman", "on", ">right", "~*", "+@all")
        catcher = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        store = makeStore(
            self,
            f"redis://gearman:wrong-secret@{server.address}",
            uniquePrefix(),
            startTimeout=30.0,
        )
        started = time.monotonic()
        with self.assertRaises(StoreError) as caught:
            await store.start()
        self.assertLess(time.monotonic() - started, SLACK)
        message = str(caught.exception)
        self.assertIn("refused this server", message)
        self.assertIn("WRONGPASS", message)
        self.assertNotIn("wrong-secret", message)
        self.assertTrue(logged(catcher, LogLevel.error, "WRONGPASS"))
        for event in catcher:
            self.assertNotIn("wrong-secret", formatEvent(event))


class LockTests(unittest.TestCase):
    """
    One server at a time holds the queue under a prefix.
    """

    def setUp(self) -> None:
        self.server = sharedRedisServer()
        self.prefix = uniquePrefix()
        self.layout = Layout(self.prefix.encode())
        self.addCleanup(self.deleteKeys, self.prefix)

    def deleteKeys(self, prefix: str) -> None:
        keys = self.server.keys(prefix.encode() + b":*")
        if keys:
            self.server.command("DEL", *keys)

    async def test_heldQueueRefused(self) -> None:
        """
        A second server on the same prefix gives up after its start timeout,
        saying another txgearman server holds the queue; another prefix on
        the same Redis starts at once; and once the first server stops, its
        lock is released, so a new server starts without waiting for it to
        expire.
        """
        first = await startedStore(self, self.server.address, self.prefix, lockTTL=30.0)

        second = makeStore(self, self.server.address, self.prefix, startTimeout=1.0)
        with self.assertRaises(StoreError) as caught:
            await second.start()
        message = str(caught.exception)
        self.assertIn("another txgearman server", message)
        self.assertIn("holds the queue", message)
        self.assertIn(f"pid {os.getpid()} on {socket.gethostname()}", message)
        self.assertEqual(self.server.command("GET", self.layout.lock), first.owner)

        otherPrefix = uniquePrefix()
        self.addCleanup(self.deleteKeys, otherPrefix)
        other = await startedStore(self, self.server.address, otherPrefix)
        await other.add(job(b"elsewhere"))

        await first.stop()
        third = makeStore(self, self.server.address, self.prefix, startTimeout=5.0)
        started = time.monotonic()
        await third.start()
        # The first lock had 30 s to run: this server did not wait it out.
        self.assertLess(time.monotonic() - started, SLACK)
        self.assertEqual(self.server.command("GET", self.layout.lock), third.owner)

    async def test_liveHolderRefusedAtOnce(self) -> None:
        """
        A second server on the same prefix, while the first one runs and
        keeps its lock fresh, refuses to start as soon as it has seen the
        lock refreshed, long before its start timeout, naming the holder.
        """
        first = await startedStore(self, self.server.address, self.prefix, lockTTL=3.0)
        second = makeStore(self, self.server.address, self.prefix, startTimeout=60.0)
        started = time.monotonic()
        with self.assertRaises(StoreError) as caught:
            await second.start()
        self.assertLess(time.monotonic() - started, 1.0 + SLACK)
        message = str(caught.exception)
        self.assertIn(f"pid {os.getpid()} on {socket.gethostname()}", message)
        self.assertIn("is running", message)
        self.assertEqual(self.server.command("GET", self.layout.lock), first.owner)

    async def test_predecessorsLockTakenOver(self) -> None:
        """
        A lock left by a process of this host with this server's claim, while
        the claim is free, is its dead predecessor's: the server takes the
        queue at once, however long the lock had to run, and keeps the jobs.
        """
        catcher = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        claim = FakeClaim("tcp 127.0.0.1:4730", free=True)
        dead = ownerToken(socket.gethostname(), claim.name, 999999, "dead")
        self.server.command("SET", self.layout.lock, dead, "PX", 30000)
        started = time.monotonic()
        store = await startedStore(
            self, self.server.address, self.prefix, startTimeout=30.0, claim=claim
        )
        self.assertLess(time.monotonic() - started, SLACK)
        self.assertEqual(self.server.command("GET", self.layout.lock), store.owner)
        self.assertTrue(logged(catcher, LogLevel.warn, "previous run"))

    async def test_predecessorsClaimInUse(self) -> None:
        """
        A lock of this host with this server's claim, while a live process
        holds the claim (the port is in use), is refused at once.
        """
        claim = FakeClaim("tcp 127.0.0.1:4730", free=False)
        live = ownerToken(socket.gethostname(), claim.name, 999999, "live")
        self.server.command("SET", self.layout.lock, live, "PX", 30000)
        store = makeStore(
            self, self.server.address, self.prefix, startTimeout=30.0, claim=claim
        )
        started = time.monotonic()
        with self.assertRaises(StoreError) as caught:
            await store.start()
        self.assertLess(time.monotonic() - started, SLACK)
        self.assertIn("tcp 127.0.0.1:4730 is in use", str(caught.exception))
        self.assertEqual(self.server.command("GET", self.layout.lock), live)

    async def test_otherClaimWaitedOut(self) -> None:
        """
        A lock of this host with another claim (another server's address),
        or of another host with the same claim, is not this server's
        predecessor's: it is waited out as any other.
        """
        claim = FakeClaim("tcp 127.0.0.1:4730", free=True)
        for token in [
            ownerToken(socket.gethostname(), "tcp 127.0.0.1:4731", 999999, "other"),
            ownerToken("elsewhere.example", claim.name, 999999, "other"),
        ]:
            self.server.command("SET", self.layout.lock, token, "PX", 1200)
            started = time.monotonic()
            store = await startedStore(
                self, self.server.address, self.prefix, startTimeout=10.0, claim=claim
            )
            self.assertGreaterEqual(time.monotonic() - started, 1.0)
            await store.stop()

    async def test_deadServersLock(self) -> None:
        """
        The lock of a server that died without releasing it holds a new
        server back until it expires; then the new server starts.
        """
        catcher = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.server.command("SET", self.layout.lock, "dead-server:1", "PX", 1500)
        started = time.monotonic()
        store = await startedStore(
            self, self.server.address, self.prefix, startTimeout=10.0
        )
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 1.5 + SLACK)
        self.assertEqual(self.server.command("GET", self.layout.lock), store.owner)
        self.assertTrue(logged(catcher, LogLevel.warn, "dead-server:1"))
        await store.add(job(b"mine now"))

    async def test_ownershipLost(self) -> None:
        """
        When another server takes the lock over, the store refuses jobs from
        then on, saying it no longer owns the queue (the add that finds out
        included), logs a critical event, leaves the other server's lock
        alone and stores nothing more.
        """
        catcher = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        # A long lock TTL keeps the lock's refresh out of the way: the add
        # is what finds the lock taken.
        store = await startedStore(self, self.server.address, self.prefix, lockTTL=30.0)
        await store.add(job(b"mine"))
        self.server.command("SET", self.layout.lock, "intruder", "PX", 60000)

        with self.assertRaises(StoreError) as caught:
            await store.add(job(b"found out"))
        firstMessage = str(caught.exception)

        started = time.monotonic()
        with self.assertRaises(StoreError) as caught:
            await store.add(job(b"refused"))
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertIn("no longer owns the queue", str(caught.exception))

        self.assertTrue(logged(catcher, LogLevel.critical, "took the queue"))
        self.assertEqual(self.server.command("GET", self.layout.lock), b"intruder")
        self.assertEqual(storedData(self.server, self.layout), [b"mine"])
        self.assertIn("no longer owns the queue", firstMessage)


class StartTests(unittest.TestCase):
    """
    Starting against a Redis that is not (yet) fit to hold the queue.
    """

    async def test_unknownLayout(self) -> None:
        """
        Keys written by a layout this txgearman does not know make the start
        fail, saying so, without taking the lock.
        """
        server = sharedRedisServer()
        prefix = uniquePrefix()
        layout = Layout(prefix.encode())
        self.addCleanup(server.command, "DEL", layout.version, layout.lock)
        server.command("SET", layout.version, b"99")
        store = makeStore(self, server.address, prefix)
        with self.assertRaises(StoreError) as caught:
            await store.start()
        self.assertIn("layout", str(caught.exception))
        self.assertIn("99", str(caught.exception))
        self.assertIsNone(server.command("GET", layout.lock))
        self.assertEqual(server.command("GET", layout.version), b"99")

    async def test_nothingListening(self) -> None:
        """
        With no Redis at the address, the start retries until its start
        timeout, then fails saying Redis is unreachable.
        """
        store = makeStore(self, f"127.0.0.1:{freePort()}")
        started = time.monotonic()
        with self.assertRaises(StoreError) as caught:
            await store.start()
        elapsed = time.monotonic() - started
        self.assertIn("unreachable", str(caught.exception))
        self.assertGreaterEqual(elapsed, START_TIMEOUT - 0.5)
        self.assertLess(elapsed, START_TIMEOUT + 5)

    async def test_redisComesUpLate(self) -> None:
        """
        A start begun before Redis is up succeeds once Redis comes up, as it
        does when both start at boot.
        """
        server = RedisServer(port=freePort())
        self.addCleanup(server.cleanup)
        store = makeStore(self, server.address, startTimeout=15.0)
        started = time.monotonic()
        starting = store.start()
        await deferLater(reactor, 1.0, server.start)
        await starting
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        key = await added(store, job(b"first"))
        self.assertEqual(server.command("GET", key), encodeRecord(job(b"first")))


class AddressTests(unittest.TestCase):
    """
    Each kind of address C{--redis} takes reaches Redis.
    """

    async def test_unixSocket(self) -> None:
        """
        A path is a unix socket.
        """
        directory = tempfile.mkdtemp(prefix="txg-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "redis.sock")
        server = startRedis(
            self, extraArgs=["--unixsocket", path, "--unixsocketperm", "700"]
        )
        store = await startedStore(self, path)
        key = await added(store, job(b"over a socket"))
        self.assertEqual(
            server.command("GET", key), encodeRecord(job(b"over a socket"))
        )

    async def test_database(self) -> None:
        """
        The database number of a C{redis://} URL is where the keys go.
        """
        server = startRedis(self)
        store = await startedStore(self, f"redis://127.0.0.1:{server.port}/3")
        key = await added(store, job(b"in db 3"))
        keyspace = server.command("INFO", "keyspace")
        self.assertIn(b"db3:keys=", keyspace)
        self.assertNotIn(b"db0:", keyspace)
        server.command("SELECT", 3)
        self.assertEqual(server.command("GET", key), encodeRecord(job(b"in db 3")))

    async def test_password(self) -> None:
        """
        The password of a C{redis://} URL gets the store into a Redis that
        requires one, which refuses a store without it; the password is
        never part of the store's description.

        The test fixture waits for a new server to answer C{PING} without
        authenticating, so the password is set once the server runs
        (C{CONFIG SET requirepass}), as an operator would, rather than with
        C{--requirepass}; the fixture's own connection, made before, stays
        authenticated.
        """
        server = startRedis(self)
        server.command("CONFIG", "SET", "requirepass", "s3cret")
        server.command("AUTH", "s3cret")

        without = makeStore(self, f"redis://127.0.0.1:{server.port}")
        with self.assertRaises(StoreError) as caught:
            await without.start()
        self.assertIn("NOAUTH", str(caught.exception))

        store = await startedStore(self, f"redis://:s3cret@127.0.0.1:{server.port}")
        self.assertNotIn("s3cret", store.description)
        key = await added(store, job(b"authenticated"))
        self.assertEqual(
            server.command("GET", key), encodeRecord(job(b"authenticated"))
        )


class SentinelTests(unittest.TestCase):
    """
    The store behind Redis Sentinel follows the master through a failover.
    """

    async def test_failover(self) -> None:
        """
        Through Sentinel the store stores jobs in the master; when the
        master dies and Sentinel promotes the replica, the same store takes
        jobs again within seconds, and a new store replays the jobs
        acknowledged before the failover and after it.
        """
        master = startRedis(self)
        replica = startRedis(self, replicaOf=(master.host, master.port))
        await waitForAsync(
            lambda: b"master_link_status:up" in replica.command("INFO", "replication"),
            30.0,
            "the replica to sync",
            ignoring=REDIS_NOT_READY,
        )
        sentinel = startSentinel(self, "mymaster", master)
        assert replica.port is not None
        replicaPort = b"%d" % (replica.port,)

        def replicaKnown() -> bool:
            for entry in sentinel.command("SENTINEL", "replicas", "mymaster"):
                fields = dict(zip(entry[::2], entry[1::2], strict=True))
                if (
                    fields.get(b"port") == replicaPort
                    and fields.get(b"master-link-status") == b"ok"
                ):
                    return True
            return False

        await waitForAsync(
            replicaKnown,
            30.0,
            "the Sentinel to find the replica",
            ignoring=REDIS_NOT_READY,
        )
        address = f"sentinel://{sentinel.host}:{sentinel.port}/mymaster"
        layout = Layout(PREFIX.encode())

        store = await startedStore(self, address, startTimeout=10.0)
        before = [await added(store, job(b"before %d" % i)) for i in range(3)]
        self.assertEqual(
            [master.command("GET", key) for key in before],
            [encodeRecord(job(b"before %d" % i)) for i in range(3)],
        )
        await waitForAsync(
            lambda: all(replica.command("EXISTS", key) for key in before),
            RECOVERY,
            "the jobs to reach the replica",
            ignoring=REDIS_NOT_READY,
        )

        master.kill()
        await waitForAsync(
            lambda: sentinel.masterAddress() == (replica.host, replica.port),
            30.0,
            "the Sentinel to promote the replica",
            ignoring=REDIS_NOT_READY,
        )
        after = await addWhenAccepted(store, job(b"after"), 15.0)
        self.assertEqual(replica.command("GET", after), encodeRecord(job(b"after")))
        await store.stop()

        replayed: list[bytes] = []
        again = await startedStore(self, address, startTimeout=10.0)
        await again.replay(lambda key, stored: replayed.append(stored.data))
        self.assertEqual(replayed, [b"before 0", b"before 1", b"before 2", b"after"])
        self.assertEqual(storedData(replica, layout), replayed)
