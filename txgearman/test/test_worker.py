"""
Integration tests for L{txgearman.client.worker.GearmanWorker} over real TCP, against
a txgearman server running in this process (the tests against gearmand are
in C{tests/test_library_gearmand.py}).

Jobs are submitted by a raw client written for these tests (packets from
L{txgearman.codec}), or straight through the server core for background
jobs; what happened is read from the packets clients receive and from the
core's state.  Every wait polls with a generous deadline.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest, TestCase

from txgearman.client.errors import JobFailed
from txgearman.client.worker import GearmanWorker, WorkerJob
from txgearman.codec import (
    AdminLine,
    Decoder,
    Packet,
    PacketType,
    Priority,
    encodeRequest,
)
from txgearman.server.service import GearmanServerService

_P = PacketType
LOOPBACK = "127.0.0.1"
_END = (_P.WORK_COMPLETE, _P.WORK_FAIL, _P.WORK_EXCEPTION)


async def poll(
    condition: Callable[[], object], what: str, timeout: float = 30.0
) -> None:
    """
    Let the reactor run until C{condition()} is true.

    @raise FailTest: after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise FailTest(f"timed out after {timeout}s waiting for {what}")
        await deferLater(reactor, 0.01)


async def pause(seconds: float) -> None:
    """
    Let the reactor run for C{seconds}: the time a wrong worker would need
    to do what a test checks it does not do.
    """
    await deferLater(reactor, seconds)


class RawClient(Protocol):
    """
    A Gearman client that sends packets as told and keeps every packet and
    admin line it receives.
    """

    def __init__(self) -> None:
        self.decoder = Decoder()
        self.packets: list[Packet] = []
        self.lines: list[bytes] = []
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (item := self.decoder.next()) is not None:
            if isinstance(item, AdminLine):
                self.lines.append(item.line)
            else:
                self.packets.append(item)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)

    def send(self, ptype: PacketType, *args: bytes) -> None:
        assert self.transport is not None
        self.transport.write(encodeRequest(ptype, *args))

    async def expect(self, ptype: PacketType, timeout: float = 30.0) -> Packet:
        """
        The first packet of type C{ptype} not yet taken, waiting for it.
        """

        def found() -> bool:
            return any(packet.type == ptype for packet in self.packets)

        await poll(found, ptype.name, timeout)
        packet = next(packet for packet in self.packets if packet.type == ptype)
        self.packets.remove(packet)
        return packet

    async def submit(self, function: bytes, data: bytes, unique: bytes = b"") -> bytes:
        """Submit a foreground job; return its handle."""
        self.send(_P.SUBMIT_JOB, function, unique, data)
        created = await self.expect(_P.JOB_CREATED)
        return created.args[0]

    async def outcome(self, handle: bytes, timeout: float = 30.0) -> list[Packet]:
        """
        Every packet received for C{handle} up to the one that ends the job.
        """

        def ended() -> bool:
            return any(p.type in _END and p.args[0] == handle for p in self.packets)

        await poll(ended, f"the end of job {handle!r}", timeout)
        mine = []
        for packet in list(self.packets):
            if packet.args and packet.args[0] == handle:
                mine.append(packet)
                self.packets.remove(packet)
                if packet.type in _END:
                    break
        return mine


