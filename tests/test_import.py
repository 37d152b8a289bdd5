"""
System tests of C{txgearman-import}: a real gearmand 1.1.20 queues
background jobs in its libsqlite3 or redis queue, is stopped, the jobs
are imported into txgearman's SQLite or Redis store, and a real
C{twistd gearman} hands them to a worker with their exact data, in
priority order.  Also: gearmand master's and 1.1.15's Redis layouts
(written straight into Redis), ambiguous keys, C{--dry-run}, running
twice, C{--delete-imported}, and the errors.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time

from twisted.trial.unittest import FailTest, TestCase

from tests.fixtures import (
    LOOPBACK,
    GearmanTools,
    RawConnection,
    RedisServer,
    TwistdServer,
    freePort,
    runTool,
    startGearmand,
    startRedis,
    startServer,
)

UUID_LENGTH = 36
BINARY = b"\0bin\xff\0\r\n\0"


def importTool() -> str:
    """
    The C{txgearman-import} script installed beside the running
    interpreter (setup.py's console script).
    """
    path = os.path.join(os.path.dirname(sys.executable), "txgearman-import")
    if not os.access(path, os.X_OK):
        raise FailTest(f"{path} is missing: pip install -e . installs it")
    return path


def runImport(*args: str) -> subprocess.CompletedProcess[bytes]:
    return runTool([importTool(), *args], timeout=30.0)


def submit(port: int, name: str, function: bytes, unique: bytes, data: bytes) -> None:
    """
    Submit one background job with a raw packet (for binary data and the
    packets Debian's C{gearman} does not send).
    """
    connection = RawConnection(port)
    try:
        connection.submit(name, function, unique, data)
    finally:
        connection.close()


def submitEpoch(
    port: int, function: bytes, unique: bytes, when: int, data: bytes
) -> None:
    connection = RawConnection(port)
    try:
        connection.send("SUBMIT_JOB_EPOCH", function, unique, b"%d" % (when,), data)
        connection.expect("JOB_CREATED")
    finally:
        connection.close()


def drain(server: TwistdServer, *functions: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """
    Run every job of C{functions} with one raw worker, grabbing until the
    server has none: C{(function, unique, data)} in the order handed out.
    """
    worker = server.connect()
    ran: list[tuple[bytes, bytes, bytes]] = []
    try:
        for function in functions:
            worker.send("CAN_DO", function)
        while True:
            worker.send("GRAB_JOB_UNIQ")
            name, args = worker.receive()
            if name == "NO_JOB":
                return ran
            if name != "JOB_ASSIGN_UNIQ":
                raise FailTest(f"expected JOB_ASSIGN_UNIQ, got {name} {args!r}")
            handle, function, unique = args[:3]
            ran.append((function, unique, b"\0".join(args[3:])))
            worker.send("WORK_COMPLETE", handle, b"")
    finally:
        worker.close()


def targetRows(path: str) -> list[tuple[bytes, bytes, bytes, int, int]]:
    """
    The jobs in a txgearman SQLite store, read with sqlite3.
    """
    db = sqlite3.connect(path)
    try:
        return db.execute(
            'SELECT function, "unique", data, priority, run_at FROM jobs ORDER BY id'
        ).fetchall()
    finally:
        db.close()


def gearmandRows(path: str) -> list[tuple[bytes, bytes]]:
    db = sqlite3.connect(path)
    db.text_factory = bytes
    try:
        return db.execute(
            "SELECT function_name, unique_key FROM gearman_queue ORDER BY rowid"
        ).fetchall()
    finally:
        db.close()


class GearmandSQLiteImportTests(TestCase):
    """
    gearmand's libsqlite3 queue, imported into the SQLite and the Redis
    store.
    """

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.directory = directory
        self.source = os.path.join(directory, "gearmand.db")
        self.when = int(time.time()) + 3600
        gearmand = startGearmand(
            self, "-q", "libsqlite3", "--libsqlite3-db", self.source
        )
        tools = GearmanTools(self, gearmand.port)
        tools.submit("-b", "-f", "resize", "-u", "n1", "--", "normal-1")
        tools.submit("-b", "-L", "-f", "resize", "-u", "l1", "--", "low-1")
        tools.submit("-b", "-I", "-f", "resize", "-u", "h1", "--", "high-1")
        tools.submit("-b", "-f", "resize", "-u", "n2", "--", "normal-2")
        # No unique: gearmand makes a UUID.
        tools.submit("-b", "-f", "mail-send", "--", "no unique")
        submit(gearmand.port, "SUBMIT_JOB_BG", b"bin-f", b"u-\xff", BINARY)
        submitEpoch(gearmand.port, b"later", b"e1", self.when, b"epoch data")
        gearmand.stop()

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def test_dryRunWritesNothing(self) -> None:
        """
        C{--dry-run} lists every job and the summary, creates no target
        file, and leaves the source as it was.
        """
        before = open(self.source, "rb").read()
        target = self.path("target.db")
        done = runImport(
            "--gearmand-sqlite", self.source, "--sqlite", target, "--dry-run"
        )
        self.assertEqual(done.returncode, 0, done)
        lines = done.stdout.decode().splitlines()
        self.assertEqual(
            lines[-1], "dry run: 7 would be imported, 0 already present, 0 unreadable"
        )
        self.assertIn("b'resize' unique b'h1' priority high data 6 bytes", lines)
        self.assertIn(
            f"b'later' unique b'e1' priority normal data 10 bytes at epoch {self.when}",
            lines,
        )
        self.assertIn(
            f"b'bin-f' unique b'u-\\xff' priority normal data {len(BINARY)} bytes",
            lines,
        )
        self.assertFalse(os.path.exists(target))
        self.assertFalse(os.path.exists(target + ".lock"))
        self.assertEqual(open(self.source, "rb").read(), before)

    def test_intoSQLite(self) -> None:
        """
        Every job lands with its function, unique, data, priority and
        epoch time; a second run imports nothing; txgearman then runs the
        jobs in priority order, binary data intact.
        """
        target = self.path("target.db")
        done = runImport("--gearmand-sqlite", self.source, "--sqlite", target)
        self.assertEqual(
            (done.returncode, done.stdout),
            (0, b"7 imported, 0 already present, 0 unreadable\n"),
            done,
        )
        rows = targetRows(target)
        self.assertIn((b"later", b"e1", b"epoch data", 1, self.when), rows)
        self.assertIn((b"bin-f", b"u-\xff", BINARY, 1, 0), rows)
        self.assertIn((b"resize", b"h1", b"high-1", 0, 0), rows)
        self.assertEqual(len(rows), 7)
        self.assertEqual(
            len(gearmandRows(self.source)), 7, "the source was left untouched"
        )

        again = runImport("--gearmand-sqlite", self.source, "--sqlite", target)
        self.assertEqual(
            (again.returncode, again.stdout),
            (0, b"0 imported, 7 already present, 0 unreadable\n"),
        )
        self.assertEqual(len(targetRows(target)), 7)

        server = startServer(self, "--sqlite", target)
        self.assertEqual(
            drain(server, b"resize"),
            [
                (b"resize", b"h1", b"high-1"),
                (b"resize", b"n1", b"normal-1"),
                (b"resize", b"n2", b"normal-2"),
                (b"resize", b"l1", b"low-1"),
            ],
        )
        self.assertEqual(drain(server, b"bin-f"), [(b"bin-f", b"u-\xff", BINARY)])
        [(function, unique, data)] = drain(server, b"mail-send")
        self.assertEqual(
            (function, len(unique), data), (b"mail-send", UUID_LENGTH, b"no unique")
        )
        # The epoch job waits for its time.
        self.assertEqual(drain(server, b"later"), [])

    def test_intoRedis(self) -> None:
        """
        Into the Redis store, the jobs run the same.
        """
        redis = startRedis(self)
        done = runImport("--gearmand-sqlite", self.source, "--redis", redis.address)
        self.assertEqual(
            (done.returncode, done.stdout),
            (0, b"7 imported, 0 already present, 0 unreadable\n"),
            done,
        )
        server = startServer(self, "--redis", redis.address)
        self.assertEqual(
            [unique for _, unique, _ in drain(server, b"resize")],
            [b"h1", b"n1", b"n2", b"l1"],
        )
        self.assertEqual(drain(server, b"bin-f"), [(b"bin-f", b"u-\xff", BINARY)])

    def test_deleteImported(self) -> None:
        """
        C{--delete-imported} deletes what was imported, and what the target
        held already, and leaves a row it could not read, with status 2.
        """
        target = self.path("target.db")
        # One job is in the target already.
        first = self.path("first.db")
        shutil.copy(self.source, first)
        db = sqlite3.connect(first)
        db.execute("DELETE FROM gearman_queue WHERE unique_key != 'n1'")
        db.commit()
        db.close()
        self.assertEqual(
            runImport("--gearmand-sqlite", first, "--sqlite", target).returncode, 0
        )
        db = sqlite3.connect(self.source)
        db.execute("INSERT INTO gearman_queue VALUES ('bad', 'resize', 7, x'00', 0)")
        db.commit()
        db.close()

        done = runImport(
            "--gearmand-sqlite", self.source, "--sqlite", target, "--delete-imported"
        )
        self.assertEqual(done.returncode, 2, done)
        self.assertEqual(done.stdout, b"6 imported, 1 already present, 1 unreadable\n")
        self.assertIn(
            b"unreadable: row 8 (function_name b'resize', unique_key b'bad'): "
            b"priority 7 is not 0, 1 or 2",
            done.stderr,
        )
        self.assertIn(b"7 deleted from gearmand's queue", done.stderr)
        self.assertEqual(gearmandRows(self.source), [(b"resize", b"bad")])
        self.assertEqual(len(targetRows(target)), 7)

    def test_targetLocked(self) -> None:
        """
        A txgearman running on the target: the import stops at once with
        status 1, naming the holder, and imports nothing.
        """
        target = self.path("target.db")
        server = startServer(self, "--sqlite", target)
        done = runImport("--gearmand-sqlite", self.source, "--sqlite", target)
        self.assertEqual(done.returncode, 1, done)
        self.assertIn(
            f"another txgearman holds the queue {target} (pid {server.pid})".encode(),
            done.stderr,
        )
        self.assertIn(b"stop the txgearman server using it first", done.stderr)
        self.assertEqual(done.stdout, b"")
        self.assertEqual(drain(server, b"resize"), [])


class GearmandRedisImportTests(TestCase):
    """
    gearmand's redis queue, as 1.1.20 writes it and as master and 1.1.15
    did or do, imported into the SQLite store.
    """

    def setUp(self) -> None:
        self.redis: RedisServer = startRedis(self)
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.target = os.path.join(self.directory, "target.db")

    def gearmandQueues(self) -> None:
        gearmand = startGearmand(
            self,
            "-q",
            "redis",
            "--redis-server",
            LOOPBACK,
            "--redis-port",
            str(self.redis.port),
        )
        tools = GearmanTools(self, gearmand.port)
        tools.submit("-b", "-f", "resize", "-u", "42", "--", "one dash")
        tools.submit("-b", "-I", "-f", "resize", "-u", "7", "--", "high")
        tools.submit("-b", "-f", "mail-send", "-u", "u1", "--", "dashed function")
        tools.submit("-b", "-L", "-f", "resize", "--", "uuid unique")
        submit(gearmand.port, "SUBMIT_JOB_BG", b"bin", b"b", BINARY)
        gearmand.stop()

    def test_gearmand1120(self) -> None:
        """
        Keys with one C{-} are imported; the others are listed with their
        possible splits, with status 2; with C{--function} they are read,
        and C{--delete-imported} empties gearmand's queue.
        """
        self.gearmandQueues()
        address = self.redis.address
        done = runImport("--gearmand-redis", address, "--sqlite", self.target)
        self.assertEqual(done.returncode, 2, done)
        self.assertEqual(done.stdout, b"3 imported, 0 already present, 2 unreadable\n")
        self.assertIn(
            b"unreadable: key b'_gear_-mail-send-u1': ambiguous (name its function with "
            b"--function): could be function b'mail' unique b'send-u1'; "
            b"function b'mail-send' unique b'u1'",
            done.stderr,
        )
        self.assertIn(b"unreadable: key b'_gear_-resize-", done.stderr)

        done = runImport(
            "--gearmand-redis",
            f"redis://{address}/0",
            "--sqlite",
            self.target,
            "--function",
            "resize",
            "--function",
            "mail-send",
            "--delete-imported",
        )
        self.assertEqual(done.returncode, 0, done)
        self.assertEqual(done.stdout, b"2 imported, 3 already present, 0 unreadable\n")
        self.assertEqual(self.redis.keys(b"_gear_*"), [])

        server = startServer(self, "--sqlite", self.target)
        ran = drain(server, b"resize")
        self.assertEqual(
            [(unique, data) for _, unique, data in ran[:2]],
            [(b"7", b"high"), (b"42", b"one dash")],
        )
        self.assertEqual((len(ran[2][1]), ran[2][2]), (UUID_LENGTH, b"uuid unique"))
        self.assertEqual(
            drain(server, b"mail-send"), [(b"mail-send", b"u1", b"dashed function")]
        )
        self.assertEqual(drain(server, b"bin"), [(b"bin", b"b", BINARY)])

    def test_otherLayouts(self) -> None:
        """
        gearmand master's hash names the function and unique: read
        whatever their dashes; 1.1.15's plain string is the data; a key
        under the prefix that is no job is listed, and left alone.
        """
        self.redis.command(
            "HSET",
            "_gear_-a-b-c-d",
            "data",
            BINARY,
            "priority",
            "0",
            "function",
            "a-b",
            "unique",
            "c-d",
        )
        self.redis.command("SET", "_gear_-old-1", "plain data")
        self.redis.command("RPUSH", "_gear_-list-1", "x")
        self.redis.command("SET", "elsewhere-1", "not gearmand's")
        done = runImport(
            "--gearmand-redis", self.redis.address, "--sqlite", self.target
        )
        self.assertEqual(done.returncode, 2, done)
        self.assertEqual(done.stdout, b"2 imported, 0 already present, 1 unreadable\n")
        self.assertIn(
            b"unreadable: key b'_gear_-list-1': a Redis list, not a gearmand job",
            done.stderr,
        )
        self.assertEqual(
            sorted(targetRows(self.target)),
            [(b"a-b", b"c-d", BINARY, 0, 0), (b"old", b"1", b"plain data", 1, 0)],
        )

    def test_dryRunIntoRedis(self) -> None:
        """
        A dry run into a Redis store reads it and adds nothing; jobs it
        holds count as present.
        """
        self.redis.command("SET", "_gear_-old-1", "plain data")
        self.redis.command("SET", "_gear_-old-2", "more")
        first = runImport(
            "--gearmand-redis",
            self.redis.address,
            "--redis",
            self.redis.address,
            "--dry-run",
        )
        self.assertEqual(
            first.stdout.splitlines()[-1],
            b"dry run: 2 would be imported, 0 already present, 0 unreadable",
        )
        self.assertEqual(self.redis.keys(b"txgearman:job*"), [])
        self.assertEqual(
            runImport(
                "--gearmand-redis", self.redis.address, "--redis", self.redis.address
            ).returncode,
            0,
        )
        self.redis.command("SET", "_gear_-old-3", "new")
        again = runImport(
            "--gearmand-redis",
            self.redis.address,
            "--redis",
            self.redis.address,
            "--dry-run",
        )
        self.assertEqual(
            again.stdout,
            b"b'old' unique b'3' priority normal data 3 bytes\n"
            b"dry run: 1 would be imported, 2 already present, 0 unreadable\n",
        )

    def test_redisTargetLocked(self) -> None:
        """
        A txgearman running on the Redis target: refused, status 1.
        """
        self.redis.command("SET", "_gear_-old-1", "plain data")
        startServer(self, "--redis", self.redis.address)
        done = runImport(
            "--gearmand-redis",
            self.redis.address,
            "--redis",
            self.redis.address,
            "--redis-start-timeout",
            "1",
        )
        self.assertEqual(done.returncode, 1, done)
        self.assertIn(b"another txgearman server", done.stderr)
        self.assertIn(b"stop the txgearman server using it first", done.stderr)


class ErrorTests(TestCase):
    """
    What cannot be read stops the import with status 1 and a message
    naming it.
    """

    def test_missingSource(self) -> None:
        source = os.path.abspath(self.mktemp())
        target = os.path.abspath(self.mktemp())
        done = runImport("--gearmand-sqlite", source, "--sqlite", target)
        self.assertEqual(done.returncode, 1)
        self.assertEqual(
            done.stderr,
            f"txgearman-import: error: gearmand's queue {source} does not exist\n".encode(),
        )
        self.assertFalse(os.path.exists(source))
        self.assertFalse(os.path.exists(target))

    def test_notGearmand(self) -> None:
        source = os.path.abspath(self.mktemp())
        db = sqlite3.connect(source)
        db.execute("CREATE TABLE other (x)")
        db.close()
        done = runImport("--gearmand-sqlite", source, "--sqlite", self.mktemp())
        self.assertEqual(done.returncode, 1)
        self.assertIn(
            b"is not a gearmand queue: it has no table 'gearman_queue'", done.stderr
        )

    def test_redisUnreachable(self) -> None:
        port = freePort()
        done = runImport(
            "--gearmand-redis", f"{LOOPBACK}:{port}", "--sqlite", self.mktemp()
        )
        self.assertEqual(done.returncode, 1)
        self.assertIn(
            f"gearmand's Redis at {LOOPBACK}:{port} is unreachable".encode(),
            done.stderr,
        )

    def test_memoryRefused(self) -> None:
        done = runImport("--gearmand-sqlite", "x.db")
        self.assertEqual(done.returncode, 1)
        self.assertIn(b"the memory store is refused", done.stderr)
