"""
System tests: every option of Debian's C{gearadmin} (gearman-tools 1.1.20)
against a real C{twistd gearman}, with exact outputs.

gearadmin prints a reply with its C{OK } stripped where gearmand's does,
writes C{ERR} replies to standard error as C{Error: ...}, and exits 0
either way.  The jobs and workers it reports on are made over raw
protocol connections, synchronised with an echo round trip.
"""

from __future__ import annotations

import re

from twisted.trial.unittest import TestCase

import txgearman
from tests.fixtures import (
    GearmanTools,
    RawConnection,
    TwistdServer,
    connectRaw,
    startServer,
)

_QUEUED = b"Error: there are still queued jobs\r\n"
_WORKERS = b"Error: there are still connected workers or executing clients\r\n"
_NOT_FOUND = b"Error: function not found\r\n"


class GearadminTests(TestCase):
    """
    C{gearadmin} options and what they print.
    """

    def setUp(self) -> None:
        self.tools = GearmanTools(self, 0)
        self.server: TwistdServer = startServer(self, "--job-handle-prefix", "H:adm")
        self.tools.port = self.server.port

    def connect(self) -> RawConnection:
        return connectRaw(self, self.server.port)

    def errorOf(self, *args: str) -> bytes:
        """
        Run gearadmin for an C{ERR} reply: nothing on standard output, exit
        status 0 all the same; return standard error.
        """
        result = self.tools.gearadmin(*args)
        self.assertEqual((result.returncode, result.stdout), (0, b""), result)
        return result.stderr

    def test_statusEmpty(self) -> None:
        """
        With no function known, C{--status} prints only the end line.
        """
        self.assertEqual(self.tools.admin("--status"), b".\n")

    def test_status(self) -> None:
        """
        C{--status} lists each function in creation order with its total,
        running and worker counts.
        """
        client = self.connect()
        client.submit("SUBMIT_JOB_BG", b"first", b"a", b"")
        client.submit("SUBMIT_JOB_BG", b"first", b"b", b"")
        client.submit("SUBMIT_JOB_BG", b"second", b"c", b"")
        worker = self.connect()
        worker.send("CAN_DO", b"first")
        worker.send("GRAB_JOB")
        worker.expect("JOB_ASSIGN")
        idle = self.connect()
        idle.send("CAN_DO", b"first")
        idle.sync()
        self.assertEqual(
            self.tools.admin("--status"), b"first\t2\t1\t2\nsecond\t1\t0\t0\n.\n"
        )

    def test_priorityStatus(self) -> None:
        """
        C{--priority-status} counts the queued (not running) jobs of each
        priority, then the workers.
        """
        client = self.connect()
        for kind, unique in (
            ("SUBMIT_JOB_HIGH_BG", b"h1"),
            ("SUBMIT_JOB_HIGH_BG", b"h2"),
            ("SUBMIT_JOB_BG", b"n1"),
            ("SUBMIT_JOB_LOW_BG", b"l1"),
            ("SUBMIT_JOB_LOW_BG", b"l2"),
            ("SUBMIT_JOB_LOW_BG", b"l3"),
        ):
            client.submit(kind, b"ps", unique, b"")
        worker = self.connect()
        worker.send("CAN_DO", b"ps")
        worker.send("GRAB_JOB")
        worker.expect("JOB_ASSIGN")
        self.assertEqual(self.tools.admin("--priority-status"), b"ps\t1\t1\t3\t1\n.\n")

    def test_workers(self) -> None:
        """
        C{--workers} lists every connection: its descriptor, address, client
        id (C{-} when unset) and functions; gearadmin's own connection is
        listed too.
        """
        worker = self.connect()
        worker.send("SET_CLIENT_ID", b"wk-A")
        worker.send("CAN_DO", b"resize")
        worker.send("CAN_DO", b"email")
        worker.sync()
        plain = self.connect()
        plain.sync()
        lines = self.tools.admin("--workers").split(b"\n")
        self.assertEqual(lines[-2:], [b".", b""])
        pattern = re.compile(rb"^\d+ 127\.0\.0\.1 (\S+) :((?: \S+)*)$")
        entries = []
        for line in lines[:-2]:
            match = pattern.match(line)
            self.assertIsNotNone(match, line)
            assert match is not None
            entries.append((match.group(1), match.group(2)))
        self.assertEqual(entries[:2], [(b"wk-A", b" resize email"), (b"-", b"")])
        # gearadmin's own connection.
        self.assertEqual(entries[2:], [(b"-", b"")])

    def test_showJobs(self) -> None:
        """
        C{--show-jobs} lists each job's handle, retries, ignore flag and
        whether it is a background (queued) job.
        """
        client = self.connect()
        client.submit("SUBMIT_JOB_BG", b"sj", b"bg", b"")
        client.submit("SUBMIT_JOB", b"sj", b"fg", b"")
        self.assertEqual(
            self.tools.admin("--show-jobs"), b"H:adm:1\t0\t0\t1\nH:adm:2\t0\t0\t0\n.\n"
        )

    def test_showJobsEmpty(self) -> None:
        """
        With no job, C{--show-jobs} prints only the end line.
        """
        self.assertEqual(self.tools.admin("--show-jobs"), b".\n")

    def test_showUniqueJobs(self) -> None:
        """
        C{--show-unique-jobs} prints each job's unique id on its own line,
        an empty line for an empty one.
        """
        client = self.connect()
        client.submit("SUBMIT_JOB_BG", b"su", b"img-1", b"")
        client.submit("SUBMIT_JOB_BG", b"su", b"", b"")
        client.submit("SUBMIT_JOB_LOW_BG", b"other", b"mail-1", b"")
        self.assertEqual(
            self.tools.admin("--show-unique-jobs"), b"img-1\n\nmail-1\n.\n"
        )

    def test_serverVersion(self) -> None:
        """
        C{--server-version} prints txgearman's version.
        """
        self.assertEqual(
            self.tools.admin("--server-version"), txgearman.__version__.encode() + b"\n"
        )

    def test_serverVerbose(self) -> None:
        """
        C{--server-verbose} prints the verbosity level.
        """
        self.assertEqual(self.tools.admin("--server-verbose"), b"INFO\n")

    def test_getpid(self) -> None:
        """
        C{--getpid} prints the pid of the twistd process.
        """
        assert self.server.process is not None
        self.assertEqual(self.server.pid, self.server.process.pid)
        self.assertEqual(
            self.tools.admin("--getpid"), b"%d\n" % (self.server.process.pid,)
        )

    def test_cancelQueuedJob(self) -> None:
        """
        C{--cancel-job} removes a queued background job at once.
        """
        client = self.connect()
        handle = client.submit("SUBMIT_JOB_BG", b"cj", b"u", b"")
        keep = client.submit("SUBMIT_JOB_BG", b"cj", b"v", b"")
        self.assertEqual(self.tools.admin("--cancel-job=" + handle.decode()), b"OK\n")
        self.assertEqual(self.tools.admin("--status"), b"cj\t1\t0\t0\n.\n")
        self.assertEqual(self.tools.admin("--show-jobs"), keep + b"\t0\t0\t1\n.\n")
        worker = self.connect()
        worker.send("CAN_DO", b"cj")
        worker.send("GRAB_JOB")
        self.assertEqual(worker.expect("JOB_ASSIGN"), [keep, b"cj", b""])
        worker.send("GRAB_JOB")
        worker.expect("NO_JOB")

    def test_cancelForegroundJob(self) -> None:
        """
        Cancelling a foreground job sends WORK_FAIL to its client.
        """
        client = self.connect()
        handle = client.submit("SUBMIT_JOB", b"cf", b"u", b"x")
        self.assertEqual(self.tools.admin("--cancel-job=" + handle.decode()), b"OK\n")
        self.assertEqual(client.expect("WORK_FAIL"), [handle])
        # No worker and no job left: the function is forgotten.
        self.assertEqual(self.tools.admin("--status"), b".\n")

    def test_cancelUnknownJob(self) -> None:
        """
        Cancelling an unknown handle prints C{Error: UNKNOWN_JOB}.
        """
        self.assertEqual(
            self.errorOf("--cancel-job=H:adm:999"), b"Error: UNKNOWN_JOB\r\n"
        )

    def test_createFunction(self) -> None:
        """
        C{--create-function} creates the function, named exactly.
        """
        self.assertEqual(self.tools.admin("--create-function=foo"), b"OK\n")
        self.assertEqual(self.tools.admin("--status"), b"foo\t0\t0\t0\n.\n")

    def test_dropFunction(self) -> None:
        """
        C{--drop-function} removes an idle function.
        """
        self.tools.admin("--create-function=foo")
        self.tools.admin("--create-function=bar")
        self.assertEqual(self.tools.admin("--drop-function=foo"), b"OK\n")
        self.assertEqual(self.tools.admin("--status"), b"bar\t0\t0\t0\n.\n")

    def test_dropFunctionWithQueuedJobs(self) -> None:
        """
        A function with queued jobs is not dropped.
        """
        client = self.connect()
        client.submit("SUBMIT_JOB_BG", b"busy", b"u", b"")
        self.assertEqual(self.errorOf("--drop-function=busy"), _QUEUED)
        self.assertEqual(self.tools.admin("--status"), b"busy\t1\t0\t0\n.\n")

    def test_dropFunctionWithWorker(self) -> None:
        """
        A function with a connected worker is not dropped.
        """
        worker = self.connect()
        worker.send("CAN_DO", b"served")
        worker.sync()
        self.assertEqual(self.errorOf("--drop-function=served"), _WORKERS)
        self.assertEqual(self.tools.admin("--status"), b"served\t0\t0\t1\n.\n")

    def test_dropUnknownFunction(self) -> None:
        """
        Dropping an unknown function prints C{Error: function not found};
        names are compared exactly.
        """
        self.tools.admin("--create-function=foo")
        self.assertEqual(self.errorOf("--drop-function=nope"), _NOT_FOUND)
        self.assertEqual(self.errorOf("--drop-function=FOO"), _NOT_FOUND)
        self.assertEqual(self.tools.admin("--status"), b"foo\t0\t0\t0\n.\n")
