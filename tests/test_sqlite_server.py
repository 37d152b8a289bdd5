"""
C{twistd gearman --sqlite}: a real server process on a real file, killed,
restarted, refused a second owner, and given a full disk.
"""

from __future__ import annotations

import os
import struct
import time
import urllib.error
import urllib.request

from twisted.trial.unittest import TestCase

from tests.fixtures import (
    LOOPBACK,
    KilledUnderLoad,
    TwistdServer,
    Worker,
    connectRaw,
    freePort,
    restartServer,
    startServer,
    submitBackground,
)
from tests.test_store_sqlite import mountTmpfs
from txgearman.test.scrape import scrapeSamples

#: Room for a loaded machine in the timing assertions.
SLACK = 3.0


class SQLiteServerTests(TestCase):
    """
    The server with C{--sqlite}, end to end.
    """

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.path = os.path.join(directory, "queue.db")

    def sqliteArgs(self, path: str | None = None) -> list[str]:
        return ["--sqlite", path or self.path]

    def test_killedMidStream(self) -> None:
        """
        Killed with SIGKILL while four clients submit background jobs as
        fast as they can, and started again at once: it serves within
        seconds (the kernel released the dead server's lock), every job
        that got JOB_CREATED runs once, and nothing never submitted runs.
        """
        server = startServer(self, *self.sqliteArgs())
        load = KilledUnderLoad(server)
        load.run()
        self.assertEqual(load.problems, [])

        started = time.monotonic()
        server = restartServer(self, server)
        self.assertLess(time.monotonic() - started, 2.0 + SLACK)
        load.assertEachRanOnce(self, server)
        # Ended jobs leave the file: a third start replays nothing.
        server = restartServer(self, server)
        self.assertEqual(server.admin(b"status"), b".\n")

    def test_fifoAndFieldsAfterRestart(self) -> None:
        """
        Priorities, FIFO order within each, uniques (empty, C{-}, binary),
        functions and data with any bytes, and an epoch job's time all come
        back after a SIGKILL.
        """
        server = startServer(self, *self.sqliteArgs())
        client = connectRaw(self, server.port)
        submitted = [
            ("SUBMIT_JOB_LOW_BG", b"low-1", b"l1"),
            ("SUBMIT_JOB_BG", b"normal-1", b""),
            ("SUBMIT_JOB_HIGH_BG", b"high-1", b"-"),
            ("SUBMIT_JOB_BG", b"normal\x002\xff", b"u-\x01"),
            ("SUBMIT_JOB_HIGH_BG", b"high-2", b"h2"),
            ("SUBMIT_JOB_LOW_BG", b"low-2", b""),
        ]
        for kind, data, unique in submitted:
            client.submit(kind, b"f-\xffx", unique, data)
        # Due a second ago: runnable at once after the restart, after the rest.
        due = int(time.time()) - 1
        client.send("SUBMIT_JOB_EPOCH", b"f-\xffx", b"when", b"%d" % due, b"epoch")
        client.expect("JOB_CREATED")
        # Due in an hour: kept, and not run.
        later = int(time.time()) + 3600
        client.send("SUBMIT_JOB_EPOCH", b"f-\xffx", b"later", b"%d" % later, b"later")
        client.expect("JOB_CREATED")
        server.kill()

        server = restartServer(self, server)
        worker = Worker(self, server.port, b"f-\xffx")
        worker.drain(lambda jobs: len(jobs) >= 7, settle=1.0)
        self.assertEqual(
            [(job.function, job.unique, job.data) for job in worker.jobs],
            [
                (b"f-\xffx", b"-", b"high-1"),
                (b"f-\xffx", b"h2", b"high-2"),
                (b"f-\xffx", b"", b"normal-1"),
                (b"f-\xffx", b"u-\x01", b"normal\x002\xff"),
                (b"f-\xffx", b"when", b"epoch"),
                (b"f-\xffx", b"l1", b"low-1"),
                (b"f-\xffx", b"", b"low-2"),
            ],
        )
        jobs = server.admin(b"show jobs")
        self.assertIn(b"later", server.admin(b"show unique jobs"), jobs)

    def test_secondServerRefused(self) -> None:
        """
        A second server on the same file exits with status 1 at once,
        naming the first one's pid, and never accepts a connection.
        """
        first = startServer(self, *self.sqliteArgs())
        second = TwistdServer(self.mktemp(), self.sqliteArgs())
        self.addCleanup(second.stop)
        status, seconds, accepted = second.launchRefused()
        self.assertEqual(status, 1, second.log())
        self.assertLess(seconds, 5.0 + SLACK)
        self.assertEqual(accepted, [])
        self.assertIn(
            f"another txgearman holds the queue {self.path} (pid {first.pid})",
            second.log(),
        )
        self.assertEqual(first.admin(b"version")[:3], b"OK ")

    def test_diskFull(self) -> None:
        """
        On a full file system, background submits get C{ERROR QUEUE_ERROR}
        with the reason while foreground jobs and the admin port go on;
        after a SIGKILL and a restart every job that got JOB_CREATED runs
        and none that got ERROR does.
        """
        directory = mountTmpfs(self, "1m")
        path = os.path.join(directory, "queue.db")
        server = startServer(self, *self.sqliteArgs(path))
        client = connectRaw(self, server.port)
        created: list[bytes] = []
        refusedJobs: list[bytes] = []
        reasons: set[bytes] = set()
        for n in range(40):
            data = b"%04d" % n + b"x" * 60000
            name, args = submitBackground(client, data, b"big")
            if name == "JOB_CREATED":
                created.append(data)
            else:
                self.assertEqual(args[0], b"QUEUE_ERROR")
                reasons.add(args[1])
                refusedJobs.append(data)
        self.assertTrue(created, "some jobs fit")
        self.assertTrue(refusedJobs, "the file system filled")
        self.assertEqual(
            reasons,
            {
                f"the queue database {path} cannot be written: "
                "database or disk is full".encode()
            },
        )
        # Foreground jobs are not stored: they still run.
        worker = connectRaw(self, server.port)
        worker.send("CAN_DO", b"echo")
        client.send("SUBMIT_JOB", b"echo", b"", b"ping")
        handle = client.expect("JOB_CREATED")[0]
        worker.send("GRAB_JOB")
        while True:
            name, args = worker.receive(10)
            if name == "JOB_ASSIGN":
                break
        worker.send("WORK_COMPLETE", args[0], b"pong")
        self.assertEqual(client.expect("WORK_COMPLETE"), [handle, b"pong"])
        self.assertIn(b"big\t%d\t" % len(created), server.admin(b"status"))
        server.kill()

        server = restartServer(self, server)
        consumer = Worker(self, server.port, b"big")
        consumer.drain(lambda jobs: len(jobs) >= len(created), settle=1.0)
        self.assertEqual(consumer.data(), created)

    def test_corruptFileRefusedAtStart(self) -> None:
        """
        A file that is no SQLite database stops the start with status 1
        and the file named, rather than being overwritten.
        """
        with open(self.path, "wb") as f:
            f.write(b"not a database" + struct.pack(">I", 7) * 1000)
        server = TwistdServer(self.mktemp(), self.sqliteArgs())
        self.addCleanup(server.stop)
        server.launch()
        self.assertEqual(server.wait(30), 1, server.log())
        self.assertIn(f"the queue database {self.path} cannot be used", server.log())
        with open(self.path, "rb") as f:
            self.assertTrue(f.read().startswith(b"not a database"))


