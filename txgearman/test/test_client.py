"""
Tests for L{txgearman.client.GearmanClient}, in memory on
L{txgearman.testing.GearmanPump}: against txgearman servers (with a
L{txgearman.client.worker.GearmanWorker} doing the jobs), and against a
scripted server that drops connections at chosen moments (the tests over
TCP and against gearmand are in C{tests/}).

Where a job went is read from each server's core; servers get distinct
handle prefixes so that a handle tells which server made it.  Bytes move
when the pump flushes, and time passes only when a test advances the
pump's clock.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from txgearman.client.client import GearmanClient, JobStatus
from txgearman.client.errors import (
    GearmanConnectionLost,
    JobException,
    JobFailed,
    NoServerAvailable,
    ServerError,
)
from txgearman.client.worker import WorkerJob
from txgearman.codec import Decoder, Packet, PacketType, Priority, encodeResponse
from txgearman.server.job import JobState
from txgearman.server.service import GearmanServerService
from txgearman.test.test_worker import RECONNECT, WorkerTestCase
from txgearman.testing import DEFAULT_ADDRESS

_P = PacketType
CLIENT_ID = b"client-under-test"


class Outcomes:
    """
    Keeps the outcome of Deferreds that a test inspects later, so that
    none is left with an unhandled failure.
    """

    def __init__(self) -> None:
        self.results: dict[object, object] = {}

    def watch(self, key: object, d: Deferred[Any]) -> None:
        def done(result: object) -> None:
            self.results[key] = result

        d.addBoth(done)

    def count(self) -> int:
        return len(self.results)


class Hold:
    """
    A worker function whose jobs end when the test says so.

    @ivar jobs: the jobs started, in order.
    @ivar pending: the Deferred of each job not yet released, by handle.
    """

    def __init__(self) -> None:
        self.jobs: list[WorkerJob] = []
        self.pending: dict[bytes, Deferred[bytes]] = {}

    def __call__(self, job: WorkerJob) -> Deferred[bytes]:
        self.jobs.append(job)
        d: Deferred[bytes] = Deferred(lambda d: None)
        self.pending[job.handle] = d
        return d

    def release(self, handle: bytes, result: bytes) -> None:
        d = self.pending.pop(handle)
        if not d.called:  # Not cancelled by a worker that stopped.
            d.callback(result)

    def releaseAll(self) -> None:
        for handle in list(self.pending):
            self.release(handle, b"released")


class ClientTestCase(WorkerTestCase):
    """
    Servers with a handle prefix, workers and clients on a pump.
    """

    def startClient(
        self,
        addresses: list[str],
        timeout: float = 30.0,
        clientId: bytes = CLIENT_ID,
    ) -> GearmanClient:
        client = GearmanClient(
            [self.pump.endpoint(address) for address in addresses],
            reactor=self.pump.clock,
            timeout=timeout,
            clientId=clientId,
        )
        client.startService()
        self.services.append(client)
        return client

    def assertClientOn(
        self, service: GearmanServerService, clientId: bytes = CLIENT_ID, count: int = 1
    ) -> None:
        """
        Once the pump has flushed, C{count} connections named C{clientId}
        are up on C{service}: a client names its connection as soon as it
        is up, so then the client uses it.
        """
        self.pump.flush()
        named = [s for s in service.core.sessions if s.clientId == clientId]
        self.assertGreaterEqual(
            len(named), count, f"{count} connections of {clientId!r}"
        )


class ClientTests(ClientTestCase):
    """
    A L{GearmanClient} against txgearman servers.
    """

    def test_result(self) -> None:
        """
        C{submit} fires with the job's result; functions and unique ids
        may be given as C{str}, data may hold NULs.
        """
        self.startServer()
        self.startWorker([DEFAULT_ADDRESS], {"reverse": lambda job: job.data[::-1]})
        client = self.startClient([DEFAULT_ADDRESS])
        result = self.pump.result
        self.assertEqual(result(client.submit("reverse", b"a\0bc")), b"cb\0a")
        self.assertEqual(
            result(client.submit(b"reverse", b"xyz", unique="u-1")), b"zyx"
        )
        for priority in Priority:
            self.assertEqual(
                result(client.submit("reverse", b"pr", priority=priority)), b"rp"
            )
        self.assertEqual(result(client.echo(b"ping\0")), b"ping\0")

    def test_strArguments(self) -> None:
        """
        Data, unique ids, handles, echoed data and the client id may be
        C{str}, sent as UTF-8, as the documentation says.
        """
        self.startServer()
        self.startWorker([DEFAULT_ADDRESS], {"reverse": lambda job: job.data[::-1]})
        client = self.startClient([DEFAULT_ADDRESS], clientId="caf\u00e9")  # type: ignore[arg-type]
        result = self.pump.result
        self.assertEqual(result(client.submit("reverse", "abc")), b"cba")  # type: ignore[arg-type]
        handle = result(client.submitBackground("reverse", "\u00e9t\u00e9", unique="u"))  # type: ignore[arg-type]
        self.assertEqual(result(client.getStatus(handle.decode())).handle, handle)
        self.assertEqual(result(client.echo("h\u00e9")), "h\u00e9".encode())
        self.assertEqual(client.clientId, "caf\u00e9".encode())

    def test_wrongArgumentRefusedAtOnce(self) -> None:
        """
        An argument neither bytes nor str is refused at once with a
        L{TypeError} naming it; nothing is sent, and the jobs in flight on
        the same connection are answered as if nothing had happened.
        """
        self.startServer()
        hold = Hold()
        self.startWorker([DEFAULT_ADDRESS], {"hold": hold})
        client = self.startClient([DEFAULT_ADDRESS])
        inFlight = client.submit("hold", b"first")
        self.pump.flush()
        for call, name in [
            (lambda: client.submit("hold", 42), "data"),  # type: ignore[arg-type]
            (lambda: client.submit(7, b"x"), "function"),  # type: ignore[arg-type]
            (lambda: client.submitBackground("hold", b"x", unique=3.5), "unique"),  # type: ignore[arg-type]
            (lambda: client.echo(None), "data"),  # type: ignore[arg-type]
            (lambda: client.getStatusUnique(1), "unique"),  # type: ignore[arg-type]
        ]:
            error = self.assertRaises(TypeError, call)
            self.assertIn(f"{name} must be bytes or str", str(error))
        self.assertEqual(self.pump.result(client.echo(b"still")), b"still")
        [job] = hold.jobs
        hold.release(job.handle, b"done")
        self.assertEqual(self.pump.result(inFlight), b"done")
        self.assertRaises(TypeError, GearmanClient, ["x"], clientId=5)

    def test_drainingServerSkipped(self) -> None:
        """
        A server that answers a submit with C{ERROR SERVER_DRAINING} is
        skipped: the job goes to another server.  When every server is
        draining, the submit fails with that error.
        """
        one = self.startServer("one", handlePrefix=b"one")
        two = self.startServer("two", handlePrefix=b"two")
        self.startWorker(["one", "two"], {"up": lambda job: job.data.upper()})
        client = self.startClient(["one", "two"])
        self.assertClientOn(one)
        self.assertClientOn(two)
        one.core.drain()
        for n in range(4):
            self.assertEqual(
                self.pump.result(client.submit("up", b"x%d" % (n,))), b"X%d" % (n,)
            )
            handle = self.pump.result(
                client.submitBackground("up", b"bg", unique=b"u%d" % (n,))
            )
            self.assertTrue(handle.startswith(b"two:"), handle)
        two.core.drain()
        error = self.assertRaises(
            ServerError, self.pump.result, client.submitBackground("up", b"late")
        )
        self.assertEqual(error.code, b"SERVER_DRAINING")

    def test_callbackStyle(self) -> None:
        """
        Without C{async def}: a chain of callbacks submits a job, checks
        its result, queues a background job and asks for its status, and
        an errback sees a failed job's L{JobFailed}.
        """

        def fail(job: WorkerJob) -> None:
            raise JobFailed(job.handle)

        self.startServer()
        self.startWorker(
            [DEFAULT_ADDRESS], {"upper": lambda job: job.data.upper(), "fail": fail}
        )
        client = self.startClient([DEFAULT_ADDRESS])
        handles: list[bytes] = []

        def remember(handle: bytes) -> Deferred[JobStatus]:
            handles.append(handle)
            return client.getStatus(handle)

        def checkStatus(status: JobStatus) -> Deferred[bytes]:
            self.assertEqual(status.handle, handles[0])
            return client.submit("fail", b"x")

        def unexpected(result: object) -> None:
            self.fail(f"the job should have failed, got {result!r}")

        def failed(failure: Failure) -> None:
            failure.trap(JobFailed)
            assert isinstance(failure.value, JobFailed)
            self.assertTrue(failure.value.handle)

        d: Deferred[Any] = client.submit("upper", b"abc")
        d.addCallback(self.assertEqual, b"ABC")
        d.addCallback(lambda _: client.submitBackground("upper", b"bg"))
        d.addCallback(remember)
        d.addCallback(checkStatus)
        d.addCallbacks(unexpected, failed)
        self.pump.flush()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(len(handles), 1)

    def test_progress(self) -> None:
        """
        C{onStatus}, C{onData} and C{onWarning} are called as the worker
        reports, in its order, before the result.
        """
        self.startServer()

        async def chatty(job: WorkerJob) -> bytes:
            job.sendStatus(1, 3)
            job.sendData(b"first")
            await deferLater(self.pump.clock, 0.01)
            job.sendWarning(b"careful")
            job.sendStatus(3, 3)
            return b"all"

        self.startWorker([DEFAULT_ADDRESS], {"chatty": chatty})
        client = self.startClient([DEFAULT_ADDRESS])
        events: list[tuple[str, object]] = []
        submitted = client.submit(
            "chatty",
            b"",
            onData=lambda data: events.append(("data", data)),
            onWarning=lambda data: events.append(("warning", data)),
            onStatus=lambda n, d: events.append(("status", (n, d))),
        )
        result = self.pump.result(submitted, within=1)
        events.append(("result", result))
        self.assertEqual(
            events,
            [
                ("status", (1, 3)),
                ("data", b"first"),
                ("warning", b"careful"),
                ("status", (3, 3)),
                ("result", b"all"),
            ],
        )

    def test_failedAndException(self) -> None:
        """
        A worker raising L{JobFailed} fails the submit with L{JobFailed};
        any other exception fails it with L{JobException} carrying the
        exception's text (the client asked for WORK_EXCEPTION packets).
        """
        self.startServer()

        def fail(job: WorkerJob) -> None:
            raise JobFailed(job.handle)

        def broken(job: WorkerJob) -> None:
            raise KeyError("missing thing")

        self.startWorker([DEFAULT_ADDRESS], {"fail": fail, "broken": broken})
        client = self.startClient([DEFAULT_ADDRESS])
        failing = client.submit("fail", b"x")
        self.pump.flush()
        failed = self.failureResultOf(failing, JobFailed).value
        self.assertTrue(failed.handle)
        broke = client.submit("broken", b"x")
        self.pump.flush()
        exception = self.failureResultOf(broke, JobException).value
        self.assertEqual(exception.data, b"'missing thing'")
        self.assertTrue(exception.handle)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_backgroundAndStatus(self) -> None:
        """
        A background job's handle leads to its status: queued, then
        running with its progress (by handle and by unique id), then
        unknown once done.
        """
        server = self.startServer()
        client = self.startClient([DEFAULT_ADDRESS])
        result = self.pump.result
        handle = result(client.submitBackground("hold", b"data", unique="bg-1"))
        self.assertEqual(
            result(client.getStatus(handle)),
            JobStatus(handle, b"", True, False, 0, 0, 0),
        )
        self.assertEqual(
            result(client.getStatusUnique("bg-1")),
            JobStatus(b"", b"bg-1", True, False, 0, 0, 0),
        )
        hold = Hold()
        self.startWorker([DEFAULT_ADDRESS], {"hold": hold})
        self.pump.flush()
        [job] = hold.jobs
        self.assertEqual((job.handle, job.unique, job.data), (handle, b"bg-1", b"data"))
        job.sendStatus(2, 5)
        self.pump.flush()
        self.assertEqual(server.core.jobs[handle].numerator, 2, "the status arrived")
        self.assertEqual(
            result(client.getStatus(handle)),
            JobStatus(handle, b"", True, True, 2, 5, 0),
        )
        self.assertEqual(
            result(client.getStatusUnique(b"bg-1")),
            JobStatus(b"", b"bg-1", True, True, 2, 5, 0),
        )
        hold.release(handle, b"done")
        self.pump.flush()
        self.assertTrue(server.core.idle, "the job ended")
        self.assertEqual(
            result(client.getStatus(handle)),
            JobStatus(handle, b"", False, False, 0, 0, 0),
        )
        self.assertFalse(result(client.getStatusUnique(b"bg-1")).known)

    def test_backgroundPriorityAndTime(self) -> None:
        """
        A background job is queued at its priority; with C{when} it waits
        for its time.
        """
        server = self.startServer()
        client = self.startClient([DEFAULT_ADDRESS])
        for priority in Priority:
            self.pump.result(client.submitBackground("nobody", b"x", priority=priority))
        queued = server.core.functions[b"nobody"].queued
        self.assertEqual(list(queued), [1, 1, 1])
        later = int(self.pump.clock.seconds()) + 3600
        handle = self.pump.result(client.submitBackground("later", b"x", when=later))
        self.assertEqual(server.core.jobs[handle].state, JobState.SCHEDULED)
        self.assertEqual(server.core.jobs[handle].when, later)

    def test_uniqueSticksToOneServer(self) -> None:
        """
        Each unique id goes to one server, the same for two clients that
        list the servers in opposite orders, so that every submit of it
        coalesces there: the job runs once and every submitter gets its
        result.  The ids are spread over both servers, and a status query
        by unique id goes to the server that has the job.
        """
        one = self.startServer("one", handlePrefix=b"one")
        two = self.startServer("two", handlePrefix=b"two")
        first = self.startClient(["one", "two"])
        second = self.startClient(["two", "one"], clientId=b"second-client")
        for service in (one, two):
            self.assertClientOn(service)
            self.assertClientOn(service, b"second-client")
        uniques = [f"u{n}" for n in range(20)]
        outcomes = Outcomes()
        for unique in uniques:
            for n, client in enumerate((first, first, second)):
                outcomes.watch(
                    (unique, n), client.submit("hold", b"data", unique=unique)
                )

        def holding(service: GearmanServerService) -> dict[bytes, Any]:
            function = service.core.functions.get(b"hold")
            return {} if function is None else function.uniqueJobs()

        self.pump.flush()
        jobs = list(holding(one).values()) + list(holding(two).values())
        self.assertEqual(len(jobs), 20)
        self.assertTrue(
            all(len(job.clients) == 2 for job in jobs),
            "every unique id queued with both clients attached",
        )
        onOne, onTwo = set(holding(one)), set(holding(two))
        self.assertEqual(onOne | onTwo, {u.encode() for u in uniques})
        self.assertEqual(onOne & onTwo, set())
        self.assertTrue(
            onOne and onTwo, "the unique ids were not spread over the servers"
        )
        for unique in uniques:
            status = self.pump.result(second.getStatusUnique(unique))
            self.assertEqual((status.known, status.waiting), (True, 2), unique)

        runs: Counter[bytes] = Counter()

        def run(job: WorkerJob) -> bytes:
            runs[job.unique] += 1
            return b"ran " + job.unique

        self.startWorker(["one", "two"], {"hold": run}, concurrency=4)
        self.pump.flush()
        self.assertEqual(outcomes.count(), 60, "every submit ended")
        for key, result in outcomes.results.items():
            assert isinstance(key, tuple)
            self.assertEqual(result, b"ran " + key[0].encode())
        self.assertEqual(runs, Counter({u.encode(): 1 for u in uniques}))

    def test_roundRobin(self) -> None:
        """
        Jobs without a unique id go to the servers in turn.
        """
        one = self.startServer("one", handlePrefix=b"one")
        two = self.startServer("two", handlePrefix=b"two")
        client = self.startClient(["one", "two"])
        self.assertClientOn(one)
        self.assertClientOn(two)
        handles = [
            self.pump.result(client.submitBackground("nobody", b"%d" % n))
            for n in range(10)
        ]
        self.assertEqual(one.core.functions[b"nobody"].total, 5)
        self.assertEqual(two.core.functions[b"nobody"].total, 5)
        self.assertEqual(
            sorted(h.split(b":")[0] for h in handles), [b"one"] * 5 + [b"two"] * 5
        )
        # The client asks the server that made each handle.
        for handle in handles:
            self.assertTrue(self.pump.result(client.getStatus(handle)).known, handle)

    def test_noServer(self) -> None:
        """
        With no server up, every request fails with L{NoServerAvailable}
        once C{timeout} has passed, not before.
        """
        client = self.startClient(["nowhere", "nothing"], timeout=0.5)
        requests: list[Deferred[Any]] = [
            client.submit("f", b"x"),
            client.submit("f", b"x", unique="u"),
            client.submitBackground("f", b"x"),
            client.getStatus(b"H:1"),
            client.getStatusUnique("u"),
            client.echo(),
        ]
        self.pump.advance(0.45)
        for d in requests:
            self.assertNoResult(d)
        self.pump.advance(0.05)
        for d in requests:
            self.failureResultOf(d, NoServerAvailable)

    def test_stoppedWhileWaiting(self) -> None:
        """
        Stopping the client fails the requests that wait for a server at
        once, with L{NoServerAvailable}, and any request made afterwards.
        """
        client = self.startClient(["nowhere"], timeout=30)
        waiting = client.submit("f", b"x")
        self.pump.advance(0.1)
        self.assertNoResult(waiting)
        stopped = client.stopService()
        self.failureResultOf(waiting, NoServerAvailable)
        self.pump.result(stopped)
        echo = client.echo()
        self.pump.flush()
        self.failureResultOf(echo, NoServerAvailable)
        self.assertEqual(self.pump.clock.seconds(), 0.1)

    def test_serverComesUp(self) -> None:
        """
        A request made while the server is down waits for it to come up
        (within C{timeout}).
        """
        client = self.startClient([DEFAULT_ADDRESS])
        result = client.submit("reverse", b"abc")
        self.pump.advance(0.5)
        self.assertNoResult(result)
        self.startServer()
        self.startWorker([DEFAULT_ADDRESS], {"reverse": lambda job: job.data[::-1]})
        self.assertEqual(self.pump.result(result, within=client.timeout), b"cba")

    def test_reconnect(self) -> None:
        """
        When its server goes away, the client connects to the one that
        starts at the same address, and its requests go there.
        """
        first = self.startServer()
        self.startWorker([DEFAULT_ADDRESS], {"reverse": lambda job: job.data[::-1]})
        client = self.startClient([DEFAULT_ADDRESS])
        self.assertEqual(self.pump.result(client.submit("reverse", b"one")), b"eno")
        self.pump.result(first.stopService())
        second = self.startServer()
        self.pump.advance(RECONNECT)
        self.assertClientOn(second)
        self.assertEqual(self.pump.result(client.submit("reverse", b"two")), b"owt")
        self.assertEqual(len(second.core.functions[b"reverse"].workers), 1)

    def test_singleServerRestartsDuringSubmit(self) -> None:
        """
        With a single server, a background submit caught by the server's
        restart waits for it to come back (within C{timeout}, as any
        request made while the server is down does) and gets a handle; it
        does not fail at once with L{NoServerAvailable}.
        """
        one = self.startServer(handlePrefix=b"one")
        client = self.startClient([DEFAULT_ADDRESS], timeout=30)
        self.assertClientOn(one)
        submitted = client.submitBackground("nobody", b"x")
        # The submit is written, not yet answered, when the server stops.
        stopped = one.stopService()
        outcome = Outcomes()
        outcome.watch("submit", submitted)
        self.pump.result(stopped)
        self.assertEqual(outcome.count(), 0)
        self.startServer(store=one.store, handlePrefix=b"two")
        self.pump.advance(RECONNECT)
        self.assertEqual(outcome.count(), 1, "the submit ended")
        result = outcome.results["submit"]
        if isinstance(result, Failure):
            self.fail(f"the submit failed: {result.value!r}")
        self.assertIsInstance(result, bytes)

    def test_requestFromLossCallback(self) -> None:
        """
        A request made by a callback of the connection's loss (a caller
        that tries again when its job fails with L{GearmanConnectionLost}) waits
        for the next connection; it is not handed the connection that is
        going away.
        """
        one = self.startServer(handlePrefix=b"one")
        hold = Hold()
        self.startWorker([DEFAULT_ADDRESS], {"hold": hold})
        self.addCleanup(hold.releaseAll)
        client = self.startClient([DEFAULT_ADDRESS], timeout=30)
        self.assertClientOn(one)
        outcomes = Outcomes()

        def again(failure: Failure) -> None:
            failure.trap(GearmanConnectionLost)
            outcomes.watch("echo", client.echo(b"again"))

        running = client.submit("hold", b"x")
        running.addErrback(again)
        self.pump.flush()
        self.assertTrue(hold.jobs, "the job started")
        self.pump.result(one.stopService())
        self.assertTrue(running.called, "the job failed")
        self.assertEqual(outcomes.count(), 0)
        self.startServer()
        self.pump.advance(RECONNECT)
        self.assertEqual(outcomes.count(), 1, "the echo ended")
        result = outcomes.results["echo"]
        if isinstance(result, Failure):
            self.fail(f"the echo failed: {result.value!r}")
        self.assertEqual(result, b"again")

    def test_failoverStream(self) -> None:
        """
        While one client streams background jobs without unique ids to two
        servers, one server stops: every submit still gets a handle (those
        in flight on the stopped server are sent to the other), and no job
        is lost: once the stopped server is back on its store, every job
        has run at least once.
        """
        count = 200
        one = self.startServer("one", handlePrefix=b"one")
        two = self.startServer("two", handlePrefix=b"two")
        runs: Counter[bytes] = Counter()

        def run(job: WorkerJob) -> bytes:
            runs[job.data] += 1
            return b"ok"

        self.startWorker(["one", "two"], {"count": run}, concurrency=8)
        client = self.startClient(["one", "two"])
        self.assertClientOn(one)
        self.assertClientOn(two)
        outcomes = Outcomes()
        stopped: Deferred[Any] | None = None
        for n in range(count):
            outcomes.watch(n, client.submitBackground("count", b"%d" % n))
            if n == count // 2:
                # Stop it with submits to it written but not answered.
                stopped = one.stopService()
            if n % 5 == 4:
                self.pump.flush()
        assert stopped is not None
        self.pump.result(stopped)
        self.assertEqual(outcomes.count(), count, "every submit ended")
        failures = {n: r for n, r in outcomes.results.items() if isinstance(r, Failure)}
        self.assertEqual(failures, {})
        handles = [r for r in outcomes.results.values() if isinstance(r, bytes)]
        prefixes = Counter(handle.split(b":")[0] for handle in handles)
        self.assertEqual(set(prefixes), {b"one", b"two"})
        self.assertEqual(sum(prefixes.values()), count)

        # The jobs the stopped server had not run yet are in its store.
        back = self.startServer("one", store=one.store, handlePrefix=b"back")
        self.pump.advance(RECONNECT)
        expected = {b"%d" % n for n in range(count)}
        self.assertEqual(set(runs), expected)
        self.assertTrue(back.core.idle and two.core.idle, "both servers are idle")
        self.assertEqual(one.store.jobs, {})  # type: ignore[attr-defined]

    def test_failoverForegroundInFlight(self) -> None:
        """
        Foreground jobs running on a server that stops fail with
        L{GearmanConnectionLost} (they may have run, so they are not sent
        elsewhere); those on the other server go on and succeed.
        """
        one = self.startServer("one", handlePrefix=b"one")
        two = self.startServer("two", handlePrefix=b"two")
        hold = Hold()
        self.startWorker(["one", "two"], {"hold": hold}, concurrency=10)
        self.addCleanup(hold.releaseAll)
        client = self.startClient(["one", "two"])
        self.assertClientOn(one)
        self.assertClientOn(two)
        outcomes = Outcomes()
        for n in range(6):
            outcomes.watch(b"%d" % n, client.submit("hold", b"%d" % n))
        self.pump.flush()
        self.assertEqual(len(hold.jobs), 6, "six jobs run")
        onOne = {job.data for job in hold.jobs if job.handle.startswith(b"one:")}
        onTwo = {job.data for job in hold.jobs if job.handle.startswith(b"two:")}
        self.assertEqual((len(onOne), len(onTwo)), (3, 3))
        self.pump.result(one.stopService())
        self.assertEqual(outcomes.count(), 3, "the jobs of the stopped server failed")
        self.assertEqual(set(outcomes.results), onOne)
        for data in onOne:
            failure = outcomes.results[data]
            assert isinstance(failure, Failure)
            self.assertIsInstance(failure.value, GearmanConnectionLost)
            self.assertIn("one:", failure.getErrorMessage())
        for job in hold.jobs:
            if job.data in onTwo:
                hold.release(job.handle, b"result " + job.data)
        self.pump.flush()
        self.assertEqual(outcomes.count(), 6, "the other jobs ended")
        for data in onTwo:
            self.assertEqual(outcomes.results[data], b"result " + data)
        self.assertEqual(
            len(hold.jobs), 6, "a job that may have run was submitted again"
        )


class DroppingServer(Factory):
    """
    A scripted job server that answers OPTION_REQ and, on the first
    submit of each connection, drops the connection: abruptly before
    answering, or after JOB_CREATED if C{acceptFirst}.

    @ivar packets: every packet received, over all connections.
    """

    def __init__(self, acceptFirst: bool = False) -> None:
        self.acceptFirst = acceptFirst
        self.packets: list[Packet] = []
        self.connections: list[Protocol] = []

    def buildProtocol(self, addr: object) -> Protocol:
        return _DroppingProtocol(self)

    def submits(self) -> list[Packet]:
        return [p for p in self.packets if p.type in _SUBMITS]


_SUBMITS = frozenset(
    (
        _P.SUBMIT_JOB,
        _P.SUBMIT_JOB_BG,
        _P.SUBMIT_JOB_HIGH,
        _P.SUBMIT_JOB_LOW_BG,
        _P.SUBMIT_JOB_EPOCH,
    )
)


class _DroppingProtocol(Protocol):
    def __init__(self, server: DroppingServer) -> None:
        self.server = server
        self.decoder = Decoder()

    def connectionMade(self) -> None:
        self.server.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.decoder.feed(data)
        while (item := self.decoder.next()) is not None:
            assert isinstance(item, Packet)
            self.server.packets.append(item)
            if item.type is _P.OPTION_REQ:
                self.transport.write(encodeResponse(_P.OPTION_RES, item.args[0]))
            elif item.type in _SUBMITS:
                if self.server.acceptFirst:
                    self.transport.write(encodeResponse(_P.JOB_CREATED, b"dropper:1"))
                    self.transport.loseConnection()
                else:
                    self.transport.abortConnection()  # type: ignore[attr-defined]
                return


class ResubmitTests(ClientTestCase):
    """
    What the client does when a connection drops around a submit, against
    a scripted server listed first (so that the first job without a
    unique id goes to it) and a txgearman server.
    """

    def setUpServers(
        self, acceptFirst: bool
    ) -> tuple[DroppingServer, GearmanServerService]:
        dropper = DroppingServer(acceptFirst)
        self.pump.listen("dropper", dropper)
        real = self.startServer("real", handlePrefix=b"real")
        self.startWorker(["real"], {"reverse": lambda job: job.data[::-1]})
        self.gearmanClient = self.startClient(["dropper", "real"])
        self.pump.flush()
        self.assertTrue(
            any(p.type is _P.SET_CLIENT_ID for p in dropper.packets),
            "the client connected to the scripted server",
        )
        self.assertClientOn(real)
        return dropper, real

    def test_backgroundLostBeforeCreated(self) -> None:
        """
        A background submit whose connection drops before JOB_CREATED is
        sent to the other server, which queues it.
        """
        dropper, _ = self.setUpServers(acceptFirst=False)
        handle = self.pump.result(
            self.gearmanClient.submitBackground("reverse", b"abc")
        )
        self.assertEqual(
            [(p.type, p.args) for p in dropper.submits()],
            [(_P.SUBMIT_JOB_BG, (b"reverse", b"", b"abc"))],
        )
        self.assertTrue(handle.startswith(b"real:"), handle)

    def test_foregroundLostBeforeCreated(self) -> None:
        """
        A foreground submit whose connection drops before JOB_CREATED is
        sent to the other server, and its result comes from there.
        """
        dropper, _ = self.setUpServers(acceptFirst=False)
        self.assertEqual(
            self.pump.result(self.gearmanClient.submit("reverse", b"abc")), b"cba"
        )
        self.assertEqual(
            [(p.type, p.args) for p in dropper.submits()],
            [(_P.SUBMIT_JOB, (b"reverse", b"", b"abc"))],
        )

    def test_foregroundLostAfterCreated(self) -> None:
        """
        A foreground job whose connection drops after JOB_CREATED fails
        with L{GearmanConnectionLost} naming its handle, and is not sent to the
        other server: it may have run.
        """
        dropper, real = self.setUpServers(acceptFirst=True)
        submitted = self.gearmanClient.submit("reverse", b"abc")
        self.pump.flush()
        failure = self.failureResultOf(submitted, GearmanConnectionLost)
        self.assertIn("dropper:1", str(failure.value))
        self.assertEqual(len(dropper.submits()), 1)
        self.pump.advance(0.2)
        self.assertEqual(real.core.functions[b"reverse"].total, 0)
