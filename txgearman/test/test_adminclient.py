"""
Tests for L{txgearman.client.admin}: reply parsing on an in-memory transport,
then a txgearman server in memory, on L{txgearman.testing.GearmanPump} (the
tests over TCP and against gearmand are in C{tests/}).
"""

from __future__ import annotations

import os
from typing import Any, TypeVar, cast

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txgearman import __version__
from txgearman.client.admin import (
    FunctionStatus,
    GearmanAdminClient,
    JobInfo,
    PriorityStatus,
    WorkerInfo,
)
from txgearman.client.errors import (
    AdminConnectFailed,
    AdminConnectionLost,
    AdminError,
    AdminTimeout,
)
from txgearman.codec import (
    PacketType,
    Priority,
    encodeResponse,
)
from txgearman.server.admin import AdminCommands
from txgearman.server.core import JobServer
from txgearman.server.service import GearmanServerService
from txgearman.test.fakes import FakePeer, PacketPeer
from txgearman.testing import DEFAULT_ADDRESS, GearmanPump

_E = TypeVar("_E", bound=BaseException)

# gearmand 1.1.20's replies (observed), one command per entry.
GEARMAND = {
    b"status": b"email\t1\t1\t1\nresize\t3\t0\t2\n.\n",
    b"prioritystatus": b"email\t0\t0\t0\t1\nresize\t1\t1\t1\t2\n.\n",
    b"workers": b"38 127.0.0.1 wk-A : email resize\n39 127.0.0.1 - : resize\n40 127.0.0.1 - :\n.\n",
    b"show jobs": b"H:demo:2\t0\t0\t1\nH:demo:4\t2\t1\t0\n.\n",
    b"show unique jobs": b"img-1\n\nmail-1\n.\n",
    b"version": b"OK 1.1.20+ds\n",
    b"verbose": b"OK ERROR\n",
    b"getpid": b"OK 15212\n",
}


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """
    Connects protocols to in-memory transports that call C{connectionLost}
    when closed.  With C{pending}, attempts wait (cancellably) instead;
    with C{refuse}, they fail.
    """

    def __init__(self) -> None:
        self.transports: list[StringTransportWithDisconnection] = []
        self.pending = False
        self.refuse = False
        self.cancelled = 0

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        if self.refuse:
            return fail(ConnectionRefusedError())
        if self.pending:
            return Deferred(lambda d: setattr(self, "cancelled", self.cancelled + 1))
        protocol = cast(
            Protocol, factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4730))
        )
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.transports.append(transport)
        return succeed(cast(IProtocol, protocol))


