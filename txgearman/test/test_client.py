"""
Integration tests for L{txgearman.client.GearmanClient} over real TCP:
against txgearman servers running in this process (with a
L{txgearman.client.worker.GearmanWorker} doing the jobs), against a scripted
server that drops connections at chosen moments (the tests against
gearmand are in C{tests/test_library_gearmand.py}).

Where a job went is read from each server's core; servers get distinct
handle prefixes so that a handle tells which server made it.  Every wait
polls with a generous deadline.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeVar

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest, TestCase

from txgearman.client.client import GearmanClient, JobStatus
from txgearman.client.errors import (
    GearmanConnectionLost,
    JobException,
    JobFailed,
    NoServerAvailable,
)
from txgearman.client.worker import WorkerJob
from txgearman.codec import Decoder, Packet, PacketType, Priority, encodeResponse
from txgearman.server.job import JobState
from txgearman.server.service import GearmanServerService
from txgearman.test.test_worker import (
    LOOPBACK,
    WorkerTestMixin,
    _freePort,
    pause,
    poll,
)

_P = PacketType
CLIENT_ID = b"client-under-test"


def serverName(port: int) -> str:
    """The name a client is given for the server on C{port}."""
    return f"tcp:{LOOPBACK}:{port}"


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


_E = TypeVar("_E", bound=BaseException)


async def raised(d: Deferred[Any], kind: type[_E]) -> _E:
    """
    Wait for C{d} to fail with C{kind}; return the exception.

    @raise FailTest: it succeeded, or failed with something else.
    """
    try:
        result = await d
    except kind as e:
        return e
    raise FailTest(f"expected {kind.__name__}, got the result {result!r}")


class ClientTestMixin(WorkerTestMixin):
    """
    Servers with a handle prefix, clients, and what tests wait for.
    """

    async def startServer(
        self, port: int = 0, **kwargs: Any
    ) -> tuple[GearmanServerService, int]:
        service = GearmanServerService(
            f"tcp:{port}:interface={LOOPBACK}", reactor=reactor, **kwargs
        )
        service.privilegedStartService()
        service.startService()
        self.addCleanup(self.stopServer, service)
        await service.ready
        assert service.port is not None
        address = service.port.getHost()
        assert isinstance(address, IPv4Address)
        return service, address.port

    def startClient(
        self, ports: list[int], timeout: float = 30.0, clientId: bytes = CLIENT_ID
    ) -> GearmanClient:
        client = GearmanClient(
            [serverName(port) for port in ports],
            reactor=reactor,
            timeout=timeout,
            clientId=clientId,
        )
        client.startService()

        def stop() -> Deferred[Any] | None:
            return client.stopService() if client.running else None

        self.addCleanup(stop)
        return client

    async def clientOn(
        self, service: GearmanServerService, clientId: bytes = CLIENT_ID, count: int = 1
    ) -> None:
        """
        Wait until C{count} connections named C{clientId} are up on
        C{service}: a client names its connection as soon as it is up, so
        then the client uses it.
        """

        def connected() -> bool:
            named = [s for s in service.core.sessions if s.clientId == clientId]
            return len(named) >= count

        await poll(connected, f"{count} connections of {clientId!r}")


class ClientTests(ClientTestMixin, TestCase):
    """
    A L{GearmanClient} against txgearman servers in this process.
    """

    async def test_result(self) -> None:
        """
        C{submit} fires with the job's result; functions and unique ids
        may be given as C{str}, data may hold NULs.
        """
        _, port = await self.startServer()
        self.startWorker([port], {"reverse": lambda job: job.data[::-1]})
        client = self.startClient([port])
        self.assertEqual(await client.submit("reverse", b"a\0bc"), b"cb\0a")
        self.assertEqual(await client.submit(b"reverse", b"xyz", unique="u-1"), b"zyx")
        for priority in Priority:
            self.assertEqual(
                await client.submit("reverse", b"pr", priority=priority), b"rp"
            )
        self.assertEqual(await client.echo(b"ping\0"), b"ping\0")

    def test_callbackStyle(self) -> Deferred[None]:
        """
        Without C{async def}: a chain of callbacks submits a job, checks
        its result, queues a background job and asks for its status, and
        an errback sees a failed job's L{JobFailed}.
        """

        def fail(job: WorkerJob) -> None:
            raise JobFailed(job.handle)

        def started(server: tuple[GearmanServerService, int]) -> Deferred[None]:
            _, port = server
            self.startWorker(
                [port], {"upper": lambda job: job.data.upper(), "fail": fail}
            )
            client = self.startClient([port])
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
            return d

        return Deferred.fromCoroutine(self.startServer()).addCallback(started)

    async def test_progress(self) -> None:
        """
        C{onStatus}, C{onData} and C{onWarning} are called as the worker
        reports, in its order, before the result.
        """
        _, port = await self.startServer()

        async def chatty(job: WorkerJob) -> bytes:
            job.sendStatus(1, 3)
            job.sendData(b"first")
            await deferLater(reactor, 0.01)
            job.sendWarning(b"careful")
            job.sendStatus(3, 3)
            return b"all"

        self.startWorker([port], {"chatty": chatty})
        client = self.startClient([port])
        events: list[tuple[str, object]] = []
        result = await client.submit(
            "chatty",
            b"",
            onData=lambda data: events.append(("data", data)),
            onWarning=lambda data: events.append(("warning", data)),
            onStatus=lambda n, d: events.append(("status", (n, d))),
        )
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

    async def test_failedAndException(self) -> None:
        """
        A worker raising L{JobFailed} fails the submit with L{JobFailed};
        any other exception fails it with L{JobException} carrying the
        exception's text (the client asked for WORK_EXCEPTION packets).
        """
        _, port = await self.startServer()

        def fail(job: WorkerJob) -> None:
            raise JobFailed(job.handle)

        def broken(job: WorkerJob) -> None:
            raise KeyError("missing thing")

        self.startWorker([port], {"fail": fail, "broken": broken})
        client = self.startClient([port])
        failed = await raised(client.submit("fail", b"x"), JobFailed)
        self.assertTrue(failed.handle)
        exception = await raised(client.submit("broken", b"x"), JobException)
        self.assertEqual(exception.data, b"'missing thing'")
        self.assertTrue(exception.handle)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    async def test_backgroundAndStatus(self) -> None:
        """
        A background job's handle leads to its status: queued, then
        running with its progress (by handle and by unique id), then
        unknown once done.
        """
        server, port = await self.startServer()
        client = self.startClient([port])
        handle = await client.submitBackground("hold", b"data", unique="bg-1")
        self.assertEqual(
            await client.getStatus(handle), JobStatus(handle, b"", True, False, 0, 0, 0)
        )
        self.assertEqual(
            await client.getStatusUnique("bg-1"),
            JobStatus(b"", b"bg-1", True, False, 0, 0, 0),
        )
        hold = Hold()
        self.startWorker([port], {"hold": hold})
        await poll(lambda: hold.jobs, "the job to start")
        [job] = hold.jobs
        self.assertEqual((job.handle, job.unique, job.data), (handle, b"bg-1", b"data"))
        job.sendStatus(2, 5)
        await poll(
            lambda: server.core.jobs[handle].numerator == 2, "the status to arrive"
        )
        self.assertEqual(
            await client.getStatus(handle), JobStatus(handle, b"", True, True, 2, 5, 0)
        )
        self.assertEqual(
            await client.getStatusUnique(b"bg-1"),
            JobStatus(b"", b"bg-1", True, True, 2, 5, 0),
        )
        hold.release(handle, b"done")
        await poll(lambda: server.core.idle, "the job to end")
        self.assertEqual(
            await client.getStatus(handle),
            JobStatus(handle, b"", False, False, 0, 0, 0),
        )
        self.assertFalse((await client.getStatusUnique(b"bg-1")).known)

    async def test_backgroundPriorityAndTime(self) -> None:
        """
        A background job is queued at its priority; with C{when} it waits
        for its time.
        """
        server, port = await self.startServer()
        client = self.startClient([port])
        for priority in Priority:
            await client.submitBackground("nobody", b"x", priority=priority)
        queued = server.core.functions[b"nobody"].queued
        self.assertEqual(list(queued), [1, 1, 1])
        later = int(reactor.seconds()) + 3600
        handle = await client.submitBackground("later", b"x", when=later)
        self.assertEqual(server.core.jobs[handle].state, JobState.SCHEDULED)
        self.assertEqual(server.core.jobs[handle].when, later)

    async def test_uniqueSticksToOneServer(self) -> None:
        """
        Each unique id goes to one server, the same for two clients that
        list the servers in opposite orders, so that every submit of it
        coalesces there: the job runs once and every submitter gets its
        result.  The ids are spread over both servers, and a status query
        by unique id goes to the server that has the job.
        """
        one, port1 = await self.startServer(handlePrefix=b"one")
        two, port2 = await self.startServer(handlePrefix=b"two")
        first = self.startClient([port1, port2])
        second = self.startClient([port2, port1], clientId=b"second-client")
        for service in (one, two):
            await self.clientOn(service)
            await self.clientOn(service, b"second-client")
        uniques = [f"u{n}" for n in range(20)]
        outcomes = Outcomes()
        for unique in uniques:
            for n, client in enumerate((first, first, second)):
                outcomes.watch(
                    (unique, n), client.submit("hold", b"data", unique=unique)
                )

        def holding(service: GearmanServerService) -> dict[bytes, Any]:
            function = service.core.functions.get(b"hold")
            return {} if function is None else dict(function.uniques)

        def allQueued() -> bool:
            jobs = list(holding(one).values()) + list(holding(two).values())
            return len(jobs) == 20 and all(len(job.clients) == 2 for job in jobs)

        await poll(allQueued, "every unique id to be queued with both clients attached")
        onOne, onTwo = set(holding(one)), set(holding(two))
        self.assertEqual(onOne | onTwo, {u.encode() for u in uniques})
        self.assertEqual(onOne & onTwo, set())
        self.assertTrue(
            onOne and onTwo, "the unique ids were not spread over the servers"
        )
        for unique in uniques:
            status = await second.getStatusUnique(unique)
            self.assertEqual((status.known, status.waiting), (True, 2), unique)

        runs: Counter[bytes] = Counter()

        def run(job: WorkerJob) -> bytes:
            runs[job.unique] += 1
            return b"ran " + job.unique

        self.startWorker([port1, port2], {"hold": run}, concurrency=4)
        await poll(lambda: outcomes.count() == 60, "every submit to end")
        for key, result in outcomes.results.items():
            assert isinstance(key, tuple)
            self.assertEqual(result, b"ran " + key[0].encode())
        self.assertEqual(runs, Counter({u.encode(): 1 for u in uniques}))

    async def test_roundRobin(self) -> None:
        """
        Jobs without a unique id go to the servers in turn.
        """
        one, port1 = await self.startServer(handlePrefix=b"one")
        two, port2 = await self.startServer(handlePrefix=b"two")
        client = self.startClient([port1, port2])
        await self.clientOn(one)
        await self.clientOn(two)
        handles = [
            await client.submitBackground("nobody", b"%d" % n) for n in range(10)
        ]
        self.assertEqual(one.core.functions[b"nobody"].total, 5)
        self.assertEqual(two.core.functions[b"nobody"].total, 5)
        self.assertEqual(
            sorted(h.split(b":")[0] for h in handles), [b"one"] * 5 + [b"two"] * 5
        )
        # The client asks the server that made each handle.
        for handle in handles:
            self.assertTrue((await client.getStatus(handle)).known, handle)

    async def test_noServer(self) -> None:
        """
        With no server up, every request fails with L{NoServerAvailable}
        once C{timeout} has passed, not before.
        """
        client = self.startClient([_freePort(), _freePort()], timeout=0.5)
        started = reactor.seconds()
        requests: list[Deferred[Any]] = [
            client.submit("f", b"x"),
            client.submit("f", b"x", unique="u"),
            client.submitBackground("f", b"x"),
            client.getStatus(b"H:1"),
            client.getStatusUnique("u"),
            client.echo(),
        ]
        for d in requests:
            await raised(d, NoServerAvailable)
        self.assertGreaterEqual(reactor.seconds() - started, 0.45)

    async def test_stoppedWhileWaiting(self) -> None:
        """
        Stopping the client fails the requests that wait for a server at
        once, with L{NoServerAvailable}, and any request made afterwards.
        """
        client = self.startClient([_freePort()], timeout=30)
        started = reactor.seconds()
        waiting = client.submit("f", b"x")
        await pause(0.1)
        await client.stopService()
        await raised(waiting, NoServerAvailable)
        await raised(client.echo(), NoServerAvailable)
        self.assertLess(reactor.seconds() - started, 5)

    async def test_serverComesUp(self) -> None:
        """
        A request made while the server is down waits for it to come up
        (within C{timeout}).
        """
        port = _freePort()
        client = self.startClient([port])
        result = client.submit("reverse", b"abc")
        await pause(0.5)
        self.assertNoResult(result)
        _, samePort = await self.startServer(port)
        self.assertEqual(samePort, port)
        self.startWorker([port], {"reverse": lambda job: job.data[::-1]})
        self.assertEqual(await result, b"cba")

    async def test_reconnect(self) -> None:
        """
        When its server goes away, the client connects to the one that
        starts on the same port, and its requests go there.
        """
        first, port = await self.startServer()
        self.startWorker([port], {"reverse": lambda job: job.data[::-1]})
        client = self.startClient([port])
        self.assertEqual(await client.submit("reverse", b"one"), b"eno")
        await first.stopService()
        second, samePort = await self.startServer(port)
        self.assertEqual(samePort, port)
        await self.clientOn(second)
        self.assertEqual(await client.submit("reverse", b"two"), b"owt")
        self.assertEqual(len(second.core.functions[b"reverse"].workers), 1)

    async def test_singleServerRestartsDuringSubmit(self) -> None:
        """
        With a single server, a background submit caught by the server's
        restart waits for it to come back (within C{timeout}, as any
        request made while the server is down does) and gets a handle; it
        does not fail at once with L{NoServerAvailable}.
        """
        one, port = await self.startServer(handlePrefix=b"one")
        client = self.startClient([port], timeout=30)
        await self.clientOn(one)
        submitted = client.submitBackground("nobody", b"x")
        # The submit is written, not yet answered, when the server stops.
        stopped = one.stopService()
        outcome = Outcomes()
        outcome.watch("submit", submitted)
        await stopped
        _, samePort = await self.startServer(port, store=one.store, handlePrefix=b"two")
        self.assertEqual(samePort, port)
        await poll(lambda: outcome.count() == 1, "the submit to end", 60)
        result = outcome.results["submit"]
        if isinstance(result, Failure):
            self.fail(f"the submit failed: {result.value!r}")
        self.assertIsInstance(result, bytes)

    async def test_requestFromLossCallback(self) -> None:
        """
        A request made by a callback of the connection's loss (a caller
        that tries again when its job fails with L{GearmanConnectionLost}) waits
        for the next connection; it is not handed the connection that is
        going away.
        """
        one, port = await self.startServer(handlePrefix=b"one")
        hold = Hold()
        self.startWorker([port], {"hold": hold})
        self.addCleanup(hold.releaseAll)
        client = self.startClient([port], timeout=30)
        await self.clientOn(one)
        outcomes = Outcomes()

        def again(failure: Failure) -> None:
            failure.trap(GearmanConnectionLost)
            outcomes.watch("echo", client.echo(b"again"))

        running = client.submit("hold", b"x")
        running.addErrback(again)
        await poll(lambda: hold.jobs, "the job to start")
        await one.stopService()
        await poll(lambda: running.called, "the job to fail")
        _, samePort = await self.startServer(port)
        self.assertEqual(samePort, port)
        await poll(lambda: outcomes.count() == 1, "the echo to end", 60)
        result = outcomes.results["echo"]
        if isinstance(result, Failure):
            self.fail(f"the echo failed: {result.value!r}")
        self.assertEqual(result, b"again")

    async def test_failoverStream(self) -> None:
        """
        While one client streams background jobs without unique ids to two
        servers, one server stops: every submit still gets a handle (those
        in flight on the stopped server are sent to the other), and no job
        is lost: once the stopped server is back on its store, every job
        has run at least once.
        """
        count = 200
        one, port1 = await self.startServer(handlePrefix=b"one")
        two, port2 = await self.startServer(handlePrefix=b"two")
        runs: Counter[bytes] = Counter()

        def run(job: WorkerJob) -> bytes:
            runs[job.data] += 1
            return b"ok"

        self.startWorker([port1, port2], {"count": run}, concurrency=8)
        client = self.startClient([port1, port2])
        await self.clientOn(one)
        await self.clientOn(two)
        outcomes = Outcomes()
        stopped: Deferred[Any] | None = None
        for n in range(count):
            outcomes.watch(n, client.submitBackground("count", b"%d" % n))
            if n == count // 2:
                # Stop it with submits to it written but not answered.
                stopped = one.stopService()
            if n % 5 == 4:
                await deferLater(reactor, 0)
        assert stopped is not None
        await stopped
        await poll(lambda: outcomes.count() == count, "every submit to end", 60)
        failures = {n: r for n, r in outcomes.results.items() if isinstance(r, Failure)}
        self.assertEqual(failures, {})
        handles = [r for r in outcomes.results.values() if isinstance(r, bytes)]
        prefixes = Counter(handle.split(b":")[0] for handle in handles)
        self.assertEqual(set(prefixes), {b"one", b"two"})
        self.assertEqual(sum(prefixes.values()), count)

        # The jobs the stopped server had not run yet are in its store.
        back, _ = await self.startServer(port1, store=one.store, handlePrefix=b"back")
        expected = {b"%d" % n for n in range(count)}
        await poll(lambda: set(runs) == expected, "every job to run", 60)
        await poll(
            lambda: back.core.idle and two.core.idle, "both servers to be idle", 60
        )
        self.assertEqual(set(runs), expected)
        self.assertEqual(one.store.jobs, {})  # type: ignore[attr-defined]

    async def test_failoverForegroundInFlight(self) -> None:
        """
        Foreground jobs running on a server that stops fail with
        L{GearmanConnectionLost} (they may have run, so they are not sent
        elsewhere); those on the other server go on and succeed.
        """
        one, port1 = await self.startServer(handlePrefix=b"one")
        two, port2 = await self.startServer(handlePrefix=b"two")
        hold = Hold()
        self.startWorker([port1, port2], {"hold": hold}, concurrency=10)
        self.addCleanup(hold.releaseAll)
        client = self.startClient([port1, port2])
        await self.clientOn(one)
        await self.clientOn(two)
        outcomes = Outcomes()
        for n in range(6):
            outcomes.watch(b"%d" % n, client.submit("hold", b"%d" % n))
        await poll(lambda: len(hold.jobs) == 6, "six jobs to run")
        onOne = {job.data for job in hold.jobs if job.handle.startswith(b"one:")}
        onTwo = {job.data for job in hold.jobs if job.handle.startswith(b"two:")}
        self.assertEqual((len(onOne), len(onTwo)), (3, 3))
        await one.stopService()
        await poll(
            lambda: outcomes.count() == 3, "the jobs of the stopped server to fail"
        )
        self.assertEqual(set(outcomes.results), onOne)
        for data in onOne:
            failure = outcomes.results[data]
            assert isinstance(failure, Failure)
            self.assertIsInstance(failure.value, GearmanConnectionLost)
            self.assertIn("one:", failure.getErrorMessage())
        for job in hold.jobs:
            if job.data in onTwo:
                hold.release(job.handle, b"result " + job.data)
        await poll(lambda: outcomes.count() == 6, "the other jobs to end")
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


class ResubmitTests(ClientTestMixin, TestCase):
    """
    What the client does when a connection drops around a submit, against
    a scripted server listed first (so that the first job without a
    unique id goes to it) and a txgearman server.
    """

    async def setUpServers(
        self, acceptFirst: bool
    ) -> tuple[DroppingServer, GearmanServerService]:
        dropper = DroppingServer(acceptFirst)
        port = await TCP4ServerEndpoint(reactor, 0, interface=LOOPBACK).listen(dropper)

        def close() -> Deferred[None] | None:
            for connection in dropper.connections:
                if connection.transport is not None:
                    connection.transport.loseConnection()
            return port.stopListening()

        self.addCleanup(close)
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        real, realPort = await self.startServer(handlePrefix=b"real")
        self.startWorker([realPort], {"reverse": lambda job: job.data[::-1]})
        self.gearmanClient = self.startClient([address.port, realPort])
        await poll(
            lambda: any(p.type is _P.SET_CLIENT_ID for p in dropper.packets),
            "the client to connect to the scripted server",
        )
        await self.clientOn(real)
        return dropper, real

    async def test_backgroundLostBeforeCreated(self) -> None:
        """
        A background submit whose connection drops before JOB_CREATED is
        sent to the other server, which queues it.
        """
        dropper, _ = await self.setUpServers(acceptFirst=False)
        handle = await self.gearmanClient.submitBackground("reverse", b"abc")
        self.assertEqual(
            [(p.type, p.args) for p in dropper.submits()],
            [(_P.SUBMIT_JOB_BG, (b"reverse", b"", b"abc"))],
        )
        self.assertTrue(handle.startswith(b"real:"), handle)

    async def test_foregroundLostBeforeCreated(self) -> None:
        """
        A foreground submit whose connection drops before JOB_CREATED is
        sent to the other server, and its result comes from there.
        """
        dropper, _ = await self.setUpServers(acceptFirst=False)
        self.assertEqual(await self.gearmanClient.submit("reverse", b"abc"), b"cba")
        self.assertEqual(
            [(p.type, p.args) for p in dropper.submits()],
            [(_P.SUBMIT_JOB, (b"reverse", b"", b"abc"))],
        )

    async def test_foregroundLostAfterCreated(self) -> None:
        """
        A foreground job whose connection drops after JOB_CREATED fails
        with L{GearmanConnectionLost} naming its handle, and is not sent to the
        other server: it may have run.
        """
        dropper, real = await self.setUpServers(acceptFirst=True)
        failure = await raised(
            self.gearmanClient.submit("reverse", b"abc"), GearmanConnectionLost
        )
        self.assertIn("dropper:1", str(failure))
        self.assertEqual(len(dropper.submits()), 1)
        await pause(0.2)
        self.assertEqual(real.core.functions[b"reverse"].total, 0)
