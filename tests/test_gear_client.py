"""
System tests: the OpenStack Python Gearman library C{gear} (a client and a
worker of its own, threaded and blocking) against a real C{twistd gearman}.

gear runs its I/O in threads of its own; the tests wait for its results
with timeouts, so a lost packet fails the test instead of hanging it.
"""

from __future__ import annotations

import queue
import threading

import gear
from twisted.trial.unittest import FailTest, TestCase

import txgearman
from tests.fixtures import LOOPBACK, TwistdServer, startServer, waitFor

_TIMEOUT = 10.0


class GearLibraryTests(TestCase):
    """
    gear's C{Client} and C{Worker} against the server.
    """

    def setUp(self) -> None:
        self.server: TwistdServer = startServer(self, "--job-handle-prefix", "H:gear")

    # -- helpers ------------------------------------------------------------

    def client(self, clientId: str = "test-client") -> gear.Client:
        """
        A connected gear client, shut down by a cleanup.
        """
        client = gear.Client(clientId)
        self.addCleanup(client.shutdown)
        client.addServer(LOOPBACK, self.server.port)
        client.waitForServer(timeout=_TIMEOUT)
        return client

    def worker(self, *functions: str, clientId: str = "test-worker") -> gear.Worker:
        """
        A connected gear worker for C{functions}, shut down by a cleanup,
        returned once the server counts it for each of them.
        """
        worker = gear.Worker(clientId)
        self.addCleanup(worker.shutdown)
        worker.addServer(LOOPBACK, self.server.port)
        worker.waitForServer(timeout=_TIMEOUT)
        for name in functions:
            worker.registerFunction(name)
        for name in functions:
            self.server.waitForWorkers(name.encode(), 1)
        return worker

    def getJob(self, worker: gear.Worker) -> gear.WorkerJob:
        """
        The next job assigned to C{worker}, waited for in a thread.
        """
        result: queue.Queue[object] = queue.Queue()

        def get() -> None:
            try:
                result.put(worker.getJob())
            except BaseException as e:
                result.put(e)

        threading.Thread(target=get, daemon=True).start()
        try:
            job = result.get(timeout=_TIMEOUT)
        except queue.Empty:
            worker.stopWaitingForJobs()
            raise FailTest(
                f"no job assigned within {_TIMEOUT}s\n{self.server.log()}"
            ) from None
        if isinstance(job, BaseException):
            raise job
        assert isinstance(job, gear.WorkerJob)
        return job

    def waitComplete(self, job: gear.Job) -> None:
        waitFor(lambda: job.complete, _TIMEOUT, what=f"{job!r} to complete")

    def admin(self, client: gear.Client, request: gear.AdminRequest) -> bytes:
        """
        Send an admin request over one of C{client}'s connections.
        """
        client.getConnection().sendAdminRequest(request, timeout=_TIMEOUT)
        response: bytes = request.response
        return response

    def getStatus(self, client: gear.Client, job: gear.Job) -> None:
        """
        Ask for C{job}'s status (GET_STATUS) and wait for the answer, which
        gear writes into C{job.known} and C{job.running}.
        """
        job.known = None
        packet = gear.Packet(gear.constants.REQ, gear.constants.GET_STATUS, job.handle)
        job.connection.sendPacket(packet)
        waitFor(lambda: job.known is not None, _TIMEOUT, what="STATUS_RES")

    # -- tests ----------------------------------------------------------------

    def test_foregroundJob(self) -> None:
        """
        A foreground job reaches the worker with its name, unique id and
        binary arguments, and the client gets the worker's result.
        """
        worker = self.worker("reverse")
        client = self.client()
        job = gear.Job("reverse", b"abc\0def\xff", unique="fg-1")
        client.submitJob(job, timeout=_TIMEOUT)
        self.assertEqual(job.handle, b"H:gear:1")
        assigned = self.getJob(worker)
        self.assertEqual(
            (assigned.handle, assigned.name, assigned.unique, assigned.arguments),
            (b"H:gear:1", "reverse", b"fg-1", b"abc\0def\xff"),
        )
        assigned.sendWorkComplete(assigned.arguments[::-1])
        self.waitComplete(job)
        self.assertEqual((job.data, job.failure), ([b"\xfffed\0cba"], False))

    def test_backgroundJob(self) -> None:
        """
        A background job is queued (seen through gear's admin requests and
        GET_STATUS), runs once a worker arrives, and is then unknown.
        """
        client = self.client()
        job = gear.Job("bgfunc", b"payload", unique="bg-1")
        client.submitJob(job, background=True, timeout=_TIMEOUT)
        self.assertEqual(job.handle, b"H:gear:1")
        self.assertEqual(
            self.admin(client, gear.StatusAdminRequest()), b"bgfunc\t1\t0\t0\n.\n"
        )
        self.getStatus(client, job)
        self.assertEqual((job.known, job.running), (True, False))

        worker = self.worker("bgfunc")
        assigned = self.getJob(worker)
        self.assertEqual((assigned.unique, assigned.arguments), (b"bg-1", b"payload"))
        self.getStatus(client, job)
        self.assertEqual((job.known, job.running), (True, True))
        self.assertEqual(
            self.admin(client, gear.StatusAdminRequest()), b"bgfunc\t1\t1\t1\n.\n"
        )
        assigned.sendWorkComplete(b"ignored")
        waitFor(
            lambda: self.server.admin(b"status") == b"bgfunc\t0\t0\t1\n.\n",
            what="the job to finish",
        )
        self.getStatus(client, job)
        self.assertEqual((job.known, job.running), (False, False))

    def test_priorities(self) -> None:
        """
        Background jobs submitted LOW, NORMAL, HIGH run HIGH, NORMAL, LOW;
        jobs of one priority run in submission order.
        """
        client = self.client()
        for name, precedence in (
            (b"low-1", gear.PRECEDENCE_LOW),
            (b"normal-1", gear.PRECEDENCE_NORMAL),
            (b"high-1", gear.PRECEDENCE_HIGH),
            (b"low-2", gear.PRECEDENCE_LOW),
            (b"high-2", gear.PRECEDENCE_HIGH),
        ):
            client.submitJob(
                gear.Job("prio", name),
                background=True,
                precedence=precedence,
                timeout=_TIMEOUT,
            )
        worker = self.worker("prio")
        order = []
        for _ in range(5):
            assigned = self.getJob(worker)
            order.append(assigned.arguments)
            assigned.sendWorkComplete()
        self.assertEqual(order, [b"high-1", b"high-2", b"normal-1", b"low-1", b"low-2"])

    def test_foregroundPriorities(self) -> None:
        """
        Foreground HIGH and LOW submissions are run and answered too, HIGH
        first.
        """
        client = self.client()
        low = gear.Job("fgprio", b"low")
        high = gear.Job("fgprio", b"high")
        client.submitJob(low, precedence=gear.PRECEDENCE_LOW, timeout=_TIMEOUT)
        client.submitJob(high, precedence=gear.PRECEDENCE_HIGH, timeout=_TIMEOUT)
        worker = self.worker("fgprio")
        for expected in (b"high", b"low"):
            assigned = self.getJob(worker)
            self.assertEqual(assigned.arguments, expected)
            assigned.sendWorkComplete(expected.upper())
        self.waitComplete(low)
        self.waitComplete(high)
        self.assertEqual((high.data, low.data), ([b"HIGH"], [b"LOW"]))

    def test_progressReachesClient(self) -> None:
        """
        WORK_STATUS, WORK_DATA and WORK_WARNING from the worker reach the
        foreground client before the result.
        """
        worker = self.worker("progress")
        client = self.client()
        job = gear.Job("progress", b"")
        client.submitJob(job, timeout=_TIMEOUT)
        assigned = self.getJob(worker)
        assigned.sendWorkStatus(1, 4)
        assigned.sendWorkData(b"part")
        assigned.sendWorkWarning(b"warn")
        assigned.sendWorkComplete(b"done")
        self.waitComplete(job)
        self.assertEqual(
            (job.numerator, job.denominator, job.data, job.warning, job.failure),
            (b"1", b"4", [b"part", b"warn", b"done"], True, False),
        )

    def test_workFail(self) -> None:
        """
        A worker's WORK_FAIL completes the client's job as failed.
        """
        worker = self.worker("failing")
        client = self.client()
        job = gear.Job("failing", b"")
        client.submitJob(job, timeout=_TIMEOUT)
        self.getJob(worker).sendWorkFail()
        self.waitComplete(job)
        self.assertEqual((job.failure, job.exception, job.data), (True, None, []))

    def test_workException(self) -> None:
        """
        WORK_EXCEPTION reaches a client that set the C{exceptions} option as
        WORK_EXCEPTION with its data, and one that did not as WORK_FAIL.
        """
        worker = self.worker("raising")
        asking = self.client("asking")
        self.assertTrue(asking.setOption("exceptions", timeout=_TIMEOUT))
        plain = self.client("plain")
        withOption = gear.Job("raising", b"1")
        without = gear.Job("raising", b"2")
        asking.submitJob(withOption, timeout=_TIMEOUT)
        plain.submitJob(without, timeout=_TIMEOUT)
        for _ in range(2):
            self.getJob(worker).sendWorkException(b"boom")
        self.waitComplete(withOption)
        self.waitComplete(without)
        self.assertEqual((withOption.failure, withOption.exception), (True, b"boom"))
        self.assertEqual((without.failure, without.exception), (True, None))

    def test_uniqueCoalesces(self) -> None:
        """
        Two clients submitting the same function and unique id share one
        job: the worker runs it once and both get its result.
        """
        first, second = self.client("first"), self.client("second")
        one = gear.Job("shared", b"data", unique="same")
        two = gear.Job("shared", b"data", unique="same")
        first.submitJob(one, timeout=_TIMEOUT)
        second.submitJob(two, timeout=_TIMEOUT)
        self.assertEqual(one.handle, two.handle)
        self.assertEqual(self.server.admin(b"status"), b"shared\t1\t0\t0\n.\n")
        worker = self.worker("shared")
        self.getJob(worker).sendWorkComplete(b"result")
        self.waitComplete(one)
        self.waitComplete(two)
        self.assertEqual((one.data, two.data), ([b"result"], [b"result"]))
        self.assertEqual(self.server.admin(b"status"), b"shared\t0\t0\t1\n.\n")

    def test_adminRequests(self) -> None:
        """
        gear's admin requests (show jobs, show unique jobs, workers,
        version, cancel job) get complete replies in gearmand's formats.
        """
        worker = self.worker("adm", clientId="gear-worker")
        client = self.client()
        job = gear.Job("adm", b"", unique="adm-1")
        client.submitJob(
            job, background=True, precedence=gear.PRECEDENCE_LOW, timeout=_TIMEOUT
        )
        assigned = self.getJob(worker)
        self.assertEqual(
            self.admin(client, gear.StatusAdminRequest()), b"adm\t1\t1\t1\n.\n"
        )
        self.assertEqual(
            self.admin(client, gear.ShowJobsAdminRequest()), b"H:gear:1\t0\t0\t1\n.\n"
        )
        self.assertEqual(
            self.admin(client, gear.ShowUniqueJobsAdminRequest()), b"adm-1\n.\n"
        )
        workers = self.admin(client, gear.WorkersAdminRequest()).split(b"\n")
        self.assertEqual(workers[-2:], [b".", b""])
        self.assertEqual(
            sorted(line.split(b" ", 2)[2] for line in workers[:-2]),
            [b"- :", b"gear-worker : adm"],
        )
        self.assertEqual(
            self.admin(client, gear.VersionAdminRequest()),
            b"OK " + txgearman.__version__.encode() + b"\n",
        )
        self.assertEqual(
            self.admin(client, gear.CancelJobAdminRequest("H:gear:1")), b"OK\r\n"
        )
        self.assertEqual(
            self.admin(client, gear.CancelJobAdminRequest("H:gear:1")),
            b"ERR UNKNOWN_JOB\r\n",
        )
        # The worker's late result for the cancelled job is discarded.
        assigned.sendWorkComplete(b"late")
        self.assertEqual(
            self.admin(client, gear.StatusAdminRequest()), b"adm\t0\t0\t1\n.\n"
        )
        self.assertEqual(self.admin(client, gear.ShowJobsAdminRequest()), b".\n")
