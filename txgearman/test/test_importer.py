"""
Tests for L{txgearman.importer}: reading gearmand's queues (key splitting
and its ambiguity, rows, the SQLite file on real temporary files, the
Redis keys through a fake connection), the import loop on the memory
store, and the command line's errors.  Nothing is started.
"""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txgearman.importer.gearmand import (
    GearmandRedisQueue,
    GearmandSQLiteQueue,
    SourceError,
    SourceJob,
    SQLiteKey,
    Unreadable,
    globEscape,
    keySplits,
    readRedisValue,
    rowJob,
    splitKey,
)
from txgearman.importer.resp import RespError, encodeCommand, readReply
from txgearman.importer.script import Importer, ImportOptions, jobLine
from txgearman.store.interfaces import StoredJob, StoreError
from txgearman.store.memory import MemoryQueueStore

GEARMAND_TABLE = (
    "CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, "
    "data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))"
)

UUID = b"dc189a4a-f22c-11f1-9ed3-02fc00000001"


def sourceJob(item: SourceJob | Unreadable) -> SourceJob:
    assert isinstance(item, SourceJob), item
    return item


def unreadable(item: SourceJob | Unreadable) -> Unreadable:
    assert isinstance(item, Unreadable), item
    return item


def readAll(queue: GearmandSQLiteQueue, size: int = 1000) -> list[SourceJob]:
    return [sourceJob(item) for batch in queue.batches(size) for item in batch]


class KeySplitTests(SynchronousTestCase):
    """
    L{splitKey} reads a key only when one split is possible.
    """

    def test_splits(self) -> None:
        self.assertEqual(keySplits(b"a-b-c"), [(b"a", b"b-c"), (b"a-b", b"c")])
        self.assertEqual(keySplits(b"f-"), [(b"f", b"")])
        self.assertEqual(keySplits(b"-u"), [])
        self.assertEqual(keySplits(b"nodash"), [])

    def test_oneDash(self) -> None:
        """
        Without functions, a key holding one C{-} is read.
        """
        self.assertEqual(splitKey(b"resize-42"), (b"resize", b"42"))
        self.assertEqual(splitKey(b"resize-"), (b"resize", b""))

    def test_moreDashesAmbiguous(self) -> None:
        """
        Without functions, more than one C{-} gives the possible splits.
        """
        self.assertEqual(splitKey(b"a-b-c"), [(b"a", b"b-c"), (b"a-b", b"c")])
        self.assertEqual(len(splitKey(b"resize-" + UUID)), 5)

    def test_noSplit(self) -> None:
        self.assertEqual(splitKey(b"nodash"), [])
        self.assertEqual(splitKey(b"-u"), [])
        self.assertEqual(splitKey(b"--"), (b"-", b""))

    def test_knownFunction(self) -> None:
        """
        A known function picks the split, even a function holding C{-}
        and a UUID unique.
        """
        functions = frozenset([b"image-resize", b"mail"])
        self.assertEqual(
            splitKey(b"image-resize-" + UUID, functions), (b"image-resize", UUID)
        )
        self.assertEqual(splitKey(b"mail-" + UUID, functions), (b"mail", UUID))

    def test_knownFunctionsBothMatch(self) -> None:
        """
        Two known functions that both fit leave the key ambiguous.
        """
        functions = frozenset([b"a", b"a-b"])
        self.assertEqual(
            splitKey(b"a-b-c", functions), [(b"a", b"b-c"), (b"a-b", b"c")]
        )

    def test_oneSplitWithFunctions(self) -> None:
        """
        With functions named, a key with one possible split is read even
        if its function is not one of them: it names one pair only.
        """
        self.assertEqual(splitKey(b"other-1", frozenset([b"mail"])), (b"other", b"1"))
        self.assertEqual(splitKey(b"-a-b"), (b"-a", b"b"))

    def test_noKnownFunction(self) -> None:
        """
        A key with several splits, none giving a named function, is not
        read.
        """
        self.assertEqual(
            splitKey(b"a-b-c", frozenset([b"mail"])), [(b"a", b"b-c"), (b"a-b", b"c")]
        )

    def test_globEscape(self) -> None:
        self.assertEqual(globEscape(b"a*b?[c]\\"), b"a\\*b\\?\\[c\\]\\\\")