class WorkerTestMixin:
    """
    Servers, workers and clients that the test's cleanups stop and close.
    """

    addCleanup: Callable[..., None]

    async def startServer(self, port: int = 0) -> tuple[GearmanServerService, int]:
        service = GearmanServerService(
            f"tcp:{port}:interface={LOOPBACK}", reactor=reactor
        )
        service.privilegedStartService()
        service.startService()
        self.addCleanup(self.stopServer, service)
        await service.ready
        assert service.port is not None
        address = service.port.getHost()
        assert isinstance(address, IPv4Address)
        return service, address.port

    @staticmethod
    def stopServer(service: GearmanServerService) -> Deferred[Any] | None:
        if not service.running:
            return None
        return service.stopService()

    def startWorker(
        self,
        ports: list[int],
        functions: dict[str, Callable[[WorkerJob], Any]],
        **kwargs: Any,
    ) -> GearmanWorker:
        kwargs.setdefault("stopTimeout", 5.0)
        worker = GearmanWorker(
            [f"tcp:{LOOPBACK}:{port}" for port in ports], reactor, **kwargs
        )
        for name, function in functions.items():
            worker.register(name, function)
        worker.startService()

        def stop() -> Deferred[None] | None:
            return worker.stopService() if worker.running else None

        self.addCleanup(stop)
        return worker

    async def asleep(self, worker: GearmanWorker, connections: int = 1) -> None:
        """
        Wait until C{worker} has C{connections} connections, each of which
        has announced its functions and been told there is no job.
        """

        def ready() -> bool:
            live = worker.connections
            return len(live) == connections and all(c.sleeping for c in live)

        await poll(ready, f"{connections} sleeping worker connections")

    async def client(self, port: int) -> RawClient:
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port)
        client = await connectProtocol(endpoint, RawClient())

        def close() -> Deferred[None]:
            if client.transport is not None:
                client.transport.loseConnection()
            return client.lost

        self.addCleanup(close)
        return client


class Gate:
    """
    Jobs that end when the test says so, counting how many run at once.

    @ivar waiting: the Deferreds of the jobs running now, oldest first.
    @ivar jobs: every job started, in order.
    @ivar most: the largest number of jobs that ran at once.
    @ivar cancelled: handles of the jobs whose Deferred was cancelled.
    """

    def __init__(self) -> None:
        self.waiting: list[Deferred[bytes]] = []
        self.jobs: list[WorkerJob] = []
        self.running = 0
        self.most = 0
        self.cancelled: list[bytes] = []

    def __call__(self, job: WorkerJob) -> Deferred[bytes]:
        self.jobs.append(job)
        self.running += 1
        self.most = max(self.most, self.running)
        d: Deferred[bytes] = Deferred(lambda d: self.cancelled.append(job.handle))

        def ended(result: object) -> object:
            self.running -= 1
            return result

        self.waiting.append(d)
        return d.addBoth(ended)

    def release(self, result: bytes = b"done") -> None:
        """End the oldest running job."""
        self.waiting.pop(0).callback(result)


