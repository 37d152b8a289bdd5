# -*- test-case-name: txgearman.test.test_sqlite,tests.test_store_sqlite -*-
"""
L{SQLiteQueueStore}: background jobs kept durably in an SQLite file, with
Python's own C{sqlite3}.

Schema, version 1::

    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    -- one row: ('schema_version', 1)
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: FIFO by id
        function BLOB,
        "unique" BLOB,
        data BLOB,
        priority INTEGER,                     -- 0 high, 1 normal, 2 low
        run_at INTEGER,                       -- epoch second, 0 if none
        reducer BLOB NULL
    );

The columns carry no constraints: a row that cannot be a job (a NULL
function, text where bytes belong, a priority outside 0-2) is logged and
skipped at replay rather than making the whole queue unreadable.  A
database with a newer schema version than L{SCHEMA_VERSION} is refused.

Every add and remove of one reactor turn goes into one transaction (group
commit), run on a thread of the store's own, so that a slow disk never
stalls the reactor; while one commit is in flight the next batch gathers,
and goes when it ends.  An add's Deferred fires with the job's row id only
once the transaction holding it has committed.

The database is in WAL mode.  Durability levels (C{durability}):

    - C{"full"} (the default): C{synchronous=FULL}; an acknowledged job
      survives C{kill -9} and a machine crash or power loss.
    - C{"normal"}: C{synchronous=NORMAL}; it survives a process crash, but
      the last commits may be lost to a power loss.

Only one process uses a queue file at a time: L{SQLiteQueueStore.start}
takes an exclusive C{flock} on C{PATH + ".lock"}, which holds the owner's
pid; the kernel releases it when the owner dies, even by C{kill -9}.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable
from enum import Enum
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from txgearman._histogram import STORE_SECONDS, Histogram
from txgearman.store.interfaces import (
    HealthCheck,
    ICallbackStore,
    IStoreHealth,
    IStoreStatistics,
    StoredJob,
    StoreError,
    storedJob,
)

__all__ = [
    "DURABILITY",
    "SCHEMA_VERSION",
    "SQLiteQueueStore",
    "deleteJobs",
    "insertJobs",
    "lastJobId",
    "openDatabase",
]

#: The schema this module writes and reads.
SCHEMA_VERSION = 1

#: The C{durability} choices, and the C{synchronous} setting of each.
DURABILITY = {"full": "FULL", "normal": "NORMAL"}

#: Rows one replay step reads.
REPLAY_CHUNK = 10000
#: Rows between two progress lines of a replay.
PROGRESS_ROWS = 100000
#: Seconds before removals that failed to commit are tried again, when no
#: new job comes to carry them sooner.
RETRY_DELAY = 1.0
#: Seconds a commit may take before the store calls the disk stalled: the
#: jobs gathered behind it are refused, and new ones too until it ends.
DEFAULT_TIMEOUT = 5.0
#: Most jobs that may wait for the next commit: past it a submit is
#: refused at once rather than held in memory without bound.
MAX_PENDING = 100000
#: Seconds deletions alone wait for company: a job's end needs no answer,
#: so its deletion rides with the next new jobs at once, or goes after
#: this, rather than costing a transaction (and an fsync) per turn while
#: workers drain a queue.  A server killed in that window runs those jobs
#: once more after its restart, which at-least-once delivery allows.
DELETE_INTERVAL = 0.01

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " function BLOB,"
    ' "unique" BLOB,'
    " data BLOB,"
    " priority INTEGER,"
    " run_at INTEGER,"
    " reducer BLOB NULL)",
)
_DELETE_RANGE = "DELETE FROM jobs WHERE id BETWEEN ? AND ?"
#: Rows one INSERT statement stores, at most: a transaction's rows go in
#: statements of these sizes (powers of two, so that few distinct
#: statements are prepared and all stay in the connection's cache).  Each
#: statement is one step of SQLite's with the GIL released, where a row
#: at a time would take the GIL back for every row and wait for the
#: reactor's thread to give it up.
INSERT_ROWS = 256
_COLUMNS = '(id, function, "unique", data, priority, run_at, reducer)'


def _insertStatement(rows: int) -> str:
    return f"INSERT INTO jobs {_COLUMNS} VALUES " + ",".join(
        ["(?, ?, ?, ?, ?, ?, ?)"] * rows
    )


_INSERTS = {
    rows: _insertStatement(rows)
    for rows in (1 << n for n in range(INSERT_ROWS.bit_length()))
}


def insertJobs(
    connection: sqlite3.Connection, first: int, jobs: list[StoredJob]
) -> None:
    """
    Store C{jobs} as rows C{first}, C{first + 1}, ..., in few statements.
    """
    done = 0
    left = len(jobs)
    size = INSERT_ROWS
    while left:
        while size > left:
            size >>= 1
        values: list[object] = []
        for number in range(done, done + size):
            values.append(first + number)
            values.extend(jobs[number])
        connection.execute(_INSERTS[size], values)
        done += size
        left -= size


def deleteJobs(connection: sqlite3.Connection, keys: list[int]) -> None:
    """
    Delete the rows C{keys}, one statement per run of consecutive ids
    (jobs mostly end in the order they were stored).
    """
    keys = sorted(keys)
    ranges = []
    low = high = keys[0]
    for key in keys:
        if key > high + 1:
            ranges.append((low, high))
            low = key
        high = key
    ranges.append((low, high))
    connection.executemany(_DELETE_RANGE, ranges)


def lastJobId(connection: sqlite3.Connection) -> int:
    """
    The highest id a row of C{jobs} ever had (AUTOINCREMENT's record), so
    that a new row never takes the id of one that was deleted.
    """
    row = connection.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"
    ).fetchone()
    (biggest,) = connection.execute("SELECT MAX(id) FROM jobs").fetchone()
    return max(row[0] if row else 0, biggest or 0)


_SELECT = (
    'SELECT id, function, "unique", data, priority, run_at, reducer FROM jobs'
    " WHERE id > ? ORDER BY id LIMIT ?"
)


def openDatabase(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """
    Open the queue database at C{path} in WAL mode with C{synchronous},
    creating the schema or checking its version; in autocommit mode (the
    caller says C{BEGIN}).  For the store's thread, and for tools that fill
    or read a queue file while no server owns it.

    @raise StoreError: it cannot be opened or used, or its schema is not
        L{SCHEMA_VERSION}.
    """
    try:
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as e:
        raise StoreError(f"the queue database {path} cannot be opened: {e}") from e
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
        connection.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            connection.execute(statement)
        row = connection.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        if row is None:
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
        elif row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"the queue database {path} has schema version {row[0]!r}, "
                f"which this txgearman (schema version {SCHEMA_VERSION}) "
                "cannot read"
            )
        connection.execute("COMMIT")
    except BaseException as e:
        connection.close()
        if isinstance(e, sqlite3.Error):
            raise StoreError(f"the queue database {path} cannot be used: {e}") from e
        raise
    return connection


#: A job waiting for the next commit, and whom to tell how it went.
_Add = tuple[
    StoredJob, Callable[[object, Any], object], Callable[[Failure, Any], object], Any
]


def _fire(key: object, d: Deferred[object]) -> None:
    d.callback(key)


def _fail(failure: Failure, d: Deferred[object]) -> None:
    d.errback(failure)


class StoreState(Enum):
    """
    Where a L{SQLiteQueueStore} is in its life.
    """

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


def _rowJob(row: tuple[Any, ...]) -> StoredJob | str:
    """
    The job a row of C{jobs} holds, or why it holds none.
    """
    _id, function, unique, data, priority, when, reducer = row
    for name, value in (("function", function), ("unique", unique), ("data", data)):
        if type(value) is not bytes:
            return f"{name} is {type(value).__name__}, not a blob"
    if type(priority) is not int or not 0 <= priority <= 2:
        return f"priority {priority!r} is not 0, 1 or 2"
    if type(when) is not int or when < 0:
        return f"run_at {when!r} is not an epoch second"
    if reducer is not None and type(reducer) is not bytes:
        return f"reducer is {type(reducer).__name__}, not a blob or NULL"
    return storedJob(function, unique, data, priority, when, reducer)


def _readChunk(
    connection: sqlite3.Connection, after: int
) -> tuple[list[tuple[int, StoredJob]], list[tuple[int, str]], int | None]:
    """
    Read up to L{REPLAY_CHUNK} rows past id C{after}, on the store's
    thread: the jobs, the rows skipped and why, and the last id read (or
    C{None} at the end).
    """
    rows = connection.execute(_SELECT, (after, REPLAY_CHUNK)).fetchall()
    jobs: list[tuple[int, StoredJob]] = []
    skipped: list[tuple[int, str]] = []
    for row in rows:
        parsed = _rowJob(row)
        if isinstance(parsed, str):
            skipped.append((row[0], parsed))
        else:
            jobs.append((row[0], parsed))
    return jobs, skipped, (rows[-1][0] if rows else None)


@implementer(ICallbackStore, IStoreHealth, IStoreStatistics)
class SQLiteQueueStore:
    """
    Stores background jobs in one SQLite file; see the module's docstring
    for its schema, batching and durability.

    @ivar commits: how many transactions committed (for tests and metrics).
    @ivar calls: the seconds each transaction took, committed or failed.
    @ivar failedCalls: how many transactions failed.
    """

    log = Logger()
    durable = True

    def __init__(
        self,
        path: str,
        reactor: Any,
        durability: str = "full",
        threadPool: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
        maxPending: int = MAX_PENDING,
    ) -> None:
        """
        @param path: the database file; created if missing.
        @param reactor: provides IReactorTime and IReactorThreads.
        @param durability: C{"full"} or C{"normal"} (see the module).
        @param threadPool: what runs the store's database work, in place
            of the single thread the store starts on its own (for tests:
            anything with C{start}, C{stop} and C{callInThreadWithCallback}).
        @param timeout: seconds a commit may take before the disk is taken
            for stalled: the jobs waiting behind it get L{StoreError} (they
            were never written), as do new ones until the commit ends.
        @param maxPending: most jobs that may wait for the next commit.
        @raise ValueError: C{durability} is not one of L{DURABILITY}.
        """
        if durability not in DURABILITY:
            choices = ", ".join(repr(name) for name in DURABILITY)
            raise ValueError(f"unknown durability {durability!r}: choose {choices}")
        self.path = path
        self.lockPath = path + ".lock"
        self.reactor = reactor
        self.durability = durability
        self.synchronous = DURABILITY[durability]
        self.description = f"sqlite {path} (synchronous={self.synchronous})"
        self._pool = threadPool
        self.state = StoreState.IDLE
        self._connection: sqlite3.Connection | None = None
        self._lockFD: int | None = None
        self._adds: list[_Add] = []
        self._removes: list[int] = []
        self._inFlight = False
        #: The last job id given, kept by the store's thread.
        self._lastId = 0
        self.timeout = timeout
        self.maxPending = maxPending
        self._stallCall: IDelayedCall | None = None
        #: Why adds are refused while a stalled commit has not ended.
        self._stalled: str | None = None
        self._flushCall: IDelayedCall | None = None
        #: The delay L{_flushCall} was made with: 0 for this turn.
        self._flushDelay = 0.0
        self._flushWaiters: list[Deferred[None]] = []
        self._stopped: Deferred[None] | None = None
        # Fires when an open in flight ends, for a stop that comes meanwhile.
        self._starting: Deferred[None] | None = None
        #: Why the last transaction failed, until one commits.
        self.lastError: str | None = None
        self.commits = 0
        self.calls = Histogram(STORE_SECONDS)
        self.failedCalls = 0

    # -- health and statistics ---------------------------------------------

    @property
    def stateName(self) -> str:
        if self.state is StoreState.RUNNING and self.lastError is not None:
            return "failing"
        return self.state.value

    def health(self) -> list[HealthCheck]:
        """
        Whether the queue file is open and its last transaction committed.
        """
        if self.state is not StoreState.RUNNING:
            return [HealthCheck("sqlite", False, f"the store is {self.state.value}")]
        if self.lastError is not None:
            return [HealthCheck("sqlite", False, self.lastError)]
        return [HealthCheck("sqlite", True, f"{self.path} is writable")]

    # -- start and stop ----------------------------------------------------

    def _run(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self._pool, f, *args)

    def _takeLock(self) -> None:
        """
        Take the exclusive lock on the queue, or raise L{StoreError} naming
        its holder.
        """
        try:
            fd = os.open(self.lockPath, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(
                f"the queue lock {self.lockPath} cannot be opened: {e.strerror}"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StoreError(
                f"another txgearman holds the queue {self.path} (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % (os.getpid(),), 0)
        self._lockFD = fd

    def _releaseLock(self) -> None:
        fd, self._lockFD = self._lockFD, None
        if fd is not None:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _open(self) -> sqlite3.Connection:
        connection = openDatabase(self.path, self.synchronous)
        # The store's thread alone reads and writes it from now on.
        self._lastId = lastJobId(connection)
        return connection

    def start(self) -> Deferred[None]:
        """
        Take the queue's lock at once (or fail), then open the database on
        the store's own thread.
        """
        if self.state is not StoreState.IDLE:
            return succeed(None)
        try:
            self._takeLock()
        except StoreError as e:
            self.state = StoreState.STOPPED
            return fail(e)
        self.state = StoreState.STARTING
        if self._pool is None:
            self._pool = ThreadPool(1, 1, name=f"sqlite {self.path}")
        self._pool.start()

        def opened(connection: sqlite3.Connection) -> None:
            self._connection = connection
            self.state = StoreState.RUNNING

        def failed(failure: Failure) -> Failure:
            self.state = StoreState.STOPPED
            self._pool.stop()
            self._releaseLock()
            return failure

        self._starting = Deferred()
        d = self._run(self._open).addCallbacks(opened, failed)
        d.addBoth(self._started)
        return d

    def _started(self, result: object) -> object:
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.callback(None)
        return result

    def stop(self) -> Deferred[None]:
        """
        Commit what is pending, close the database, release the lock.
        """
        if self._stopped is not None:
            return self._stopped
        if self.state is StoreState.STARTING:
            # Wait for the open in flight, then stop what it opened (or
            # nothing, if it failed and already released the lock).
            assert self._starting is not None
            starting = self._starting
            self._stopped = Deferred()
            starting.addBoth(lambda _: self._stopAfterStart())
            return self._stopped
        if self.state is not StoreState.RUNNING:
            self.state = StoreState.STOPPED
            return succeed(None)
        self.state = StoreState.STOPPING
        self._stopped = Deferred.fromCoroutine(self._stop())
        return self._stopped

    def _stopAfterStart(self) -> None:
        stopped = self._stopped
        assert stopped is not None
        if self.state is StoreState.RUNNING:
            self.state = StoreState.STOPPING
            Deferred.fromCoroutine(self._stop()).chainDeferred(stopped)
        else:
            stopped.callback(None)

    async def _stop(self) -> None:
        if self._flushCall is not None:
            self._flushCall.cancel()
            self._flushCall = None
            self._flushDelay = 0.0
        if self._adds or self._removes or self._inFlight:
            waiter: Deferred[None] = Deferred()
            self._flushWaiters.append(waiter)
            if not self._inFlight:
                self._commitBatch()
            await waiter
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._run(connection.close)
        self._pool.stop()
        self._releaseLock()
        self.state = StoreState.STOPPED

    # -- adding and removing -----------------------------------------------

    def add(self, job: StoredJob) -> Deferred[object]:
        d: Deferred[object] = Deferred()
        self.addWithCallbacks(job, _fire, _fail, d)
        return d

    def addWithCallbacks(
        self,
        job: StoredJob,
        stored: Callable[[object, Any], object],
        failed: Callable[[Failure, Any], object],
        context: Any,
    ) -> None:
        refusal = None
        adds = self._adds
        if self.state is not StoreState.RUNNING:
            refusal = "the SQLite store is not running"
        elif self._stalled is not None:
            refusal = self._stalled
        elif len(adds) >= self.maxPending:
            refusal = (
                f"the queue database {self.path} is behind: "
                f"{len(adds)} jobs already wait for its next commit"
            )
        if refusal is not None:
            self._answer(failed, Failure(StoreError(refusal)), context)
            return
        adds.append((job, stored, failed, context))
        # Read for every job: the end of a commit in flight sends the next
        # batch, and a commit already due this turn takes this job too.
        if not self._inFlight and (self._flushCall is None or self._flushDelay):
            self._schedule()

    def _answer(
        self, callback: Callable[[Any, Any], object], value: Any, context: Any
    ) -> None:
        """
        Call an add's callback, logging what it raises: one caller's error
        must not keep the rest of the batch from its answers.
        """
        try:
            callback(value, context)
        except Exception:
            self.log.failure("Error answering a stored job")

    def remove(self, key: object) -> None:
        if type(key) is not int:
            self.log.error("Not an SQLite job id, not removed: {key!r}", key=key)
            return
        self._removes.append(key)
        if not self._inFlight and self._flushCall is None:
            self._schedule(DELETE_INTERVAL)

    def flush(self) -> Deferred[None]:
        if not (self._adds or self._removes or self._inFlight):
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._flushWaiters.append(d)
        self._schedule()
        return d

    def _schedule(self, delay: float = 0.0) -> None:
        """
        Commit at the end of this reactor turn (or after C{delay}), unless a
        commit is in flight: its end sends the next batch.
        """
        if self._inFlight or self.state not in (
            StoreState.RUNNING,
            StoreState.STOPPING,
        ):
            return
        call = self._flushCall
        if call is None:
            self._flushCall = self.reactor.callLater(delay, self._flushNow)
            self._flushDelay = delay
        elif delay < self._flushDelay:
            call.reset(delay)
            self._flushDelay = delay

    def _flushNow(self) -> None:
        self._flushCall = None
        self._flushDelay = 0.0
        if not self._inFlight:
            self._commitBatch()

    def _commitBatch(self) -> None:
        """
        Send everything gathered since the last batch as one transaction.
        """
        adds, self._adds = self._adds, []
        removes, self._removes = self._removes, []
        if not adds and not removes:
            self._fireFlushed()
            return
        self._inFlight = True
        started = self.reactor.seconds()
        self._stallCall = self.reactor.callLater(self.timeout, self._stall)
        d = self._run(self._write, [add[0] for add in adds], removes)
        d.addCallbacks(
            self._committed,
            self._failed,
            callbackArgs=(adds, started),
            errbackArgs=(adds, removes, started),
        )

    def _write(self, jobs: list[StoredJob], removes: list[int]) -> range:
        """
        On the store's thread: one transaction storing C{jobs} and deleting
        C{removes}; the new rows' ids.
        """
        connection = self._connection
        assert connection is not None
        try:
            connection.execute("BEGIN IMMEDIATE")
            first = self._lastId + 1
            if jobs:
                insertJobs(connection, first, jobs)
            if removes:
                deleteJobs(connection, removes)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        # Only once committed: a rolled-back batch's ids were never given.
        self._lastId += len(jobs)
        return range(first, first + len(jobs))

    def _stall(self) -> None:
        """
        The commit in flight has taken L{timeout}: refuse the jobs that
        wait behind it, and new ones until it ends, so that clients hear
        of the stalled disk rather than wait without end.  The commit in
        flight itself cannot be called off: its jobs wait for it.
        """
        self._stallCall = None
        reason = (
            f"the queue database {self.path} has not finished a commit in "
            f"{self.timeout:g} s (is the disk stalled?)"
        )
        self.log.error("{reason}", reason=reason)
        self._stalled = self.lastError = reason
        adds, self._adds = self._adds, []
        for _job, _stored, failed, context in adds:
            self._answer(failed, Failure(StoreError(reason)), context)

    def _ended(self, started: float) -> None:
        """
        Book a transaction that ended, committed or not.
        """
        self._inFlight = False
        call, self._stallCall = self._stallCall, None
        if call is not None:
            call.cancel()
        if self._stalled is not None:
            self.log.info(
                "The queue database {path} finished a commit again, after {seconds:.1f} s",
                path=self.path,
                seconds=self.reactor.seconds() - started,
            )
            self._stalled = None
        self.calls.observe(self.reactor.seconds() - started)

    def _committed(
        self,
        ids: range,
        adds: list[_Add],
        started: float,
    ) -> None:
        self._ended(started)
        self.commits += 1
        self.lastError = None
        for (_job, stored, _failed, context), number in zip(adds, ids, strict=True):
            try:
                stored(number, context)
            except Exception:
                self.log.failure("Error answering a stored job")
        self._next()

    def _failed(
        self,
        failure: Failure,
        adds: list[_Add],
        removes: list[int],
        started: float,
    ) -> None:
        self._ended(started)
        self.failedCalls += 1
        reason = self._explain(failure)
        if self.lastError != reason:
            self.log.error("{reason}", reason=reason)
        self.lastError = reason
        self._removes[:0] = removes
        for _job, _stored, failed, context in adds:
            self._answer(failed, Failure(StoreError(reason)), context)
        self._next(failed=True)

    def _next(self, failed: bool = False) -> None:
        """
        After a batch: send the one that gathered meanwhile (deletions
        alone wait L{DELETE_INTERVAL}, or L{RETRY_DELAY} if theirs failed,
        unless a stop or a flush waits for them), or answer the flushes.
        """
        if self._adds:
            self._schedule()
        elif self._removes:
            if self.state is StoreState.STOPPING and failed:
                # Stopping: the deletions cannot land; a replay runs those
                # jobs once more, which at-least-once delivery allows.
                self.log.error(
                    "{count} deletions could not be committed before stopping",
                    count=len(self._removes),
                )
                self._removes = []
                self._fireFlushed()
            elif failed:
                self._schedule(RETRY_DELAY)
            elif self.state is StoreState.STOPPING or self._flushWaiters:
                self._schedule()
            else:
                self._schedule(DELETE_INTERVAL)
        else:
            self._fireFlushed()

    def _explain(self, failure: Failure) -> str:
        """
        Why a transaction failed, in words for a client's C{QUEUE_ERROR}.
        """
        error = failure.value
        if isinstance(error, StoreError):
            return str(error)
        if isinstance(error, sqlite3.Error):
            return f"the queue database {self.path} cannot be written: {error}"
        self.log.failure("Unexpected error writing the queue", failure)
        return f"the queue database {self.path} cannot be written: {error!r}"

    def _fireFlushed(self) -> None:
        if self._flushWaiters and not (self._adds or self._removes or self._inFlight):
            waiters, self._flushWaiters = self._flushWaiters, []
            for d in waiters:
                d.callback(None)

    # -- replay ------------------------------------------------------------

    def replay(self, restore: Callable[[object, StoredJob], None]) -> Deferred[int]:
        """
        Read the jobs in id order, a chunk at a time on the store's thread,
        and restore each chunk in the reactor's.
        """
        if self._connection is None:
            return fail(StoreError("the SQLite store is not running"))
        return Deferred.fromCoroutine(self._replay(restore, self._connection))

    async def _replay(
        self,
        restore: Callable[[object, StoredJob], None],
        connection: sqlite3.Connection,
    ) -> int:
        count = 0
        skippedRows = 0
        after = 0
        while True:
            try:
                jobs, skipped, last = await self._run(_readChunk, connection, after)
            except sqlite3.Error as e:
                raise StoreError(
                    f"the queue database {self.path} cannot be read: {e}"
                ) from e
            for number, why in skipped:
                self.log.error(
                    "Skipped job row {id} of {path}: {why}",
                    id=number,
                    path=self.path,
                    why=why,
                )
            skippedRows += len(skipped)
            before = count
            for number, job in jobs:
                restore(number, job)
            count += len(jobs)
            if count // PROGRESS_ROWS > before // PROGRESS_ROWS:
                self.log.info("Restored {count} jobs so far", count=count)
            if last is None:
                break
            after = last
        self.log.info(
            "Restored {count} jobs from {path} ({skipped} rows skipped)",
            count=count,
            path=self.path,
            skipped=skippedRows,
        )
        return count