class RedisValueTests(SynchronousTestCase):
    """
    L{readRedisValue} reads each layout gearmand has written.
    """

    prefix = b"_gear_"

    def read(self, key: bytes, kind: bytes, value: Any, *functions: bytes) -> Any:
        return readRedisValue(key, kind, value, self.prefix, frozenset(functions))

    def test_hash1120(self) -> None:
        """
        gearmand 1.1.20: fields data and priority, the rest from the key;
        the data is binary.
        """
        got = self.read(
            b"_gear_-resize-42", b"hash", [b"data", b"\0\xff", b"priority", b"2"]
        )
        self.assertEqual(
            got,
            SourceJob(
                b"_gear_-resize-42", StoredJob(b"resize", b"42", b"\0\xff", 2, 0)
            ),
        )

    def test_hashMaster(self) -> None:
        """
        gearmand master names the function and unique in fields: a key
        with any number of C{-} is read.
        """
        key = b"_gear_-a-b-" + UUID
        value = [b"data", b"x", b"priority", b"0", b"function", b"a-b", b"unique", UUID]
        self.assertEqual(
            self.read(key, b"hash", value),
            SourceJob(key, StoredJob(b"a-b", UUID, b"x", 0)),
        )

    def test_hashMasterEmptyFunction(self) -> None:
        """
        An empty function field is no answer (gearmand master then reads
        the key too).
        """
        value = [b"data", b"x", b"priority", b"1", b"function", b"", b"unique", b"u"]
        self.assertEqual(self.read(b"_gear_-f-u", b"hash", value).job.function, b"f")

    def test_string(self) -> None:
        """
        gearmand 1.1.15 and older: a string, the data, normal priority.
        """
        self.assertEqual(
            self.read(b"_gear_-f-u", b"string", b"d\0"),
            SourceJob(b"_gear_-f-u", StoredJob(b"f", b"u", b"d\0", 1, 0)),
        )

    def test_ambiguous(self) -> None:
        """
        An ambiguous key is reported with its possible splits, and the way
        out.
        """
        got = self.read(b"_gear_-a-b-c", b"hash", [b"data", b"", b"priority", b"1"])
        self.assertIsInstance(got, Unreadable)
        self.assertEqual(got.where, "key b'_gear_-a-b-c'")
        self.assertIn("--function", got.reason)
        self.assertIn(
            "function b'a' unique b'b-c'; function b'a-b' unique b'c'", got.reason
        )

    def test_ambiguousResolved(self) -> None:
        got = self.read(b"_gear_-a-b-c", b"string", b"", b"a-b")
        self.assertEqual(got.job[:2], (b"a-b", b"c"))

    def test_noMatchingFunction(self) -> None:
        got = self.read(b"_gear_-x-1-2", b"string", b"", b"a-b")
        self.assertIsInstance(got, Unreadable)
        self.assertIn("no --function", got.reason)

    def test_badPriority(self) -> None:
        for priority in (b"3", b"-1", b"high", b""):
            got = self.read(
                b"_gear_-f-u", b"hash", [b"data", b"", b"priority", priority]
            )
            self.assertIsInstance(got, Unreadable, priority)
            self.assertIn("priority", got.reason)

    def test_missingField(self) -> None:
        got = self.read(b"_gear_-f-u", b"hash", [b"data", b""])
        self.assertIsInstance(got, Unreadable)

    def test_unknownField(self) -> None:
        """
        A field gearmand never writes means another layout: not guessed at.
        """
        got = self.read(
            b"_gear_-f-u", b"hash", [b"data", b"", b"priority", b"1", b"when", b"5"]
        )
        self.assertIsInstance(got, Unreadable)
        self.assertIn("b'when'", got.reason)

    def test_otherType(self) -> None:
        got = self.read(b"_gear_-f-u", b"list", None)
        self.assertEqual(
            got, Unreadable("key b'_gear_-f-u'", "a Redis list, not a gearmand job")
        )

    def test_nul(self) -> None:
        got = self.read(b"_gear_-f\0-u", b"string", b"")
        self.assertIsInstance(got, Unreadable)


