"""
Unit tests for L{txgearman.store.sqlite.SQLiteQueueStore}: a real SQLite
file, but a fake thread pool that runs the store's work only when the test
says (a disk as slow as the test likes) and a L{Clock} for the reactor.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txgearman.store.interfaces import (
    ICallbackStore,
    IQueueStore,
    IStoreHealth,
    IStoreStatistics,
    StoredJob,
    StoreError,
)
from txgearman.store.sqlite import (
    DELETE_INTERVAL,
    SCHEMA_VERSION,
    SQLiteQueueStore,
    deleteJobs,
    insertJobs,
    lastJobId,
    openDatabase,
)


class FakeReactor(Clock):
    """
    A clock whose C{callFromThread} calls at once: the fake pool's work
    runs in the test's thread.
    """

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


class FakeThreadPool:
    """
    A thread pool that runs nothing until L{runNext} or L{runAll}.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[Any, Any, tuple[Any, ...]]] = []
        self.started = False
        self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def callInThreadWithCallback(self, onResult: Any, f: Any, *args: Any) -> None:
        self.pending.append((onResult, f, args))

    def runNext(self) -> None:
        onResult, f, args = self.pending.pop(0)
        try:
            result = f(*args)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)

    def runAll(self) -> None:
        while self.pending:
            self.runNext()


