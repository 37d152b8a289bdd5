"""
Tests for flow control on forwarded output: a client that does not read
the results its jobs' workers stream holds those workers back
(L{JobServer.outputFull}, L{JobServer.outputDrained}), and past
C{--client-output-limit} is closed.  First the core's rules on fake peers,
then the protocol over transports that pause their producer as Twisted's
TCP transport does.  The real-TCP test is C{tests/test_backpressure_tcp.py}.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from txgearman.codec import PacketType as P
from txgearman.server.batching import WriteBatcher
from txgearman.server.core import JobServer
from txgearman.server.protocol import HIGH_WATER, LOW_WATER, GearmanServerFactory
from txgearman.server.session import Session
from txgearman.test.fakes import (
    MemoryConnection,
    ThrottledTransport,
    response,
    splitResponses,
)
from txgearman.test.test_core import CoreTestCase, peerOf


def piece(handle: bytes, size: int = 4096) -> bytes:
    """One WORK_DATA packet the tests' workers stream, as forwarded."""
    return response(P.WORK_DATA, handle, b"d" * size)


class CoreThrottleTests(CoreTestCase):
    """
    Which workers the core holds back for a full client, and when it lets
    them go.
    """

    def running(self, *clients: Session, unique: bytes = b"") -> tuple[Session, bytes]:
        """A worker running one job that C{clients} submitted."""
        handle = b""
        for client in clients:
            handle = self.submit(unique=unique, session=client)
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), handle)
        return worker, handle

    def test_fullClientHoldsBackItsWorker(self) -> None:
        """
        A client whose output is full holds back the worker running its
        job, and only that one; once drained, the worker reads again.
        """
        client, other = self.client(), self.client()
        worker, _ = self.running(client)
        otherWorker, _ = self.running(other)
        self.server.outputFull(client)
        self.assertFalse(peerOf(worker).reading)
        self.assertTrue(peerOf(otherWorker).reading)
        self.assertEqual(self.server.heldBack(), [worker])
        self.server.outputDrained(client)
        self.assertTrue(peerOf(worker).reading)
        self.assertEqual(self.server.heldBack(), [])

    def test_repeatedSignals(self) -> None:
        """
        Being told twice that a client is full, or drained, is no more
        than once.
        """
        client = self.client()
        worker, _ = self.running(client)
        self.server.outputFull(client)
        self.server.outputFull(client)
        self.server.outputDrained(client)
        self.assertTrue(peerOf(worker).reading)
        self.server.outputDrained(client)
        self.server.outputFull(client)
        self.assertFalse(peerOf(worker).reading)

    def test_workerStartingAJobOfAFullClient(self) -> None:
        """
        A worker that grabs a job whose client is full is held back at
        once; grabbing other jobs is not.
        """
        client = self.client()
        self.submit(session=client)
        self.server.outputFull(client)
        fine = self.worker(b"other")
        self.submit(name=b"other")
        self.grabHandle(fine)
        self.assertTrue(peerOf(fine).reading)
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.assertFalse(peerOf(worker).reading)

    def test_twoClientsOneJob(self) -> None:
        """
        A worker running a job two clients share (one unique id) is held
        back while either of them is full.
        """
        first, second = self.client(), self.client()
        worker, _ = self.running(first, second, unique=b"u")
        self.server.outputFull(first)
        self.server.outputFull(second)
        self.server.outputDrained(first)
        self.assertFalse(peerOf(worker).reading)
        self.server.outputDrained(second)
        self.assertTrue(peerOf(worker).reading)

    def test_fullClientAttachesToARunningJob(self) -> None:
        """
        A full client that submits the unique id of a running job holds
        back the worker running it.
        """
        client, late = self.client(), self.client()
        worker, _ = self.running(client, unique=b"u")
        self.server.outputFull(late)
        self.submit(unique=b"u", session=late)
        self.assertFalse(peerOf(worker).reading)

    def test_fullClientLeaves(self) -> None:
        """
        A full client that disconnects lets its workers go; the job keeps
        running, and the others' clients keep theirs.
        """
        client, other = self.client(), self.client()
        worker, handle = self.running(client, other, unique=b"u")
        self.server.outputFull(client)
        self.server.disconnect(client)
        self.assertTrue(peerOf(worker).reading)
        self.assertEqual(self.server.heldBack(), [])
        self.server.workComplete(worker, handle, b"result")
        self.assertEqual(
            peerOf(other).take()[-1], (P.WORK_COMPLETE, (handle, b"result"))
        )

    def test_jobEnds(self) -> None:
        """
        The worker of a full client's job reads again once that job ends,
        however it ends: completed, failed, given up (CANT_DO), cancelled.
        """
        for end in ("complete", "fail", "cantDo", "cancel"):
            client = self.client()
            worker, handle = self.running(client)
            self.server.outputFull(client)
            self.assertFalse(peerOf(worker).reading, end)
            if end == "complete":
                self.server.workComplete(worker, handle, b"")
            elif end == "fail":
                self.server.workFail(worker, handle)
            elif end == "cantDo":
                self.server.cantDo(worker, b"fn")
            else:
                self.assertTrue(self.server.cancelJob(handle))
            self.assertTrue(peerOf(worker).reading, end)
            self.assertEqual(self.server.heldBack(), [], end)
            self.server.disconnect(client)

    def test_workerWithAnotherFullJob(self) -> None:
        """
        A worker running jobs for two full clients still waits when one of
        those jobs ends.
        """
        first, second = self.client(), self.client()
        one = self.submit(session=first)
        two = self.submit(session=second)
        worker = self.worker(b"fn")
        self.assertEqual(self.grabAll(worker), [one, two])
        self.server.outputFull(first)
        self.server.outputFull(second)
        self.server.workComplete(worker, one, b"")
        self.assertFalse(peerOf(worker).reading)
        self.server.workComplete(worker, two, b"")
        self.assertTrue(peerOf(worker).reading)

    def test_heldBackWorkerLeaves(self) -> None:
        """
        A worker held back that disconnects is forgotten; its job goes to
        the next worker, which is held back in its turn.
        """
        client = self.client()
        worker, handle = self.running(client)
        self.server.outputFull(client)
        self.server.disconnect(worker)
        self.assertEqual(self.server.heldBack(), [])
        nextWorker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(nextWorker), handle)
        self.assertEqual(self.server.heldBack(), [nextWorker])
        self.server.disconnect(client)
        self.assertTrue(peerOf(nextWorker).reading)