class FakeRedis:
    """
    A Redis of a few keys, answering the commands L{GearmandRedisQueue}
    sends: SCAN (one key per step, so that batches are exercised), TYPE,
    HGETALL, GET, EXISTS, DEL.
    """

    def __init__(self, data: dict[bytes, Any]) -> None:
        self.data = data
        self.sent: list[tuple[Any, ...]] = []

    def pipeline(self, commands: Sequence[Sequence[bytes | str | int]]) -> list[Any]:
        return [self.answer(*command) for command in commands]

    def answer(self, name: Any, *args: Any) -> Any:
        self.sent.append((name, *args))
        if name == "SCAN":
            keys = sorted(
                k for k in self.data if k.startswith(args[2][:-1].replace(b"\\", b""))
            )
            index = int(args[0])
            if index >= len(keys):
                return [b"0", []]
            following = b"0" if index + 1 >= len(keys) else b"%d" % (index + 1,)
            return [following, [keys[index]]]
        value = self.data.get(args[0])
        if name == "TYPE":
            if value is None:
                return b"none"
            return b"hash" if isinstance(value, dict) else b"string"
        if name == "HGETALL":
            assert isinstance(value, dict)
            return [item for pair in value.items() for item in pair]
        if name == "GET":
            return value
        if name == "DEL":
            return int(self.data.pop(args[0], None) is not None)
        if name == "EXISTS":
            return int(value is not None)
        return RespError("ERR unknown command")


class RedisQueueTests(SynchronousTestCase):
    """
    L{GearmandRedisQueue} scans the prefix and reads each key's layout.
    """

    def test_batches(self) -> None:
        redis = FakeRedis(
            {
                b"_gear_-f-1": {b"data": b"a", b"priority": b"0"},
                b"_gear_-g-2": b"old",
                b"_gear_-a-b-c": {b"data": b"", b"priority": b"1"},
                b"other": b"not ours",
            }
        )
        queue = GearmandRedisQueue(redis, b"_gear_")
        items = [item for batch in queue.batches(10) for item in batch]
        self.assertEqual(
            items,
            [
                Unreadable(
                    "key b'_gear_-a-b-c'",
                    "ambiguous (name its function with --function): could be "
                    "function b'a' unique b'b-c'; function b'a-b' unique b'c'",
                ),
                SourceJob(b"_gear_-f-1", StoredJob(b"f", b"1", b"a", 0)),
                SourceJob(b"_gear_-g-2", StoredJob(b"g", b"2", b"old", 1)),
            ],
        )
        self.assertIn(("SCAN", b"0", "MATCH", b"_gear_-*", "COUNT", 10), redis.sent)
        self.assertEqual(queue.delete([b"_gear_-f-1", b"_gear_-g-2"]), 2)
        self.assertEqual(sorted(redis.data), [b"_gear_-a-b-c", b"other"])

    def test_prefixEscaped(self) -> None:
        redis = FakeRedis({})
        list(GearmandRedisQueue(redis, b"a*").batches())
        self.assertEqual(redis.sent[0][3], b"a\\*-*")

    def test_connectionLost(self) -> None:
        class Broken:
            def pipeline(self, commands: Any) -> list[Any]:
                raise ConnectionResetError("reset")

        queue = GearmandRedisQueue(Broken(), address="h:1")
        e = self.assertRaises(SourceError, list, queue.batches())
        self.assertEqual(str(e), "gearmand's Redis h:1: reset")


class RespTests(SynchronousTestCase):
    def test_encode(self) -> None:
        self.assertEqual(
            encodeCommand(["GET", b"k\0", 5]),
            b"*3\r\n$3\r\nGET\r\n$2\r\nk\0\r\n$1\r\n5\r\n",
        )

    def test_read(self) -> None:
        reply = readReply(io.BytesIO(b"*4\r\n+OK\r\n:3\r\n$-1\r\n$3\r\na\r\n\r\n"))
        self.assertEqual(reply, [b"OK", 3, None, b"a\r\n"])
        error = readReply(io.BytesIO(b"-WRONGTYPE no\r\n"))
        self.assertIsInstance(error, RespError)
        self.assertRaises(ConnectionError, readReply, io.BytesIO(b"$5\r\nab"))