class SQLiteHealthTests(TestCase):
    """
    With C{--http}, the SQLite store's health and figures: ready while
    commits go through, 503 with the reason while the disk is full, and
    ready again once there is room.
    """

    def get(self, url: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_fullDiskNotReady(self) -> None:
        directory = mountTmpfs(self, "1m")
        filler = os.path.join(directory, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * 600_000)
        path = os.path.join(directory, "queue.db")
        http = freePort()
        server = startServer(
            self, "--sqlite", path, "--http", f"tcp:{http}:interface={LOOPBACK}"
        )
        base = f"http://{LOOPBACK}:{http}"
        self.assertEqual(self.get(base + "/readyz")[0], 200)
        client = connectRaw(self, server.port)
        self.assertEqual(submitBackground(client, b"small", b"f")[0], "JOB_CREATED")
        samples = scrapeSamples(self.get(base + "/metrics")[1])
        self.assertEqual(samples["gearman_store_up"][()], 1)
        self.assertEqual(samples["gearman_store_check"][(("check", "sqlite"),)], 1)
        self.assertEqual(samples["gearman_store_state"][(("state", "running"),)], 1)
        self.assertGreaterEqual(samples["gearman_store_call_seconds_count"][()], 1)

        for n in range(40):
            name, args = submitBackground(client, b"%04d" % n + b"x" * 60000, b"f")
            if name == "ERROR":
                self.assertEqual(args[0], b"QUEUE_ERROR")
                break
        else:
            self.fail("the file system never filled")
        code, body = self.get(base + "/readyz?verbose")
        self.assertEqual(code, 503, body)
        self.assertIn("database or disk is full", body)
        samples = scrapeSamples(self.get(base + "/metrics")[1])
        self.assertEqual(samples["gearman_store_up"][()], 0)
        self.assertEqual(samples["gearman_store_state"][(("state", "failing"),)], 1)
        self.assertGreaterEqual(samples["gearman_store_call_failures_total"][()], 1)

        os.remove(filler)
        self.assertEqual(submitBackground(client, b"after", b"f")[0], "JOB_CREATED")
        self.assertEqual(self.get(base + "/readyz")[0], 200)
