"""
Tests for L{txgearman.client.worker.GearmanWorker} against a txgearman server,
in memory on L{txgearman.testing.GearmanPump} (the tests over TCP and
against gearmand are in C{tests/}).

Jobs are submitted by a raw client written for these tests (packets from
L{txgearman.codec}), or straight through the server core for background
jobs; what happened is read from the packets clients receive and from the
core's state.  Bytes move when the pump flushes, and time passes only
when a test advances the pump's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import FailTest, SynchronousTestCase

from txgearman.client.errors import JobFailed
from txgearman.client.worker import GearmanWorker, WorkerJob
from txgearman.codec import (
    Packet,
    PacketType,
    Priority,
)
from txgearman.server.service import GearmanServerService
from txgearman.test.fakes import Gate, PacketPeer
from txgearman.testing import DEFAULT_ADDRESS, GearmanPump

_P = PacketType
_END = (_P.WORK_COMPLETE, _P.WORK_FAIL, _P.WORK_EXCEPTION)

#: Long enough for a worker or client to reconnect to a server that came
#: back: their backoff with its jitter stays under it.
RECONNECT = 10.0


class RawClient(PacketPeer):
    """
    A Gearman client that sends packets as told and keeps every packet and
    admin line it receives; what it expects, it takes after a flush.
    """

    def __init__(self, pump: GearmanPump) -> None:
        super().__init__()
        self.pump = pump

    def expect(self, ptype: PacketType) -> Packet:
        """
        The first packet of type C{ptype} not yet taken, once the pump has
        flushed.

        @raise FailTest: there is none.
        """
        self.pump.flush()
        for packet in self.packets:
            if packet.type == ptype:
                self.packets.remove(packet)
                return packet
        raise FailTest(f"no {ptype.name} packet came: {self.packets}")

    def submit(self, function: bytes, data: bytes, unique: bytes = b"") -> bytes:
        """Submit a foreground job; return its handle."""
        self.send(_P.SUBMIT_JOB, function, unique, data)
        created = self.expect(_P.JOB_CREATED)
        return created.args[0]

    def outcome(self, handle: bytes) -> list[Packet]:
        """
        Every packet received for C{handle} up to the one that ends the job,
        once the pump has flushed.

        @raise FailTest: the job has not ended.
        """
        self.pump.flush()
        mine = []
        for packet in list(self.packets):
            if packet.args and packet.args[0] == handle:
                mine.append(packet)
                self.packets.remove(packet)
                if packet.type in _END:
                    return mine
        raise FailTest(f"job {handle!r} has not ended: {mine}")


class WorkerTestCase(SynchronousTestCase):
    """
    A L{GearmanPump}, and servers, workers and clients on it that the
    cleanups stop.
    """

    def setUp(self) -> None:
        self.pump = GearmanPump()
        self.services: list[Service] = []
        self.addCleanup(self.stopAll)

    def stopAll(self) -> None:
        """
        Stop every service still running, and see that each stops in
        (simulated) time.
        """
        stopping = [s.stopService() for s in reversed(self.services) if s.running]
        for d in stopping:
            self.pump.result(d, within=60)

    def startServer(
        self, address: str = DEFAULT_ADDRESS, **kwargs: Any
    ) -> GearmanServerService:
        service = self.pump.startServer(address, **kwargs)
        self.services.append(service)
        return service

    def startWorker(
        self,
        addresses: list[str],
        functions: dict[str, Callable[[WorkerJob], Any]],
        **kwargs: Any,
    ) -> GearmanWorker:
        kwargs.setdefault("stopTimeout", 5.0)
        worker = GearmanWorker(
            [self.pump.endpoint(address) for address in addresses],
            self.pump.clock,
            **kwargs,
        )
        for name, function in functions.items():
            worker.register(name, function)
        worker.startService()
        self.services.append(worker)
        return worker

    def assertAsleep(self, worker: GearmanWorker, connections: int = 1) -> None:
        """
        Once the pump has flushed, C{worker} has C{connections}
        connections, each of which has announced its functions and been
        told there is no job.
        """
        self.pump.flush()
        live = worker.connections
        self.assertEqual(len(live), connections, f"{connections} worker connections")
        self.assertTrue(all(c.sleeping for c in live), "every connection asleep")

    def client(self, address: str = DEFAULT_ADDRESS) -> RawClient:
        client = RawClient(self.pump)
        connected = connectProtocol(self.pump.endpoint(address), client)
        self.pump.flush()
        self.assertIs(self.successResultOf(connected), client)
        return client


class WorkerTests(WorkerTestCase):
    """
    A L{GearmanWorker} against a txgearman server.
    """

    def test_results(self) -> None:
        """
        What a function returns reaches the client as WORK_COMPLETE: bytes
        as they are, str as UTF-8, None as nothing, a number as its text.
        """
        self.startServer()
        self.startWorker(
            [DEFAULT_ADDRESS],
            {
                "reverse": lambda job: job.data[::-1],
                "text": lambda job: "h\u00e9" + job.data.decode(),
                "nothing": lambda job: None,
                "number": lambda job: 6 * 7,
            },
        )
        client = self.client()
        cases = [
            (b"reverse", b"a\0bc", b"cb\0a"),
            (b"text", b"llo", "h\u00e9llo".encode()),
            (b"nothing", b"x", b""),
            (b"number", b"x", b"42"),
        ]
        for function, data, expected in cases:
            handle = client.submit(function, data)
            [packet] = client.outcome(handle)
            self.assertEqual(
                (packet.type, packet.args), (_P.WORK_COMPLETE, (handle, expected))
            )

    def test_failure(self) -> None:
        """
        A function raising L{JobFailed} makes the client get WORK_FAIL.
        """
        self.startServer()

        def fail(job: WorkerJob) -> None:
            raise JobFailed(job.handle, "no")

        self.startWorker([DEFAULT_ADDRESS], {"fail": fail})
        client = self.client()
        handle = client.submit(b"fail", b"x")
        [packet] = client.outcome(handle)
        self.assertEqual((packet.type, packet.args), (_P.WORK_FAIL, (handle,)))

    def test_exception(self) -> None:
        """
        Any other exception reaches a client that asked for exceptions as
        WORK_EXCEPTION with the exception's text; the job is over on the
        server, and the exception is logged.
        """
        server = self.startServer()

        async def broken(job: WorkerJob) -> None:
            await deferLater(self.pump.clock, 0.01)
            raise KeyError("missing thing")

        self.startWorker([DEFAULT_ADDRESS], {"broken": broken})
        client = self.client()
        client.send(_P.OPTION_REQ, b"exceptions")
        client.expect(_P.OPTION_RES)
        handle = client.submit(b"broken", b"x")
        self.pump.advance(0.01)
        [packet] = client.outcome(handle)
        self.assertEqual(
            (packet.type, packet.args),
            (_P.WORK_EXCEPTION, (handle, b"'missing thing'")),
        )
        self.assertTrue(server.core.idle, "the job is gone from the server")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_deferredAndCoroutine(self) -> None:
        """
        Functions that return a Deferred, and async functions, are waited
        for.
        """
        self.startServer()
        clock = self.pump.clock

        def later(job: WorkerJob) -> Deferred[bytes]:
            return deferLater(clock, 0.05, lambda: b"later " + job.data)

        async def coroutine(job: WorkerJob) -> bytes:
            await deferLater(clock, 0.05)
            return b"awaited " + job.data

        self.startWorker([DEFAULT_ADDRESS], {"later": later, "coroutine": coroutine})
        client = self.client()
        for function, expected in (
            (b"later", b"later x"),
            (b"coroutine", b"awaited x"),
        ):
            handle = client.submit(function, b"x")
            self.assertEqual([p.type for p in client.packets], [], "not waited for")
            self.pump.advance(0.05)
            [packet] = client.outcome(handle)
            self.assertEqual(
                (packet.type, packet.args), (_P.WORK_COMPLETE, (handle, expected))
            )

    def test_progress(self) -> None:
        """
        WORK_STATUS, WORK_DATA and WORK_WARNING reach the client in the
        order the function sent them, before WORK_COMPLETE.
        """
        self.startServer()

        async def chatty(job: WorkerJob) -> bytes:
            job.sendStatus(1, 3)
            job.sendData(b"first part")
            await deferLater(self.pump.clock, 0.01)
            job.sendWarning(b"careful")
            job.sendStatus(3, 3)
            return b"all"

        self.startWorker([DEFAULT_ADDRESS], {"chatty": chatty})
        client = self.client()
        handle = client.submit(b"chatty", b"")
        self.pump.advance(0.01)
        packets = client.outcome(handle)
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

    def test_concurrency(self) -> None:
        """
        With a concurrency of 3, three jobs run at once, never a fourth; as
        each ends the next starts, until all are done.
        """
        server = self.startServer()
        gate = Gate()
        self.startWorker([DEFAULT_ADDRESS], {"f": gate}, concurrency=3)
        for n in range(7):
            server.core.submitJob(
                None, b"f", b"u%d" % n, b"%d" % n, Priority.NORMAL, True
            )
        self.pump.flush()
        self.assertEqual(len(gate.jobs), 3, "three jobs started")
        self.pump.advance(0.3)
        self.assertEqual(len(gate.jobs), 3)
        function = server.core.functions[b"f"]
        self.assertEqual((function.running, function.total), (3, 7))
        for _ in range(7):
            self.pump.flush()
            self.assertTrue(gate.waiting, "a running job")
            gate.release()
        self.pump.flush()
        self.assertTrue(server.core.idle, "every job ended")
        self.assertEqual(len(gate.jobs), 7)
        self.assertEqual(gate.most, 3)
        self.assertEqual(
            sorted(job.data for job in gate.jobs), [b"%d" % n for n in range(7)]
        )

    def test_concurrencyAcrossServers(self) -> None:
        """
        The concurrency limit counts the jobs of all servers together.
        """
        one, two = self.startServer("one"), self.startServer("two")
        gate = Gate()
        worker = self.startWorker(["one", "two"], {"f": gate}, concurrency=2)
        self.assertAsleep(worker, 2)
        for server in (one, two):
            for n in range(3):
                server.core.submitJob(
                    None, b"f", b"u%d" % n, b"x", Priority.NORMAL, True
                )
        self.pump.flush()
        self.assertEqual(len(gate.jobs), 2, "two jobs started")
        self.pump.advance(0.3)
        self.assertEqual(len(gate.jobs), 2)
        for _ in range(6):
            self.pump.flush()
            self.assertTrue(gate.waiting, "a running job")
            gate.release()
        self.pump.flush()
        self.assertTrue(one.core.idle and two.core.idle, "every job ended")
        self.assertEqual((len(gate.jobs), gate.most), (6, 2))

    def test_reconnect(self) -> None:
        """
        When its server goes away, the worker connects to the one that
        starts at the same address, and runs its jobs.
        """
        first = self.startServer()
        worker = self.startWorker(
            [DEFAULT_ADDRESS], {"reverse": lambda job: job.data[::-1]}
        )
        self.assertAsleep(worker)
        self.pump.result(first.stopService())
        self.assertEqual(worker.connections, [], "the worker noticed")
        self.startServer()
        self.pump.advance(RECONNECT)
        self.assertAsleep(worker)
        client = self.client()
        handle = client.submit(b"reverse", b"again")
        [packet] = client.outcome(handle)
        self.assertEqual(packet.args, (handle, b"niaga"))

    def test_gracefulStop(self) -> None:
        """
        Stopping grabs no new job, waits for the running one, sends its
        result, and then closes; the job not started stays queued.
        """
        server = self.startServer()
        gate = Gate()
        worker = self.startWorker(
            [DEFAULT_ADDRESS], {"f": gate}, concurrency=2, stopTimeout=60
        )
        client = self.client()
        handle = client.submit(b"f", b"first")
        self.assertTrue(gate.waiting, "the job started")
        stopped = worker.stopService()
        server.core.submitJob(None, b"f", b"second", b"second", Priority.NORMAL, True)
        self.pump.advance(0.3)
        self.assertNoResult(stopped)
        self.assertEqual(len(gate.jobs), 1)
        gate.release(b"finished")
        [packet] = client.outcome(handle)
        self.assertEqual(packet.args, (handle, b"finished"))
        self.pump.result(stopped)
        self.assertEqual(worker.connections, [])
        function = server.core.functions[b"f"]
        self.assertEqual(
            (function.running, function.total, len(function.workers)), (0, 1, 0)
        )

    def test_handBack(self) -> None:
        """
        A job still running when the stop timeout passes is handed back:
        the connection closes, the server requeues the job and another
        worker runs it; the first worker's Deferred is cancelled.
        """
        self.startServer()
        gate = Gate()
        first = self.startWorker([DEFAULT_ADDRESS], {"f": gate}, stopTimeout=0.5)
        client = self.client()
        handle = client.submit(b"f", b"payload", b"the-unique")
        self.assertTrue(gate.waiting, "the job started")
        started = self.pump.clock.seconds()
        self.pump.result(first.stopService(), within=60)
        self.assertEqual(self.pump.clock.seconds() - started, 0.5)
        self.assertEqual(gate.cancelled, [handle])
        seen: list[WorkerJob] = []

        def second(job: WorkerJob) -> bytes:
            seen.append(job)
            return b"second: " + job.data

        self.startWorker([DEFAULT_ADDRESS], {"f": second})
        [packet] = client.outcome(handle)
        self.assertEqual(
            (packet.type, packet.args), (_P.WORK_COMPLETE, (handle, b"second: payload"))
        )
        self.assertEqual((seen[0].handle, seen[0].unique), (handle, b"the-unique"))

    def test_registerLater(self) -> None:
        """
        Functions registered while connected are announced and run; an
        unregistered function is withdrawn from the server.
        """
        server = self.startServer()
        worker = self.startWorker([DEFAULT_ADDRESS], {}, clientId=b"late-worker")
        self.assertAsleep(worker)
        worker.register("upper", lambda job: job.data.upper())
        client = self.client()
        handle = client.submit(b"upper", b"abc")
        [packet] = client.outcome(handle)
        self.assertEqual(packet.args, (handle, b"ABC"))
        client.transport.write(b"workers\n")  # type: ignore[union-attr]
        self.pump.flush()
        self.assertIn(b".", client.lines, "the workers listing came")
        self.assertIn(b"late-worker : upper", b"\n".join(client.lines))
        worker.unregister("upper")
        self.pump.flush()
        # CANT_DO arrived: with no worker and no job, the function is gone.
        self.assertNotIn(b"upper", server.core.functions)
