"""
The library's client, worker and admin client against Debian's gearmand
1.1.20: the interoperability half of their tests, here because it starts
gearmand (and the C{gearman} command-line tool) as processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import FailTest, TestCase

from tests.library import (
    LOOPBACK,
    ClientTestMixin,
    WorkerTestMixin,
    pause,
    poll,
    raised,
    rejects,
    serverName,
)
from tests.library import AdminTestCase as _Cleanups
from tests.server import freePort, peerBinary
from txgearman.client.admin import (
    FunctionStatus,
    GearmanAdminClient,
    JobInfo,
    PriorityStatus,
)
from txgearman.client.client import JobStatus
from txgearman.client.errors import AdminError, JobException
from txgearman.client.worker import WorkerJob
from txgearman.codec import PacketType
from txgearman.test.test_worker import Gate


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def startGearmand(case: TestCase) -> tuple[int, int]:
    """
    Start Debian's gearmand on a free loopback port, stopped when C{case}
    ends; skip (or fail under C{CI=true}) if it is missing.

    @return: its port and process id.
    """
    gearmand = peerBinary("gearmand", "gearman-job-server")
    directory = os.path.abspath(case.mktemp())
    os.makedirs(directory)
    port = freePort()
    pidFile = os.path.join(directory, "gearmand.pid")
    # With -d the command returns once gearmand has daemonized.
    logFile = os.path.join(directory, "gearmand.log")
    subprocess.run(
        [
            gearmand,
            "-p",
            str(port),
            "-L",
            LOOPBACK,
            "-t",
            "1",
            "-l",
            logFile,
            "-P",
            pidFile,
            "-d",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=30,
    )
    await poll(
        lambda: os.path.exists(pidFile) and os.path.getsize(pidFile), "the pid file"
    )
    with open(pidFile) as f:
        pid = int(f.read().strip())

    async def stop() -> None:
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            try:
                await poll(lambda: not _alive(pid), "gearmand to exit", 10)
            except FailTest:
                os.kill(pid, signal.SIGKILL)

    case.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    await poll(lambda: _accepts(port), "gearmand to listen")
    return port, pid


class ClientGearmandTests(ClientTestMixin, TestCase):
    """
    A L{GearmanClient} against Debian's gearmand, with the C{gearman}
    command-line tool as the worker.
    """

    async def startGearmand(self) -> int:
        port, _pid = await startGearmand(self)
        return port

    async def workers(self, port: int, function: bytes, count: int) -> None:
        """
        Wait until gearmand's C{status} shows C{count} workers for
        C{function}.
        """
        admin = GearmanAdminClient(serverName(port), reactor=reactor)
        self.addCleanup(admin.close)
        deadline = reactor.seconds() + 30
        while True:
            statuses = await admin.status()
            if any(s.function == function and s.workers == count for s in statuses):
                return
            if reactor.seconds() > deadline:
                raise FailTest(f"{function!r} never had {count} workers: {statuses}")
            await deferLater(reactor, 0.05)

    def startCliWorker(self, port: int, function: str, *command: str) -> None:
        """
        Run C{gearman -w -f function -- command...} until the test ends.
        """
        gearman = peerBinary("gearman")
        process = subprocess.Popen(
            [
                gearman,
                "-h",
                LOOPBACK,
                "-p",
                str(port),
                "-w",
                "-f",
                function,
                "--",
                *command,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def stop() -> None:
            process.kill()
            process.wait(timeout=30)

        self.addCleanup(stop)

    async def test_reverse(self) -> None:
        """
        A job run by C{gearman -w -f reverse -- rev} through gearmand
        comes back reversed.
        """
        port = await self.startGearmand()
        self.startCliWorker(port, "reverse", peerBinary("rev", "util-linux"))
        await self.workers(port, b"reverse", 1)
        client = self.startClient([port])
        self.assertEqual(await client.submit("reverse", b"hello\n"), b"olleh\n")

    async def test_backgroundAndStatus(self) -> None:
        """
        gearmand queues a background job and reports it by handle and by
        unique id; an unknown handle is not known.
        """
        port = await self.startGearmand()
        client = self.startClient([port])
        handle = await client.submitBackground("nobody", b"data", unique="gm-1")
        self.assertTrue(handle.startswith(b"H:"), handle)
        self.assertEqual(
            await client.getStatus(handle), JobStatus(handle, b"", True, False, 0, 0, 0)
        )
        status = await client.getStatusUnique("gm-1")
        self.assertEqual(
            (status.unique, status.known, status.running), (b"gm-1", True, False)
        )
        self.assertFalse((await client.getStatus(b"H:nowhere:1")).known)

    async def test_progressAndException(self) -> None:
        """
        Through gearmand, a L{GearmanWorker}'s progress reaches the
        callbacks, and its exception reaches the client as
        L{JobException} (gearmand honours the client's OPTION_REQ).
        """
        port = await self.startGearmand()

        def chatty(job: WorkerJob) -> bytes:
            job.sendStatus(1, 2)
            job.sendData(b"part")
            return b"whole"

        def broken(job: WorkerJob) -> None:
            raise ValueError("bad input")

        worker = self.startWorker([port], {"chatty": chatty, "broken": broken})
        await self.asleep(worker)
        client = self.startClient([port])
        events: list[object] = []
        result = await client.submit(
            "chatty",
            b"",
            onData=events.append,
            onStatus=lambda n, d: events.append((n, d)),
        )
        self.assertEqual((events, result), ([(1, 2), b"part"], b"whole"))
        exception = await raised(client.submit("broken", b"x"), JobException)
        self.assertEqual(exception.data, b"bad input")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class WorkerGearmandTests(WorkerTestMixin, TestCase):
    """
    A L{GearmanWorker} serving Debian's gearmand, with the C{gearman}
    command-line client submitting the jobs.
    """

    async def startGearmand(self) -> int:
        self.gearmanCli = peerBinary("gearman")
        port, _pid = await startGearmand(self)
        return port

    async def gearman(self, port: int, *args: str) -> tuple[bytes, bytes, int]:
        """Run the C{gearman} client; return its output and exit code."""
        out, err, code = await getProcessOutputAndValue(
            self.gearmanCli, ["-h", LOOPBACK, "-p", str(port), *args], env=os.environ
        )
        return out, err, code

    async def test_reverse(self) -> None:
        """
        C{gearman -f reverse -- hello} prints what the worker answered.
        """
        port = await self.startGearmand()
        worker = self.startWorker([port], {"reverse": lambda job: job.data[::-1]})
        await self.asleep(worker)
        out, err, code = await self.gearman(port, "-f", "reverse", "--", "hello")
        self.assertEqual((out, code), (b"olleh", 0), err)

    async def test_concurrencyAndData(self) -> None:
        """
        Against gearmand too, PRE_SLEEP and NOOP bring jobs to the worker,
        at most its concurrency run at once, and WORK_DATA reaches the
        client before the result.
        """
        port = await self.startGearmand()
        gate = Gate()

        def slow(job: WorkerJob) -> Deferred[bytes]:
            job.sendData(b"<" + job.data + b">")
            return gate(job).addCallback(lambda ignored: b"=" + job.data)

        worker = self.startWorker([port], {"slow": slow}, concurrency=2)
        await self.asleep(worker)
        runs = [
            Deferred.fromCoroutine(self.gearman(port, "-f", "slow", "--", f"job{n}"))
            for n in range(4)
        ]
        await poll(lambda: len(gate.jobs) == 2, "two jobs to start")
        await pause(0.3)
        self.assertEqual(len(gate.jobs), 2)
        for _ in range(4):
            await poll(lambda: gate.waiting, "a running job")
            gate.release()
        outputs = sorted([(await run)[0] for run in runs])
        self.assertEqual(outputs, [b"<job%d>=job%d" % (n, n) for n in range(4)])
        self.assertEqual(gate.most, 2)

    async def test_handBack(self) -> None:
        """
        A job handed back at the stop timeout is requeued by gearmand and
        answered by the next worker.
        """
        port = await self.startGearmand()
        gate = Gate()
        first = self.startWorker([port], {"f": gate}, stopTimeout=0.5)
        await self.asleep(first)
        run = Deferred.fromCoroutine(self.gearman(port, "-f", "f", "--", "data"))
        await poll(lambda: gate.waiting, "the job to start")
        await first.stopService()
        self.startWorker([port], {"f": lambda job: b"second:" + job.data})
        out, err, code = await run
        self.assertEqual((out, code), (b"second:data", 0), err)


class AdminGearmandTests(_Cleanups):
    """
    The client against Debian's gearmand 1.1.20.
    """

    async def gearmand(self) -> tuple[int, int]:
        """
        Start gearmand on a free port.

        @return: its port and process id.
        """
        return await startGearmand(self)

    async def test_commands(self) -> None:
        """
        gearmand's listings, C{OK} and C{ERR} replies parse.
        """
        port, pid = await self.gearmand()
        worker = await self.connect(port)
        worker.send(PacketType.SET_CLIENT_ID, b"wk-A")
        worker.send(PacketType.CAN_DO, b"resize")
        await worker.sync()
        submitter = await self.connect(port)
        handle = await submitter.submit(b"resize", b"img-1")
        admin = self.adminClient(port)

        self.assertEqual(await admin.status(), [FunctionStatus(b"resize", 1, 0, 1)])
        self.assertEqual(
            await admin.priorityStatus(), [PriorityStatus(b"resize", 0, 1, 0, 1)]
        )
        workers = await admin.workers()
        self.assertEqual(len(workers), 3)
        self.assertEqual(
            sorted((w.address, w.clientId, w.functions) for w in workers),
            [
                ("127.0.0.1", b"-", ()),
                ("127.0.0.1", b"-", ()),
                ("127.0.0.1", b"wk-A", (b"resize",)),
            ],
        )
        self.assertEqual(await admin.showJobs(), [JobInfo(handle, 0, 0, True)])
        self.assertEqual(await admin.showUniqueJobs(), [b"img-1"])
        self.assertTrue((await admin.version()).startswith("1.1."))
        self.assertEqual(await admin.getpid(), pid)
        self.assertTrue(await admin.verbose())

        # CRLF line ends: gearmand 1.1.20 would create "fres" from "fresh\n".
        await admin.createFunction(b"fresh")
        self.assertIn(FunctionStatus(b"fresh", 0, 0, 0), await admin.status())
        await admin.dropFunction(b"fresh")
        await admin.maxQueue(b"resize", (1, 1, 1))
        error = await rejects(admin.cancelJob(b"H:nope:1"), AdminError)
        self.assertEqual((error.code, error.text), ("UNKNOWN_JOB", ""))
        error = await rejects(admin.dropFunction(b"nope"), AdminError)
        self.assertEqual((error.code, error.text), ("", "function not found"))
        error = await rejects(admin.shutdown(graceful=True), AdminError)
        self.assertEqual(error.code, "UNKNOWN_COMMAND")
        await admin.cancelJob(handle)
        # gearmand keeps a cancelled job, flagged, until a worker reaps it.
        self.assertEqual(await admin.showJobs(), [JobInfo(handle, 0, 1, False)])
