"""
The library's client, worker and admin client against Debian's gearmand
1.1.20: the interoperability half of their tests, here because it starts
gearmand (and the C{gearman} command-line tool) as processes.

The library runs on the global reactor, in this process; gearmand and the
tools are driven through L{tests.fixtures}.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fixtures import (
    LOOPBACK,
    GearmanTools,
    connectRaw,
    peerBinary,
    raised,
    startGearmand,
    waitForAsync,
    waitForWorkers,
)
from txgearman.client.admin import (
    FunctionStatus,
    GearmanAdminClient,
    JobInfo,
    PriorityStatus,
)
from txgearman.client.client import GearmanClient, JobStatus
from txgearman.client.errors import AdminError, JobException
from txgearman.client.worker import GearmanWorker, WorkerJob
from txgearman.test.fakes import Gate

#: How long a test waits for anything: generous, for a loaded machine.
WAIT = 30.0

_E = TypeVar("_E", bound=BaseException)


class GearmandTestCase(TestCase):
    """
    A gearmand of the test's own on L{port}, and the library's workers and
    clients connected to it; all stopped by the test's cleanups.
    """

    def setUp(self) -> None:
        self.gearmand = startGearmand(self)
        self.port = self.gearmand.port

    def startWorker(
        self, functions: dict[str, Callable[[WorkerJob], Any]], **kwargs: Any
    ) -> GearmanWorker:
        kwargs.setdefault("stopTimeout", 5.0)
        worker = GearmanWorker([f"tcp:{LOOPBACK}:{self.port}"], reactor, **kwargs)
        for name, function in functions.items():
            worker.register(name, function)
        worker.startService()

        def stop() -> Deferred[None] | None:
            return worker.stopService() if worker.running else None

        self.addCleanup(stop)
        return worker

    async def asleep(self, worker: GearmanWorker) -> None:
        """
        Wait until C{worker} is connected, has announced its functions and
        been told there is no job.
        """

        def ready() -> bool:
            live = worker.connections
            return len(live) == 1 and all(c.sleeping for c in live)

        await waitForAsync(ready, WAIT, "a sleeping worker connection")

    def startClient(self) -> GearmanClient:
        client = GearmanClient(
            [f"tcp:{LOOPBACK}:{self.port}"],
            reactor=reactor,
            timeout=WAIT,
            clientId=b"client-under-test",
        )
        client.startService()

        def stop() -> Deferred[Any] | None:
            return client.stopService() if client.running else None

        self.addCleanup(stop)
        return client

    def adminClient(self) -> GearmanAdminClient:
        client = GearmanAdminClient(
            TCP4ClientEndpoint(reactor, LOOPBACK, self.port),
            timeout=10.0,
            reactor=reactor,
        )
        self.addCleanup(client.close)
        return client


class ClientGearmandTests(GearmandTestCase):
    """
    A L{GearmanClient} against gearmand, with the C{gearman} command-line
    tool as the worker.
    """

    async def test_reverse(self) -> None:
        """
        A job run by C{gearman -w -f reverse -- rev} through gearmand
        comes back reversed.
        """
        rev = peerBinary("rev", "util-linux")
        GearmanTools(self, self.port).spawnGearman("-w", "-f", "reverse", "--", rev)
        waitForWorkers(self.port, b"reverse", 1, WAIT)
        client = self.startClient()
        self.assertEqual(await client.submit("reverse", b"hello\n"), b"olleh\n")

    async def test_backgroundAndStatus(self) -> None:
        """
        gearmand queues a background job and reports it by handle and by
        unique id; an unknown handle is not known.
        """
        client = self.startClient()
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

        def chatty(job: WorkerJob) -> bytes:
            job.sendStatus(1, 2)
            job.sendData(b"part")
            return b"whole"

        def broken(job: WorkerJob) -> None:
            raise ValueError("bad input")

        worker = self.startWorker({"chatty": chatty, "broken": broken})
        await self.asleep(worker)
        client = self.startClient()
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


class WorkerGearmandTests(GearmandTestCase):
    """
    A L{GearmanWorker} serving gearmand, with the C{gearman} command-line
    client submitting the jobs.
    """

    def setUp(self) -> None:
        super().setUp()
        self.tools = GearmanTools(self, self.port)

    async def gearman(self, *args: str) -> tuple[bytes, bytes, int]:
        """
        Run the C{gearman} client, letting the reactor (and so the worker)
        run meanwhile; return its output and exit code.
        """
        executable, *argv = self.tools.gearmanArgv(*args)
        out, err, code = await getProcessOutputAndValue(
            executable, argv, env=os.environ
        )
        return out, err, code

    async def test_reverse(self) -> None:
        """
        C{gearman -f reverse -- hello} prints what the worker answered.
        """
        worker = self.startWorker({"reverse": lambda job: job.data[::-1]})
        await self.asleep(worker)
        out, err, code = await self.gearman("-f", "reverse", "--", "hello")
        self.assertEqual((out, code), (b"olleh", 0), err)

    async def test_concurrencyAndData(self) -> None:
        """
        Against gearmand too, PRE_SLEEP and NOOP bring jobs to the worker,
        at most its concurrency run at once, and WORK_DATA reaches the
        client before the result.
        """
        gate = Gate()

        def slow(job: WorkerJob) -> Deferred[bytes]:
            job.sendData(b"<" + job.data + b">")
            return gate(job).addCallback(lambda ignored: b"=" + job.data)

        worker = self.startWorker({"slow": slow}, concurrency=2)
        await self.asleep(worker)
        runs = [
            Deferred.fromCoroutine(self.gearman("-f", "slow", "--", f"job{n}"))
            for n in range(4)
        ]
        await waitForAsync(lambda: len(gate.jobs) == 2, WAIT, "two jobs to start")
        # The time a third job would need to start, were it let through.
        await deferLater(reactor, 0.3)
        self.assertEqual(len(gate.jobs), 2)
        for _ in range(4):
            await waitForAsync(lambda: gate.waiting, WAIT, "a running job")
            gate.release()
        outputs = sorted([(await run)[0] for run in runs])
        self.assertEqual(outputs, [b"<job%d>=job%d" % (n, n) for n in range(4)])
        self.assertEqual(gate.most, 2)

    async def test_handBack(self) -> None:
        """
        A job handed back at the stop timeout is requeued by gearmand and
        answered by the next worker.
        """
        gate = Gate()
        first = self.startWorker({"f": gate}, stopTimeout=0.5)
        await self.asleep(first)
        run = Deferred.fromCoroutine(self.gearman("-f", "f", "--", "data"))
        await waitForAsync(lambda: gate.waiting, WAIT, "the job to start")
        await first.stopService()
        self.startWorker({"f": lambda job: b"second:" + job.data})
        out, err, code = await run
        self.assertEqual((out, code), (b"second:data", 0), err)


class AdminGearmandTests(GearmandTestCase):
    """
    A L{GearmanAdminClient} against gearmand.
    """

    timeout = 60

    async def test_commands(self) -> None:
        """
        gearmand's listings, C{OK} and C{ERR} replies parse.
        """
        worker = connectRaw(self, self.port)
        worker.send("SET_CLIENT_ID", b"wk-A")
        worker.send("CAN_DO", b"resize")
        worker.sync()
        submitter = connectRaw(self, self.port)
        handle = submitter.submit("SUBMIT_JOB_BG", b"resize", b"img-1", b"payload")
        admin = self.adminClient()

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
        self.assertEqual(await admin.getpid(), self.gearmand.pid)
        self.assertTrue(await admin.verbose())

        # CRLF line ends: gearmand 1.1.20 would create "fres" from "fresh\n".
        await admin.createFunction(b"fresh")
        self.assertIn(FunctionStatus(b"fresh", 0, 0, 0), await admin.status())
        await admin.dropFunction(b"fresh")
        await admin.maxQueue(b"resize", (1, 1, 1))
        error = await raised(admin.cancelJob(b"H:nope:1"), AdminError)
        self.assertEqual((error.code, error.text), ("UNKNOWN_JOB", ""))
        error = await raised(admin.dropFunction(b"nope"), AdminError)
        self.assertEqual((error.code, error.text), ("", "function not found"))
        error = await raised(admin.shutdown(graceful=True), AdminError)
        self.assertEqual(error.code, "UNKNOWN_COMMAND")
        await admin.cancelJob(handle)
        # gearmand keeps a cancelled job, flagged, until a worker reaps it.
        self.assertEqual(await admin.showJobs(), [JobInfo(handle, 0, 1, False)])
