"""
Tests for L{txgearman.client.workerprotocol} and for the scheduling of
L{txgearman.client.worker.GearmanWorker} over it, on in-memory transports.

Server packets are built with L{txgearman.codec.encode}; what the worker
must send is spelled with L{txgearman.test.fakes.request}, an encoder
written independently of the codec, so both directions are checked byte
for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.testing import (
    EventLoggingObserver,
    MemoryReactorClock,
    StringTransport,
)
from twisted.logger import LogLevel, capturedLogs, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txgearman.client.errors import JobFailed
from txgearman.client.interfaces import IWorkerOwner
from txgearman.client.worker import GearmanWorker, WorkerJob, resultBytes
from txgearman.client.workerprotocol import GearmanWorkerProtocol
from txgearman.codec import RES, PacketType, encode
from txgearman.test.fakes import request

_P = PacketType

GRAB = request(_P.GRAB_JOB_UNIQ)
PRE_SLEEP = request(_P.PRE_SLEEP)


def res(ptype: PacketType, *args: bytes) -> bytes:
    """A server packet."""
    return encode(RES, ptype, args)


NOOP = res(_P.NOOP)
NO_JOB = res(_P.NO_JOB)


def assign(
    handle: bytes, function: bytes = b"f", unique: bytes = b"", data: bytes = b""
) -> bytes:
    return res(_P.JOB_ASSIGN_UNIQ, handle, function, unique, data)


@implementer(IWorkerOwner)
class RecordingOwner:
    """
    An L{IWorkerOwner} that records what its protocol tells it, with what
    the transport held at that moment.
    """

    def __init__(self, abilities: Iterable[tuple[bytes, float | None]] = ()) -> None:
        self._abilities = list(abilities)
        self.calls: list[tuple[Any, ...]] = []

    def abilities(self) -> list[tuple[bytes, float | None]]:
        return self._abilities

    def workerConnected(self, protocol: GearmanWorkerProtocol) -> None:
        self.calls.append(("connected", _written(protocol)))

    def workerDisconnected(
        self, protocol: GearmanWorkerProtocol, reason: Failure
    ) -> None:
        self.calls.append(("disconnected", reason.type))

    def workerWoken(self, protocol: GearmanWorkerProtocol) -> None:
        self.calls.append(("woken",))

    def noJob(self, protocol: GearmanWorkerProtocol) -> None:
        self.calls.append(("noJob",))

    def jobAssigned(
        self,
        protocol: GearmanWorkerProtocol,
        handle: bytes,
        function: bytes,
        unique: bytes,
        data: bytes,
    ) -> None:
        self.calls.append(("job", handle, function, unique, data))


def _written(protocol: GearmanWorkerProtocol) -> bytes:
    transport = cast(StringTransport, protocol.transport)
    return transport.value()


def connect(
    owner: Any, clientId: bytes | None = None
) -> tuple[GearmanWorkerProtocol, StringTransport]:
    protocol = GearmanWorkerProtocol(owner, clientId)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def take(transport: StringTransport) -> bytes:
    """What was written since the last call."""
    data = transport.value()
    transport.clear()
    return data


class ProtocolTests(SynchronousTestCase):
    """
    L{GearmanWorkerProtocol} turns server packets into owner calls and its
    methods into request packets.
    """

    def test_ownerInterface(self) -> None:
        """
        L{GearmanWorker} provides L{IWorkerOwner}.
        """
        worker = GearmanWorker(["tcp:127.0.0.1:4730"], reactor=MemoryReactorClock())
        self.assertTrue(verifyObject(IWorkerOwner, worker))

    def test_connectAnnounces(self) -> None:
        """
        On connection the protocol sends SET_CLIENT_ID, then CAN_DO for a
        function without a time limit and CAN_DO_TIMEOUT in milliseconds for
        one with, and only then tells its owner that it is connected.
        """
        owner = RecordingOwner([(b"plain", None), (b"limited", 1.5)])
        protocol, transport = connect(owner, b"me")
        expected = (
            request(_P.SET_CLIENT_ID, b"me")
            + request(_P.CAN_DO, b"plain")
            + request(_P.CAN_DO_TIMEOUT, b"limited", b"1500")
        )
        self.assertEqual(transport.value(), expected)
        self.assertEqual(owner.calls, [("connected", expected)])
        self.assertTrue(protocol.live)
        self.assertTrue(protocol.wantsJob)

    def test_noClientId(self) -> None:
        """
        Without a client id no SET_CLIENT_ID is sent; a time limit below a
        millisecond is sent as one millisecond.
        """
        owner = RecordingOwner([(b"f", 0.0001)])
        _, transport = connect(owner)
        self.assertEqual(transport.value(), request(_P.CAN_DO_TIMEOUT, b"f", b"1"))

    def test_grabNoJobSleeps(self) -> None:
        """
        A grab sends GRAB_JOB_UNIQ; NO_JOB makes the connection send
        PRE_SLEEP and sleep, then tells the owner.
        """
        owner = RecordingOwner()
        protocol, transport = connect(owner)
        protocol.grab()
        self.assertEqual(take(transport), GRAB)
        self.assertTrue(protocol.grabbing)
        self.assertFalse(protocol.wantsJob)
        protocol.dataReceived(NO_JOB)
        self.assertEqual(take(transport), PRE_SLEEP)
        self.assertTrue(protocol.sleeping)
        self.assertFalse(protocol.grabbing)
        self.assertFalse(protocol.wantsJob)
        self.assertEqual(owner.calls[-1], ("noJob",))

    def test_noopWakes(self) -> None:
        """
        NOOP wakes a sleeping connection and tells the owner; the protocol
        does not grab by itself.
        """
        owner = RecordingOwner()
        protocol, transport = connect(owner)
        protocol.grab()
        protocol.dataReceived(NO_JOB)
        take(transport)
        protocol.dataReceived(NOOP)
        self.assertEqual(take(transport), b"")
        self.assertFalse(protocol.sleeping)
        self.assertTrue(protocol.wantsJob)
        self.assertEqual(owner.calls[-1], ("woken",))

    def test_noopWhileGrabbing(self) -> None:
        """
        A NOOP that arrives while a grab is in flight is remembered: the
        NO_JOB that answers the grab does not put the connection to sleep.
        """
        owner = RecordingOwner()
        protocol, transport = connect(owner)
        protocol.grab()
        take(transport)
        protocol.dataReceived(NOOP)
        self.assertTrue(protocol.grabbing)
        self.assertFalse(protocol.wantsJob)
        protocol.dataReceived(NO_JOB)
        self.assertEqual(take(transport), b"")
        self.assertFalse(protocol.sleeping)
        self.assertTrue(protocol.wantsJob)
        # The next NO_JOB, with no NOOP before it, puts it to sleep again.
        protocol.grab()
        protocol.dataReceived(NO_JOB)
        self.assertEqual(take(transport), GRAB + PRE_SLEEP)

    def test_onlyOneGrab(self) -> None:
        """
        A second grab before the first is answered is refused.
        """
        protocol, transport = connect(RecordingOwner())
        protocol.grab()
        self.assertRaises(RuntimeError, protocol.grab)
        self.assertEqual(transport.value(), GRAB)

    def test_jobAssignUniq(self) -> None:
        """
        JOB_ASSIGN_UNIQ answers the grab and hands handle, function, unique
        id and data (which may hold NULs) to the owner.
        """
        owner = RecordingOwner()
        protocol, _ = connect(owner)
        protocol.grab()
        protocol.dataReceived(assign(b"H:x:1", b"f", b"u-1", b"a\0b"))
        self.assertEqual(owner.calls[-1], ("job", b"H:x:1", b"f", b"u-1", b"a\0b"))
        self.assertFalse(protocol.grabbing)
        self.assertTrue(protocol.wantsJob)

    def test_jobAssign(self) -> None:
        """
        A plain JOB_ASSIGN is accepted too, with an empty unique id.
        """
        owner = RecordingOwner()
        protocol, _ = connect(owner)
        protocol.grab()
        protocol.dataReceived(res(_P.JOB_ASSIGN, b"H:1", b"f", b"data"))
        self.assertEqual(owner.calls[-1], ("job", b"H:1", b"f", b"", b"data"))

    def test_bytewise(self) -> None:
        """
        Packets split over many reads are decoded whole.
        """
        owner = RecordingOwner()
        protocol, _ = connect(owner)
        protocol.grab()
        for byte in NOOP + assign(b"H:1", b"f", b"u", b"xyz"):
            protocol.dataReceived(bytes([byte]))
        self.assertEqual(
            owner.calls[1:], [("woken",), ("job", b"H:1", b"f", b"u", b"xyz")]
        )

    def test_unsolicitedJob(self) -> None:
        """
        A job assigned without a grab breaks the owner's accounting: the
        connection is closed, and nothing more is sent on it.
        """
        owner = RecordingOwner()
        protocol, transport = connect(owner)
        protocol.dataReceived(assign(b"H:1"))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(protocol.live)
        self.assertEqual(
            [call[0] for call in owner.calls], ["connected", "disconnected"]
        )
        self.assertFalse(protocol.workComplete(b"H:1", b""))
        self.assertEqual(transport.value(), b"")
        self.flushLoggedErrors()

    def test_unsolicitedNoJob(self) -> None:
        """
        A NO_JOB that answers no grab is ignored: no PRE_SLEEP.
        """
        owner = RecordingOwner()
        protocol, transport = connect(owner)
        protocol.dataReceived(NO_JOB)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(owner.calls, [("connected", b"")])

    def test_garbage(self) -> None:
        """
        Bytes that are not a Gearman packet close the connection.
        """
        owner = RecordingOwner()
        protocol, transport = connect(owner)
        protocol.dataReceived(b"\0XYZ" + b"\0" * 8)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(owner.calls[-1][0], "disconnected")
        # The real connectionLost that follows changes nothing.
        protocol.connectionLost(Failure(ConnectionError()))
        self.assertEqual(
            [call[0] for call in owner.calls], ["connected", "disconnected"]
        )

    def test_errorLogged(self) -> None:
        """
        An ERROR packet is logged as a warning; the connection stays.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        protocol, _ = connect(RecordingOwner())
        protocol.dataReceived(res(_P.ERROR, b"JOB_NOT_FOUND", b"gone"))
        self.assertTrue(protocol.live)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(
            (warnings[0]["code"], warnings[0]["text"]), ("JOB_NOT_FOUND", "gone")
        )

    def test_workPackets(self) -> None:
        """
        Each WORK_* method sends its packet, byte for byte.
        """
        protocol, transport = connect(RecordingOwner())
        h = b"H:host:7"
        self.assertTrue(protocol.workData(h, b"d\0ata"))
        self.assertTrue(protocol.workWarning(h, b"careful"))
        self.assertTrue(protocol.workStatus(h, 3, 10))
        self.assertTrue(protocol.workComplete(h, b"done\0"))
        self.assertTrue(protocol.workFail(h))
        self.assertTrue(protocol.workException(h, b"boom"))
        self.assertTrue(protocol.canDo(b"g"))
        self.assertTrue(protocol.cantDo(b"g"))
        self.assertEqual(
            transport.value(),
            request(_P.WORK_DATA, h, b"d\0ata")
            + request(_P.WORK_WARNING, h, b"careful")
            + request(_P.WORK_STATUS, h, b"3", b"10")
            + request(_P.WORK_COMPLETE, h, b"done\0")
            + request(_P.WORK_FAIL, h)
            + request(_P.WORK_EXCEPTION, h, b"boom")
            + request(_P.CAN_DO, b"g")
            + request(_P.CANT_DO, b"g"),
        )

    def test_nothingAfterLoss(self) -> None:
        """
        Once the connection is lost, the owner is told once, and nothing is
        sent any more.
        """
        owner = RecordingOwner()
        protocol, transport = connect(owner)
        protocol.connectionLost(Failure(ConnectionError("gone")))
        protocol.connectionLost(Failure(ConnectionError("gone")))
        self.assertEqual(owner.calls[1:], [("disconnected", ConnectionError)])
        self.assertFalse(protocol.workComplete(b"H:1", b"x"))
        protocol.grab()
        self.assertFalse(protocol.grabbing)
        self.assertEqual(transport.value(), b"")