class WorkerTests(WorkerTestMixin, TestCase):
    """
    A L{GearmanWorker} against a txgearman server in this process.
    """

    async def test_results(self) -> None:
        """
        What a function returns reaches the client as WORK_COMPLETE: bytes
        as they are, str as UTF-8, None as nothing, a number as its text.
        """
        _, port = await self.startServer()
        self.startWorker(
            [port],
            {
                "reverse": lambda job: job.data[::-1],
                "text": lambda job: "h\u00e9" + job.data.decode(),
                "nothing": lambda job: None,
                "number": lambda job: 6 * 7,
            },
        )
        client = await self.client(port)
        cases = [
            (b"reverse", b"a\0bc", b"cb\0a"),
            (b"text", b"llo", "h\u00e9llo".encode()),
            (b"nothing", b"x", b""),
            (b"number", b"x", b"42"),
        ]
        for function, data, expected in cases:
            handle = await client.submit(function, data)
            [packet] = await client.outcome(handle)
            self.assertEqual(
                (packet.type, packet.args), (_P.WORK_COMPLETE, (handle, expected))
            )

    async def test_failure(self) -> None:
        """
        A function raising L{JobFailed} makes the client get WORK_FAIL.
        """
        _, port = await self.startServer()

        def fail(job: WorkerJob) -> None:
            raise JobFailed(job.handle, "no")

        self.startWorker([port], {"fail": fail})
        client = await self.client(port)
        handle = await client.submit(b"fail", b"x")
        [packet] = await client.outcome(handle)
        self.assertEqual((packet.type, packet.args), (_P.WORK_FAIL, (handle,)))

    async def test_exception(self) -> None:
        """
        Any other exception reaches a client that asked for exceptions as
        WORK_EXCEPTION with the exception's text; the job is over on the
        server, and the exception is logged.
        """
        server, port = await self.startServer()

        async def broken(job: WorkerJob) -> None:
            await deferLater(reactor, 0.01)
            raise KeyError("missing thing")

        self.startWorker([port], {"broken": broken})
        client = await self.client(port)
        client.send(_P.OPTION_REQ, b"exceptions")
        await client.expect(_P.OPTION_RES)
        handle = await client.submit(b"broken", b"x")
        [packet] = await client.outcome(handle)
        self.assertEqual(
            (packet.type, packet.args),
            (_P.WORK_EXCEPTION, (handle, b"'missing thing'")),
        )
        await poll(lambda: server.core.idle, "the job to be gone from the server")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    async def test_deferredAndCoroutine(self) -> None:
        """
        Functions that return a Deferred, and async functions, are waited
        for.
        """
        _, port = await self.startServer()

        def later(job: WorkerJob) -> Deferred[bytes]:
            return deferLater(reactor, 0.05, lambda: b"later " + job.data)

        async def coroutine(job: WorkerJob) -> bytes:
            await deferLater(reactor, 0.05)
            return b"awaited " + job.data

        self.startWorker([port], {"later": later, "coroutine": coroutine})
        client = await self.client(port)
        for function, expected in (
            (b"later", b"later x"),
            (b"coroutine", b"awaited x"),
        ):
            handle = await client.submit(function, b"x")
            [packet] = await client.outcome(handle)
            self.assertEqual(
                (packet.type, packet.args), (_P.WORK_COMPLETE, (handle, expected))
            )

    async def test_progress(self) -> None:
        """
        WORK_STATUS, WORK_DATA and WORK_WARNING reach the client in the
        order the function sent them, before WORK_COMPLETE.
        """
        _, port = await self.startServer()

        async def chatty(job: WorkerJob) -> bytes:
            job.sendStatus(1, 3)
            job.sendData(b"first part")
            await deferLater(reactor, 0.01)
            job.sendWarning(b"careful")
            job.sendStatus(3, 3)
            return b"all"

        self.startWorker([port], {"chatty": chatty})
        client = await self.client(port)
        handle = await client.submit(b"chatty", b"")
        packets = await client.outcome(handle)
        self.assertEqual(
            [(packet.type, packet.args) for packet in packets],
            [
                (_P.WORK_STATUS, (handle, b"1", b"3")),
                (_P.WORK_DATA, (handle, b"first part")),
                (_P.WORK_WARNING, (handle, b"careful")),
                (_P.WORK_STATUS, (handle, b"3", b"3")),
                (_P.WORK_COMPLETE, (handle, b"all")),
            ],
        )

    async def test_concurrency(self) -> None:
        """
        With a concurrency of 3, three jobs run at once, never a fourth; as
        each ends the next starts, until all are done.
        """
        server, port = await self.startServer()
        gate = Gate()
        self.startWorker([port], {"f": gate}, concurrency=3)
        for n in range(7):
            server.core.submitJob(
                None, b"f", b"u%d" % n, b"%d" % n, Priority.NORMAL, True
            )
        await poll(lambda: len(gate.jobs) == 3, "three jobs to start")
        await pause(0.3)
        self.assertEqual(len(gate.jobs), 3)
        function = server.core.functions[b"f"]
        self.assertEqual((function.running, function.total), (3, 7))
        for _ in range(7):
            await poll(lambda: gate.waiting, "a running job")
            gate.release()
        await poll(lambda: server.core.idle, "every job to end")
        self.assertEqual(len(gate.jobs), 7)
        self.assertEqual(gate.most, 3)
        self.assertEqual(
            sorted(job.data for job in gate.jobs), [b"%d" % n for n in range(7)]
        )

    async def test_concurrencyAcrossServers(self) -> None:
        """
        The concurrency limit counts the jobs of all servers together.
        """
        (one, port1), (two, port2) = await self.startServer(), await self.startServer()
        gate = Gate()
        worker = self.startWorker([port1, port2], {"f": gate}, concurrency=2)
        await self.asleep(worker, 2)
        for server in (one, two):
            for n in range(3):
                server.core.submitJob(
                    None, b"f", b"u%d" % n, b"x", Priority.NORMAL, True
                )
        await poll(lambda: len(gate.jobs) == 2, "two jobs to start")
        await pause(0.3)
        self.assertEqual(len(gate.jobs), 2)
        for _ in range(6):
            await poll(lambda: gate.waiting, "a running job")
            gate.release()
        await poll(lambda: one.core.idle and two.core.idle, "every job to end")
        self.assertEqual((len(gate.jobs), gate.most), (6, 2))

    async def test_reconnect(self) -> None:
        """
        When its server goes away, the worker connects to the one that
        starts on the same port, and runs its jobs.
        """
        first, port = await self.startServer()
        worker = self.startWorker([port], {"reverse": lambda job: job.data[::-1]})
        await self.asleep(worker)
        await first.stopService()
        await poll(lambda: not worker.connections, "the worker to notice")
        _, samePort = await self.startServer(port)
        self.assertEqual(samePort, port)
        await self.asleep(worker)
        client = await self.client(port)
        handle = await client.submit(b"reverse", b"again")
        [packet] = await client.outcome(handle)
        self.assertEqual(packet.args, (handle, b"niaga"))

    async def test_gracefulStop(self) -> None:
        """
        Stopping grabs no new job, waits for the running one, sends its
        result, and then closes; the job not started stays queued.
        """
        server, port = await self.startServer()
        gate = Gate()
        worker = self.startWorker([port], {"f": gate}, concurrency=2, stopTimeout=60)
        client = await self.client(port)
        handle = await client.submit(b"f", b"first")
        await poll(lambda: gate.waiting, "the job to start")
        stopped = worker.stopService()
        server.core.submitJob(None, b"f", b"second", b"second", Priority.NORMAL, True)
        await pause(0.3)
        self.assertNoResult(stopped)
        self.assertEqual(len(gate.jobs), 1)
        gate.release(b"finished")
        [packet] = await client.outcome(handle)
        self.assertEqual(packet.args, (handle, b"finished"))
        await stopped
        self.assertEqual(worker.connections, [])
        function = server.core.functions[b"f"]
        self.assertEqual(
            (function.running, function.total, len(function.workers)), (0, 1, 0)
        )

    async def test_handBack(self) -> None:
        """
        A job still running when the stop timeout passes is handed back:
        the connection closes, the server requeues the job and another
        worker runs it; the first worker's Deferred is cancelled.
        """
        _, port = await self.startServer()
        gate = Gate()
        first = self.startWorker([port], {"f": gate}, stopTimeout=0.5)
        client = await self.client(port)
        handle = await client.submit(b"f", b"payload", b"the-unique")
        await poll(lambda: gate.waiting, "the job to start")
        started = reactor.seconds()
        await first.stopService()
        self.assertGreaterEqual(reactor.seconds() - started, 0.4)
        self.assertEqual(gate.cancelled, [handle])
        seen: list[WorkerJob] = []

        def second(job: WorkerJob) -> bytes:
            seen.append(job)
            return b"second: " + job.data

        self.startWorker([port], {"f": second})
        [packet] = await client.outcome(handle)
        self.assertEqual(
            (packet.type, packet.args), (_P.WORK_COMPLETE, (handle, b"second: payload"))
        )
        self.assertEqual((seen[0].handle, seen[0].unique), (handle, b"the-unique"))

    async def test_registerLater(self) -> None:
        """
        Functions registered while connected are announced and run; an
        unregistered function is withdrawn from the server.
        """
        server, port = await self.startServer()
        worker = self.startWorker([port], {}, clientId=b"late-worker")
        await self.asleep(worker)
        worker.register("upper", lambda job: job.data.upper())
        client = await self.client(port)
        handle = await client.submit(b"upper", b"abc")
        [packet] = await client.outcome(handle)
        self.assertEqual(packet.args, (handle, b"ABC"))
        client.transport.write(b"workers\n")  # type: ignore[union-attr]
        await poll(lambda: b"." in client.lines, "the workers listing")
        self.assertIn(b"late-worker : upper", b"\n".join(client.lines))
        worker.unregister("upper")
        await poll(
            lambda: not server.core.functions[b"upper"].workers, "CANT_DO to arrive"
        )


def _freePort() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port
