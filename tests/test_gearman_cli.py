"""
System tests: Debian's C{gearman} command-line client and worker
(gearman-tools, libgearman 1.1.20) against a real C{twistd gearman}.

The C{gearman} client exits 0 even when the server answers ERROR, so every
client run here also checks that nothing was written to standard error.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.fixtures import GearmanTools, TwistdServer, startServer, startTap, waitFor

# Packet type numbers, as on the wire.
CAN_DO = 1
GRAB_JOB = 9
JOB_CREATED = 8
JOB_ASSIGN = 11
GRAB_JOB_UNIQ = 30
JOB_ASSIGN_UNIQ = 31
GRAB_JOB_ALL = 39
JOB_ASSIGN_ALL = 40


class GearmanToolTests(TestCase):
    """
    The C{gearman} tool as client (C{-b}, C{-I}, C{-L}, C{-u}, foreground)
    and as worker (C{-w}, with and without a command).
    """

    def setUp(self) -> None:
        self.tools = GearmanTools(self, 0)
        self.server: TwistdServer = startServer(self, "--job-handle-prefix", "H:cli")
        self.tools.port = self.server.port

    def test_seedScenario(self) -> None:
        """
        C{echo 123 | gearman -f test -b} queues one job, C{gearadmin
        --status} shows it, and C{gearman -w -f test -c 1} prints its
        payload and leaves the queue empty.
        """
        self.assertEqual(self.tools.submit("-f", "test", "-b", input=b"123\n"), b"")
        self.assertEqual(self.tools.status(), b"test\t1\t0\t0\n.\n")
        self.assertEqual(self.tools.submit("-w", "-f", "test", "-c", "1"), b"123\n")
        # Its worker left and its job ended: the function is forgotten.
        self.assertEqual(self.tools.status(), b".\n")

    def test_backgroundJobIsQueued(self) -> None:
        """
        A background submit with the payload on the command line is queued
        at NORMAL priority, listed by C{show jobs} with the configured
        handle prefix, and handed to the first worker.
        """
        self.tools.submit("-f", "bg", "-b", "payload")
        self.assertEqual(self.tools.admin("--priority-status"), b"bg\t0\t1\t0\t0\n.\n")
        self.assertEqual(self.tools.admin("--show-jobs"), b"H:cli:1\t0\t0\t1\n.\n")
        self.assertEqual(self.tools.submit("-w", "-f", "bg", "-c", "1"), b"payload")
        self.assertEqual(self.tools.admin("--show-jobs"), b".\n")

    def test_priorityOrder(self) -> None:
        """
        Jobs submitted LOW (C{-L}), NORMAL and HIGH (C{-I}) are run HIGH,
        NORMAL, LOW by a worker that connects after the three submits.
        """
        self.tools.submit("-f", "prio", "-b", "-L", input=b"low\n")
        self.tools.submit("-f", "prio", "-b", input=b"normal\n")
        self.tools.submit("-f", "prio", "-b", "-I", input=b"high\n")
        self.assertEqual(
            self.tools.admin("--priority-status"), b"prio\t1\t1\t1\t0\n.\n"
        )
        output = self.tools.submit("-w", "-f", "prio", "-c", "3")
        self.assertEqual(output, b"high\nnormal\nlow\n")
        # Its worker left and its jobs ended: the function is forgotten.
        self.assertEqual(self.tools.status(), b".\n")

    def test_priorityOrderThroughCommandWorker(self) -> None:
        """
        The same order holds for a worker that runs a command per job
        (C{gearman -w -- cat}); each background job runs exactly once.
        """
        for flag, payload in (("-L", b"L"), (None, b"N"), ("-I", b"H"), ("-L", b"L2")):
            args = ["-f", "order", "-b"] + ([flag] if flag else [])
            self.tools.submit(*args, input=payload)
        log = self.server.directory / "order.txt"
        worker = self.tools.spawnGearman(
            "-w",
            "-f",
            "order",
            "-c",
            "4",
            "--",
            "sh",
            "-c",
            f"cat >> {log}; echo >> {log}",
        )
        code, _, err = worker.finish()
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(log.read_bytes(), b"H\nN\nL\nL2\n")

    def test_foregroundJob(self) -> None:
        """
        A foreground client gets the result of a worker that runs C{rev}.
        """
        worker = self.tools.spawnGearman("-w", "-f", "rev", "-c", "1", "--", "rev")
        self.assertEqual(self.tools.submit("-f", "rev", "hello"), b"olleh")
        code, out, err = worker.finish()
        self.assertEqual((code, out, err), (0, b"", b""))

    def test_foregroundPriorities(self) -> None:
        """
        Foreground HIGH (C{-I}) and LOW (C{-L}) jobs get their results too.
        """
        worker = self.tools.spawnGearman("-w", "-f", "fgprio", "-c", "2", "--", "rev")
        self.server.waitForWorkers(b"fgprio", 1)
        self.assertEqual(self.tools.submit("-f", "fgprio", "-I", "high"), b"hgih")
        self.assertEqual(self.tools.submit("-f", "fgprio", "-L", "low"), b"wol")
        code, _, err = worker.finish()
        self.assertEqual((code, err), (0, b""))

    def test_uniqueCoalescesBackgroundJobs(self) -> None:
        """
        Two background submits with the same unique id (C{-u}) make one
        job, which runs with the first payload; another unique makes
        another job.
        """
        self.tools.submit("-f", "uq", "-b", "-u", "same", "first")
        self.tools.submit("-f", "uq", "-b", "-u", "same", "second")
        self.assertEqual(self.tools.status(), b"uq\t1\t0\t0\n.\n")
        self.assertEqual(self.tools.admin("--show-unique-jobs"), b"same\n.\n")
        self.tools.submit("-f", "uq", "-b", "-u", "other", "third")
        self.assertEqual(self.tools.admin("--show-unique-jobs"), b"same\nother\n.\n")
        self.assertEqual(self.tools.submit("-w", "-f", "uq", "-c", "2"), b"firstthird")
        # Its worker left and its jobs ended: the function is forgotten.
        self.assertEqual(self.tools.status(), b".\n")

    def test_uniqueCoalescesForegroundClients(self) -> None:
        """
        Two foreground clients with the same unique id share one job (one
        handle): one worker run answers both.
        """
        tap = startTap(self, self.server.port)
        first = self.tools.spawnGearman(
            "-f", "fguq", "-u", "shared", "data", port=tap.port
        )
        second = self.tools.spawnGearman(
            "-f", "fguq", "-u", "shared", "data", port=tap.port
        )
        created = waitFor(
            lambda: (
                handles
                if len(
                    handles := [b for n, b in list(tap.responses) if n == JOB_CREATED]
                )
                == 2
                else None
            ),
            what="two JOB_CREATED",
        )
        self.assertEqual(created, [b"H:cli:1", b"H:cli:1"])
        self.assertEqual(self.tools.status(), b"fguq\t1\t0\t0\n.\n")
        worker = self.tools.spawnGearman("-w", "-f", "fguq", "-c", "1", "--", "rev")
        for client in (first, second):
            self.assertEqual(client.finish(), (0, b"atad", b""))
        self.assertEqual(worker.finish()[0], 0)
        # Its worker left and its job ended: the function is forgotten.
        self.assertEqual(self.tools.status(), b".\n")

    def test_binaryPayloadForeground(self) -> None:
        """
        Every byte value, NULs and newlines included, survives a round trip
        through a worker that runs C{cat}.
        """
        payload = bytes(range(256)) * 64 + b"\0\0end\n\0"
        worker = self.tools.spawnGearman("-w", "-f", "bincat", "-c", "1", "--", "cat")
        self.assertEqual(self.tools.submit("-f", "bincat", input=payload), payload)
        self.assertEqual(worker.finish()[0], 0)

    def test_binaryPayloadBackground(self) -> None:
        """
        A background job's binary payload reaches the worker intact.
        """
        payload = b"\0\xff\x00binary\r\n\x80" + bytes(range(256))
        self.tools.submit("-f", "binbg", "-b", input=payload)
        self.assertEqual(self.tools.submit("-w", "-f", "binbg", "-c", "1"), payload)

    def test_workerGrabsWithGrabJobAll(self) -> None:
        """
        libgearman's worker (C{gearman -w}) registers with CAN_DO, asks for
        jobs with GRAB_JOB_ALL, and gets an ordinary job as
        JOB_ASSIGN_UNIQ carrying its unique id.
        """
        tap = startTap(self, self.server.port)
        self.tools.submit("-f", "grab", "-b", "-u", "u-grab", "work")
        out = self.tools.submit("-w", "-f", "grab", "-c", "1", port=tap.port)
        self.assertEqual(out, b"work")
        requests = tap.types(tap.requests)
        self.assertIn(CAN_DO, requests)
        self.assertIn(GRAB_JOB_ALL, requests)
        self.assertNotIn(GRAB_JOB, requests)
        self.assertNotIn(GRAB_JOB_UNIQ, requests)
        assigned = [body for n, body in list(tap.responses) if n == JOB_ASSIGN_UNIQ]
        self.assertEqual(assigned, [b"H:cli:1\0grab\0u-grab\0work"])
        self.assertNotIn(JOB_ASSIGN, tap.types(tap.responses))
        self.assertNotIn(JOB_ASSIGN_ALL, tap.types(tap.responses))

    def test_workerSeveralFunctions(self) -> None:
        """
        A worker registered for two functions is listed by C{gearadmin
        --workers} with both, counted by C{--status} for each, and runs
        jobs of both.
        """
        worker = self.tools.spawnGearman("-w", "-f", "fa", "-f", "fb", "-c", "2")
        self.server.waitForWorkers(b"fa", 1)
        self.server.waitForWorkers(b"fb", 1)
        # libgearman registers them in an order of its own choosing.
        self.assertEqual(
            sorted(self.tools.status().splitlines()),
            [b".", b"fa\t0\t0\t1", b"fb\t0\t0\t1"],
        )
        listed = [
            line.split(b" ", 1)[1]
            for line in self.tools.admin("--workers").splitlines()[:-1]
        ]
        self.assertTrue(
            {b"127.0.0.1 - : fa fb", b"127.0.0.1 - : fb fa"} & set(listed), listed
        )
        self.tools.submit("-f", "fb", "-b", "to-b;")
        self.tools.submit("-f", "fa", "-b", "to-a;")
        code, out, err = worker.finish()
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(sorted(out.split(b";")), [b"", b"to-a", b"to-b"])
        # Its worker left and its jobs ended: both functions are forgotten.
        self.assertEqual(self.tools.status(), b".\n")

    def test_oneJobPerLine(self) -> None:
        """
        C{gearman -n} submits one foreground job per input line; each
        line's result comes back.
        """
        worker = self.tools.spawnGearman("-w", "-f", "lines", "-c", "3", "--", "rev")
        self.assertEqual(
            self.tools.submit("-f", "lines", "-n", input=b"abc\ndef\nxyz\n"),
            b"cba\nfed\nzyx\n",
        )
        self.assertEqual(worker.finish()[0], 0)
        # Its worker left and its jobs ended: the function is forgotten.
        self.assertEqual(self.tools.status(), b".\n")

    def test_failingCommandFailsJob(self) -> None:
        """
        A worker whose command fails sends WORK_FAIL: the foreground client
        reports the failure and exits 1.
        """
        worker = self.tools.spawnGearman(
            "-w", "-f", "failing", "-c", "1", "--", "false"
        )
        result = self.tools.gearman("-f", "failing", "x")
        self.assertEqual((result.returncode, result.stdout), (1, b""), result)
        self.assertIn(b"Job failed", result.stderr)
        worker.finish()
        # Its worker left and its job ended: the function is forgotten.
        self.assertEqual(self.tools.status(), b".\n")