class DispatchTests(SynchronousTestCase):
    """
    Each packet goes to its type's C{packet_<NAME>} method, looked up on the
    protocol's own class; a handler that raises costs its connection only.
    """

    def test_subclassOverrides(self) -> None:
        """
        A subclass's handlers are called: one that overrides the base
        class's, and one for a type the base class ignores.  The base
        class keeps its own handlers.
        """
        seen: list[str] = []

        class Custom(GearmanWorkerProtocol):
            def packet_NOOP(self, args: tuple[bytes, ...]) -> None:
                seen.append("noop")
                super().packet_NOOP(args)

            def packet_ECHO_RES(self, args: tuple[bytes, ...]) -> None:
                seen.append("echo")

        owner = RecordingOwner()
        custom = Custom(owner)
        custom.makeConnection(StringTransport())
        custom.dataReceived(NOOP + res(_P.ECHO_RES, b"x"))
        self.assertEqual(seen, ["noop", "echo"])
        self.assertEqual(owner.calls[1:], [("woken",)])
        plain, _ = connect(owner)
        plain.dataReceived(NOOP + res(_P.ECHO_RES, b"x"))
        self.assertEqual(seen, ["noop", "echo"])
        self.assertEqual(owner.calls[3:], [("woken",)])

    def test_handlerFails(self) -> None:
        """
        A handler that raises (here through its owner) is logged with its
        packet type; its connection is closed and its owner told at once,
        with the failure, and the rest of what was read is ignored.  The
        owner's other connection is served as before.
        """

        class BrokenOwner(RecordingOwner):
            def jobAssigned(
                self,
                protocol: GearmanWorkerProtocol,
                handle: bytes,
                function: bytes,
                unique: bytes,
                data: bytes,
            ) -> None:
                if handle == b"H:bad":
                    raise ZeroDivisionError("bug")
                super().jobAssigned(protocol, handle, function, unique, data)

        owner = BrokenOwner()
        victim, victimTransport = connect(owner)
        other, otherTransport = connect(owner)
        victim.grab()
        other.grab()
        with capturedLogs() as events:
            victim.dataReceived(assign(b"H:bad") + NOOP)
        self.assertTrue(victimTransport.disconnecting)
        self.assertFalse(victim.live)
        self.assertEqual(
            owner.calls[2:], [("disconnected", ZeroDivisionError)], owner.calls
        )
        [event] = [e for e in events if "log_failure" in e]
        self.assertEqual(event["packetType"], "JOB_ASSIGN_UNIQ")
        self.assertIsInstance(event["log_failure"].value, ZeroDivisionError)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        # The real connectionLost that follows changes nothing.
        victim.connectionLost(Failure(ConnectionError()))
        self.assertEqual(len(owner.calls), 3)

        self.assertFalse(otherTransport.disconnecting)
        other.dataReceived(assign(b"H:good", data=b"d"))
        self.assertEqual(owner.calls[3:], [("job", b"H:good", b"f", b"", b"d")])
        take(otherTransport)
        self.assertTrue(other.workComplete(b"H:good", b"r"))
        self.assertEqual(
            otherTransport.value(), request(_P.WORK_COMPLETE, b"H:good", b"r")
        )