def result(d: Deferred[Any]) -> Any:
    """
    What C{d} fired with; fail if it did not fire or failed.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


class SQLiteUnitTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "queue.db")
        self.reactor = FakeReactor()
        self.pool = FakeThreadPool()

    def catchLogs(self) -> list[LogEvent]:
        """
        Collect the events logged from now until the test ends.
        """
        events: list[LogEvent] = []

        @implementer(ILogObserver)
        def observe(event: LogEvent) -> None:
            events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return events

    def makeStore(self, **kwargs: Any) -> SQLiteQueueStore:
        return SQLiteQueueStore(self.path, self.reactor, threadPool=self.pool, **kwargs)

    def started(self, **kwargs: Any) -> SQLiteQueueStore:
        store = self.makeStore(**kwargs)
        d = store.start()
        self.pool.runAll()
        result(d)
        self.addCleanup(self.stopped, store)
        return store

    def stopped(self, store: SQLiteQueueStore) -> None:
        d = store.stop()
        for _ in range(10):
            self.reactor.advance(0)
            self.pool.runAll()
        result(d)

    def turn(self) -> None:
        """
        End the reactor turn: the batch is handed to the pool.
        """
        self.reactor.advance(0)

    def rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as db:
            return db.execute("SELECT * FROM jobs ORDER BY id").fetchall()


class InterfaceTests(SQLiteUnitTestCase):
    def test_interfaces(self) -> None:
        """
        The store provides the store contract, health and statistics.
        """
        store = self.started()
        self.assertTrue(verifyObject(IQueueStore, store))
        self.assertTrue(verifyObject(ICallbackStore, store))
        self.assertTrue(verifyObject(IStoreHealth, store))
        self.assertTrue(verifyObject(IStoreStatistics, store))
        self.assertTrue(store.durable)
        self.assertEqual(store.stateName, "running")
        [check] = store.health()
        self.assertEqual((check.name, check.ok), ("sqlite", True))

    def test_description(self) -> None:
        """
        The description names the file and the synchronous setting.
        """
        self.assertEqual(
            self.makeStore().description, f"sqlite {self.path} (synchronous=FULL)"
        )
        self.assertEqual(
            self.makeStore(durability="normal").description,
            f"sqlite {self.path} (synchronous=NORMAL)",
        )

    def test_unknownDurability(self) -> None:
        """
        An unknown durability is a L{ValueError} naming the choices.
        """
        e = self.assertRaises(ValueError, self.makeStore, durability="fast")
        self.assertIn("'full', 'normal'", str(e))

    def test_walAndSynchronous(self) -> None:
        """
        The database is in WAL mode with the durability's synchronous.
        """
        store = self.started(durability="normal")
        assert store._connection is not None
        self.assertEqual(
            store._connection.execute("PRAGMA journal_mode").fetchone(), ("wal",)
        )
        # NORMAL is 1.
        self.assertEqual(
            store._connection.execute("PRAGMA synchronous").fetchone(), (1,)
        )
        with sqlite3.connect(self.path) as db:
            self.assertEqual(
                db.execute(
                    "SELECT value FROM meta WHERE key='schema_version'"
                ).fetchall(),
                [(SCHEMA_VERSION,)],
            )


class GroupCommitTests(SQLiteUnitTestCase):
    def test_oneTransactionPerTurn(self) -> None:
        """
        The adds and removes of one reactor turn go in one transaction.
        """
        store = self.started()
        added = [store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(100)]
        self.turn()
        self.assertEqual(len(self.pool.pending), 1)
        self.pool.runAll()
        self.assertEqual(store.commits, 1)
        keys = [result(d) for d in added]
        self.assertEqual(keys, list(range(1, 101)))
        for key in keys[:50]:
            store.remove(key)
        store.add(StoredJob(b"g", b"", b""))
        self.turn()
        self.assertEqual(len(self.pool.pending), 1)
        self.pool.runAll()
        self.assertEqual(store.commits, 2)
        self.assertEqual(len(self.rows()), 51)

    def test_createdOnlyAfterCommit(self) -> None:
        """
        An add fires only once the pool ran the commit; until then the row
        is not in the database.
        """
        store = self.started()
        d = store.add(StoredJob(b"f", b"u", b"d", priority=2, when=7, reducer=b"r"))
        self.turn()
        self.assertNoResult(d)
        self.assertEqual(self.rows(), [])
        self.pool.runNext()
        self.assertEqual(result(d), 1)
        self.assertEqual(self.rows(), [(1, b"f", b"u", b"d", 2, 7, b"r")])

    def test_nextBatchWaits(self) -> None:
        """
        While a commit is in flight, the next batch gathers and goes, as
        one transaction, when it ends.
        """
        store = self.started()
        first = store.add(StoredJob(b"f", b"", b"1"))
        self.turn()
        second = [store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(5)]
        self.turn()
        store.remove(1)
        self.turn()
        self.assertEqual(len(self.pool.pending), 1, "at most one commit in flight")
        flushed = store.flush()
        self.pool.runNext()
        self.assertEqual(result(first), 1)
        self.assertNoResult(flushed)
        self.turn()
        self.assertEqual(len(self.pool.pending), 1)
        self.pool.runNext()
        self.assertEqual([result(d) for d in second], [2, 3, 4, 5, 6])
        self.assertEqual(store.commits, 2)
        result(flushed)
        self.assertEqual([row[0] for row in self.rows()], [2, 3, 4, 5, 6])

    def test_foreignKey(self) -> None:
        """
        A key the store never handed out is logged and ignored.
        """
        catcher = self.catchLogs()
        store = self.started()
        store.remove(b"1")
        store.remove(True)
        logged = "\n".join(formatEvent(event) for event in catcher)
        self.assertIn("Not an SQLite job id, not removed: b'1'", logged)
        self.assertIn("Not an SQLite job id, not removed: True", logged)
        self.assertEqual(result(store.flush()), None)

    def test_stopFinishesBatch(self) -> None:
        """
        Stop commits what is pending, closes, and releases the lock.
        """
        store = self.makeStore()
        d = store.start()
        self.pool.runAll()
        result(d)
        added = store.add(StoredJob(b"f", b"", b""))
        stopping = store.stop()
        self.assertNoResult(stopping)
        self.pool.runAll()
        self.pool.runAll()
        result(stopping)
        self.assertEqual(result(added), 1)
        self.assertTrue(self.pool.stopped)
        self.assertEqual(store.stateName, "stopped")
        self.failureResultOf(store.add(StoredJob(b"f", b"", b"")), StoreError)
        with open(self.path + ".lock") as f:
            self.assertEqual(f.read(), "")


class ErrorTests(SQLiteUnitTestCase):
    def fill(self, store: SQLiteQueueStore) -> None:
        """
        Cap the database at its present size: the next write that needs a
        page fails with SQLITE_FULL.
        """
        assert store._connection is not None
        [(pages,)] = store._connection.execute("PRAGMA page_count").fetchall()
        store._connection.execute(f"PRAGMA max_page_count = {pages}")

    def test_diskFull(self) -> None:
        """
        A batch that cannot commit fails every add of it with the reason;
        its removes are retried; later batches succeed once there is room.
        """
        catcher = self.catchLogs()
        store = self.started()
        kept = store.add(StoredJob(b"f", b"", b"kept"))
        self.turn()
        self.pool.runAll()
        key = result(kept)
        self.fill(store)
        store.remove(key)
        failing = [store.add(StoredJob(b"f", b"", b"x" * 100000)) for _ in range(3)]
        self.turn()
        self.pool.runAll()
        for d in failing:
            e = self.failureResultOf(d, StoreError).value
            self.assertEqual(
                str(e),
                f"the queue database {self.path} cannot be written: "
                "database or disk is full",
            )
        self.assertEqual(store.failedCalls, 1)
        self.assertEqual(store.stateName, "failing")
        [check] = store.health()
        self.assertFalse(check.ok)
        self.assertIn("database or disk is full", check.detail)
        self.assertIn(
            "database or disk is full", "\n".join(formatEvent(e) for e in catcher)
        )
        self.assertEqual([row[0] for row in self.rows()], [key], "rolled back")
        assert store._connection is not None
        store._connection.execute("PRAGMA max_page_count = 1000000")
        later = store.add(StoredJob(b"f", b"", b"later"))
        self.turn()
        self.pool.runAll()
        # The failed adds' ids were rolled back with them: never acknowledged,
        # they are free; no id a client saw is reused.
        self.assertEqual(result(later), key + 1)
        self.assertEqual(store.stateName, "running")
        self.assertEqual([row[3] for row in self.rows()], [b"later"], "removal retried")

    def test_removesRetriedAlone(self) -> None:
        """
        Removes of a failed batch with no new job to carry them are tried
        again a little later; a flush waits for them.
        """
        store = self.started()
        added = store.add(StoredJob(b"f", b"", b""))
        self.turn()
        self.pool.runAll()
        key = result(added)
        assert store._connection is not None
        store._connection.execute("PRAGMA query_only = ON")
        store.remove(key)
        flushed = store.flush()
        self.turn()
        self.pool.runAll()
        self.assertNoResult(flushed)
        self.assertIn("cannot be written", store.lastError or "")
        store._connection.execute("PRAGMA query_only = OFF")
        self.reactor.advance(1.0)
        self.pool.runAll()
        result(flushed)
        self.assertEqual(self.rows(), [])

    def test_readOnlyDatabase(self) -> None:
        """
        A database opened read-only refuses writes with the reason.
        """
        store = self.started()
        assert store._connection is not None
        store._connection.close()
        store._connection = sqlite3.connect(
            f"file:{self.path}?mode=ro", uri=True, isolation_level=None
        )
        d = store.add(StoredJob(b"f", b"", b""))
        self.turn()
        self.pool.runAll()
        e = self.failureResultOf(d, StoreError).value
        self.assertEqual(
            str(e),
            f"the queue database {self.path} cannot be written: "
            "attempt to write a readonly database",
        )

    def test_newerSchemaRefused(self) -> None:
        """
        A database of a newer schema version is refused at start, and the
        lock released.
        """
        self.stopped(self.started())
        with sqlite3.connect(self.path) as db:
            db.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
        db.close()
        store = self.makeStore()
        d = store.start()
        self.pool.runAll()
        e = self.failureResultOf(d, StoreError).value
        self.assertIn("has schema version 99", str(e))
        self.assertIn(f"(schema version {SCHEMA_VERSION})", str(e))
        self.assertEqual(store.stateName, "stopped")
        again = self.makeStore()
        d = again.start()
        self.assertNoResult(d)  # the lock was released: not refused at once
        self.pool.runAll()
        self.failureResultOf(d, StoreError)

    def test_notADatabase(self) -> None:
        """
        A file that is not a database fails start with the reason.
        """
        with open(self.path, "wb") as f:
            f.write(b"x" * 4096)
        store = self.makeStore()
        d = store.start()
        self.pool.runAll()
        e = self.failureResultOf(d, StoreError).value
        self.assertEqual(
            str(e),
            f"the queue database {self.path} cannot be used: file is not a database",
        )


class StatementTests(SQLiteUnitTestCase):
    """
    A batch goes in few statements: inserts of 256, 128, ... rows, and one
    delete per run of consecutive ids.
    """

    def traced(self) -> tuple[sqlite3.Connection, list[str]]:
        connection = openDatabase(self.path)
        self.addCleanup(connection.close)
        statements: list[str] = []
        connection.set_trace_callback(statements.append)
        return connection, statements

    def test_insertSizes(self) -> None:
        connection, statements = self.traced()
        jobs = [StoredJob(b"f", b"u%d" % i, b"%d" % i, i % 3) for i in range(300)]
        insertJobs(connection, 7, jobs)
        self.assertEqual(
            # The trace shows each statement with its values: rows are "(...),(...)".
            [statement.count("),(") + 1 for statement in statements],
            [256, 32, 8, 4],
        )
        rows = connection.execute(
            'SELECT id, "unique", data, priority FROM jobs ORDER BY id'
        ).fetchall()
        self.assertEqual(
            rows, [(7 + i, b"u%d" % i, b"%d" % i, i % 3) for i in range(300)]
        )

    def test_deleteRanges(self) -> None:
        connection, statements = self.traced()
        insertJobs(connection, 1, [StoredJob(b"f", b"", b"")] * 20)
        del statements[:]
        deleteJobs(connection, [9, 3, 4, 5, 12, 11, 10, 1, 20])
        # Runs 1, 3-5, 9-12 and 20: one execution each.
        self.assertEqual(len(statements), 4, statements)
        remaining = [row[0] for row in connection.execute("SELECT id FROM jobs")]
        self.assertEqual(remaining, [2, 6, 7, 8, 13, 14, 15, 16, 17, 18, 19])

    def test_idsNeverReused(self) -> None:
        """
        After the last rows are deleted, new ones still get higher ids,
        in this run and the next.
        """
        store = self.started()
        d = store.add(StoredJob(b"f", b"", b"1"))
        self.turn()
        self.pool.runAll()
        store.remove(result(d))
        self.reactor.advance(DELETE_INTERVAL)
        self.pool.runAll()
        self.assertEqual(self.rows(), [])
        connection = openDatabase(self.path)
        self.addCleanup(connection.close)
        self.assertEqual(lastJobId(connection), 1)


class CallbackTests(SQLiteUnitTestCase):
    """
    L{SQLiteQueueStore.addWithCallbacks}: answers by calling back.
    """

    def test_storedAndRefused(self) -> None:
        store = self.started(maxPending=2)
        answers: list[tuple[str, object, object]] = []

        def stored(key: object, context: object) -> None:
            answers.append(("stored", key, context))

        def failed(failure: Failure, context: object) -> None:
            answers.append(("failed", failure.getErrorMessage(), context))

        for n in range(3):
            store.addWithCallbacks(StoredJob(b"f", b"", b"%d" % n), stored, failed, n)
        self.assertEqual(
            answers,
            [
                (
                    "failed",
                    f"the queue database {self.path} is behind: 2 jobs already "
                    "wait for its next commit",
                    2,
                )
            ],
        )
        self.turn()
        self.pool.runAll()
        self.assertEqual(answers[1:], [("stored", 1, 0), ("stored", 2, 1)])

    def test_callbackErrorLogged(self) -> None:
        """
        A callback that raises is logged, and the rest of the batch still
        gets its answers.
        """
        catcher = self.catchLogs()
        store = self.started()
        answered: list[object] = []

        def broken(key: object, context: object) -> None:
            raise RuntimeError("caller bug")

        store.addWithCallbacks(StoredJob(b"f", b"", b"0"), broken, broken, None)
        later = store.add(StoredJob(b"f", b"", b"1"))
        later.addCallback(answered.append)
        self.turn()
        self.pool.runAll()
        self.assertEqual(answered, [2])
        [logged] = [e for e in catcher if e.get("log_failure") is not None]
        self.assertIsInstance(logged["log_failure"].value, RuntimeError)
        self.flushLoggedErrors(RuntimeError)


class DeletionTests(SQLiteUnitTestCase):
    """
    Deletions alone wait L{DELETE_INTERVAL} for new jobs to ride with.
    """

    def stored(self, store: SQLiteQueueStore, count: int) -> list[int]:
        added = [store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(count)]
        self.turn()
        self.pool.runAll()
        return [result(d) for d in added]

    def test_deletionsAloneWait(self) -> None:
        store = self.started()
        keys = self.stored(store, 3)
        store.remove(keys[0])
        self.turn()
        store.remove(keys[1])
        self.turn()
        self.assertEqual(self.pool.pending, [], "no transaction yet")
        self.reactor.advance(DELETE_INTERVAL)
        self.assertEqual(len(self.pool.pending), 1)
        self.pool.runAll()
        self.assertEqual([row[0] for row in self.rows()], [keys[2]])
        self.assertEqual(store.commits, 2)

    def test_rideWithNewJobs(self) -> None:
        """
        A new job sends the deletions waiting with it, this turn.
        """
        store = self.started()
        keys = self.stored(store, 2)
        store.remove(keys[0])
        self.turn()
        added = store.add(StoredJob(b"f", b"", b"new"))
        self.turn()
        self.assertEqual(len(self.pool.pending), 1)
        self.pool.runAll()
        self.assertEqual(result(added), keys[1] + 1)
        self.assertEqual([row[0] for row in self.rows()], [keys[1], keys[1] + 1])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_flushSendsAtOnce(self) -> None:
        store = self.started()
        [key] = self.stored(store, 1)
        store.remove(key)
        flushed = store.flush()
        self.turn()
        self.pool.runAll()
        result(flushed)
        self.assertEqual(self.rows(), [])

    def test_deletionsAfterCommitWait(self) -> None:
        """
        Deletions that gathered during a commit wait too, once it ends.
        """
        store = self.started()
        keys = self.stored(store, 2)
        store.add(StoredJob(b"f", b"", b"x"))
        self.turn()
        store.remove(keys[0])
        self.pool.runAll()
        self.turn()
        self.assertEqual(self.pool.pending, [])
        self.reactor.advance(DELETE_INTERVAL)
        self.pool.runAll()
        self.assertNotIn(keys[0], [row[0] for row in self.rows()])


class StalledDiskTests(SQLiteUnitTestCase):
    """
    A commit that does not end (a stalled disk: the fake pool simply does
    not run it) neither holds clients forever nor gathers jobs without
    bound.
    """

    def test_stalledCommit(self) -> None:
        """
        Past C{timeout}, the jobs gathered behind a commit in flight are
        refused with the reason, and so are new ones, until it ends; the
        jobs in flight are acknowledged when it does.
        """
        catcher = self.catchLogs()
        store = self.started(timeout=5.0)
        inFlight = store.add(StoredJob(b"f", b"", b"first"))
        self.turn()
        waiting = store.add(StoredJob(b"f", b"", b"second"))
        self.turn()
        self.reactor.advance(4.9)
        self.assertNoResult(waiting)
        self.reactor.advance(0.1)
        reason = (
            f"the queue database {self.path} has not finished a commit in 5 s "
            "(is the disk stalled?)"
        )
        self.assertEqual(str(self.failureResultOf(waiting, StoreError).value), reason)
        self.assertEqual(
            str(
                self.failureResultOf(
                    store.add(StoredJob(b"f", b"", b"new")), StoreError
                ).value
            ),
            reason,
        )
        self.assertEqual(store.stateName, "failing")
        self.assertIn(reason, "\n".join(formatEvent(e) for e in catcher))
        self.assertNoResult(inFlight)
        self.pool.runAll()
        self.assertEqual(result(inFlight), 1)
        self.assertEqual(store.stateName, "running")
        later = store.add(StoredJob(b"f", b"", b"later"))
        self.turn()
        self.pool.runAll()
        self.assertEqual(result(later), 2)
        self.assertEqual([row[3] for row in self.rows()], [b"first", b"later"])
        self.assertIn(
            f"The queue database {self.path} finished a commit again",
            "\n".join(formatEvent(e) for e in catcher),
        )

    def test_quickCommitsNeverStall(self) -> None:
        """
        The stall timer is each commit's own: many commits, each quicker
        than C{timeout}, never trip it however long they take together.
        """
        store = self.started(timeout=1.0)
        for i in range(10):
            d = store.add(StoredJob(b"f", b"", b"%d" % i))
            self.turn()
            self.reactor.advance(0.5)
            self.pool.runAll()
            self.assertEqual(result(d), i + 1)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_pendingBounded(self) -> None:
        """
        No more than C{maxPending} jobs wait for the next commit: the next
        is refused at once, saying so; once the commit goes, there is room.
        """
        store = self.started(maxPending=3)
        self.turn()
        first = store.add(StoredJob(b"f", b"", b"0"))
        self.turn()
        waiting = [store.add(StoredJob(b"f", b"", b"%d" % i)) for i in range(1, 4)]
        refused = store.add(StoredJob(b"f", b"", b"4"))
        self.assertEqual(
            str(self.failureResultOf(refused, StoreError).value),
            f"the queue database {self.path} is behind: 3 jobs already wait "
            "for its next commit",
        )
        self.pool.runNext()
        self.assertEqual(result(first), 1)
        again = store.add(StoredJob(b"f", b"", b"5"))
        self.failureResultOf(again, StoreError)
        self.turn()
        self.pool.runAll()
        self.assertEqual([result(d) for d in waiting], [2, 3, 4])
        last = store.add(StoredJob(b"f", b"", b"6"))
        self.turn()
        self.pool.runAll()
        self.assertEqual(result(last), 5)


class LockTests(SQLiteUnitTestCase):
    def test_secondOwnerRefused(self) -> None:
        """
        While one store holds the queue, another fails to start at once,
        naming the holder's pid; after a stop it starts.
        """
        first = self.started()
        second = self.makeStore()
        e = self.failureResultOf(second.start(), StoreError).value
        self.assertEqual(
            str(e), f"another txgearman holds the queue {self.path} (pid {os.getpid()})"
        )
        self.assertEqual(self.pool.pending, [])
        self.stopped(first)
        self.started()


class ReplayTests(SQLiteUnitTestCase):
    def replayed(self, store: SQLiteQueueStore) -> tuple[int, list[Any]]:
        seen: list[Any] = []
        d = store.replay(lambda key, job: seen.append((key, job)))
        self.pool.runAll()
        self.pool.runAll()
        return result(d), seen

    def test_corruptRowsSkipped(self) -> None:
        """
        Rows that cannot be jobs are logged with their id and skipped.
        """
        catcher = self.catchLogs()
        self.stopped(self.started())
        with sqlite3.connect(self.path) as db:
            db.executemany(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (1, b"f", b"", b"ok", 1, 0, None),
                    (2, None, b"", b"", 1, 0, None),
                    (3, "text", b"", b"", 1, 0, None),
                    (4, b"f", b"", b"", 3, 0, None),
                    (5, b"f", b"", b"", 1, "soon", None),
                    (6, b"f", b"", b"", 1, 0, 7),
                    (7, b"g", b"-", b"\x00", 0, 5, b"r"),
                ],
            )
        db.close()
        store = self.started()
        count, seen = self.replayed(store)
        self.assertEqual(count, 2)
        self.assertEqual(
            seen,
            [
                (1, StoredJob(b"f", b"", b"ok")),
                (7, StoredJob(b"g", b"-", b"\x00", 0, 5, b"r")),
            ],
        )
        logged = "\n".join(formatEvent(event) for event in catcher)
        for number in (2, 3, 4, 5, 6):
            self.assertIn(f"Skipped job row {number} of {self.path}", logged)
        self.assertIn("priority 3 is not 0, 1 or 2", logged)

    def test_chunks(self) -> None:
        """
        Replay reads in chunks, each a call on the store's thread.
        """
        from txgearman.store import sqlite as module

        self.patch(module, "REPLAY_CHUNK", 3)
        store = self.started()
        for i in range(7):
            store.add(StoredJob(b"f", b"", b"%d" % i))
        self.turn()
        self.pool.runAll()
        seen: list[Any] = []
        d = store.replay(lambda key, job: seen.append(key))
        calls = 0
        while self.pool.pending:
            self.pool.runNext()
            calls += 1
        self.assertEqual(result(d), 7)
        self.assertEqual(calls, 4)
        self.assertEqual(seen, list(range(1, 8)))

    def test_progress(self) -> None:
        """
        A long replay logs a progress line every L{PROGRESS_ROWS} rows, and
        a last line with the count.
        """
        from txgearman.store import sqlite as module

        self.patch(module, "REPLAY_CHUNK", 2)
        self.patch(module, "PROGRESS_ROWS", 3)
        events = self.catchLogs()
        store = self.started()
        for i in range(7):
            store.add(StoredJob(b"f", b"", b"%d" % i))
        self.turn()
        self.pool.runAll()
        d = store.replay(lambda key, job: None)
        while self.pool.pending:
            self.pool.runNext()
        self.assertEqual(result(d), 7)
        logged = [formatEvent(event) for event in events]
        self.assertEqual(
            [line for line in logged if "so far" in line],
            ["Restored 4 jobs so far", "Restored 6 jobs so far"],
        )
        self.assertIn(f"Restored 7 jobs from {self.path} (0 rows skipped)", logged)


class StopWhileStartingTests(SQLiteUnitTestCase):
    def test_stopWhileStarting(self) -> None:
        """
        A stop while the database is being opened waits for the open, then
        closes it and releases the lock.
        """
        store = self.makeStore()
        started = store.start()
        stopping = store.stop()
        self.assertNoResult(stopping)
        self.pool.runAll()
        result(started)
        self.pool.runAll()
        result(stopping)
        self.assertEqual(store.stateName, "stopped")
        self.assertIsNone(store._connection)
        self.started()
