# -*- test-case-name: txgearman.test.test_workerprotocol -*-
"""
One worker connection to one Gearman job server: packets in, calls on the
connection's owner out, and methods that send the worker's packets.

The protocol knows the grab/sleep cycle of a single connection and nothing
else: whether there is room for another job, which function runs a job and
what to answer is the owner's business (L{txgearman.client.worker.GearmanWorker}),
because a worker's concurrency limit spans all its connections.

The cycle, as gearmand's own workers run it: a connection is I{awake}
until the server says it has nothing (NO_JOB); it then sends PRE_SLEEP and
I{sleeps} until the server sends NOOP.  While awake and given room by its
owner, it grabs (GRAB_JOB_UNIQ).  At most one grab is in flight per
connection, since the server answers each with exactly one JOB_ASSIGN_UNIQ
or NO_JOB; a NOOP that arrives while a grab is in flight means a job may
have arrived after the server chose its answer, so the connection stays
awake instead of going to sleep on that answer.

Each packet type the server may send a worker is handled by a
C{packet_<NAME>} method, found in a table built once per class (so that a
subclass's override is the one called); other types are ignored.  A handler
that raises has a bug: the failure is logged and the connection dropped, as
for a server that breaks the protocol, never the process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from txgearman.client.interfaces import IWorkerOwner
from txgearman.codec import (
    DEFAULT_MAX_PACKET_SIZE,
    AdminLine,
    Decoder,
    PacketType,
    ProtocolError,
    encodeRequest,
    packetHandlers,
)

__all__ = ["GearmanWorkerProtocol"]

_P = PacketType
_GRAB = encodeRequest(_P.GRAB_JOB_UNIQ)
_PRE_SLEEP = encodeRequest(_P.PRE_SLEEP)


class GearmanWorkerProtocol(Protocol):
    """
    A worker's connection to one job server.

    On connection it sends SET_CLIENT_ID (if it has a client id) and a
    CAN_DO or CAN_DO_TIMEOUT for each of its owner's L{abilities
    <IWorkerOwner.abilities>}, then tells its owner it is ready.

    @ivar owner: the L{IWorkerOwner}.
    @ivar clientId: sent as SET_CLIENT_ID on connection, if not C{None}.
    @ivar live: whether the connection is up (packets sent now are sent).
    @ivar grabbing: whether a grab is waiting for its answer.
    @ivar sleeping: whether PRE_SLEEP was sent and no NOOP has come since.
    """

    log = Logger()

    #: Each packet type's handler, indexed by wire number: this class's
    #: C{packet_<NAME>} method, or C{None} for a type it ignores.
    _handlers: ClassVar[
        tuple[Callable[[GearmanWorkerProtocol, tuple[bytes, ...]], None] | None, ...]
    ]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Each subclass gets its own table, so that its overrides are
        # called (this class's own is built after its body).
        super().__init_subclass__(**kwargs)
        cls._handlers = packetHandlers(cls)

    def __init__(
        self,
        owner: IWorkerOwner,
        clientId: bytes | None = None,
        maxPacketSize: int = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        self.owner = owner
        self.clientId = clientId
        self.live = False
        self.grabbing = False
        self.sleeping = False
        self._wokenWhileGrabbing = False
        self._decoder = Decoder(maxPacketSize=maxPacketSize)

    @property
    def wantsJob(self) -> bool:
        """
        Whether this connection would grab if its owner had room: it is
        up, awake, and has no grab in flight.
        """
        return self.live and not self.grabbing and not self.sleeping

    # -- connection ----------------------------------------------------------

    def connectionMade(self) -> None:
        self.live = True
        if self.clientId is not None:
            self._send(_P.SET_CLIENT_ID, self.clientId)
        for function, timeout in self.owner.abilities():
            self.canDo(function, timeout)
        self.owner.workerConnected(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.live:
            return
        self.live = False
        self.owner.workerDisconnected(self, reason)

    def dataReceived(self, data: bytes) -> None:
        decoder = self._decoder
        decoder.feed(data)
        handlers = self._handlers
        while self.live:
            try:
                item = decoder.next()
            except ProtocolError as e:
                self._violation(f"undecodable data from the job server: {e}")
                return
            if item is None:
                return
            if isinstance(item, AdminLine):
                # A worker sends no admin commands: nothing can be answered.
                self.log.warn(
                    "Ignoring a text line from the job server: {line!r}", line=item.line
                )
                continue
            handler = handlers[item.type]
            if handler is None:
                self.log.debug(
                    "Ignoring {type} from the job server", type=item.type.name
                )
                continue
            try:
                handler(self, item.args)
            except Exception:
                self._handlerFailed(item.type, Failure())
                return

    def _violation(self, why: str) -> None:
        """
        The server broke the protocol: drop the connection.
        """
        self.log.error("Closing the connection to the job server: {why}", why=why)
        self._drop(Failure(ProtocolError(why)))

    def _handlerFailed(self, ptype: PacketType, failure: Failure) -> None:
        """
        The handler of a C{ptype} packet raised: a bug, after which what
        this connection holds is unknown, so it is dropped like one whose
        server broke the protocol.
        """
        self.log.failure(
            "Closing the connection to the job server: handling {packetType} failed",
            failure,
            packetType=ptype.name,
        )
        self._drop(failure)

    def _drop(self, reason: Failure) -> None:
        """
        Close the connection and tell the owner now, with C{reason} (the
        server then requeues whatever this connection held; the owner
        reconnects).
        """
        if self.transport is not None:
            self.transport.loseConnection()
        # Nothing more is read or sent on this connection.
        self.connectionLost(reason)

    # -- received packets ----------------------------------------------------

    def packet_NOOP(self, args: tuple[bytes, ...]) -> None:
        self.wake()
        self.owner.workerWoken(self)

    def packet_NO_JOB(self, args: tuple[bytes, ...]) -> None:
        if not self.grabbing:
            self.log.warn("Ignoring a NO_JOB that answers no grab")
            return
        self.grabbing = False
        if self._wokenWhileGrabbing:
            self._wokenWhileGrabbing = False
        else:
            self.sleeping = True
            self._write(_PRE_SLEEP)
        self.owner.noJob(self)

    def packet_JOB_ASSIGN_UNIQ(self, args: tuple[bytes, ...]) -> None:
        handle, function, unique, data = args
        self._assigned(handle, function, unique, data)

    def packet_JOB_ASSIGN(self, args: tuple[bytes, ...]) -> None:
        # Not an answer to GRAB_JOB_UNIQ, but unambiguous all the same.
        handle, function, data = args
        self._assigned(handle, function, b"", data)

    def _assigned(
        self, handle: bytes, function: bytes, unique: bytes, data: bytes
    ) -> None:
        if not self.grabbing:
            # A job nobody counted on would break the owner's limit.
            self._violation(f"job {handle!r} was assigned without a grab")
            return
        self.grabbing = False
        self._wokenWhileGrabbing = False
        self.owner.jobAssigned(self, handle, function, unique, data)

    def packet_ERROR(self, args: tuple[bytes, ...]) -> None:
        code, text = args
        self.log.warn(
            "The job server sent ERROR {code}: {text}",
            code=code.decode("ascii", "replace"),
            text=text.decode("utf-8", "replace"),
        )

    # -- sending ---------------------------------------------------------------

    def _write(self, packet: bytes) -> bool:
        if not self.live or self.transport is None:
            return False
        self.transport.write(packet)
        return True

    def _send(self, ptype: PacketType, *args: bytes) -> bool:
        return self._write(encodeRequest(ptype, *args))

    def wake(self) -> None:
        """
        Behave as if the server had sent NOOP: wake up, or, with a grab in
        flight, stay awake after its answer.  Called after registering a
        function, for servers that do not wake a sleeping worker for it.
        """
        if self.grabbing:
            self._wokenWhileGrabbing = True
        else:
            self.sleeping = False

    def grab(self) -> None:
        """
        Send GRAB_JOB_UNIQ.  The owner calls it when it has room for one
        more job and L{wantsJob} is true.

        @raise RuntimeError: if a grab is already in flight.
        """
        if self.grabbing:
            raise RuntimeError("a grab is already in flight on this connection")
        if not self._write(_GRAB):
            return
        self.grabbing = True
        self.sleeping = False
        self._wokenWhileGrabbing = False

    def canDo(self, function: bytes, timeout: float | None = None) -> bool:
        """
        Send CAN_DO, or CAN_DO_TIMEOUT when C{timeout} (seconds) is given;
        the wire carries whole milliseconds, at least one.

        @return: whether the packet was sent (the connection is up).
        """
        if timeout is None:
            return self._send(_P.CAN_DO, function)
        milliseconds = max(1, round(timeout * 1000))
        return self._send(_P.CAN_DO_TIMEOUT, function, b"%d" % milliseconds)

    def cantDo(self, function: bytes) -> bool:
        """Send CANT_DO."""
        return self._send(_P.CANT_DO, function)

    def workData(self, handle: bytes, data: bytes) -> bool:
        """Send WORK_DATA: a chunk of the job's result, for its clients."""
        return self._send(_P.WORK_DATA, handle, data)

    def workWarning(self, handle: bytes, data: bytes) -> bool:
        """Send WORK_WARNING."""
        return self._send(_P.WORK_WARNING, handle, data)

    def workStatus(self, handle: bytes, numerator: int, denominator: int) -> bool:
        """Send WORK_STATUS with the numbers in decimal."""
        return self._send(
            _P.WORK_STATUS, handle, b"%d" % numerator, b"%d" % denominator
        )

    def workComplete(self, handle: bytes, data: bytes) -> bool:
        """Send WORK_COMPLETE: the job succeeded with C{data}."""
        return self._send(_P.WORK_COMPLETE, handle, data)

    def workFail(self, handle: bytes) -> bool:
        """Send WORK_FAIL: the job failed."""
        return self._send(_P.WORK_FAIL, handle)

    def workException(self, handle: bytes, data: bytes) -> bool:
        """Send WORK_EXCEPTION: the job raised; C{data} says what."""
        return self._send(_P.WORK_EXCEPTION, handle, data)


GearmanWorkerProtocol._handlers = packetHandlers(GearmanWorkerProtocol)
