# -*- test-case-name: txgearman.test.test_importer,tests.test_import -*-
"""
C{txgearman-import}: copy the background jobs queued in gearmand's
persistent queue into txgearman's store (see docs/import.md).

The target store is named exactly as for C{twistd gearman} (the options
of L{txgearman.server.storeoptions}), so that the import lands where the
server will look.  The jobs the target already holds are read first, and
a job already there (same function and unique) is not added again: a
second run imports nothing, and an interrupted run can simply be run
again.

Exit statuses: 0, every job read was imported (or was already there);
1, an error (nothing more was done after it); 2, some records could not
be read without guessing: they are listed, and every other job was
imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.internet.task import react
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import provider

import txgearman
from txgearman._words import counted
from txgearman.importer.gearmand import (
    DEFAULT_REDIS_PREFIX,
    DEFAULT_TABLE,
    PRIORITY_NAMES,
    GearmandRedisQueue,
    GearmandSQLiteQueue,
    JobSource,
    SourceError,
    SourceJob,
    Unreadable,
)
from txgearman.importer.resp import RespClient, RespError
from txgearman.server.storeoptions import STORE_PARAMETERS, checkStoreOptions, makeStore
from txgearman.store.interfaces import IQueueStore, StoredJob
from txgearman.store.redisaddress import RedisAddress, parseRedisAddress

__all__ = ["ImportOptions", "Importer", "main"]

#: Jobs added to the target before waiting for them and flushing: what
#: bounds the memory an import takes, whatever the queue's length.
CHUNK = 1000

#: A progress line on standard error every this many records read.
PROGRESS_EVERY = 10000

#: Exit statuses.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNREADABLE = 2

_NAME = "txgearman-import"


class ImportOptions(usage.Options):
    """
    The command line of C{txgearman-import}.
    """

    synopsis = (
        f"Usage: {_NAME} (--gearmand-sqlite FILE | --gearmand-redis ADDRESS) "
        "(--sqlite PATH | --redis ADDRESS) [options]"
    )
    longdesc = (
        "Copy the background jobs queued in gearmand's persistent queue into "
        "txgearman's store.  Stop gearmand and txgearman first.  Jobs the target "
        "already holds (same function and unique) are skipped, so running it twice "
        "imports once.  Exit status: 0 done, 1 error, 2 some records were left "
        "unread (listed) and the rest imported."
    )

    optFlags = [
        [
            "dry-run",
            "n",
            "Read both queues and say what would be imported; write nothing.",
        ],
        [
            "delete-imported",
            None,
            "Delete from gearmand's queue each job once the target has committed it "
            "(or already held it).  Records left unread stay.",
        ],
    ]

    optParameters = [
        [
            "gearmand-sqlite",
            None,
            None,
            "Read gearmand's libsqlite3 queue: its --libsqlite3-db file.",
        ],
        [
            "gearmand-sqlite-table",
            None,
            DEFAULT_TABLE,
            "The table of --gearmand-sqlite (gearmand's --libsqlite3-table).",
        ],
        [
            "gearmand-redis",
            None,
            None,
            "Read gearmand's redis queue: host:port, or "
            "redis://[[user]:password@]host[:port][/db].",
        ],
        [
            "gearmand-redis-prefix",
            None,
            DEFAULT_REDIS_PREFIX,
            "gearmand's --redis-prefix.",
        ],
        *STORE_PARAMETERS,
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ
        self["functions"] = []

    def opt_function(self, name: str) -> None:
        """
        A function of gearmand's Redis queue (repeatable): a key <prefix>-X with more than one '-' in X is read when exactly one split of X at a '-' gives a function named here.
        """  # noqa: E501 (one line: usage.Options shows a docstring's line breaks)
        if not name:
            raise usage.UsageError("--function needs a function name")
        self["functions"].append(name.encode("utf-8", "surrogateescape"))

    def opt_version(self) -> None:
        """
        Print the version and exit.
        """
        print(f"{_NAME} (txgearman) {txgearman.__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        """
        Check that one source and one durable target are named, and what
        goes with each.
        """
        sources = [
            n for n in ("gearmand-sqlite", "gearmand-redis") if self[n] is not None
        ]
        if len(sources) != 1:
            raise usage.UsageError(
                "name gearmand's queue: --gearmand-sqlite FILE or --gearmand-redis ADDRESS"
                if not sources
                else "--gearmand-sqlite and --gearmand-redis: give one of them"
            )
        if self["gearmand-sqlite"] is not None and not self["gearmand-sqlite"]:
            raise usage.UsageError("--gearmand-sqlite needs a file name")
        if not self["gearmand-sqlite-table"]:
            raise usage.UsageError("--gearmand-sqlite-table must not be empty")
        if self["functions"] and self["gearmand-redis"] is None:
            raise usage.UsageError(
                "--function reads the keys of gearmand's Redis queue: it needs --gearmand-redis"
            )
        if not self["gearmand-redis-prefix"]:
            raise usage.UsageError("--gearmand-redis-prefix must not be empty")
        self["gearmand-redis-address"] = None
        if self["gearmand-redis"] is not None:
            self["gearmand-redis-address"] = _sourceAddress(self["gearmand-redis"])
        if self["dry-run"] and self["delete-imported"]:
            raise usage.UsageError(
                "--dry-run writes nothing: it cannot --delete-imported"
            )
        checkStoreOptions(self, self.environ)
        if self["redis"] is None and self["sqlite"] is None:
            raise usage.UsageError(
                "name txgearman's store: --sqlite PATH or --redis ADDRESS (the memory "
                "store is refused: the jobs imported into it would be lost when this "
                "program exits)"
            )
        if (
            self["sqlite"] is not None
            and self["gearmand-sqlite"] is not None
            and os.path.abspath(self["sqlite"])
            == os.path.abspath(self["gearmand-sqlite"])
        ):
            raise usage.UsageError(
                "--sqlite and --gearmand-sqlite name the same file: txgearman's store "
                "is a file of its own"
            )


def _sourceAddress(text: str) -> RedisAddress:
    try:
        address = parseRedisAddress(text)
    except ValueError as e:
        raise usage.UsageError(f"--gearmand-redis: {e}") from None
    if address.kind == "sentinel" or address.tls:
        raise usage.UsageError(
            "--gearmand-redis: gearmand reaches Redis by host and port only; give "
            "host:port or redis://[:password@]host[:port][/db]"
        )
    return address


def openSource(options: Mapping[str, Any]) -> GearmandSQLiteQueue | GearmandRedisQueue:
    """
    Open the gearmand queue the checked C{options} name: read-only, unless
    it is to be deleted from.

    @raise SourceError: naming the queue, if it cannot be opened.
    """
    if options["gearmand-sqlite"] is not None:
        return GearmandSQLiteQueue(
            options["gearmand-sqlite"],
            options["gearmand-sqlite-table"],
            write=options["delete-imported"],
        )
    address: RedisAddress = options["gearmand-redis-address"]
    try:
        client = RespClient.connect(address)
    except OSError as e:
        raise SourceError(
            f"gearmand's Redis at {address} is unreachable: {e.strerror or e}"
        ) from None
    except RespError as e:
        raise SourceError(
            f"gearmand's Redis at {address} refused the connection: {e}"
        ) from None
    return GearmandRedisQueue(
        client,
        options["gearmand-redis-prefix"].encode("utf-8", "surrogateescape"),
        frozenset(options["functions"]),
        str(address),
    )


def _note(err: IO[str], text: str) -> None:
    """One line for the operator, on standard error, named as the program."""
    print(f"{_NAME}: {text}", file=err, flush=True)


def jobLine(job: StoredJob) -> str:
    """
    One line saying what a job is, for C{--dry-run}: printable whatever
    bytes it holds.
    """
    line = (
        f"{job.function!r} unique {job.unique!r} priority {PRIORITY_NAMES[job.priority]} "
        f"data {len(job.data)} bytes"
    )
    if job.when:
        line += f" at epoch {job.when}"
    return line


def _identity(job: StoredJob) -> bytes:
    # The function holds no NUL: one bytes object is half a tuple's memory.
    return job.function + b"\0" + job.unique


class Importer:
    """
    One import: read the source in batches, add what the target lacks,
    wait for the target to commit it, then (if asked) delete it from the
    source.

    @ivar imported: jobs added to the target (in a dry run: that would be).
    @ivar present: jobs the target held already (or read twice).
    @ivar unreadable: records left unread.
    """

    def __init__(
        self,
        source: JobSource,
        store: IQueueStore | None,
        dryRun: bool = False,
        delete: bool = False,
        out: IO[str] = sys.stdout,
        err: IO[str] = sys.stderr,
        chunk: int = CHUNK,
        progressEvery: int = PROGRESS_EVERY,
    ) -> None:
        self.source = source
        self.store = store
        self.dryRun = dryRun
        self.delete = delete
        self.out = out
        self.err = err
        self.chunk = chunk
        self.progressEvery = progressEvery
        self.imported = 0
        self.present = 0
        self.unreadable = 0
        self.deleted = 0
        self.read = 0
        self._held: set[bytes] = set()
        self._nextProgress = progressEvery

    def note(self, text: str) -> None:
        _note(self.err, text)

    async def replayTarget(self) -> None:
        """
        Learn which jobs the target holds already.
        """
        if self.store is None:
            return

        def restore(key: object, job: StoredJob) -> None:
            self._held.add(_identity(job))

        count = await self.store.replay(restore)
        if count:
            self.note(f"{self.store.description} holds {counted(count, 'job')} already")

    async def run(self) -> None:
        """
        Import every batch of the source.
        """
        await self.replayTarget()
        for batch in self.source.batches(self.chunk):
            await self._importBatch(batch)
            self.read += len(batch)
            if self.read >= self._nextProgress:
                self._nextProgress = (
                    self.read // self.progressEvery + 1
                ) * self.progressEvery
                self.note(f"{self.read} records read: {self.summary()}")

    async def _importBatch(self, batch: list[SourceJob | Unreadable]) -> None:
        toAdd: list[StoredJob] = []
        done: list[object] = []
        for item in batch:
            if isinstance(item, Unreadable):
                self.unreadable += 1
                self.note(f"unreadable: {item.where}: {item.reason}")
                continue
            identity = _identity(item.job)
            done.append(item.key)
            if identity in self._held:
                self.present += 1
                continue
            self._held.add(identity)
            toAdd.append(item.job)
        if self.dryRun:
            for job in toAdd:
                print(jobLine(job), file=self.out)
        elif toAdd:
            assert self.store is not None
            await gatherResults(
                [self.store.add(job) for job in toAdd], consumeErrors=True
            )
            await self.store.flush()
        self.imported += len(toAdd)
        if self.delete and done:
            self.deleted += self.source.delete(done)

    def summary(self) -> str:
        verb = "would be imported" if self.dryRun else "imported"
        return (
            f"{self.imported} {verb}, {self.present} already present, "
            f"{self.unreadable} unreadable"
        )


def _storeFailure(failure: Failure) -> str:
    error: Any = failure.value
    if isinstance(error, FirstError):  # from gatherResults
        error = error.subFailure.value
    return str(error) or error.__class__.__name__


async def importJobs(
    reactor: Any,
    options: Mapping[str, Any],
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    """
    Run the import the checked C{options} describe.

    @return: the exit status.
    """

    def note(text: str) -> None:
        _note(err, text)

    try:
        source = openSource(options)
    except SourceError as e:
        note(f"error: {e}")
        return EXIT_ERROR
    store: IQueueStore | None = None
    started = False
    try:
        if (
            options["dry-run"]
            and options["sqlite"] is not None
            and not os.path.exists(options["sqlite"])
        ):
            note(
                f"{options['sqlite']} does not exist yet: a dry run does not create it, "
                "and counts every job as new"
            )
        else:
            store = makeStore(options, reactor)
            assert store is not None
            try:
                await store.start()
            except Exception:
                failure = Failure()
                note(
                    f"error: txgearman's store cannot be opened: {_storeFailure(failure)}"
                    " (stop the txgearman server using it first)"
                )
                return EXIT_ERROR
            started = True
        importer = Importer(
            source, store, options["dry-run"], options["delete-imported"], out, err
        )
        note(f"importing {source.describe()} into {_describe(store, options)}")
        try:
            await importer.run()
        except SourceError as e:
            note(f"error: {e}")
            note(f"stopped after: {importer.summary()}")
            return EXIT_ERROR
        except Exception:
            failure = Failure()
            note(f"error: txgearman's store failed: {_storeFailure(failure)}")
            note(f"stopped after: {importer.summary()}")
            return EXIT_ERROR
    finally:
        source.close()
        if started and store is not None:
            await store.stop()
    prefix = "dry run: " if options["dry-run"] else ""
    print(prefix + importer.summary(), file=out, flush=True)
    if options["delete-imported"]:
        note(f"{importer.deleted} deleted from gearmand's queue")
    if importer.unreadable:
        note(
            f"{counted(importer.unreadable, 'record')} left unread (listed above), "
            "still in gearmand's queue"
        )
        return EXIT_UNREADABLE
    return EXIT_OK


def _describe(store: IQueueStore | None, options: Mapping[str, Any]) -> str:
    if store is None:
        return f"{options['sqlite']} (not created)"
    return str(store.description)


def _logToStderr(err: IO[str]) -> None:
    """
    Send the stores' warnings and errors to standard error, one line each;
    their routine messages are not the operator's business here.
    """

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += f": {failure.getErrorMessage()}"
        _note(err, text)

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(observe, [predicate])], redirectStandardIO=False
    )


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    run: Callable[..., Any] = react,
) -> None:
    """
    The console script: parse the command line, then run the import on
    the reactor, and exit with its status.
    """
    options = ImportOptions(environ)
    try:
        options.parseOptions(sys.argv[1:] if argv is None else list(argv))
    except usage.UsageError as e:
        print(f"{_NAME}: {e}", file=sys.stderr)
        print(f"{_NAME}: see {_NAME} --help", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    _logToStderr(sys.stderr)

    async def go(reactor: Any) -> None:
        status = await importJobs(reactor, options)
        if status:
            raise SystemExit(status)

    run(lambda reactor: Deferred.fromCoroutine(go(reactor)))