class ParsingTests(SynchronousTestCase):
    """
    The client against byte-exact replies, fed in pieces.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.endpoint = MemoryEndpoint()
        self.client = GearmanAdminClient(self.endpoint, timeout=5, reactor=self.clock)
        self.core = JobServer(self.clock, handlePrefix=b"H:t")
        self.admin = AdminCommands(self.core, version="9.8.7", getpid=lambda: 4242)

    @property
    def transport(self) -> StringTransportWithDisconnection:
        return self.endpoint.transports[-1]

    def feed(self, data: bytes, chunk: int = 3) -> None:
        """Deliver C{data} to the client C{chunk} bytes at a time."""
        for i in range(0, len(data), chunk):
            self.transport.protocol.dataReceived(data[i : i + chunk])

    def answer(self, chunk: int = 3) -> bytes:
        """
        Let txgearman's L{AdminCommands} answer every line the client sent,
        and deliver the replies in pieces.

        @return: what the client sent.
        """
        sent = self.transport.value()
        self.transport.clear()
        self.assertTrue(sent.endswith(b"\r\n"), sent)
        self.feed(
            b"".join(self.admin.handle(line) for line in sent.split(b"\r\n")[:-1]),
            chunk,
        )
        return sent

    def test_listingsFromTxgearman(self) -> None:
        """
        C{status}, C{prioritystatus}, C{workers}, C{show jobs} and C{show
        unique jobs}, pipelined and answered by txgearman's admin code
        (delivered one byte at a time), parse into records.
        """
        worker = self.core.connect(FakePeer(), "127.0.0.1", 12)
        self.core.setClientId(worker, b"wk-A")
        self.core.canDo(worker, b"resize")
        self.core.canDo(worker, b"email")
        self.core.connect(FakePeer(), "10.0.0.2", 13)
        client = self.core.connect(FakePeer(), "127.0.0.1", 14)
        self.core.submitJob(client, b"resize", b"img-1", b"", Priority.HIGH, True)
        self.core.submitJob(client, b"resize", b"", b"", Priority.LOW, True)
        self.core.submitJob(client, b"email", b"mail-1", b"", Priority.NORMAL, False)
        [first, second, third] = list(self.core.jobs)
        results: list[Deferred[Any]] = [
            self.client.status(),
            self.client.priorityStatus(),
            self.client.workers(),
            self.client.showJobs(),
            self.client.showUniqueJobs(),
        ]
        self.assertEqual(
            self.answer(chunk=1),
            b"status\r\nprioritystatus\r\nworkers\r\nshow jobs\r\nshow unique jobs\r\n",
        )
        status, priorities, workers, jobs, uniques = (
            self.successResultOf(d) for d in results
        )
        self.assertEqual(
            status,
            [FunctionStatus(b"resize", 2, 0, 1), FunctionStatus(b"email", 1, 0, 1)],
        )
        self.assertEqual(
            priorities,
            [
                PriorityStatus(b"resize", 1, 0, 1, 1),
                PriorityStatus(b"email", 0, 1, 0, 1),
            ],
        )
        self.assertEqual(
            workers,
            [
                WorkerInfo(12, "127.0.0.1", b"wk-A", (b"resize", b"email")),
                WorkerInfo(13, "10.0.0.2", b"-", ()),
                WorkerInfo(14, "127.0.0.1", b"-", ()),
            ],
        )
        self.assertEqual(
            jobs,
            [
                JobInfo(first, 0, 0, True),
                JobInfo(second, 0, 0, True),
                JobInfo(third, 0, 0, False),
            ],
        )
        self.assertEqual(uniques, [b"img-1", b"", b"mail-1"])

    def test_emptyListings(self) -> None:
        """
        A listing holding only its terminating dot is an empty list.
        """
        d = self.client.status()
        e = self.client.workers()
        self.feed(b".\n.\n")
        self.assertEqual(self.successResultOf(d), [])
        self.assertEqual(self.successResultOf(e), [])

    def test_gearmandListings(self) -> None:
        """
        gearmand's replies parse too, including its C{IGNORE} column and
        tabs inside a function name (fields are taken from the right).
        """
        results: dict[bytes, Deferred[Any]] = {
            b"status": self.client.status(),
            b"prioritystatus": self.client.priorityStatus(),
            b"workers": self.client.workers(),
            b"show jobs": self.client.showJobs(),
            b"show unique jobs": self.client.showUniqueJobs(),
            b"version": self.client.version(),
            b"verbose": self.client.verbose(),
            b"getpid": self.client.getpid(),
        }
        self.assertEqual(self.transport.value(), b"".join(c + b"\r\n" for c in results))
        self.feed(b"".join(GEARMAND[c] for c in results), chunk=5)
        self.assertEqual(
            self.successResultOf(results[b"status"]),
            [FunctionStatus(b"email", 1, 1, 1), FunctionStatus(b"resize", 3, 0, 2)],
        )
        self.assertEqual(
            self.successResultOf(results[b"prioritystatus"]),
            [
                PriorityStatus(b"email", 0, 0, 0, 1),
                PriorityStatus(b"resize", 1, 1, 1, 2),
            ],
        )
        self.assertEqual(
            self.successResultOf(results[b"workers"]),
            [
                WorkerInfo(38, "127.0.0.1", b"wk-A", (b"email", b"resize")),
                WorkerInfo(39, "127.0.0.1", b"-", (b"resize",)),
                WorkerInfo(40, "127.0.0.1", b"-", ()),
            ],
        )
        self.assertEqual(
            self.successResultOf(results[b"show jobs"]),
            [JobInfo(b"H:demo:2", 0, 0, True), JobInfo(b"H:demo:4", 2, 1, False)],
        )
        self.assertEqual(
            self.successResultOf(results[b"show unique jobs"]),
            [b"img-1", b"", b"mail-1"],
        )
        self.assertEqual(self.successResultOf(results[b"version"]), "1.1.20+ds")
        self.assertEqual(self.successResultOf(results[b"verbose"]), "ERROR")
        self.assertEqual(self.successResultOf(results[b"getpid"]), 15212)
        d = self.client.status()
        self.feed(b"a\tb\t1\t2\t3\n.\n")
        self.assertEqual(self.successResultOf(d), [FunctionStatus(b"a\tb", 1, 2, 3)])

    def test_singleLineCommands(self) -> None:
        """
        C{version}, C{getpid}, C{verbose}, C{create function}, C{maxqueue}
        in its three forms, C{cancel job} and C{drop function} send the
        lines txgearman expects and read its C{OK} replies.
        """
        results: list[Deferred[Any]] = [
            self.client.version(),
            self.client.getpid(),
            self.client.verbose(),
            self.client.createFunction(b"f"),
            self.client.maxQueue(b"f", 3),
            self.client.maxQueue(b"g", (1, 2, 3)),
            self.client.maxQueue(b"h"),
            self.client.dropFunction(b"h"),
        ]
        self.assertEqual(
            self.answer(),
            b"version\r\ngetpid\r\nverbose\r\ncreate function f\r\nmaxqueue f 3\r\n"
            b"maxqueue g 1 2 3\r\nmaxqueue h\r\ndrop function h\r\n",
        )
        self.assertEqual(
            [self.successResultOf(d) for d in results],
            ["9.8.7", 4242, "INFO", None, None, None, None, None],
        )
        self.assertEqual(self.core.functions[b"f"].maxQueue, [3, 3, 3])
        self.assertEqual(self.core.functions[b"g"].maxQueue, [1, 2, 3])
        self.assertNotIn(b"h", self.core.functions)
        client = self.core.connect(FakePeer())
        self.core.submitJob(client, b"f", b"", b"", Priority.NORMAL, True)
        [handle] = list(self.core.jobs)
        d = self.client.cancelJob(handle)
        self.assertEqual(self.answer(), b"cancel job " + handle + b"\r\n")
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.core.jobs, {})

    def test_errors(self) -> None:
        """
        C{ERR} replies fail the command with L{AdminError}: the code, and
        the text with C{+} read as a space.  gearmand's C{ERR} replies
        without a code keep all their words in the text.  The commands
        around them are unaffected.
        """
        self.core.submitJob(None, b"busy", b"", b"", Priority.NORMAL, True)
        results: list[Deferred[Any]] = [
            self.client.cancelJob(b"H:nope"),
            self.client.version(),
            self.client.dropFunction(b"nope"),
            self.client.dropFunction(b"busy"),
            self.client.shutdown(),
            self.client.getpid(),
        ]
        self.answer()
        unknownJob = self.failureResultOf(results[0], AdminError).value
        self.assertEqual((unknownJob.code, unknownJob.text), ("UNKNOWN_JOB", ""))
        self.assertEqual(str(unknownJob), "UNKNOWN_JOB")
        self.assertEqual(self.successResultOf(results[1]), "9.8.7")
        notFound = self.failureResultOf(results[2], AdminError).value
        self.assertEqual((notFound.code, notFound.text), ("", "function not found"))
        queued = self.failureResultOf(results[3], AdminError).value
        self.assertEqual(queued.text, "there are still queued jobs")
        unknown = self.failureResultOf(results[4], AdminError).value
        self.assertEqual(
            (unknown.code, unknown.text),
            ("UNKNOWN_COMMAND", "Unknown server commandshutdown"),
        )
        self.assertEqual(
            str(unknown), "UNKNOWN_COMMAND: Unknown server commandshutdown"
        )
        self.assertEqual(self.successResultOf(results[5]), 4242)

    def test_listingAnsweredWithError(self) -> None:
        """
        A server without a listing command answers it with one C{ERR} line.
        """
        d = self.client.priorityStatus()
        e = self.client.status()
        self.feed(
            b"ERR UNKNOWN_COMMAND Unknown+server+commandprioritystatus\r\nf\t1\t0\t0\n.\n"
        )
        self.assertEqual(
            self.failureResultOf(d, AdminError).value.code, "UNKNOWN_COMMAND"
        )
        self.assertEqual(self.successResultOf(e), [FunctionStatus(b"f", 1, 0, 0)])

    def test_errorPacket(self) -> None:
        """
        An ERROR packet (txgearman's answer to an over-long line) fails the
        command with its code and text.
        """
        d = self.client.version()
        self.feed(encodeResponse(PacketType.ERROR, b"ARGUMENT_TOO_LARGE", b"too long"))
        error = self.failureResultOf(d, AdminError).value
        self.assertEqual((error.code, error.text), ("ARGUMENT_TOO_LARGE", "too long"))

    def test_lostMidListing(self) -> None:
        """
        A connection lost in the middle of a listing fails that command and
        those behind it with L{AdminConnectionLost}; the next command opens
        a new connection.
        """
        d = self.client.status()
        e = self.client.version()
        self.feed(b"resize\t3\t1\t2\nemail\t1")
        self.assertNoResult(d)
        first = self.transport
        first.loseConnection()
        self.failureResultOf(d, AdminConnectionLost)
        self.failureResultOf(e, AdminConnectionLost)
        f = self.client.version()
        self.assertIsNot(self.transport, first)
        self.assertEqual(first.value(), b"status\r\nversion\r\n")
        self.assertEqual(self.transport.value(), b"version\r\n")
        self.feed(b"OK 1\n")
        self.assertEqual(self.successResultOf(f), "1")

    def test_shutdown(self) -> None:
        """
        C{shutdown} succeeds when the server closes the connection instead
        of answering, but only if every earlier command was answered; the
        commands behind it fail.  C{OK} is success too.
        """
        d = self.client.shutdown(graceful=True)
        self.feed(b"OK\r\n")
        self.assertIsNone(self.successResultOf(d))
        d = self.client.shutdown()
        version = self.client.version()
        self.assertEqual(
            self.transport.value(), b"shutdown graceful\r\nshutdown\r\nversion\r\n"
        )
        self.transport.loseConnection()
        self.assertIsNone(self.successResultOf(d))
        self.failureResultOf(version, AdminConnectionLost)
        version = self.client.version()
        d = self.client.shutdown()
        self.transport.loseConnection()
        self.failureResultOf(version, AdminConnectionLost)
        self.failureResultOf(d, AdminConnectionLost)

    def test_timeout(self) -> None:
        """
        A command unanswered after C{timeout} seconds fails with
        L{defer.TimeoutError}; the connection is dropped (a late reply could
        not be told apart), so the commands behind it fail, and the next
        command connects again.
        """
        d = self.client.status()
        self.clock.advance(1)
        e = self.client.version()
        self.clock.advance(3.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, AdminTimeout)
        self.failureResultOf(e, AdminConnectionLost)
        self.assertFalse(self.transport.connected)
        f = self.client.getpid()
        self.assertEqual(len(self.endpoint.transports), 2)
        self.feed(b"OK 7\n")
        self.assertEqual(self.successResultOf(f), 7)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connectTimeout(self) -> None:
        """
        The timeout covers connecting: the waiting commands time out, and
        once none is left the connection attempt is cancelled.
        """
        self.endpoint.pending = True
        d = self.client.status()
        self.clock.advance(1)
        e = self.client.version()
        self.clock.advance(4)
        self.failureResultOf(d, AdminTimeout)
        self.assertEqual(self.endpoint.cancelled, 0)
        self.clock.advance(1)
        self.failureResultOf(e, AdminTimeout)
        self.assertEqual(self.endpoint.cancelled, 1)

    def test_connectFails(self) -> None:
        """
        A failed connection attempt fails the waiting commands with its
        reason; the next command tries again.
        """
        self.endpoint.refuse = True
        failure = self.failureResultOf(self.client.status(), AdminConnectFailed)
        self.assertIsInstance(failure.value.reason, ConnectionRefusedError)
        self.assertIn("cannot connect to", str(failure.value))
        self.endpoint.refuse = False
        d = self.client.version()
        self.feed(b"OK 1\n")
        self.assertEqual(self.successResultOf(d), "1")

    def test_cancel(self) -> None:
        """
        Cancelling a sent command drops its reply when it comes, so the next
        command still gets its own.
        """
        d = self.client.version()
        e = self.client.getpid()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.feed(b"OK 1.0\nOK 99\n")
        self.assertEqual(self.successResultOf(e), 99)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unexpectedReplies(self) -> None:
        """
        A reply that fits no command (an unknown line, a line when nothing
        was asked, a binary packet other than ERROR) drops the connection.
        """
        for garbage in [b"HELLO\n", encodeResponse(PacketType.NOOP)]:
            d = self.client.version()
            self.feed(garbage)
            self.assertFalse(self.transport.connected)
            self.failureResultOf(d, AdminConnectionLost)
        self.client.version()
        self.feed(b"OK 1\nOK 2\n")
        self.assertFalse(self.transport.connected)

    def test_close(self) -> None:
        """
        L{GearmanAdminClient.close} closes the connection, failing the
        commands in flight; with no connection it succeeds at once.
        """
        self.assertIsNone(self.successResultOf(self.client.close()))
        d = self.client.status()
        self.assertIsNone(self.successResultOf(self.client.close()))
        self.assertFalse(self.transport.connected)
        self.failureResultOf(d, AdminConnectionLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_badArguments(self) -> None:
        """
        A name that would not be one word of the line is refused before
        anything is sent, as is a malformed C{maxqueue} size.
        """
        for bad in [b"", b"a b", b"a\nstatus", b"a\r", b"\0x"]:
            self.assertRaises(ValueError, self.client.cancelJob, bad)
            self.assertRaises(ValueError, self.client.createFunction, bad)
        self.assertRaises(ValueError, self.client.maxQueue, b"f", cast(Any, (1, 2)))
        self.assertEqual(self.endpoint.transports, [])


# -- against a txgearman server -------------------------------------------------


class RawPeer(PacketPeer):
    """
    A Gearman client or worker speaking raw packets; what it expects, it
    takes after a flush of the pump.
    """

    def __init__(self, pump: GearmanPump) -> None:
        super().__init__()
        self.pump = pump

    def expect(self, ptype: PacketType) -> tuple[bytes, ...]:
        """The next packet, once the pump has flushed: it must be a C{ptype}."""
        self.pump.flush()
        assert self.packets, f"no {ptype.name} packet came"
        packet = self.packets.pop(0)
        assert packet.type == ptype, packet
        return packet.args

    def sync(self) -> None:
        """Make sure the server has handled everything sent so far."""
        self.send(PacketType.ECHO_REQ, b"sync")
        self.expect(PacketType.ECHO_RES)

    def submit(
        self,
        function: bytes,
        unique: bytes,
        ptype: PacketType = PacketType.SUBMIT_JOB_BG,
    ) -> bytes:
        self.send(ptype, function, unique, b"payload")
        [handle] = self.expect(PacketType.JOB_CREATED)
        return handle


class PumpTestCase(SynchronousTestCase):
    """
    A L{GearmanPump}, with raw peers and admin clients on it.
    """

    def setUp(self) -> None:
        self.pump = GearmanPump()

    def connect(self, address: str = DEFAULT_ADDRESS) -> RawPeer:
        peer = RawPeer(self.pump)
        connected = connectProtocol(self.pump.endpoint(address), peer)
        self.pump.flush()
        self.assertIs(self.successResultOf(connected), peer)
        return peer

    def adminClient(
        self, address: str = DEFAULT_ADDRESS, timeout: float = 10.0
    ) -> GearmanAdminClient:
        return GearmanAdminClient(
            self.pump.endpoint(address), timeout=timeout, reactor=self.pump.clock
        )

    def rejected(self, d: Deferred[Any], kind: type[_E]) -> _E:
        """
        Flush; C{d} has failed with C{kind}: return the exception.
        """
        self.pump.flush()
        failure = self.failureResultOf(d, kind)
        assert isinstance(failure.value, kind)
        return failure.value


class TxgearmanTests(PumpTestCase):
    """
    The client against a txgearman server.
    """

    def server(self) -> GearmanServerService:
        return self.pump.startServer()

    def test_everyCommand(self) -> None:
        """
        Each command reads what the server holds, or changes it.
        """
        service = self.server()
        result = self.pump.result
        worker = self.connect()
        worker.send(PacketType.SET_CLIENT_ID, b"wk-A")
        worker.send(PacketType.CAN_DO, b"resize")
        worker.send(PacketType.CAN_DO, b"email")
        worker.sync()
        submitter = self.connect()
        high = submitter.submit(b"resize", b"img-1", PacketType.SUBMIT_JOB_HIGH_BG)
        normal = submitter.submit(b"resize", b"img-2")
        low = submitter.submit(b"resize", b"img-3", PacketType.SUBMIT_JOB_LOW_BG)
        admin = self.adminClient()

        self.assertEqual(
            result(admin.status()),
            [FunctionStatus(b"resize", 3, 0, 1), FunctionStatus(b"email", 0, 0, 1)],
        )
        self.assertEqual(
            result(admin.priorityStatus()),
            [
                PriorityStatus(b"resize", 1, 1, 1, 1),
                PriorityStatus(b"email", 0, 0, 0, 1),
            ],
        )
        workers = result(admin.workers())
        self.assertEqual(
            {w.fd for w in workers}, {s.connectionId for s in service.core.sessions}
        )
        self.assertEqual({w.address for w in workers}, {"127.0.0.1"})
        [named] = [w for w in workers if w.clientId == b"wk-A"]
        self.assertEqual(sorted(named.functions), [b"email", b"resize"])
        self.assertEqual(sorted(len(w.functions) for w in workers), [0, 0, 2])
        self.assertEqual(
            result(admin.showJobs()),
            [
                JobInfo(high, 0, 0, True),
                JobInfo(normal, 0, 0, True),
                JobInfo(low, 0, 0, True),
            ],
        )
        self.assertEqual(result(admin.showUniqueJobs()), [b"img-1", b"img-2", b"img-3"])
        self.assertEqual(result(admin.version()), __version__)
        self.assertEqual(result(admin.getpid()), os.getpid())
        self.assertEqual(result(admin.verbose()), "INFO")

        result(admin.cancelJob(normal))
        self.assertEqual([j.handle for j in result(admin.showJobs())], [high, low])
        error = self.rejected(admin.cancelJob(normal), AdminError)
        self.assertEqual(error.code, "UNKNOWN_JOB")

        # Two jobs held: a limit of 2 refuses a third, none admits it.
        result(admin.maxQueue(b"resize", 2))
        submitter.send(PacketType.SUBMIT_JOB_BG, b"resize", b"img-4", b"")
        code, _ = submitter.expect(PacketType.ERROR)
        self.assertEqual(code, b"QUEUE_ERROR")
        result(admin.maxQueue(b"resize"))
        submitter.submit(b"resize", b"img-4")
        result(admin.maxQueue(b"resize", (5, 0, 1)))
        self.assertEqual(service.core.functions[b"resize"].maxQueue, [5, 0, 1])

        result(admin.createFunction(b"fresh"))
        self.assertIn(FunctionStatus(b"fresh", 0, 0, 0), result(admin.status()))
        result(admin.dropFunction(b"fresh"))
        self.assertNotIn(b"fresh", [f.function for f in result(admin.status())])
        error = self.rejected(admin.dropFunction(b"resize"), AdminError)
        self.assertEqual(
            error.text, "there are still connected workers or executing clients"
        )
        error = self.rejected(admin.shutdown(), AdminError)
        self.assertEqual(error.code, "UNKNOWN_COMMAND")

    def test_pipelined(self) -> None:
        """
        Many commands sent at once each get their own reply.
        """
        service = self.server()
        for i in range(20):
            service.core.createFunction(b"f%d" % (i,))
        admin = self.adminClient()
        sent: list[Deferred[Any]] = [
            d
            for i in range(20)
            for d in (
                admin.version(),
                admin.status(),
                admin.maxQueue(b"f%d" % (i,), i + 1),
            )
        ]
        results = self.pump.result(defer.gatherResults(sent))
        self.assertEqual(results[0::3], [__version__] * 20)
        self.assertEqual([len(r) for r in results[1::3]], [20] * 20)
        self.assertEqual(
            [service.core.functions[b"f%d" % (i,)].maxQueue for i in range(20)],
            [[i + 1] * 3 for i in range(20)],
        )

    def test_overlongLine(self) -> None:
        """
        txgearman answers a line over 8 KiB with an ERROR packet and closes:
        the command fails with that error, the next one behind it with
        L{AdminConnectionLost}, and the one after reconnects.
        """
        self.server()
        admin = self.adminClient()
        d = admin.createFunction(b"x" * 9000)
        e = admin.version()
        error = self.rejected(d, AdminError)
        self.assertEqual(error.code, "ARGUMENT_TOO_LARGE")
        self.rejected(e, AdminConnectionLost)
        self.assertEqual(self.pump.result(admin.version()), __version__)

    def test_closeAndReconnect(self) -> None:
        """
        After L{GearmanAdminClient.close}, the next command connects again.
        """
        service = self.server()
        admin = self.adminClient()
        self.assertEqual(self.pump.result(admin.getpid()), os.getpid())
        self.pump.result(admin.close())
        self.assertEqual(
            len(service.factory.connections), 0, "the server saw the close"
        )
        self.assertEqual(self.pump.result(admin.getpid()), os.getpid())
        self.assertEqual(len(service.factory.connections), 1)

    def test_timeout(self) -> None:
        """
        A server that never answers: the command fails with
        L{defer.TimeoutError} after the timeout, and the client drops the
        connection.
        """
        lost: Deferred[None] = Deferred()

        class Silent(Protocol):
            def connectionLost(self, reason: Failure = connectionDone) -> None:
                lost.callback(None)

        self.pump.listen("silent", Factory.forProtocol(Silent))
        admin = self.adminClient("silent", timeout=0.5)
        d = admin.status()
        self.pump.advance(0.45)
        self.assertNoResult(d)
        self.pump.advance(0.05)
        self.failureResultOf(d, AdminTimeout)
        self.pump.flush()
        self.successResultOf(lost)

    def test_refused(self) -> None:
        """
        Nothing listening: the command fails with L{AdminConnectFailed},
        which holds the connection's error.
        """
        admin = self.adminClient("nowhere")
        error = self.rejected(admin.version(), AdminConnectFailed)
        self.assertIsInstance(error.reason, ConnectionRefusedError)