class ProtocolThrottleTests(SynchronousTestCase):
    """
    The protocol counts what waits for a peer once its transport has
    paused it, and tells the core; past the limit it closes the
    connection.
    """

    limit = 8 * HIGH_WATER

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.core = JobServer(self.clock, handlePrefix=b"H:test")
        self.factory = GearmanServerFactory(
            self.core, batcher=WriteBatcher(self.clock), clientOutputLimit=self.limit
        )
        self._ports = iter(range(40000, 50000))

    def connect(self) -> MemoryConnection:
        return MemoryConnection(
            self.factory, transport=ThrottledTransport(next(self._ports))
        )

    def transportOf(self, conn: MemoryConnection) -> ThrottledTransport:
        transport = conn.transport
        assert isinstance(transport, ThrottledTransport)
        return transport

    def startJob(self, *clients: MemoryConnection) -> tuple[MemoryConnection, bytes]:
        """Submit one job from each of C{clients}, and a worker to run it."""
        for client in clients:
            client.send(P.SUBMIT_JOB, b"f", b"u", b"x")
        worker = self.connect()
        worker.send(P.CAN_DO, b"f")
        worker.send(P.GRAB_JOB)
        self.clock.advance(0)
        handle = splitResponses(self.transportOf(worker).read())[-1][1].split(b"\0")[0]
        for client in clients:
            self.transportOf(client).read()
        return worker, handle

    def stream(
        self,
        worker: MemoryConnection,
        handle: bytes,
        size: int,
        chunk: int,
        readers: tuple[MemoryConnection, ...] = (),
    ) -> int:
        """
        The worker sends C{size} bytes of WORK_DATA in C{chunk}s, one read
        per turn, as long as the server reads it, and C{readers} read all
        they got after each turn; return what was sent.
        """
        sent = 0
        body = b"d" * chunk
        while sent < size and worker.transport.producerState == "producing":
            worker.send(P.WORK_DATA, handle, body)
            self.clock.advance(0)
            sent += chunk
            for reader in readers:
                self.transportOf(reader).read()
        return sent

    def test_pauseAtHighWater(self) -> None:
        """
        A client that does not read lets its transport fill, then the
        server hold its output up to the high-water mark: then the
        worker's reading stops.  What the server holds stays near the
        mark, however much the worker had to send.
        """
        client = self.connect()
        worker, handle = self.startJob(client)
        sent = self.stream(worker, handle, 20 * HIGH_WATER, 4096)
        self.assertEqual(worker.transport.producerState, "paused")
        self.assertLess(sent, 20 * HIGH_WATER)
        held = client.proto._heldBytes
        self.assertGreater(held, HIGH_WATER)
        self.assertLess(held, HIGH_WATER + 8192)
        # The transport took no more once it was full.
        transport = self.transportOf(client)
        self.assertLess(transport.buffered(), transport.bufferSize + 8192)
        self.assertEqual(self.core.heldBack(), [worker.proto.session])

    def test_resumeAtLowWater(self) -> None:
        """
        As the client reads, held output goes to its transport; the worker
        reads again only once less than the low-water mark is held, and
        everything arrives in order.
        """
        client = self.connect()
        worker, handle = self.startJob(client)
        sent = self.stream(worker, handle, 20 * HIGH_WATER, 4096)
        transport = self.transportOf(client)
        received = b""
        while worker.transport.producerState == "paused":
            received += transport.read()
            if worker.transport.producerState == "paused":
                self.assertGreater(client.proto._heldBytes, LOW_WATER - 8192)
        self.assertLessEqual(client.proto._heldBytes, LOW_WATER)
        self.assertEqual(self.core.heldBack(), [])
        worker.send(P.WORK_COMPLETE, handle, b"end")
        self.clock.advance(0)
        while transport.buffered() or client.proto._held:
            received += transport.read()
        packets = splitResponses(received)
        self.assertEqual(packets[-1], (P.WORK_COMPLETE, handle + b"\0end"))
        data = [body for kind, body in packets if kind is P.WORK_DATA]
        self.assertEqual(len(data), sent // 4096)
        self.assertEqual(set(data), {handle + b"\0" + b"d" * 4096})

    def test_twoClientsOneJob(self) -> None:
        """
        A worker whose job two clients share waits while either of them
        does not read; the one that reads still gets everything.
        """
        reader, sleeper = self.connect(), self.connect()
        worker, handle = self.startJob(reader, sleeper)
        before = self.transportOf(reader).taken
        sent = self.stream(worker, handle, 20 * HIGH_WATER, 4096, readers=(reader,))
        self.assertEqual(worker.transport.producerState, "paused")
        self.assertEqual(reader.proto._heldBytes, 0)
        taken = self.transportOf(reader).taken - before
        self.assertEqual(taken, sent // 4096 * len(piece(handle)))
        self.transportOf(sleeper).read()
        while sleeper.proto._outputFull:
            self.transportOf(sleeper).read()
        self.assertEqual(worker.transport.producerState, "producing")

    def test_clientLostWhileWorkerPaused(self) -> None:
        """
        A full client that goes away lets the worker read again and leaves
        nothing held; the job runs on, its results going nowhere.
        """
        client = self.connect()
        worker, handle = self.startJob(client)
        self.stream(worker, handle, 20 * HIGH_WATER, 4096)
        self.assertEqual(worker.transport.producerState, "paused")
        client.lose()
        self.assertEqual(worker.transport.producerState, "producing")
        self.assertEqual(client.proto._heldBytes, 0)
        self.assertEqual(len(client.proto._held), 0)
        self.assertEqual(self.core.heldBack(), [])
        worker.send(P.WORK_DATA, handle, b"more")
        worker.send(P.WORK_COMPLETE, handle, b"end")
        self.clock.advance(0)
        self.assertEqual(self.core.jobs, {})

    def test_hardLimit(self) -> None:
        """
        Past the limit (here reached by many workers' results arriving in
        one turn, before they could be held back) the client is closed at
        once with a logged reason naming its address and what it held,
        and what was held is let go.  Its job carries on; another client
        of the same job keeps its results.
        """
        client, other = self.connect(), self.connect()
        worker, handle = self.startJob(client, other)
        self.transportOf(client).write(b"x" * (self.transportOf(client).bufferSize + 1))
        big = b"d" * (self.limit // 4)
        with capturedLogs() as events:
            for _ in range(5):
                worker.send(P.WORK_DATA, handle, big)
            self.clock.advance(0)
        self.assertTrue(client.transport.disconnected)
        self.assertEqual(client.proto._heldBytes, 0)
        [event] = [e for e in events if "client-output-limit" in formatEvent(e)]
        text = formatEvent(event)
        self.assertIn(
            f"from 127.0.0.1: {self.limit // 4 * 5 + 5 * (12 + len(handle) + 1)}", text
        )
        self.assertIn(f"--client-output-limit ({self.limit} bytes)", text)
        client.lose()
        worker.send(P.WORK_COMPLETE, handle, b"end")
        self.clock.advance(0)
        received = b""
        while self.transportOf(other).buffered() or other.proto._held:
            received += self.transportOf(other).read()
        packets = splitResponses(received)
        self.assertEqual(packets[-1], (P.WORK_COMPLETE, handle + b"\0end"))
        self.assertEqual(len(packets), 6)

    def test_readingClientUnaffected(self) -> None:
        """
        A client that reads what it gets never holds its worker back, and
        nothing is held for it.
        """
        client = self.connect()
        worker, handle = self.startJob(client)
        transport = self.transportOf(client)
        for _ in range(100):
            worker.send(P.WORK_DATA, handle, b"d" * 65536)
            self.clock.advance(0)
            self.assertEqual(client.proto._heldBytes, 0)
            self.assertEqual(worker.transport.producerState, "producing")
            transport.read()
        self.assertEqual(self.core.heldBack(), [])
        self.assertFalse(client.proto._outputFull)

    def test_closeSendsHeldOutput(self) -> None:
        """
        A connection closed while output is held for it hands that output
        to the transport first, in order, before the ERROR that explains
        the close.
        """
        client = self.connect()
        worker, handle = self.startJob(client)
        self.stream(worker, handle, 2 * HIGH_WATER, 4096)
        held = client.proto._heldBytes
        self.assertGreater(held, 0)
        before = self.transportOf(client).buffered()
        client.raw(b"\0BAD" + b"\0" * 8)
        self.clock.advance(0)
        self.assertTrue(client.transport.disconnecting)
        data = self.transportOf(client).read()
        self.assertGreater(len(data), before + held)
        self.assertEqual(splitResponses(data)[-1][0], P.ERROR)