class RowTests(SynchronousTestCase):
    """
    L{rowJob} reads a row of gearmand's table.
    """

    def test_row(self) -> None:
        self.assertEqual(
            rowJob((7, b"u", b"f", 2, b"\0d", 1700000000)),
            SourceJob(
                SQLiteKey(7, b"u", b"f"), StoredJob(b"f", b"u", b"\0d", 2, 1700000000)
            ),
        )

    def test_nullData(self) -> None:
        """
        gearmand stores a job submitted with empty data with a NULL data.
        """
        self.assertEqual(sourceJob(rowJob((1, b"u", b"f", 1, None, 0))).job.data, b"")

    def test_noWhen(self) -> None:
        self.assertEqual(sourceJob(rowJob((1, b"u", b"f", 1, b"", None))).job.when, 0)

    def test_bad(self) -> None:
        for row in [
            (1, b"u", None, 1, b"", 0),
            (1, b"u", b"", 1, b"", 0),
            (1, None, b"f", 1, b"", 0),
            (1, b"u\0", b"f", 1, b"", 0),
            (1, b"u", b"f", 3, b"", 0),
            (1, b"u", b"f", b"1", b"", 0),
            (1, b"u", b"f", 1, 5, 0),
            (1, b"u", b"f", 1, b"", -1),
        ]:
            got = unreadable(rowJob(row))
            self.assertTrue(got.where.startswith("row 1 "), got)


class SQLiteQueueTests(SynchronousTestCase):
    """
    L{GearmandSQLiteQueue} on real SQLite files.
    """

    def setUp(self) -> None:
        os.makedirs(self.mktemp())
        self.path = self.mktemp()

    def makeQueue(
        self, rows: Sequence[tuple[Any, ...]], schema: str = GEARMAND_TABLE
    ) -> None:
        db = sqlite3.connect(self.path)
        db.execute(schema)
        columns = 5 if "when_to_run" in schema else 4
        db.executemany(
            "INSERT INTO gearman_queue (unique_key, function_name, priority, data"
            + (", when_to_run" if columns == 5 else "")
            + ") VALUES ("
            + ",".join("?" * columns)
            + ")",
            [row[:columns] for row in rows],
        )
        db.commit()
        db.close()

    def test_textAndBlob(self) -> None:
        """
        TEXT and BLOB values come out as their exact bytes, UTF-8 or not;
        the epoch time is carried over.
        """
        self.makeQueue(
            [
                ("ü-1", "fn-é", 0, b"\0\xff", 0),
                (b"bin\xff", b"f\xfe", 2, "text data", 1700000000),
                ("e", "empty", 1, None, 0),
            ]
        )
        queue = GearmandSQLiteQueue(self.path)
        items = readAll(queue, 2)
        self.assertEqual(
            [item.job for item in items],
            [
                StoredJob("fn-é".encode(), "ü-1".encode(), b"\0\xff", 0, 0),
                StoredJob(b"f\xfe", b"bin\xff", b"text data", 2, 1700000000),
                StoredJob(b"empty", b"e", b"", 1, 0),
            ],
        )
        queue.close()

    def test_readOnly(self) -> None:
        """
        Without C{write}, the file cannot be written through the queue.
        """
        self.makeQueue([("u", "f", 1, b"", 0)])
        queue = GearmandSQLiteQueue(self.path)
        self.assertRaises(SourceError, queue.delete, [SQLiteKey(1, b"u", b"f")])
        queue.close()

    def test_delete(self) -> None:
        """
        A job is deleted by its row, only if it holds the same unique and
        function still; TEXT values are matched by their bytes.
        """
        self.makeQueue([("u", "f", 1, b"", 0), ("v", "f", 1, b"", 0)])
        queue = GearmandSQLiteQueue(self.path, write=True)
        keys = [item.key for item in readAll(queue)]
        self.assertEqual(queue.delete([keys[0], SQLiteKey(2, b"other", b"f")]), 1)
        self.assertEqual([i.job.unique for i in readAll(queue)], [b"v"])
        queue.close()

    def test_oldTable(self) -> None:
        """
        A table made before epoch jobs has no C{when_to_run}.
        """
        self.makeQueue(
            [("u", "f", 1, b"d")],
            "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, "
            "priority INTEGER, data BLOB, PRIMARY KEY (unique_key, function_name))",
        )
        queue = GearmandSQLiteQueue(self.path)
        self.assertEqual([i.job for i in readAll(queue)], [StoredJob(b"f", b"u", b"d")])
        queue.close()

    def test_missingFile(self) -> None:
        """
        A missing file is named, and not created.
        """
        e = self.assertRaises(SourceError, GearmandSQLiteQueue, self.path)
        self.assertEqual(str(e), f"gearmand's queue {self.path} does not exist")
        self.assertFalse(os.path.exists(self.path))

    def test_notDatabase(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"this is no database" * 100)
        e = self.assertRaises(SourceError, GearmandSQLiteQueue, self.path)
        self.assertIn("is not a gearmand queue: it is not an SQLite database", str(e))

    def test_noTable(self) -> None:
        db = sqlite3.connect(self.path)
        db.execute("CREATE TABLE jobs (x)")
        db.close()
        e = self.assertRaises(SourceError, GearmandSQLiteQueue, self.path, "queue")
        self.assertIn("has no table 'queue' (its tables: jobs;", str(e))

    def test_missingColumns(self) -> None:
        db = sqlite3.connect(self.path)
        db.execute("CREATE TABLE gearman_queue (unique_key, data)")
        db.close()
        e = self.assertRaises(SourceError, GearmandSQLiteQueue, self.path)
        self.assertIn("has no column function_name, priority", str(e))


