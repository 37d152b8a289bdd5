# -*- test-case-name: txgearman.test.test_protocol -*-
"""
The job server's Twisted protocol: bytes in, calls on the L{JobServer}
out, packets back.

Framing is the codec's, rules are the core's, admin lines are
L{AdminCommands}'; this module only connects them.  Each request type is
handled by a C{packet_<NAME>} method, found in a table built once per class
(so that a subclass's override is the one called); types without one get
C{ERROR INVALID_COMMAND}, as gearmand answers.  A handler that raises has a
bug: the failure is logged, the peer gets C{ERROR SERVER_ERROR} and that
connection is closed; the others carry on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txgearman._words import counted
from txgearman.codec import (
    DEFAULT_MAX_PACKET_SIZE,
    REQ,
    RES,
    AdminLine,
    Decoder,
    Packet,
    PacketType,
    Priority,
    encode,
    encodeResponse,
    packetHandlers,
    printable,
)
from txgearman.server.admin import AdminCommands
from txgearman.server.batching import WriteBatcher, writerFor
from txgearman.server.bodies import (
    DEFAULT_BODIES_PER_BUDGET,
    DEFAULT_BODY_WAIT_TIMEOUT,
    BodyBudget,
)
from txgearman.server.core import JobServer
from txgearman.server.interfaces import IPeer
from txgearman.server.ordering import OrderedOutput, Place
from txgearman.server.schedule import CronSchedule, InvalidSchedule
from txgearman.server.session import Session

if TYPE_CHECKING:
    from txgearman.server.acl import AccessPolicy

__all__ = [
    "GearmanServerProtocol",
    "GearmanServerFactory",
    "HIGH_WATER",
    "LOW_WATER",
    "DEFAULT_CLIENT_OUTPUT_LIMIT",
    "plaintextRefusal",
]

_P = PacketType
_GRAB_JOB = _P.GRAB_JOB
_GRAB_JOB_UNIQ = _P.GRAB_JOB_UNIQ
_GRAB_JOB_ALL = _P.GRAB_JOB_ALL
_HIGH = Priority.HIGH
_NORMAL = Priority.NORMAL
_LOW = Priority.LOW
# Packets without arguments (NOOP, NO_JOB, ...) encoded once, by number.
#: Bytes of output queued for one connection in one reactor turn past which
#: its further requests wait until that output has been written; and bytes
#: of output held for a peer that does not read (beyond what its transport
#: took) past which the workers feeding it are held back.
HIGH_WATER = 1 << 20
#: Held output below which those workers read again.
LOW_WATER = HIGH_WATER // 4
#: Held output past which the connection is closed (C{--client-output-limit}).
DEFAULT_CLIENT_OUTPUT_LIMIT = 64 << 20

#: What a request gets while the server is still starting.
_STARTING = b"the server is starting (its queue store is replaying); try again shortly"
_EMPTY_RESPONSES = tuple(encode(RES, n, ()) for n in range(max(PacketType) + 1))


def plaintextRefusal(data: bytes) -> bytes:
    """
    What a peer speaking plaintext to a TLS port is told before it is
    closed, in the protocol it speaks: a binary C{ERROR}, or C{ERR} for an
    admin line.
    """
    if data[:1] == b"\0":
        return encodeResponse(_P.ERROR, b"TLS_REQUIRED", b"This port speaks TLS")
    return b"ERR TLS_REQUIRED This+port+speaks+TLS\r\n"


def _parseEpoch(raw: bytes) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        return None
    if not -(2**63) <= value < 2**63:
        return None
    return max(value, 0)


@implementer(IPeer, IPushProducer)
class GearmanServerProtocol(Protocol):
    """
    One connection to the job server, whatever its role.

    It is its transport's producer: when the peer stops reading and our
    send buffer fills, we stop reading the peer's requests, so a slow
    reader cannot make the server buffer without bound.  Output sent to it
    meanwhile (results its jobs' workers forward) waits here, counted:
    past L{HIGH_WATER} the core holds those workers back until it is below
    L{LOW_WATER}, and past the factory's C{clientOutputLimit} the
    connection is closed.
    """

    factory: GearmanServerFactory
    core: JobServer
    decoder: Decoder
    #: The core's view of this connection; set when the connection is made.
    session: Session
    log = Logger()

    #: Each packet type's handler, indexed by wire number: this class's
    #: C{packet_<NAME>} method, else L{packet_unknown}.
    _handlers: ClassVar[
        tuple[Callable[[GearmanServerProtocol, tuple[bytes, ...]], None], ...]
    ]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Each subclass gets its own table, so that its overrides are
        # called (this class's own is built after its body).
        super().__init_subclass__(**kwargs)
        cls._handlers = packetHandlers(cls, cls.packet_unknown)

    def __init__(self) -> None:
        self._made = False
        # Whether the factory was not ready yet (the store replaying) when
        # this connection came: then its first request is answered with
        # ERROR and the connection closed, rather than left unanswered.
        self._unready = False
        # Reading stops while the transport's send buffer is full.  A
        # transport calls pauseProducing on every write that finds its
        # buffer full, but resumeProducing only once.
        self._sendBufferFull = False
        self._readingPaused = False
        # The core holds this worker back: a client it feeds is full.
        self._throttled = False
        # The large body the decoder started waits for room in the factory's
        # BodyBudget; and the decoder's bodyMoves the budget was last told of.
        self._bodyWaits = False
        self._bodyMoves = 0
        # Output sent while the transport has paused us, oldest first: the
        # transport's own buffer stays as full as it was when it paused us,
        # and this is what a peer that does not read makes the server hold.
        self._held: deque[bytes] = deque()
        self._heldBytes = 0
        # Whether the core was told the held output passed HIGH_WATER.
        self._outputFull = False
        # Dropped for holding more than the limit (see _abandon).
        self._abandoned = False
        # Bytes queued for this turn's write, and the requests of a read
        # not handled yet because that output passed HIGH_WATER: they wait,
        # with reading paused, until the output has gone.
        self._pendingBytes = 0
        self._backlog: list[Packet | AdminLine] | None = None
        self._closing = False
        self._lostWaiters: list[Deferred[None]] = []
        # Output queued for the end of this turn, or None where the factory
        # has no batcher and every packet is written at once.
        self._pending: list[bytes] | None = None
        self._ordered: OrderedOutput[bytes] | None = None
        self._batcher: WriteBatcher | None = None

    # -- connection life ---------------------------------------------------

    def connectionMade(self) -> None:
        factory = self.factory
        self.core = factory.core
        # A packet larger than the whole budget could never be let in.
        self.decoder = Decoder(min(factory.maxPacketSize, factory.bodies.limit))
        transport = self.transport
        assert transport is not None
        # No Nagle delay: Gearman is request/response with small packets.
        # Keepalive: a worker whose host vanishes would otherwise hold its
        # jobs forever (the protocol has no heartbeat).
        for option in ("setTcpNoDelay", "setTcpKeepAlive"):
            setter = getattr(transport, option, None)
            if setter is not None:
                setter(True)
        peer: IAddress = transport.getPeer()
        host = getattr(peer, "host", None) or "-"
        fileno = getattr(transport, "fileno", None)
        connectionId = None
        if fileno is not None:
            try:
                connectionId = fileno()
            except Exception:
                connectionId = None
        self.session = self.core.connect(self, host, connectionId)
        self._made = True
        # Swapped for _hold while the transport has paused us: the
        # per-packet path then holds output without testing anything.
        self._write = self._transportWrite = transport.write
        self._writeNow = self._directWrite = writerFor(transport)
        self._batcher = factory.batcher
        if self._batcher is not None:
            self._pending = []
        cast(IConsumer, transport).registerProducer(self, True)
        factory.connections.add(self)
        if not factory.ready:
            self._unready = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.connections.discard(self)
        if self._made:
            self._dropBody()
        # What waited for the peer goes with it.
        self._held.clear()
        self._heldBytes = 0
        self._write = self._writeNow = self._discard
        if self._made:
            self.core.disconnect(self.session)
        waiters, self._lostWaiters = self._lostWaiters, []
        for d in waiters:
            d.callback(None)

    def close(self) -> None:
        """
        Read nothing more and close the connection once what was written
        has been sent.
        """
        transport = self.transport
        if self._closing or transport is None:
            return
        # What waited behind the output is never handled now, nor the
        # rest of a partial packet.
        self._backlog = None
        self._dropBody()
        self.flushPending()
        if self._abandoned:
            # Flushing passed the output limit: the connection was dropped.
            return
        self._closing = True
        held = self._held
        if held:
            # The transport is let go of as a producer below: it takes the
            # held output now, in order.
            self._transportWrite(b"".join(held))
            held.clear()
            self._heldBytes = 0
        self._write = self._transportWrite
        self._writeNow = self._directWrite
        # A transport with a registered producer it paused waits for that
        # producer before it closes: let go of it first.
        cast(IConsumer, transport).unregisterProducer()
        transport.loseConnection()

    def whenLost(self) -> Deferred[None]:
        """
        @return: fires once the connection is gone.
        """
        d: Deferred[None] = Deferred()
        if self._made and self.session.closed:
            d.callback(None)
        else:
            self._lostWaiters.append(d)
        return d

    # -- flow control ------------------------------------------------------

    def factoryReady(self) -> None:
        """
        The factory became ready: requests are served from now on.
        """
        self._unready = False

    def _refuseUnready(self, data: bytes) -> None:
        """
        Answer a request that came before the server was ready (its port
        was bound early, before twistd dropped privileges, and the store is
        still starting or replaying) with an error in the request's own
        protocol, and close: the client fails over to another server at
        once instead of waiting on a silent socket.
        """
        self.log.info(
            "Refusing a request from {host}: the server is not ready yet (its queue "
            "store is starting or replaying)",
            host=self.session.host,
        )
        if data[:1] == b"\0":
            self.sendPacket(_P.ERROR, b"SERVER_STARTING", _STARTING)
        else:
            self.send(b"ERR SERVER_STARTING " + _STARTING.replace(b" ", b"+") + b"\r\n")
        self.close()

    def pauseProducing(self) -> None:
        self._sendBufferFull = True
        if not self._closing:
            self._write = self._writeNow = self._hold
        self._updateReading()

    def resumeProducing(self) -> None:
        self._sendBufferFull = False
        if self._held:
            self._release()
            if self._sendBufferFull:
                # The held output filled the transport again.
                return
        if not self._closing:
            self._write = self._transportWrite
            self._writeNow = self._directWrite
        if self._backlog is not None:
            self._resumeBacklog()
        else:
            self._updateReading()

    def stopProducing(self) -> None:
        pass

    def pauseReading(self) -> None:
        """
        The core holds this worker back: a client it feeds does not read.
        """
        self._throttled = True
        self._updateReading()

    def resumeReading(self) -> None:
        """The clients this worker feeds read again."""
        self._throttled = False
        self._updateReading()

    def _hold(self, data: bytes) -> None:
        """
        Keep output for the peer while the transport has paused us, and
        tell the core when it passes the high-water mark; past the limit,
        close the connection.
        """
        self._held.append(data)
        self._heldBytes += len(data)
        held = self._heldBytes
        if held > self.factory.outputHighWater:
            if held > self.factory.clientOutputLimit:
                self._abandon()
            elif not self._outputFull:
                self._outputFull = True
                self.core.outputFull(self.session)

    def _release(self) -> None:
        """
        The transport took all it had: give it held output, oldest first,
        until it pauses us again; below the low-water mark, the core lets
        the workers it held back for this peer read again.
        """
        held = self._held
        write = self._transportWrite
        while held and not self._sendBufferFull:
            data = held.popleft()
            self._heldBytes -= len(data)
            write(data)
        if self._outputFull and self._heldBytes <= self.factory.outputLowWater:
            self._outputFull = False
            self.core.outputDrained(self.session)

    def _abandon(self) -> None:
        """
        The peer leaves more output unread than C{clientOutputLimit}: drop
        it and the connection at once (closing gracefully would wait for
        it to read).  Its jobs carry on as when a client disconnects.
        """
        transport = self.transport
        assert transport is not None
        self.log.warn(
            "Closing connection from {host}: {held} of output wait for it, more "
            "than --client-output-limit ({limit}); it does not read its results",
            host=self.session.host,
            held=counted(self._heldBytes, "byte"),
            limit=counted(self.factory.clientOutputLimit, "byte"),
        )
        self._held.clear()
        self._heldBytes = 0
        self._backlog = None
        self._dropBody()
        self._closing = self._abandoned = True
        self._write = self._writeNow = self._discard
        cast(IConsumer, transport).unregisterProducer()
        cast(ITCPTransport, transport).abortConnection()

    def _discard(self, data: bytes) -> None:
        """Output for a connection that is gone."""

    def _updateReading(self) -> None:
        transport = self.transport
        if transport is None or self._closing:
            return
        pause = (
            self._sendBufferFull
            or self._backlog is not None
            or self._throttled
            or self._bodyWaits
        )
        if pause == self._readingPaused:
            return
        self._readingPaused = pause
        if pause:
            cast(IPushProducer, transport).pauseProducing()
        else:
            cast(IPushProducer, transport).resumeProducing()

    # -- large bodies ------------------------------------------------------

    def _bodyMoved(self) -> None:
        """
        The decoder finished a large body, or started one, or both: return
        the old one's reservation and reserve the new one's announced size;
        if that does not fit, stop reading until it does.
        """
        decoder = self.decoder
        self._bodyMoves = decoder.bodyMoves
        bodies = self.factory.bodies
        bodies.release(self)
        if decoder.bodySize and not self._closing:
            if not bodies.reserve(
                self, decoder.bodySize, self._bodyGranted, self._bodyExpired
            ):
                self._bodyWaits = True
                self._updateReading()

    def _bodyGranted(self) -> None:
        """There is room for the body now: read it."""
        self._bodyWaits = False
        self._updateReading()

    def _bodyExpired(self) -> None:
        """
        The body waited longer than the budget's timeout: say why, and
        close, rather than leave the peer waiting with no end.
        """
        self._bodyWaits = False
        bodies = self.factory.bodies
        self.log.warn(
            "Closing connection from {host}: its packet of {size} waited more than "
            "--body-wait-timeout ({timeout}s) for room in --max-buffered-bodies "
            "({limit}, {held} held by {holders})",
            host=self.session.host,
            size=counted(self.decoder.bodySize, "byte"),
            timeout=f"{bodies.timeout:g}",
            limit=counted(bodies.limit, "byte"),
            held=counted(bodies.reserved, "byte"),
            holders=counted(bodies.holders(), "connection"),
        )
        self.sendPacket(
            _P.ERROR,
            b"SERVER_BUSY",
            b"Packet body of %d bytes waited %gs for memory: --max-buffered-bodies "
            b"(%d bytes) is taken by other connections' packets; try again later"
            % (self.decoder.bodySize, bodies.timeout, bodies.limit),
        )
        self.close()

    def _dropBody(self) -> None:
        """
        The rest of a partial packet will never be read: let go of what of
        it is held now (not when the garbage collector gets to the cycle
        this protocol is part of, which on an idle server may be never),
        and of its reservation.
        """
        self.decoder.discard()
        self._bodyMoves = self.decoder.bodyMoves
        self._bodyWaits = False
        self.factory.bodies.release(self)

    # -- IPeer -------------------------------------------------------------

    def sendPacket(self, ptype: int, *args: bytes) -> None:
        # The common case of send() (no answer's place kept) is taken
        # directly: this runs for every packet the server sends.
        data = encode(RES, ptype, args) if args else _EMPTY_RESPONSES[ptype]
        if self._ordered is None:
            self._sendInOrder(data)
        else:
            self.send(data)

    def reservePacket(self) -> Place[bytes]:
        ordered = self._ordered
        if ordered is None:
            ordered = self._ordered = OrderedOutput(self._sendInOrder)
        return ordered.reserve()

    def sendReserved(self, place: object, ptype: int, *args: bytes) -> None:
        assert self._ordered is not None and isinstance(place, Place)
        self._ordered.fill(place, encode(RES, ptype, args))

    def send(self, data: bytes) -> None:
        """
        Send encoded bytes: at the end of this reactor turn, together with
        everything else sent to this connection in it (see
        L{txgearman.server.batching}), or at once without a batcher; in any case
        after any answer whose place is kept (see L{txgearman.server.ordering}).
        """
        ordered = self._ordered
        if ordered is not None and ordered.holding:
            ordered.send(data)
            return
        self._sendInOrder(data)

    def _sendInOrder(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            self._write(data)
            return
        if not pending:
            assert self._batcher is not None
            self._batcher.add(self)
        pending.append(data)
        self._pendingBytes += len(data)

    def flushPending(self) -> None:
        """
        Write what this turn queued for this connection.
        """
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._pendingBytes = 0
        if self.transport is not None:
            self._writeNow(data)
        if self._backlog is not None and not self._sendBufferFull:
            # The output that held the requests back has gone (and the
            # transport took it without pausing): handle the next ones.
            self._resumeBacklog()

    # -- input -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self._unready:
            self._refuseUnready(data)
            return
        # The requests of a read are handled in order until their output
        # queued for this turn passes HIGH_WATER: then the rest wait, with
        # reading paused, until it has been written, so that a peer makes
        # the server hold no more than that for it however much its
        # requests ask for (pipelined "show jobs", say).
        decoder = self.decoder
        events = decoder.decode(data)
        if decoder.bodyMoves != self._bodyMoves:
            self._bodyMoved()
        if self._backlog is not None:
            if data:
                # Read before reading paused: it waits behind the backlog.
                self._backlog.extend(events)
                return
            # Called by _resumeBacklog: the backlog's turn.
            events, self._backlog = self._backlog + events, None
            self._updateReading()
        handlers = self._handlers
        done = 0
        for event in events:
            done += 1
            if isinstance(event, Packet):
                if event.magic != REQ:
                    self.sendPacket(
                        _P.ERROR, b"INVALID_MAGIC", b"Request magic expected"
                    )
                    continue
                try:
                    handlers[event.type](self, event.args)
                except Exception:
                    self._handlerFailed(event.type, Failure())
                    return
            else:
                try:
                    reply = self.adminLine(event.line)
                except Exception:
                    self._adminFailed(event.line, Failure())
                    return
                self.send(reply)
            if self._pendingBytes > HIGH_WATER and done < len(events):
                self._backlog = events[done:]
                self._updateReading()
                return
        error = self.decoder.failed
        if error is not None:
            self.log.info(
                "Closing connection from {host}: {error}",
                host=self.session.host,
                error=str(error),
            )
            self.sendPacket(_P.ERROR, error.code, error.text)
            self.close()

    def _resumeBacklog(self) -> None:
        """
        The output that held requests back has been written: handle them.
        (Through L{dataReceived}, so that the loop of the per-read path is
        one, and costs no extra call.)
        """
        if self._closing:
            self._backlog = None
            return
        self.dataReceived(b"")

    def _handlerFailed(self, ptype: PacketType, failure: Failure) -> None:
        """
        The handler of a C{ptype} packet raised: a bug, not the peer's
        fault, but what this connection's state has become is unknown, so
        it is told and closed (without reading the rest), and the server
        goes on serving the others.
        """
        self.log.failure(
            "Closing connection from {host}: handling {packetType} failed",
            failure,
            host=self.session.host,
            packetType=ptype.name,
        )
        if not self._closing:
            self.sendPacket(
                _P.ERROR,
                b"SERVER_ERROR",
                b"Server failed to handle " + ptype.name.encode(),
            )
            self.close()

    def _adminFailed(self, line: bytes, failure: Failure) -> None:
        """
        An admin command raised: as L{_handlerFailed}, answered in the text
        protocol (C{ERR SERVER_ERROR}).
        """
        command = printable(line.split(b" ", 1)[0], 40)
        self.log.failure(
            "Closing connection from {host}: the admin command {command} failed",
            failure,
            host=self.session.host,
            command=command,
        )
        if not self._closing:
            self.send(b"ERR SERVER_ERROR Server+failed+to+handle+the+command\r\n")
            self.close()

    def adminLine(self, line: bytes) -> bytes:
        """The answer to one admin line (a subclass may judge it first)."""
        return self.factory.admin.handle(line)

    def packet_unknown(self, args: tuple[bytes, ...]) -> None:
        """A request type no client or worker may send."""
        self.sendPacket(_P.ERROR, b"INVALID_COMMAND", b"Command not expected")

    # -- workers -----------------------------------------------------------

    def packet_CAN_DO(self, args: tuple[bytes, ...]) -> None:
        self.core.canDo(self.session, args[0])

    def packet_CAN_DO_TIMEOUT(self, args: tuple[bytes, ...]) -> None:
        name, raw = args
        try:
            milliseconds = int(raw)
        except ValueError:
            milliseconds = 0
        milliseconds = min(max(milliseconds, 0), 2**31)
        self.core.canDo(
            self.session, name, milliseconds / 1000.0 if milliseconds else None
        )

    def packet_CANT_DO(self, args: tuple[bytes, ...]) -> None:
        self.core.cantDo(self.session, args[0])

    def packet_RESET_ABILITIES(self, args: tuple[bytes, ...]) -> None:
        self.core.resetAbilities(self.session)

    def packet_PRE_SLEEP(self, args: tuple[bytes, ...]) -> None:
        self.core.preSleep(self.session)

    def packet_GRAB_JOB(self, args: tuple[bytes, ...]) -> None:
        self.core.grabJob(self.session, _GRAB_JOB)

    def packet_GRAB_JOB_UNIQ(self, args: tuple[bytes, ...]) -> None:
        self.core.grabJob(self.session, _GRAB_JOB_UNIQ)

    def packet_GRAB_JOB_ALL(self, args: tuple[bytes, ...]) -> None:
        self.core.grabJob(self.session, _GRAB_JOB_ALL)

    def packet_WORK_STATUS(self, args: tuple[bytes, ...]) -> None:
        self.core.workStatus(self.session, args[0], args[1], args[2])

    def packet_WORK_DATA(self, args: tuple[bytes, ...]) -> None:
        self.core.workData(self.session, _P.WORK_DATA, args[0], args[1])

    def packet_WORK_WARNING(self, args: tuple[bytes, ...]) -> None:
        self.core.workData(self.session, _P.WORK_WARNING, args[0], args[1])

    def packet_WORK_COMPLETE(self, args: tuple[bytes, ...]) -> None:
        self.core.workComplete(self.session, args[0], args[1])

    def packet_WORK_FAIL(self, args: tuple[bytes, ...]) -> None:
        self.core.workFail(self.session, args[0])

    def packet_WORK_EXCEPTION(self, args: tuple[bytes, ...]) -> None:
        self.core.workException(self.session, args[0], args[1])

    # -- clients -----------------------------------------------------------

    # The six plain submits (function, unique id, data) differ only in the
    # priority and background flag that codec.SUBMITS gives their types;
    # each calls the core directly, as this runs for every job.

    def packet_SUBMIT_JOB(self, args: tuple[bytes, ...]) -> None:
        self.core.submitJob(self.session, args[0], args[1], args[2], _NORMAL, False)

    def packet_SUBMIT_JOB_BG(self, args: tuple[bytes, ...]) -> None:
        self.core.submitJob(self.session, args[0], args[1], args[2], _NORMAL, True)

    def packet_SUBMIT_JOB_HIGH(self, args: tuple[bytes, ...]) -> None:
        self.core.submitJob(self.session, args[0], args[1], args[2], _HIGH, False)

    def packet_SUBMIT_JOB_HIGH_BG(self, args: tuple[bytes, ...]) -> None:
        self.core.submitJob(self.session, args[0], args[1], args[2], _HIGH, True)

    def packet_SUBMIT_JOB_LOW(self, args: tuple[bytes, ...]) -> None:
        self.core.submitJob(self.session, args[0], args[1], args[2], _LOW, False)

    def packet_SUBMIT_JOB_LOW_BG(self, args: tuple[bytes, ...]) -> None:
        self.core.submitJob(self.session, args[0], args[1], args[2], _LOW, True)

    def packet_SUBMIT_JOB_EPOCH(self, args: tuple[bytes, ...]) -> None:
        name, unique, raw, data = args
        when = _parseEpoch(raw)
        if when is None:
            self.sendPacket(
                _P.ERROR, b"INVALID_ARGUMENT", b"Epoch is not a 64-bit integer"
            )
            return
        self.core.submitJob(
            self.session, name, unique, data, Priority.NORMAL, True, when
        )

    def packet_SUBMIT_JOB_SCHED(self, args: tuple[bytes, ...]) -> None:
        name, unique, minute, hour, day, month, weekday, data = args
        try:
            schedule = CronSchedule.parse(minute, hour, day, month, weekday)
        except InvalidSchedule as e:
            self.sendPacket(_P.ERROR, b"INVALID_ARGUMENT", str(e).encode())
            return
        self.core.submitScheduled(self.session, name, unique, data, schedule)

    def packet_SUBMIT_REDUCE_JOB(self, args: tuple[bytes, ...]) -> None:
        name, unique, reducer, _aggregator, data = args
        self.core.submitJob(
            self.session, name, unique, data, Priority.NORMAL, False, 0, reducer
        )

    def packet_SUBMIT_REDUCE_JOB_BACKGROUND(self, args: tuple[bytes, ...]) -> None:
        name, unique, reducer, _aggregator, data = args
        self.core.submitJob(
            self.session, name, unique, data, Priority.NORMAL, True, 0, reducer
        )

    def packet_GET_STATUS(self, args: tuple[bytes, ...]) -> None:
        handle, known, running, numerator, denominator = self.core.getStatus(args[0])
        self.sendPacket(
            _P.STATUS_RES,
            handle,
            b"1" if known else b"0",
            b"1" if running else b"0",
            b"%d" % numerator,
            b"%d" % denominator,
        )

    def packet_GET_STATUS_UNIQUE(self, args: tuple[bytes, ...]) -> None:
        unique, known, running, numerator, denominator, clients = (
            self.core.getStatusUnique(args[0])
        )
        self.sendPacket(
            _P.STATUS_RES_UNIQUE,
            unique,
            b"1" if known else b"0",
            b"1" if running else b"0",
            b"%d" % numerator,
            b"%d" % denominator,
            b"%d" % clients,
        )

    def packet_ECHO_REQ(self, args: tuple[bytes, ...]) -> None:
        self.sendPacket(_P.ECHO_RES, args[0])

    def packet_OPTION_REQ(self, args: tuple[bytes, ...]) -> None:
        if self.core.setOption(self.session, args[0]):
            self.sendPacket(_P.OPTION_RES, args[0])
        else:
            self.sendPacket(
                _P.ERROR, b"UNKNOWN_OPTION", b"Server does not recognize given option"
            )

    def packet_SET_CLIENT_ID(self, args: tuple[bytes, ...]) -> None:
        self.core.setClientId(self.session, args[0])


GearmanServerProtocol._handlers = packetHandlers(
    GearmanServerProtocol, GearmanServerProtocol.packet_unknown
)


class GearmanServerFactory(Factory[GearmanServerProtocol]):
    """
    Builds L{GearmanServerProtocol}s sharing one L{JobServer}.

    Until L{setReady} is called (the store has replayed), a request is
    answered with C{ERROR SERVER_STARTING} (an admin line with C{ERR
    SERVER_STARTING}) and its connection closed.  The service listens only
    once it is ready, unless the port had to be bound early (before twistd
    drops privileges).

    @ivar connections: the open connections.
    """

    protocol = GearmanServerProtocol

    def __init__(
        self,
        core: JobServer,
        admin: AdminCommands | None = None,
        maxPacketSize: int = DEFAULT_MAX_PACKET_SIZE,
        ready: bool = True,
        batcher: WriteBatcher | None = None,
        clientOutputLimit: int = DEFAULT_CLIENT_OUTPUT_LIMIT,
        maxBufferedBodies: int | None = None,
        bodyWaitTimeout: float = DEFAULT_BODY_WAIT_TIMEOUT,
    ) -> None:
        """
        @param batcher: collects each turn's output per connection; without
            one, every packet is written at once (simpler to test, slower).
        @param clientOutputLimit: the most output held for a peer that does
            not read, in bytes, before its connection is closed.
        @param maxBufferedBodies: the most bytes all connections together
            may hold in partly received large bodies (see
            L{txgearman.server.bodies}); by default, room for
            L{DEFAULT_BODIES_PER_BUDGET} packets of C{maxPacketSize}.  A
            packet larger than this is refused as too large.
        @param bodyWaitTimeout: how long, in seconds, a large body may wait
            for room before its connection is answered C{ERROR SERVER_BUSY}
            and closed.
        """
        if maxBufferedBodies is None:
            maxBufferedBodies = DEFAULT_BODIES_PER_BUDGET * maxPacketSize
        #: Partly received large bodies, across connections.
        self.bodies = BodyBudget(core.clock, maxBufferedBodies, bodyWaitTimeout)
        self.batcher = batcher
        self.clientOutputLimit = clientOutputLimit
        #: Held output past which, and below which, the workers feeding a
        #: peer are held back and let go.
        self.outputHighWater = HIGH_WATER
        self.outputLowWater = LOW_WATER
        self.core = core
        self.admin = admin if admin is not None else AdminCommands(core)
        self.maxPacketSize = maxPacketSize
        self.ready = ready
        self.connections: set[GearmanServerProtocol] = set()
        #: The access-control list, or C{None} for none: see L{guard}.
        self.policy: AccessPolicy | None = None
        self.listedPolicy: AccessPolicy | None = None

    def guard(self, policy: AccessPolicy, listed: AccessPolicy | None = None) -> None:
        """
        Judge every connection from now on by C{policy}
        (L{txgearman.server.guard.GuardedServerProtocol}).

        @param listed: what C{acl list} shows, if not C{policy} (the admin
            socket shows the network ports' rules).
        """
        from txgearman.server.guard import GuardedServerProtocol

        self.policy = policy
        self.listedPolicy = listed if listed is not None else policy
        self.protocol = GuardedServerProtocol

    def rejudge(self) -> None:
        """The policy changed: open connections drop what it no longer allows."""
        for connection in list(self.connections):
            rejudge = getattr(connection, "rejudge", None)
            if rejudge is not None:
                rejudge()

    def setReady(self) -> None:
        """Serve requests, on the connections that arrived before too."""
        if self.ready:
            return
        self.ready = True
        for connection in list(self.connections):
            connection.factoryReady()