class ResultBytesTests(SynchronousTestCase):
    def test_conversions(self) -> None:
        """
        bytes-like results are sent as they are, C{str} as UTF-8, C{None}
        as nothing, anything else as its C{str} in UTF-8.
        """
        self.assertEqual(resultBytes(b"\0raw"), b"\0raw")
        self.assertEqual(resultBytes(bytearray(b"ba")), b"ba")
        self.assertEqual(resultBytes(memoryview(b"mv")), b"mv")
        self.assertEqual(resultBytes("h\u00e9"), b"h\xc3\xa9")
        self.assertEqual(resultBytes(None), b"")
        self.assertEqual(resultBytes(42), b"42")
        self.assertEqual(resultBytes([1, "\u00e9"]), "[1, '\u00e9']".encode())


class WorkerOverProtocolTests(SynchronousTestCase):
    """
    L{GearmanWorker} drives its connections: it grabs only while it has
    room, runs the functions and sends their results.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.cancelled: list[bytes] = []

    def worker(self, concurrency: int = 1, **kwargs: Any) -> GearmanWorker:
        return GearmanWorker(
            ["tcp:127.0.0.1:4730"],
            reactor=self.clock,
            concurrency=concurrency,
            **kwargs,
        )

    def pending(self, worker: GearmanWorker, name: bytes = b"f") -> list[Deferred[Any]]:
        """
        Register C{name} with a function whose jobs end when the test fires
        the Deferreds collected in the returned list.
        """
        started: list[Deferred[Any]] = []

        def run(job: WorkerJob) -> Deferred[Any]:
            d: Deferred[Any] = Deferred(lambda d: self.cancelled.append(job.handle))
            started.append(d)
            return d

        worker.register(name, run)
        return started

    def test_cycle(self) -> None:
        """
        A new connection announces its functions and grabs; NO_JOB makes it
        sleep, NOOP grabs again, and a job's result is sent as
        WORK_COMPLETE followed by the next grab.
        """
        worker = self.worker()
        jobs: list[WorkerJob] = []

        def reverse(job: WorkerJob) -> bytes:
            jobs.append(job)
            return job.data[::-1]

        worker.register("reverse", reverse)
        protocol, transport = connect(worker)
        self.assertEqual(take(transport), request(_P.CAN_DO, b"reverse") + GRAB)
        protocol.dataReceived(NO_JOB)
        self.assertEqual(take(transport), PRE_SLEEP)
        protocol.dataReceived(NOOP)
        self.assertEqual(take(transport), GRAB)
        protocol.dataReceived(assign(b"H:1", b"reverse", b"u1", b"hello"))
        self.assertEqual(
            take(transport), request(_P.WORK_COMPLETE, b"H:1", b"olleh") + GRAB
        )
        [job] = jobs
        self.assertEqual(
            (job.handle, job.function, job.unique, job.data),
            (b"H:1", b"reverse", b"u1", b"hello"),
        )
        self.assertEqual(worker.activeJobs, [])

    def test_noopWhileGrabbing(self) -> None:
        """
        A NOOP during a grab makes the worker grab again after NO_JOB
        instead of sleeping.
        """
        worker = self.worker()
        self.pending(worker)
        protocol, transport = connect(worker)
        take(transport)
        protocol.dataReceived(NOOP + NO_JOB)
        self.assertEqual(take(transport), GRAB)
        protocol.dataReceived(NO_JOB)
        self.assertEqual(take(transport), PRE_SLEEP)

    def test_concurrencyLimit(self) -> None:
        """
        With a concurrency of 2, the worker grabs again after the first job
        but not after the second, not even on NOOP; when a job ends it sends
        the result and grabs again.
        """
        worker = self.worker(concurrency=2)
        started = self.pending(worker)
        protocol, transport = connect(worker)
        take(transport)
        protocol.dataReceived(assign(b"H:1"))
        self.assertEqual(take(transport), GRAB)
        protocol.dataReceived(assign(b"H:2"))
        self.assertEqual(take(transport), b"")
        protocol.dataReceived(NOOP)
        self.assertEqual(take(transport), b"")
        self.assertEqual(len(worker.activeJobs), 2)
        started[1].callback(b"two")
        self.assertEqual(
            take(transport), request(_P.WORK_COMPLETE, b"H:2", b"two") + GRAB
        )
        protocol.dataReceived(assign(b"H:3"))
        self.assertEqual(take(transport), b"")
        started[0].callback(None)
        self.assertEqual(take(transport), request(_P.WORK_COMPLETE, b"H:1", b"") + GRAB)
        protocol.dataReceived(NO_JOB)
        self.assertEqual(take(transport), PRE_SLEEP)
        self.assertEqual(len(worker.activeJobs), 1)

    def test_concurrencyAcrossConnections(self) -> None:
        """
        The limit spans connections, and a grab in flight holds a slot: with
        a concurrency of 1 only one of two connections grabs at a time.
        """
        worker = self.worker(concurrency=1)
        started = self.pending(worker)
        a, ta = connect(worker)
        b, tb = connect(worker)
        self.assertEqual(take(ta), request(_P.CAN_DO, b"f") + GRAB)
        self.assertEqual(take(tb), request(_P.CAN_DO, b"f"))
        a.dataReceived(NO_JOB)
        self.assertEqual(take(ta), PRE_SLEEP)
        self.assertEqual(take(tb), GRAB)
        b.dataReceived(assign(b"H:b1"))
        a.dataReceived(NOOP)
        self.assertEqual((take(ta), take(tb)), (b"", b""))
        started[0].callback(b"r")
        # One grab, on the connection whose turn it is: a, woken meanwhile.
        self.assertEqual(take(tb), request(_P.WORK_COMPLETE, b"H:b1", b"r"))
        self.assertEqual(take(ta), GRAB)

    def test_results(self) -> None:
        """
        JobFailed sends WORK_FAIL; another exception sends WORK_EXCEPTION
        with its text (its class name when it has none) and is logged;
        Deferred results and coroutines are waited for.
        """
        worker = self.worker(concurrency=10)
        waiting: list[Deferred[bytes]] = []

        def later() -> Deferred[bytes]:
            d: Deferred[bytes] = Deferred()
            waiting.append(d)
            return d

        def failing(job: WorkerJob) -> None:
            raise JobFailed()

        def raising(job: WorkerJob) -> None:
            raise ValueError("bad " + job.data.decode())

        def silent(job: WorkerJob) -> None:
            raise ValueError()

        def deferred(job: WorkerJob) -> Deferred[bytes]:
            return later()

        async def coroutine(job: WorkerJob) -> str:
            value = await later()
            return value.decode() + "!"

        async def asyncFailing(job: WorkerJob) -> None:
            await later()
            raise JobFailed()

        for function in (failing, raising, silent, deferred, coroutine, asyncFailing):
            worker.register(function.__name__, function)
        protocol, transport = connect(worker)
        protocol.dataReceived(
            assign(b"H:1", b"failing")
            + assign(b"H:2", b"raising", b"", b"input")
            + assign(b"H:3", b"silent")
            + assign(b"H:4", b"deferred")
            + assign(b"H:5", b"coroutine")
            + assign(b"H:6", b"asyncFailing")
        )
        sent = take(transport)
        expected = [
            request(_P.WORK_FAIL, b"H:1"),
            request(_P.WORK_EXCEPTION, b"H:2", b"bad input"),
            request(_P.WORK_EXCEPTION, b"H:3", b"ValueError"),
        ]
        position = 0
        for packet in expected:
            found = sent.find(packet, position)
            self.assertNotEqual(found, -1, packet)
            position = found + len(packet)
        self.assertEqual(len(worker.activeJobs), 3)
        self.assertEqual(len(waiting), 3)
        for d in waiting:
            d.callback(b"later")
        sent = take(transport)
        self.assertIn(request(_P.WORK_COMPLETE, b"H:4", b"later"), sent)
        self.assertIn(request(_P.WORK_COMPLETE, b"H:5", b"later!"), sent)
        self.assertIn(request(_P.WORK_FAIL, b"H:6"), sent)
        self.assertEqual(worker.activeJobs, [])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 2)

    def test_nothingAfterException(self) -> None:
        """
        After WORK_EXCEPTION nothing more is sent for the job, even if its
        code goes on reporting.
        """
        worker = self.worker()
        kept: list[WorkerJob] = []

        def raising(job: WorkerJob) -> None:
            kept.append(job)
            raise RuntimeError("x")

        worker.register("f", raising)
        protocol, transport = connect(worker)
        protocol.dataReceived(assign(b"H:1"))
        take(transport)
        kept[0].sendData(b"more")
        kept[0].sendStatus(1, 2)
        kept[0].sendWarning(b"w")
        self.assertEqual(take(transport), b"")
        self.flushLoggedErrors(RuntimeError)

    def test_progressPackets(self) -> None:
        """
        A job's sendData, sendWarning and sendStatus send WORK_DATA,
        WORK_WARNING and WORK_STATUS for its handle, in call order.
        """
        worker = self.worker()
        started: list[WorkerJob] = []
        finish: Deferred[bytes] = Deferred()

        def run(job: WorkerJob) -> Deferred[bytes]:
            started.append(job)
            return finish

        worker.register("f", run)
        protocol, transport = connect(worker)
        protocol.dataReceived(assign(b"H:9"))
        take(transport)
        [job] = started
        job.sendStatus(1, 4)
        job.sendData(b"chunk")
        job.sendWarning(b"hmm")
        finish.callback(b"end")
        self.assertEqual(
            take(transport),
            request(_P.WORK_STATUS, b"H:9", b"1", b"4")
            + request(_P.WORK_DATA, b"H:9", b"chunk")
            + request(_P.WORK_WARNING, b"H:9", b"hmm")
            + request(_P.WORK_COMPLETE, b"H:9", b"end")
            + GRAB,
        )

    def test_lostConnectionKeepsSlot(self) -> None:
        """
        When a connection is lost, its running job is abandoned (the server
        takes it back) but still counts until its function returns; then its
        result is dropped and a new connection may grab.
        """
        worker = self.worker(concurrency=1)
        started = self.pending(worker)
        a, ta = connect(worker)
        a.dataReceived(assign(b"H:1"))
        [job] = worker.activeJobs
        self.assertFalse(job.abandoned)
        a.connectionLost(Failure(ConnectionError("gone")))
        self.assertTrue(job.abandoned)
        b, tb = connect(worker)
        self.assertEqual(take(tb), request(_P.CAN_DO, b"f"))
        take(ta)
        started[0].callback(b"too late")
        self.assertEqual(take(ta), b"")
        self.assertEqual(take(tb), GRAB)
        self.assertEqual(worker.connections, [b])

    def test_registerLater(self) -> None:
        """
        Registering on a live, sleeping connection sends CAN_DO and grabs,
        since not every server wakes a worker for a new function.
        """
        worker = self.worker()
        self.pending(worker, b"f")
        protocol, transport = connect(worker)
        protocol.dataReceived(NO_JOB)
        take(transport)
        self.pending(worker, b"g")
        self.assertEqual(take(transport), request(_P.CAN_DO, b"g") + GRAB)
        worker.register("h", lambda job: None, timeout=2)
        self.assertEqual(take(transport), request(_P.CAN_DO_TIMEOUT, b"h", b"2000"))
        protocol.dataReceived(NO_JOB)
        # The registration during the grab keeps the connection awake.
        self.assertEqual(take(transport), GRAB)
        self.assertEqual(worker.functions, [b"f", b"g", b"h"])

    def test_unregister(self) -> None:
        """
        Unregistering sends CANT_DO; a job of that function assigned after
        all (the grab crossed the CANT_DO) is failed.
        """
        worker = self.worker()
        self.pending(worker, b"f")
        protocol, transport = connect(worker)
        take(transport)
        worker.unregister("f")
        worker.unregister("unknown")
        self.assertEqual(take(transport), request(_P.CANT_DO, b"f"))
        protocol.dataReceived(assign(b"H:1", b"f"))
        self.assertEqual(take(transport), request(_P.WORK_FAIL, b"H:1") + GRAB)
        self.assertEqual(worker.functions, [])

    def test_registerInsideJob(self) -> None:
        """
        A function that registers another while it runs does not make the
        worker grab beyond its limit.
        """
        worker = self.worker(concurrency=1)
        finish: Deferred[None] = Deferred()

        def run(job: WorkerJob) -> Deferred[None]:
            worker.register("g", lambda job: None)
            return finish

        worker.register("f", run)
        protocol, transport = connect(worker)
        take(transport)
        protocol.dataReceived(assign(b"H:1"))
        self.assertEqual(take(transport), request(_P.CAN_DO, b"g"))

    def test_stopWaits(self) -> None:
        """
        Stopping grabs no more, waits for the running job and sends its
        result before it finishes.
        """
        worker = self.worker(concurrency=2, stopTimeout=10)
        started = self.pending(worker)
        protocol, transport = connect(worker)
        protocol.dataReceived(assign(b"H:1"))
        protocol.dataReceived(NO_JOB)
        take(transport)
        stopped = worker.stopService()
        protocol.dataReceived(NOOP)
        self.assertEqual(take(transport), b"")
        self.clock.advance(9)
        self.assertNoResult(stopped)
        started[0].callback(b"ok")
        self.assertEqual(take(transport), request(_P.WORK_COMPLETE, b"H:1", b"ok"))
        self.successResultOf(stopped)

    def test_stopWaitsForGrab(self) -> None:
        """
        A grab in flight when stopping starts is waited for, and the job it
        brings is run and answered.
        """
        worker = self.worker(stopTimeout=10)
        started = self.pending(worker)
        protocol, transport = connect(worker)
        stopped = worker.stopService()
        self.assertNoResult(stopped)
        protocol.dataReceived(assign(b"H:1"))
        self.assertNoResult(stopped)
        started[0].callback(b"done")
        self.successResultOf(stopped)
        self.assertEqual(
            take(transport),
            request(_P.CAN_DO, b"f")
            + GRAB
            + request(_P.WORK_COMPLETE, b"H:1", b"done"),
        )

    def test_stopTimeout(self) -> None:
        """
        A job still running at the stop timeout is handed back: nothing is
        sent for it, and its Deferred is cancelled.
        """
        worker = self.worker(stopTimeout=5)
        self.pending(worker)
        protocol, transport = connect(worker)
        protocol.dataReceived(assign(b"H:1"))
        take(transport)
        stopped = worker.stopService()
        self.clock.advance(4.9)
        self.assertNoResult(stopped)
        self.clock.advance(0.2)
        self.successResultOf(stopped)
        self.assertEqual(self.cancelled, [b"H:1"])
        self.assertEqual(take(transport), b"")
        self.assertEqual(worker.activeJobs, [])
