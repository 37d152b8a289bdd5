# -*- test-case-name: txgearman.test.test_testing -*-
"""
Test an application's Gearman clients and workers against a real job
server in memory, on a fake clock.

L{GearmanPump} wires the real pieces together without a socket or the
global reactor: txgearman's own job server (L{GearmanServerService}, with
its L{JobServer} and an in-memory queue store) on one side, and
L{txgearman.client.GearmanClient}, L{txgearman.client.GearmanWorker},
L{txgearman.client.GearmanAdminClient} or any other protocol on the other,
joined by in-memory transports that carry the bytes both ways, so the
protocols and the codec run exactly as they do over TCP.  Nothing happens
behind the test's back: bytes move when the test calls L{GearmanPump.flush},
and time passes when it calls L{GearmanPump.advance}, timer by timer on a
L{twisted.internet.task.Clock}.  A test is therefore synchronous and
deterministic, and runs in milliseconds.  (The idea is treq's
C{treq.testing}: real objects, wired in memory, flushed by hand.)

Give every client, worker and admin client the pump's endpoint as its
server and the pump's clock as its reactor::

    from txgearman.client import GearmanClient, GearmanWorker
    from txgearman.testing import GearmanPump

    pump = GearmanPump()
    server = pump.startServer()
    worker = GearmanWorker([pump.endpoint()], reactor=pump.clock)
    worker.register("reverse", lambda job: job.data[::-1])
    worker.startService()
    client = GearmanClient([pump.endpoint()], reactor=pump.clock)
    client.startService()
    assert pump.result(client.submit("reverse", b"abc")) == b"cba"
    assert server.core.idle

To test a worker, register the application's real function, submit jobs
with a L{txgearman.client.GearmanClient} (or put them straight into
C{server.core}) and check what comes back; a function that waits on timers
of its own should be given C{pump.clock} too, and the test advances it.  To
test a client, run the application's code against the server with a
stand-in worker, or against a server that misbehaves on purpose, listening
with L{GearmanPump.listen}.  Failures are at hand: L{MemoryConnection.drop}
and L{GearmanPump.dropConnections} cut connections, stopping the server
service closes them as a real server does, and an address nothing listens
on refuses connections (a client's reconnection attempts then fail, and
succeed once a server listens there again).

Servers are named by an address, a string: several servers may run side by
side at different addresses, and a server stopped and started again at the
same address is found by the clients that knew the first one.

With trial, use a C{SynchronousTestCase}: nothing touches the global
reactor, so nothing is left to clean up, and C{pump.flush()} followed by
C{successResultOf} or C{failureResultOf} reads results as well as
L{GearmanPump.result} does.  The clock starts at 0 unless the pump is
given one: mind it where Unix times matter (a background job's C{when}).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import TypeVar, cast

from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IConsumer,
    IListeningPort,
    IProducer,
    IProtocol,
    IProtocolFactory,
    IPullProducer,
    IPushProducer,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
    ITransport,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txgearman.codec import DEFAULT_MAX_PACKET_SIZE
from txgearman.server.core import DEFAULT_MAX_FUNCTIONS
from txgearman.server.service import GearmanServerService
from txgearman.store.interfaces import IQueueStore

__all__ = [
    "DEFAULT_ADDRESS",
    "GearmanPump",
    "MemoryConnection",
    "MemoryTransport",
]

_T = TypeVar("_T")

#: The address L{GearmanPump} methods use when none is given.
DEFAULT_ADDRESS = "gearman"

#: The host every memory connection is on, as its peers see it.
_HOST = "127.0.0.1"


@implementer(ITransport, IConsumer, IPushProducer)
class MemoryTransport:
    """
    One end of a L{MemoryConnection}: what its protocol writes waits here
    until the pump hands it to the protocol at the other end.

    It behaves as a TCP transport does where the library can tell:
    C{loseConnection} closes once what was written has been delivered,
    C{abortConnection} at once, dropping it; the protocol hears of either
    in C{connectionLost} during the next flush, never from inside the call.
    Pausing it (as an L{IPushProducer}) stops deliveries to its protocol
    until it is resumed.  Writes are never refused and never pause a
    registered producer: the buffer is unbounded.

    @ivar connection: the L{MemoryConnection} this is an end of.
    @ivar protocol: the protocol at this end.
    @ivar connected: whether the connection is up.
    @ivar disconnecting: whether this end called C{loseConnection}.
    @ivar aborted: whether this end called C{abortConnection}.
    @ivar reading: whether bytes for this end are delivered (not paused).
    @ivar producer: the producer registered with this transport, if any.
    @ivar noDelay: the last C{setTcpNoDelay} value.
    @ivar keepAlive: the last C{setTcpKeepAlive} value.
    """

    def __init__(
        self, connection: MemoryConnection, host: IPv4Address, peer: IPv4Address
    ) -> None:
        self.connection = connection
        self.protocol: IProtocol = Protocol()
        self.connected = True
        self.disconnecting = False
        self.aborted = False
        self.reading = True
        self.producer: IProducer | None = None
        self.streaming: bool | None = None
        self.noDelay = False
        self.keepAlive = False
        self._host = host
        self._peer = peer
        self._outgoing: list[bytes] = []

    def __repr__(self) -> str:
        return f"<MemoryTransport {self._host.port} -> {self._peer.port}>"

    def pending(self) -> bytes:
        """What this end wrote that the other end has not received yet."""
        return b"".join(self._outgoing)

    # -- ITransport ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"Data must be bytes, not {type(data).__name__}")
        if self.connected and not self.aborted and data:
            self._outgoing.append(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        """Close at once, dropping what was not delivered yet."""
        self.aborted = True
        self._outgoing.clear()

    def getPeer(self) -> IPv4Address:
        return self._peer

    def getHost(self) -> IPv4Address:
        return self._host

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled

    def getTcpNoDelay(self) -> bool:
        return self.noDelay

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepAlive = enabled

    def getTcpKeepAlive(self) -> bool:
        return self.keepAlive

    # -- IConsumer -----------------------------------------------------------

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(f"Cannot register producer {producer!r}: one already is")
        self.producer = producer
        self.streaming = streaming
        if not streaming:
            cast(IPullProducer, producer).resumeProducing()

    def unregisterProducer(self) -> None:
        self.producer = None
        self.streaming = None

    def _reads(self) -> bool:
        """Whether bytes for this end can be delivered now."""
        return (
            self.reading and self.connected and not (self.disconnecting or self.aborted)
        )

    # -- IPushProducer: whether this end reads -------------------------------

    def pauseProducing(self) -> None:
        self.reading = False

    def resumeProducing(self) -> None:
        self.reading = True

    def stopProducing(self) -> None:
        self.reading = False


class MemoryConnection:
    """
    A connection made through a L{GearmanPump} endpoint: the connecting
    (client) protocol and the listening (server) side's protocol, each on
    its L{MemoryTransport}.

    @ivar address: the address connected to.
    @ivar clientProtocol: the protocol the connecting side's factory built.
    @ivar serverProtocol: the protocol the listening side's factory built.
    @ivar clientTransport: the client protocol's transport.
    @ivar serverTransport: the server protocol's transport.
    @ivar lost: whether the connection is gone (both sides were told).
    """

    log = Logger()

    def __init__(
        self,
        pump: GearmanPump,
        address: str,
        clientAddress: IPv4Address,
        serverAddress: IPv4Address,
    ) -> None:
        self._pump = pump
        self.address = address
        self.clientTransport = MemoryTransport(self, clientAddress, serverAddress)
        self.serverTransport = MemoryTransport(self, serverAddress, clientAddress)
        self.lost = False

    @property
    def clientProtocol(self) -> IProtocol:
        return self.clientTransport.protocol

    @property
    def serverProtocol(self) -> IProtocol:
        return self.serverTransport.protocol

    def __repr__(self) -> str:
        state = "lost" if self.lost else "up"
        return f"<MemoryConnection to {self.address!r}, {state}>"

    def drop(self) -> None:
        """
        Cut the connection as a network failure would: what is in flight is
        lost, and both protocols get C{connectionLost} with
        L{twisted.internet.error.ConnectionLost}, now.
        """
        reason = Failure(error.ConnectionLost("dropped by the GearmanPump"))
        self._lose(reason, reason)

    def _gone(self) -> bool:
        # A call, not the attribute: a delivery may have lost the connection.
        return self.lost

    def _reasons(
        self, side: MemoryTransport, mine: Failure, theirs: Failure
    ) -> tuple[Failure, Failure]:
        """
        C{(client reason, server reason)}: C{mine} for C{side}, C{theirs}
        for the other end.
        """
        if side is self.clientTransport:
            return mine, theirs
        return theirs, mine

    def _step(self, chunkSize: int | None) -> bool:
        """
        Deliver what each end wrote, then carry out a close that is due.

        @return: whether anything happened.
        """
        if self.lost:
            return False
        progressed = False
        for sender, receiver in (
            (self.clientTransport, self.serverTransport),
            (self.serverTransport, self.clientTransport),
        ):
            if not sender._outgoing or not receiver._reads():
                continue
            progressed = True
            data = b"".join(sender._outgoing)
            sender._outgoing.clear()
            size = chunkSize or len(data)
            for start in range(0, len(data), size):
                if not receiver._reads():
                    # Paused (or closing) halfway: the rest waits.
                    sender._outgoing.insert(0, data[start:])
                    break
                self._deliver(receiver, data[start : start + size])
                if self._gone():
                    return True
            producer = sender.producer
            if producer is not None and not sender.streaming and not sender._outgoing:
                # A pull producer is asked for more once its output is gone.
                cast(IPullProducer, producer).resumeProducing()
        for side in (self.clientTransport, self.serverTransport):
            if side.aborted:
                self._lose(
                    *self._reasons(
                        side,
                        Failure(error.ConnectionAborted()),
                        Failure(
                            error.ConnectionLost("the peer aborted the connection")
                        ),
                    )
                )
                return True
        for side in (self.clientTransport, self.serverTransport):
            if side.disconnecting and not side._outgoing:
                done = Failure(error.ConnectionDone())
                self._lose(done, done)
                return True
        return progressed

    def _deliver(self, receiver: MemoryTransport, data: bytes) -> None:
        """
        Hand bytes to a protocol; as a reactor does, log what its
        C{dataReceived} raises and drop the connection with that reason.
        """
        try:
            receiver.protocol.dataReceived(data)
        except Exception:
            failure = Failure()
            self.log.failure(
                "dataReceived of {protocol!r} raised; dropping the connection",
                failure,
                protocol=receiver.protocol,
            )
            self._lose(
                *self._reasons(receiver, failure, Failure(error.ConnectionLost()))
            )

    def _lose(self, clientReason: Failure, serverReason: Failure) -> None:
        """
        The connection is gone: drop what is in flight, then tell the server
        side and the client side.
        """
        if self.lost:
            return
        self.lost = True
        self._pump._forget(self)
        ends = (
            (self.serverTransport, serverReason),
            (self.clientTransport, clientReason),
        )
        for transport, _ in ends:
            transport.connected = False
            transport._outgoing.clear()
            producer = transport.producer
            if producer is not None:
                transport.unregisterProducer()
                producer.stopProducing()
        for transport, reason in ends:
            try:
                transport.protocol.connectionLost(reason)
            except Exception:
                self.log.failure(
                    "connectionLost of {protocol!r} raised", protocol=transport.protocol
                )


class _Attempt:
    """A connection attempt waiting for the next flush."""

    def __init__(self, address: str, factory: IProtocolFactory) -> None:
        self.address = address
        self.factory = factory
        self.deferred: Deferred[IProtocol] = Deferred()


@implementer(IStreamClientEndpoint)
class _ClientEndpoint:
    """
    Connects to whatever listens at one address of a pump, when the pump
    next flushes.
    """

    def __init__(self, pump: GearmanPump, address: str) -> None:
        self._pump = pump
        self.address = address

    def __repr__(self) -> str:
        # GearmanClient names its servers by this, in logs and errors.
        return f"memory:{self.address}"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        return self._pump._connect(self.address, protocolFactory)


@implementer(IStreamServerEndpoint)
class _ServerEndpoint:
    """Listens at one address of a pump."""

    def __init__(self, pump: GearmanPump, address: str) -> None:
        self._pump = pump
        self.address = address

    def __repr__(self) -> str:
        return f"memory:{self.address}"

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        try:
            return succeed(self._pump.listen(self.address, protocolFactory))
        except error.CannotListenError:
            return fail()


@implementer(IListeningPort)
class _Port:
    """
    A factory listening at an address.  Stopping it refuses new
    connections; those already made stay up, as with TCP.
    """

    def __init__(
        self,
        pump: GearmanPump,
        address: str,
        factory: IProtocolFactory,
        host: IPv4Address,
    ) -> None:
        self._pump = pump
        self.address = address
        self.factory = factory
        self._host = host
        self.listening = False

    def __repr__(self) -> str:
        return f"<memory port {self.address!r} of {self.factory!r}>"

    def startListening(self) -> None:
        if not self.listening:
            self._pump._startListening(self)
            self.listening = True
            self.factory.doStart()

    def stopListening(self) -> None:
        if self.listening:
            self.listening = False
            self._pump._stopListening(self)
            self.factory.doStop()

    def getHost(self) -> IPv4Address:
        return self._host


class GearmanPump:
    """
    A network in memory and the clock it runs on: servers listen at
    addresses, clients connect to them through L{endpoint}s, and the bytes
    and timers move only when L{flush}, L{advance} or L{result} is called.

    @ivar clock: the time every server, client and worker of this pump must
        be given as its reactor.
    @ivar chunkSize: deliver at most this many bytes per C{dataReceived}
        call (C{None}: everything pending at once); a small value makes
        protocols parse packets split at every place.
    @ivar maxRounds: how many rounds of deliveries one L{flush} may take
        before it decides that the protocols loop and raises.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        chunkSize: int | None = None,
        maxRounds: int = 100_000,
    ) -> None:
        """
        @param clock: the clock to run on; a new one (at time 0) by default.
        """
        if chunkSize is not None and chunkSize < 1:
            raise ValueError("chunkSize must be at least 1, or None")
        self.clock = clock if clock is not None else Clock()
        self.chunkSize = chunkSize
        self.maxRounds = maxRounds
        self._ports: dict[str, _Port] = {}
        self._portNumbers: dict[str, int] = {}
        self._ephemeral = itertools.count(40000)
        self._attempts: list[_Attempt] = []
        self._connections: list[MemoryConnection] = []

    # -- servers -------------------------------------------------------------

    def startServer(
        self,
        address: str = DEFAULT_ADDRESS,
        store: IQueueStore | None = None,
        handlePrefix: bytes | None = None,
        jobRetries: int = -1,
        workerWakeup: int | None = None,
        maxPacketSize: int = DEFAULT_MAX_PACKET_SIZE,
        exceptions: bool = False,
        closeTimeout: float = 5.0,
        maxFunctions: int = DEFAULT_MAX_FUNCTIONS,
    ) -> GearmanServerService:
        """
        Start a txgearman job server listening at C{address}: the same
        L{GearmanServerService} twistd runs, on this pump's clock.  With
        the default in-memory store, or any store that answers at once, it
        is ready (its store replayed) when this returns; otherwise see its
        C{ready}.

        To restart a server, stop the service (C{stopService}, then
        L{flush}) and start another at the same address with the first
        one's C{store}: it replays the background jobs the first one held.

        @param handlePrefix: job handles are C{<prefix>:<n>}; by default
            C{H:<address>}, so that a handle tells which server made it.
        @param closeTimeout: how long stopping lets connections flush.
        Other parameters are L{GearmanServerService}'s.
        """
        service = GearmanServerService(
            self.serverEndpoint(address),
            reactor=self.clock,
            store=store,
            jobRetries=jobRetries,
            workerWakeup=workerWakeup,
            handlePrefix=(
                handlePrefix if handlePrefix is not None else b"H:" + address.encode()
            ),
            maxPacketSize=maxPacketSize,
            exceptions=exceptions,
            closeTimeout=closeTimeout,
            maxFunctions=maxFunctions,
        )
        service.privilegedStartService()
        service.startService()
        self.flush()
        return service

    def listen(self, address: str, factory: IProtocolFactory) -> IListeningPort:
        """
        Make C{factory} build the server side of each connection to
        C{address}: how a test plugs in a server that misbehaves (or any
        other protocol).

        @raise twisted.internet.error.CannotListenError: something already
            listens there.
        """
        number = self._portNumbers.setdefault(address, 4730 + len(self._portNumbers))
        port = _Port(self, address, factory, IPv4Address("TCP", _HOST, number))
        port.startListening()
        return port

    def serverEndpoint(self, address: str = DEFAULT_ADDRESS) -> IStreamServerEndpoint:
        """
        An endpoint that listens at C{address}, for code that builds its
        own server from an endpoint.
        """
        return _ServerEndpoint(self, address)

    def isListening(self, address: str = DEFAULT_ADDRESS) -> bool:
        """Whether something listens at C{address}."""
        return address in self._ports

    def _startListening(self, port: _Port) -> None:
        if port.address in self._ports:
            raise error.CannotListenError(
                None, port.address, OSError(f"something listens at {port.address!r}")
            )
        self._ports[port.address] = port

    def _stopListening(self, port: _Port) -> None:
        if self._ports.get(port.address) is port:
            del self._ports[port.address]

    # -- clients -------------------------------------------------------------

    def endpoint(self, address: str = DEFAULT_ADDRESS) -> IStreamClientEndpoint:
        """
        An endpoint that connects to whatever listens at C{address} when
        the pump next flushes, and fails with
        L{twisted.internet.error.ConnectionRefusedError} if nothing does.
        Its C{repr} is C{memory:<address>}, which is how
        L{txgearman.client.GearmanClient} names the server.
        """
        return _ClientEndpoint(self, address)

    @property
    def connections(self) -> list[MemoryConnection]:
        """The connections that are up, oldest first."""
        return list(self._connections)

    def connectionsTo(self, address: str = DEFAULT_ADDRESS) -> list[MemoryConnection]:
        """The connections to C{address} that are up, oldest first."""
        return [c for c in self._connections if c.address == address]

    def dropConnections(self, address: str | None = None) -> None:
        """
        L{MemoryConnection.drop} every connection (to C{address}, if given).
        """
        for connection in self.connections:
            if address is None or connection.address == address:
                connection.drop()

    def _connect(self, address: str, factory: IProtocolFactory) -> Deferred[IProtocol]:
        attempt = _Attempt(address, factory)
        self._attempts.append(attempt)

        def cancel(d: Deferred[IProtocol]) -> None:
            if attempt in self._attempts:
                self._attempts.remove(attempt)

        attempt.deferred = Deferred(cancel)
        return attempt.deferred

    def _establish(self, attempt: _Attempt) -> None:
        """
        Make a connection: the listening side's protocol first, then the
        connecting one's, as on one host the server accepts before the
        client hears its connection is up.
        """
        port = self._ports.get(attempt.address)
        if port is None:
            attempt.deferred.errback(
                error.ConnectionRefusedError(f"nothing listens at {attempt.address!r}")
            )
            return
        clientAddress = IPv4Address("TCP", _HOST, next(self._ephemeral))
        serverAddress = port.getHost()
        clientProtocol = attempt.factory.buildProtocol(serverAddress)
        if clientProtocol is None:
            attempt.deferred.errback(error.NoProtocol())
            return
        serverProtocol = port.factory.buildProtocol(clientAddress)
        connection = MemoryConnection(
            self, attempt.address, clientAddress, serverAddress
        )
        self._connections.append(connection)
        connection.clientTransport.protocol = clientProtocol
        if serverProtocol is None:
            # The server turned it down: it closes at once, as a port does.
            connection.serverTransport.loseConnection()
        else:
            connection.serverTransport.protocol = serverProtocol
            serverProtocol.makeConnection(connection.serverTransport)
        clientProtocol.makeConnection(connection.clientTransport)
        attempt.deferred.callback(clientProtocol)

    def _forget(self, connection: MemoryConnection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)

    # -- moving bytes and time -----------------------------------------------

    def flush(self) -> None:
        """
        Run until quiet without moving the clock: timers due now, pending
        connection attempts, bytes written on any connection (whatever they
        cause in turn), and closes.

        @raise RuntimeError: still busy after C{maxRounds} rounds.
        """
        for _ in range(self.maxRounds):
            if not self._round():
                return
        raise RuntimeError(
            f"GearmanPump still busy after {self.maxRounds} rounds: "
            "something writes or schedules forever"
        )

    def _round(self) -> bool:
        progressed = False
        now = self.clock.seconds()
        if any(call.getTime() <= now for call in self.clock.getDelayedCalls()):
            self.clock.advance(0)
            progressed = True
        attempts, self._attempts = self._attempts, []
        for attempt in attempts:
            self._establish(attempt)
            progressed = True
        for connection in list(self._connections):
            if connection._step(self.chunkSize):
                progressed = True
        return progressed

    def advance(self, seconds: float) -> None:
        """
        Let C{seconds} pass: flush, then move the clock to each timer due
        within them in turn, flushing after each, so that what a timer
        sends is delivered before the next timer fires, as on a fast
        network.
        """
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._runUntil(lambda: False, self.clock.seconds() + seconds)

    def result(self, d: Deferred[_T], within: float = 0.0) -> _T:
        """
        Flush, and let up to C{within} seconds pass (stopping as soon as
        C{d} has fired), then return C{d}'s result or raise its exception.
        The result is consumed, as trial's C{successResultOf} does.

        @raise AssertionError: C{d} has not fired.
        """
        self._runUntil(lambda: d.called, self.clock.seconds() + within)
        outcome: list[_T | Failure] = []
        if d.called:
            d.addBoth(outcome.append)
        if not outcome:
            # Not fired, or paused waiting on another Deferred.
            raise AssertionError(f"{d!r} has no result after {within:g} s")
        [value] = outcome
        if isinstance(value, Failure):
            value.raiseException()
        return value

    def _runUntil(self, done: Callable[[], bool], until: float) -> None:
        self.flush()
        while not done():
            times = [call.getTime() for call in self.clock.getDelayedCalls()]
            due = [t for t in times if t <= until]
            if not due:
                break
            self._moveTo(min(due))
        if not done():
            self._moveTo(until)

    def _moveTo(self, when: float) -> None:
        now = self.clock.seconds()
        if when > now:
            self.clock.advance(when - now)
            if self.clock.seconds() < when:
                # Rounding: land exactly on the timer's time.
                self.clock.rightNow = when
        self.flush()