class FailingStore(MemoryQueueStore):
    def add(self, job: StoredJob) -> Deferred[object]:
        return fail(StoreError("disk full"))


class ListQueue:
    """
    A source of given batches, recording deletions.
    """

    def __init__(self, batches: list[list[Any]]) -> None:
        self._batches = batches
        self.deleted: list[object] = []

    def batches(self, size: int = 1000) -> Any:
        return iter(self._batches)

    def delete(self, keys: Sequence[object]) -> int:
        self.deleted.extend(keys)
        return len(keys)


class ImporterTests(SynchronousTestCase):
    """
    L{Importer} adds what the target lacks, and deletes what it holds.
    """

    def importInto(
        self, store: MemoryQueueStore, batches: list[list[Any]], **kw: Any
    ) -> tuple[Importer, ListQueue, io.StringIO, io.StringIO]:
        source = ListQueue(batches)
        out, err = io.StringIO(), io.StringIO()
        importer = Importer(source, store, out=out, err=err, progressEvery=2, **kw)
        self.successResultOf(Deferred.fromCoroutine(importer.run()))
        return importer, source, out, err

    def test_import(self) -> None:
        store = MemoryQueueStore()
        self.successResultOf(store.add(StoredJob(b"f", b"old", b"")))
        a = SourceJob("a", StoredJob(b"f", b"new", b"\0", 0, 5))
        b = SourceJob("b", StoredJob(b"f", b"old", b"x"))
        c = Unreadable("key c", "ambiguous")
        importer, source, out, err = self.importInto(store, [[a, b], [c]], delete=True)
        self.assertEqual(
            importer.summary(), "1 imported, 1 already present, 1 unreadable"
        )
        self.assertEqual([job.unique for job in store.jobs.values()], [b"old", b"new"])
        self.assertEqual(source.deleted, ["a", "b"])
        self.assertIn(
            "txgearman-import: unreadable: key c: ambiguous\n", err.getvalue()
        )
        self.assertIn("2 records read", err.getvalue())
        self.assertEqual(out.getvalue(), "")

    def test_duplicateInSource(self) -> None:
        job = StoredJob(b"f", b"u", b"")
        importer, *_ = self.importInto(
            MemoryQueueStore(), [[SourceJob(1, job), SourceJob(2, job)]]
        )
        self.assertEqual((importer.imported, importer.present), (1, 1))

    def test_dryRun(self) -> None:
        store = MemoryQueueStore()
        job = StoredJob(b"f\xff", b"u", b"abc", 2, 1700000000)
        importer, _, out, _ = self.importInto(store, [[SourceJob(1, job)]], dryRun=True)
        self.assertEqual(store.jobs, {})
        self.assertEqual(
            out.getvalue(),
            "b'f\\xff' unique b'u' priority low data 3 bytes at epoch 1700000000\n",
        )
        self.assertEqual(
            importer.summary(), "1 would be imported, 0 already present, 0 unreadable"
        )

    def test_noStore(self) -> None:
        source = ListQueue([[SourceJob(1, StoredJob(b"f", b"u", b""))]])
        importer = Importer(
            source, None, dryRun=True, out=io.StringIO(), err=io.StringIO()
        )
        self.successResultOf(Deferred.fromCoroutine(importer.run()))
        self.assertEqual(importer.imported, 1)

    def test_storeFails(self) -> None:
        """
        Nothing is deleted from the source when the target failed.
        """
        source = ListQueue([[SourceJob(1, StoredJob(b"f", b"u", b""))]])
        importer = Importer(
            source, FailingStore(), delete=True, out=io.StringIO(), err=io.StringIO()
        )
        self.failureResultOf(Deferred.fromCoroutine(importer.run()))
        self.assertEqual(source.deleted, [])

    def test_jobLine(self) -> None:
        self.assertEqual(
            jobLine(StoredJob(b"a", b"", b"")),
            "b'a' unique b'' priority normal data 0 bytes",
        )


