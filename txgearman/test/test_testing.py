"""
Tests for L{txgearman.testing}: the in-memory pump that the library's own
client, worker and admin client tests run on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from typing import Any, TypeVar

from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

import txgearman
import txgearman.testing
from txgearman.client import GearmanAdminClient, GearmanClient, GearmanWorker
from txgearman.codec import Decoder, Packet, PacketType, encodeRequest
from txgearman.server.core import JobServer
from txgearman.server.protocol import GearmanServerFactory
from txgearman.testing import GearmanPump, MemoryConnection, MemoryTransport

_P = PacketType
_Proto = TypeVar("_Proto", bound=Protocol)


class Recorder(Protocol):
    """
    Keeps what it receives and how its connection ended; echoes when told.
    """

    def __init__(self, echo: bool = False) -> None:
        self.received: list[bytes] = []
        self.reasons: list[Failure] = []
        self.echo = echo

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        if self.echo:
            assert self.transport is not None
            self.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reasons.append(reason)

    @property
    def data(self) -> bytes:
        return b"".join(self.received)


class Packets(Protocol):
    """A raw Gearman client that decodes every packet it receives."""

    def __init__(self) -> None:
        self.decoder = Decoder()
        self.packets: list[Packet] = []

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (item := self.decoder.next()) is not None:
            assert isinstance(item, Packet)
            self.packets.append(item)

    def send(self, ptype: PacketType, *args: bytes) -> None:
        assert self.transport is not None
        self.transport.write(encodeRequest(ptype, *args))


class PumpTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.pump = GearmanPump()
        self.servers: list[Recorder] = []

    def recorder(self, echo: bool = False) -> Factory:
        """A factory of L{Recorder}s, remembered in C{self.servers}."""

        def build() -> Recorder:
            protocol = Recorder(echo)
            self.servers.append(protocol)
            return protocol

        return Factory.forProtocol(build)

    def connect(
        self, protocol: _Proto, address: str = "gearman"
    ) -> tuple[_Proto, MemoryConnection]:
        """Connect C{protocol} to C{address} and flush."""
        d = connectProtocol(self.pump.endpoint(address), protocol)
        self.pump.flush()
        self.successResultOf(d)
        [connection] = [
            c for c in self.pump.connections if c.clientProtocol is protocol
        ]
        return protocol, connection


def runPython(code: str) -> subprocess.CompletedProcess[str]:
    """
    Run C{code} in a fresh interpreter that imports this txgearman.
    """
    source = os.path.dirname(os.path.dirname(os.path.abspath(txgearman.__file__)))
    path = os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path},
    )


class ExampleTests(SynchronousTestCase):
    def test_moduleExample(self) -> None:
        """
        The example in the module docstring runs, in a fresh interpreter,
        and imports no reactor while it does.
        """
        doc = txgearman.testing.__doc__
        assert doc is not None
        match = re.search(r"::\n\n((?:    .*\n|\n)+)", doc)
        assert match is not None
        code = textwrap.dedent(match.group(1))
        self.assertIn("pump.result(client.submit", code)
        check = "\nimport sys\nassert 'twisted.internet.reactor' not in sys.modules\n"
        done = runPython(code + check + "print('ok')\n")
        self.assertEqual((done.returncode, done.stdout), (0, "ok\n"), done.stderr)


class ConnectionTests(PumpTestCase):
    """
    Connecting, refusing, and listening.
    """

    def test_connectsOnFlush(self) -> None:
        """
        A connection attempt is carried out by the next flush: then both
        protocols are connected and the Deferred fires with the client's.
        """
        self.pump.listen("here", self.recorder())
        client = Recorder()
        d = connectProtocol(self.pump.endpoint("here"), client)
        self.assertNoResult(d)
        self.assertEqual(self.servers, [])
        self.pump.flush()
        self.assertIs(self.successResultOf(d), client)
        [server] = self.servers
        [connection] = self.pump.connections
        self.assertEqual(
            (connection.address, connection.clientProtocol, connection.serverProtocol),
            ("here", client, server),
        )
        self.assertIs(client.transport, connection.clientTransport)
        self.assertIs(server.transport, connection.serverTransport)
        self.assertEqual(self.pump.connectionsTo("here"), [connection])
        self.assertEqual(self.pump.connectionsTo("elsewhere"), [])

    def test_addresses(self) -> None:
        """
        Each end sees the other's address: the listening one on a port of
        its own address, the connecting one on a port of its own.
        """
        self.pump.listen("one", self.recorder())
        self.pump.listen("two", self.recorder())
        _, first = self.connect(Recorder(), "one")
        _, second = self.connect(Recorder(), "two")
        for connection in (first, second):
            client, server = connection.clientTransport, connection.serverTransport
            self.assertEqual(client.getPeer(), server.getHost())
            self.assertEqual(server.getPeer(), client.getHost())
            self.assertIsInstance(client.getHost(), IPv4Address)
            self.assertEqual(client.getHost().host, "127.0.0.1")
        self.assertNotEqual(
            first.serverTransport.getHost(), second.serverTransport.getHost()
        )
        self.assertNotEqual(
            first.clientTransport.getHost(), second.clientTransport.getHost()
        )

    def test_refused(self) -> None:
        """
        Nothing listening: the attempt fails with
        L{error.ConnectionRefusedError} at the next flush.
        """
        d = connectProtocol(self.pump.endpoint("nowhere"), Recorder())
        self.assertNoResult(d)
        self.pump.flush()
        self.failureResultOf(d, error.ConnectionRefusedError)
        self.assertEqual(self.pump.connections, [])

    def test_cancel(self) -> None:
        """
        A cancelled attempt is not carried out.
        """
        self.pump.listen("gearman", self.recorder())
        d = connectProtocol(self.pump.endpoint(), Recorder())
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.pump.flush()
        self.assertEqual((self.servers, self.pump.connections), ([], []))

    def test_listenTwice(self) -> None:
        """
        Only one factory listens at an address at a time, through
        L{GearmanPump.listen} or a server endpoint.
        """
        port = self.pump.listen("gearman", self.recorder())
        self.assertTrue(self.pump.isListening())
        self.assertRaises(
            error.CannotListenError, self.pump.listen, "gearman", self.recorder()
        )
        self.failureResultOf(
            self.pump.serverEndpoint().listen(self.recorder()), error.CannotListenError
        )
        port.stopListening()
        self.assertFalse(self.pump.isListening())
        other = self.successResultOf(self.pump.serverEndpoint().listen(self.recorder()))
        self.assertEqual(other.getHost(), port.getHost())

    def test_stopListening(self) -> None:
        """
        Once its port stops listening, new connections to an address are
        refused; those made before stay up.
        """
        factory = self.recorder(echo=True)
        port = self.pump.listen("gearman", factory)
        client, connection = self.connect(Recorder())
        port.stopListening()
        d = connectProtocol(self.pump.endpoint(), Recorder())
        self.pump.flush()
        self.failureResultOf(d, error.ConnectionRefusedError)
        connection.clientTransport.write(b"still here")
        self.pump.flush()
        self.assertEqual(client.data, b"still here")

    def test_factoryDeclines(self) -> None:
        """
        A listening factory that builds no protocol closes the connection
        at once; a connecting one that builds none fails the attempt with
        L{error.NoProtocol}.
        """

        class Declining(Factory):
            def buildProtocol(self, addr: Any) -> None:
                return None

        self.pump.listen("gearman", Declining())
        client = Recorder()
        d = connectProtocol(self.pump.endpoint(), client)
        self.pump.flush()
        self.assertIs(self.successResultOf(d), client)
        [reason] = client.reasons
        reason.trap(error.ConnectionDone)
        self.assertEqual(self.pump.connections, [])
        self.pump.listen("other", self.recorder())
        d = self.pump.endpoint("other").connect(Declining())
        self.pump.flush()
        self.failureResultOf(d, error.NoProtocol)
        self.assertEqual(self.servers, [])

    def test_endpointRepr(self) -> None:
        """
        A client endpoint's C{repr} names its address, which is how a
        L{GearmanClient} names the server in its errors.
        """
        self.assertEqual(repr(self.pump.endpoint("one")), "memory:one")
        self.assertEqual(repr(self.pump.serverEndpoint("one")), "memory:one")


class ByteTests(PumpTestCase):
    """
    Moving bytes, and closing.
    """

    def setUp(self) -> None:
        super().setUp()
        self.pump.listen("gearman", self.recorder(echo=True))

    def test_onlyOnFlush(self) -> None:
        """
        What a protocol writes waits in its transport until a flush, which
        delivers it and what it causes in turn, both ways.
        """
        client, connection = self.connect(Recorder())
        transport = connection.clientTransport
        transport.write(b"one ")
        transport.writeSequence([b"two ", b"three"])
        self.assertEqual(transport.pending(), b"one two three")
        [server] = self.servers
        self.assertEqual(server.received, [])
        self.pump.flush()
        self.assertEqual(server.received, [b"one two three"])
        self.assertEqual(client.data, b"one two three")
        self.assertEqual(transport.pending(), b"")

    def test_writeNeedsBytes(self) -> None:
        """
        Writing text fails, as it does on a real transport.
        """
        _, connection = self.connect(Recorder())
        self.assertRaises(TypeError, connection.clientTransport.write, "text")

    def test_chunks(self) -> None:
        """
        With C{chunkSize}, bytes are delivered in pieces of at most that
        size.
        """
        self.pump.chunkSize = 3
        _, connection = self.connect(Recorder())
        connection.clientTransport.write(b"abcdefgh")
        self.pump.flush()
        [server] = self.servers
        self.assertEqual(server.received, [b"abc", b"def", b"gh"])

    def test_paused(self) -> None:
        """
        A transport paused as a producer gets nothing until resumed.
        """
        _, connection = self.connect(Recorder())
        connection.serverTransport.pauseProducing()
        connection.clientTransport.write(b"waiting")
        self.pump.flush()
        [server] = self.servers
        self.assertEqual(server.received, [])
        connection.serverTransport.resumeProducing()
        self.pump.flush()
        self.assertEqual(server.received, [b"waiting"])

    def test_loseConnection(self) -> None:
        """
        C{loseConnection} closes once what was written is delivered: both
        ends get L{error.ConnectionDone}, during a flush, not at once.
        """
        client, connection = self.connect(Recorder())
        [server] = self.servers
        connection.clientTransport.write(b"last words")
        connection.clientTransport.loseConnection()
        self.assertEqual(client.reasons, [])
        self.pump.flush()
        self.assertEqual(server.received, [b"last words"])
        for end in (client, server):
            [reason] = end.reasons
            reason.trap(error.ConnectionDone)
        self.assertTrue(connection.lost)
        self.assertFalse(connection.clientTransport.connected)
        self.assertEqual(self.pump.connections, [])

    def test_abortConnection(self) -> None:
        """
        C{abortConnection} drops what was not delivered: that end gets
        L{error.ConnectionAborted}, the other L{error.ConnectionLost}.
        """
        client, connection = self.connect(Recorder())
        [server] = self.servers
        connection.serverTransport.write(b"never seen")
        connection.serverTransport.abortConnection()
        self.pump.flush()
        self.assertEqual(client.received, [])
        [reason] = server.reasons
        reason.trap(error.ConnectionAborted)
        [reason] = client.reasons
        self.assertIsInstance(reason.value, error.ConnectionLost)
        self.assertNotIsInstance(reason.value, error.ConnectionAborted)

    def test_drop(self) -> None:
        """
        L{MemoryConnection.drop} cuts a connection now: bytes in flight are
        lost, both ends get L{error.ConnectionLost}; writes afterwards go
        nowhere.
        """
        client, connection = self.connect(Recorder())
        [server] = self.servers
        connection.clientTransport.write(b"in flight")
        connection.drop()
        for end in (client, server):
            [reason] = end.reasons
            reason.trap(error.ConnectionLost)
        connection.clientTransport.write(b"into the void")
        self.pump.flush()
        self.assertEqual(server.received, [])
        self.assertEqual(connection.clientTransport.pending(), b"")

    def test_dropConnections(self) -> None:
        """
        L{GearmanPump.dropConnections} drops every connection, or those to
        one address.
        """
        self.pump.listen("other", self.recorder())
        self.connect(Recorder())
        _, other = self.connect(Recorder(), "other")
        self.pump.dropConnections("gearman")
        self.assertEqual(self.pump.connections, [other])
        self.pump.dropConnections()
        self.assertEqual(self.pump.connections, [])

    def test_raisingProtocol(self) -> None:
        """
        An exception from C{dataReceived} is logged and drops the
        connection with it as the reason, as a reactor does.
        """

        class Broken(Recorder):
            def dataReceived(self, data: bytes) -> None:
                raise ZeroDivisionError("boom")

        client, connection = self.connect(Broken())
        connection.serverTransport.write(b"x")
        self.pump.flush()
        [reason] = client.reasons
        reason.trap(ZeroDivisionError)
        [server] = self.servers
        server.reasons[0].trap(error.ConnectionLost)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_producers(self) -> None:
        """
        A registered producer is stopped when the connection goes; a pull
        producer is asked for more each time its output was delivered.
        """

        @implementer(IPullProducer)
        class Pull:
            def __init__(self, transport: MemoryTransport) -> None:
                self.transport = transport
                self.left = 3
                self.stopped = False

            def resumeProducing(self) -> None:
                if self.left:
                    self.left -= 1
                    self.transport.write(b"chunk%d " % (self.left,))

            def stopProducing(self) -> None:
                self.stopped = True

        _, connection = self.connect(Recorder())
        producer = Pull(connection.clientTransport)
        connection.clientTransport.registerProducer(producer, False)
        self.assertRaises(
            RuntimeError, connection.clientTransport.registerProducer, producer, False
        )
        self.pump.flush()
        [server] = self.servers
        self.assertEqual(server.data, b"chunk2 chunk1 chunk0 ")
        connection.drop()
        self.assertTrue(producer.stopped)

    def test_endlessLoop(self) -> None:
        """
        Two protocols that answer each other forever make L{flush} raise
        instead of hanging.
        """
        self.pump.maxRounds = 50
        _, connection = self.connect(Recorder(echo=True))
        connection.clientTransport.write(b"ping")
        self.assertRaises(RuntimeError, self.pump.flush)


class TimeTests(PumpTestCase):
    """
    The clock, and waiting for results.
    """

    def test_ownClock(self) -> None:
        """
        The pump runs on the clock it is given.
        """
        clock = Clock()
        clock.advance(1000)
        pump = GearmanPump(clock)
        self.assertIs(pump.clock, clock)
        pump.advance(5)
        self.assertEqual(clock.seconds(), 1005)

    def test_badArguments(self) -> None:
        """
        Time does not go backwards, and chunks are at least a byte.
        """
        self.assertRaises(ValueError, self.pump.advance, -1)
        self.assertRaises(ValueError, GearmanPump, chunkSize=0)

    def test_advanceFlushesBetweenTimers(self) -> None:
        """
        L{GearmanPump.advance} fires the timers due in turn, each at its
        time, delivering what one sends before the next fires: an echo
        asked for at 1s has come back when a check at 2s runs.
        """
        self.pump.listen("gearman", self.recorder(echo=True))
        client, connection = self.connect(Recorder())
        seen: list[tuple[float, bytes]] = []
        clock = self.pump.clock
        clock.callLater(1, connection.clientTransport.write, b"echo")
        clock.callLater(2, lambda: seen.append((clock.seconds(), client.data)))
        self.pump.advance(5)
        self.assertEqual(seen, [(2.0, b"echo")])
        self.assertEqual(clock.seconds(), 5.0)

    def test_flushRunsDueTimers(self) -> None:
        """
        L{GearmanPump.flush} runs the timers due now (as the server's write
        batching schedules), never later ones.
        """
        clock = self.pump.clock
        ran: list[str] = []
        clock.callLater(0, ran.append, "now")
        clock.callLater(0.001, ran.append, "later")
        self.pump.flush()
        self.assertEqual((ran, clock.seconds()), (["now"], 0.0))

    def test_result(self) -> None:
        """
        L{GearmanPump.result} returns a result, raises a failure, and fails
        for a Deferred still waiting; with C{within}, it waits that long
        at most, stopping on the result.
        """
        self.assertEqual(self.pump.result(Deferred.fromCoroutine(_value(7))), 7)
        failing: Deferred[None] = Deferred()
        failing.errback(KeyError("k"))
        self.assertRaises(KeyError, self.pump.result, failing)
        waiting: Deferred[None] = Deferred()
        self.assertRaises(AssertionError, self.pump.result, waiting)
        later: Deferred[str] = Deferred()
        self.pump.clock.callLater(3, later.callback, "done")
        self.assertRaises(AssertionError, self.pump.result, later, within=2)
        self.assertEqual(self.pump.clock.seconds(), 2.0)
        self.assertEqual(self.pump.result(later, within=10), "done")
        self.assertEqual(self.pump.clock.seconds(), 3.0)


async def _value(value: int) -> int:
    return value


class ServerTests(SynchronousTestCase):
    """
    Real servers and the library's clients on the pump.
    """

    def setUp(self) -> None:
        self.pump = GearmanPump()

    def test_roles(self) -> None:
        """
        A client, a worker and an admin client work against a server
        started by the pump; handles name the server's address.
        """
        server = self.pump.startServer("one")
        self.assertTrue(self.pump.isListening("one"))
        worker = GearmanWorker([self.pump.endpoint("one")], reactor=self.pump.clock)
        worker.register("upper", lambda job: job.data.upper())
        worker.startService()
        client = GearmanClient([self.pump.endpoint("one")], reactor=self.pump.clock)
        client.startService()
        self.assertEqual(self.pump.result(client.submit("upper", b"abc")), b"ABC")
        handle = self.pump.result(client.submitBackground("nobody", b""))
        self.assertTrue(handle.startswith(b"H:one:"), handle)
        admin = GearmanAdminClient(self.pump.endpoint("one"), reactor=self.pump.clock)
        [upper, nobody] = self.pump.result(admin.status())
        self.assertEqual((upper.function, upper.workers), (b"upper", 1))
        self.assertEqual((nobody.function, nobody.queued), (b"nobody", 1))
        self.assertEqual(len(server.core.sessions), 3)

    def test_restart(self) -> None:
        """
        A server stopped and started again at the same address, on the
        first one's store, has its background jobs, and the clients of
        the first find it.
        """
        first = self.pump.startServer(handlePrefix=b"first")
        client = GearmanClient([self.pump.endpoint()], reactor=self.pump.clock)
        client.startService()
        self.pump.result(client.submitBackground("later", b"x", unique="u"))
        self.pump.result(first.stopService())
        self.assertFalse(self.pump.isListening())
        self.assertEqual(self.pump.connections, [])
        second = self.pump.startServer(store=first.store, handlePrefix=b"second")
        [job] = second.core.jobs.values()
        self.assertEqual((job.unique, job.data), (b"u", b"x"))
        self.pump.advance(10)
        self.assertEqual(len(self.pump.connections), 1)
        self.assertTrue(self.pump.result(client.getStatusUnique("u")).known)

    def test_notReady(self) -> None:
        """
        A server whose factory is not ready answers a request with ERROR
        and closes; a connection whose first request comes once it is
        ready is served.
        """
        factory = GearmanServerFactory(JobServer(self.pump.clock), ready=False)
        self.pump.listen("gearman", factory)
        early, patient = Packets(), Packets()
        connectProtocol(self.pump.endpoint(), early)
        connectProtocol(self.pump.endpoint(), patient)
        self.pump.flush()
        early.send(_P.ECHO_REQ, b"hello")
        self.pump.flush()
        self.assertEqual([p.type for p in early.packets], [_P.ERROR])
        self.assertEqual(len(self.pump.connections), 1)
        factory.setReady()
        patient.send(_P.ECHO_REQ, b"hello")
        self.pump.flush()
        self.assertEqual(
            [(p.type, p.args) for p in patient.packets], [(_P.ECHO_RES, (b"hello",))]
        )

    def test_splitPackets(self) -> None:
        """
        Delivered a byte at a time, packets still make jobs: the codec
        runs for real on both sides.
        """
        pump = GearmanPump(chunkSize=1)
        pump.startServer()
        worker = GearmanWorker([pump.endpoint()], reactor=pump.clock)
        worker.register("reverse", lambda job: job.data[::-1])
        worker.startService()
        client = GearmanClient([pump.endpoint()], reactor=pump.clock)
        client.startService()
        self.assertEqual(pump.result(client.submit("reverse", b"a\0bc")), b"cb\0a")