class OptionsTests(SynchronousTestCase):
    """
    The command line's errors each name what is wrong.
    """

    def parse(self, *argv: str) -> ImportOptions:
        options = ImportOptions(environ={})
        options.parseOptions(list(argv))
        return options

    def refused(self, *argv: str) -> str:
        return str(self.assertRaises(usage.UsageError, self.parse, *argv))

    def test_good(self) -> None:
        options = self.parse(
            "--gearmand-redis",
            "redis://:pw@h:7/2",
            "--function",
            "a-b",
            "--function",
            "c",
            "--sqlite",
            "x.db",
        )
        self.assertEqual(options["functions"], [b"a-b", b"c"])
        address = options["gearmand-redis-address"]
        self.assertEqual(
            (address.host, address.port, address.db, address.password),
            ("h", 7, 2, "pw"),
        )
        self.assertEqual(options["gearmand-redis-prefix"], "_gear_")
        self.assertEqual(
            self.parse("--gearmand-sqlite", "q", "--sqlite", "x")[
                "gearmand-sqlite-table"
            ],
            "gearman_queue",
        )

    def test_source(self) -> None:
        self.assertIn("name gearmand's queue", self.refused("--sqlite", "x"))
        self.assertIn(
            "give one of them",
            self.refused(
                "--gearmand-sqlite", "q", "--gearmand-redis", "h:1", "--sqlite", "x"
            ),
        )

    def test_target(self) -> None:
        """
        The memory store is refused, saying why.
        """
        message = self.refused("--gearmand-sqlite", "q")
        self.assertIn("--sqlite PATH or --redis ADDRESS", message)
        self.assertIn("memory", message)
        self.assertIn(
            "give one of them",
            self.refused("--gearmand-sqlite", "q", "--sqlite", "x", "--redis", "h:1"),
        )

    def test_sameFile(self) -> None:
        self.assertIn(
            "same file", self.refused("--gearmand-sqlite", "q", "--sqlite", "./q")
        )

    def test_functionNeedsRedis(self) -> None:
        self.assertIn(
            "needs --gearmand-redis",
            self.refused("--gearmand-sqlite", "q", "--sqlite", "x", "--function", "f"),
        )

    def test_dryRunDelete(self) -> None:
        self.assertIn(
            "cannot --delete-imported",
            self.refused(
                "--gearmand-sqlite",
                "q",
                "--sqlite",
                "x",
                "--dry-run",
                "--delete-imported",
            ),
        )

    def test_badRedisAddress(self) -> None:
        self.assertIn(
            "--gearmand-redis: ",
            self.refused("--gearmand-redis", "h:notaport", "--sqlite", "x"),
        )
        self.assertIn(
            "host and port only",
            self.refused("--gearmand-redis", "sentinel://h/m", "--sqlite", "x"),
        )
        self.assertIn(
            "host and port only",
            self.refused("--gearmand-redis", "rediss://h", "--sqlite", "x"),
        )

    def test_storeOptionsChecked(self) -> None:
        """
        The store options are checked as the server checks them.
        """
        self.assertIn(
            "--sqlite-durability",
            self.refused(
                "--gearmand-sqlite", "q", "--sqlite", "x", "--sqlite-durability", "some"
            ),
        )
