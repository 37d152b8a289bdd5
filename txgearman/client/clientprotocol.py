# -*- test-case-name: txgearman.test.test_clientprotocol -*-
"""
L{GearmanClientProtocol}: one client connection to one job server.

Requests and answers are matched by order: a job server answers a
connection's requests in the order it sent them (gearmand does, and so does
txgearman), so every request that expects an answer waits in one queue, and
an ERROR answers the oldest of them.  The results of foreground jobs
(WORK_DATA, WORK_STATUS, WORK_COMPLETE, ...) come at any time, and are
routed by job handle.  The bytes are parsed by L{txgearman.codec}, the same
parser the server uses.

Each packet type is handled by a C{packet_<NAME>} method, found in a table
built once per class (so that a subclass's override is the one called); a
type without one is an answer of the wrong type.  A handler that raises has
a bug: the failure is logged and the connection dropped, which fails what
waits on it as any lost connection does; never the process.

L{txgearman.client.GearmanClient} spreads jobs over several servers and
reconnects; use this protocol directly for one connection you manage.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from txgearman.client.errors import (
    GearmanConnectionLost,
    JobException,
    JobFailed,
    ServerError,
)
from txgearman.codec import (
    DEFAULT_MAX_PACKET_SIZE,
    RES,
    Decoder,
    Packet,
    PacketType,
    Priority,
    ProtocolError,
    encodeRequest,
    packetHandlers,
    submitType,
)

__all__ = ["GearmanClientProtocol", "JobStatus", "JobCallbacks"]

_P = PacketType


@dataclass(frozen=True)
class JobStatus:
    """
    What a server knows of a job (GET_STATUS or GET_STATUS_UNIQUE).

    @ivar handle: the job handle asked about (empty for a unique id query).
    @ivar unique: the unique id asked about (empty for a handle query).
    @ivar known: whether the server has the job.
    @ivar running: whether a worker runs it now.
    @ivar numerator: the progress its worker last reported.
    @ivar denominator: ditto.
    @ivar waiting: clients waiting for it (unique id queries only).
    """

    handle: bytes
    unique: bytes
    known: bool
    running: bool
    numerator: int
    denominator: int
    waiting: int = 0


class JobCallbacks:
    """
    Where a foreground job's news goes, as it arrives.

    @ivar result: fires with the job's WORK_COMPLETE data, or fails with
        L{JobFailed}, L{JobException} or L{GearmanConnectionLost}.
    """

    __slots__ = ("onData", "onWarning", "onStatus", "result", "handle")

    def __init__(
        self,
        onData: Callable[[bytes], object] | None = None,
        onWarning: Callable[[bytes], object] | None = None,
        onStatus: Callable[[int, int], object] | None = None,
    ) -> None:
        self.onData = onData
        self.onWarning = onWarning
        self.onStatus = onStatus
        self.result: Deferred[bytes] = Deferred()
        self.handle = b""


def _int(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


class GearmanClientProtocol(Protocol):
    """
    A client connection: submit jobs, follow foreground jobs, ask for
    status, echo.

    @ivar connected: whether the connection is up.
    """

    log = Logger()

    #: Each packet type's handler, indexed by wire number: this class's
    #: C{packet_<NAME>} method, or C{None} for a type it does not expect.
    _handlers: ClassVar[
        tuple[Callable[[GearmanClientProtocol, tuple[bytes, ...]], None] | None, ...]
    ]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Each subclass gets its own table, so that its overrides are
        # called (this class's own is built after its body).
        super().__init_subclass__(**kwargs)
        cls._handlers = packetHandlers(cls)

    def __init__(self, maxPacketSize: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._decoder = Decoder(maxPacketSize)
        # (expected answer type, Deferred, callbacks of a foreground submit)
        self._waiting: deque[tuple[PacketType, Deferred[Any], JobCallbacks | None]] = (
            deque()
        )
        self._jobs: dict[bytes, list[JobCallbacks]] = {}
        self.connected = False
        self._lost: Deferred[None] = Deferred()
        self._aborted = False

    # -- connection --------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        # Ask for WORK_EXCEPTION packets: without this option a server
        # turns a worker's exception into a plain WORK_FAIL.
        self.setOption(b"exceptions").addErrback(lambda f: None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        why = reason.getErrorMessage()
        waiting, self._waiting = self._waiting, deque()
        for _kind, d, _callbacks in waiting:
            d.errback(
                GearmanConnectionLost(f"connection lost before the answer came: {why}")
            )
        jobs, self._jobs = self._jobs, {}
        for watchers in jobs.values():
            for callbacks in watchers:
                callbacks.result.errback(
                    GearmanConnectionLost(
                        f"connection lost while job {callbacks.handle!r} ran: {why}"
                    )
                )
        self._lost.callback(None)

    def whenLost(self) -> Deferred[None]:
        """
        @return: fires once the connection is gone (at once if it is).
        """
        d: Deferred[None] = Deferred()
        if self._lost.called:
            d.callback(None)
        else:
            self._lost.addBoth(lambda _: d.callback(None))
        return d

    def dataReceived(self, data: bytes) -> None:
        decoder = self._decoder
        decoder.feed(data)
        handlers = self._handlers
        while not self._aborted:
            try:
                packet = decoder.next()
            except ProtocolError as e:
                self.log.error(
                    "Job server sent garbage ({error}); disconnecting", error=str(e)
                )
                self._abort()
                return
            if packet is None:
                return
            if not isinstance(packet, Packet) or packet.magic != RES:
                self.log.error(
                    "Job server sent a request or a text line; disconnecting"
                )
                self._abort()
                return
            kind = packet.type
            handler = handlers[kind]
            try:
                if handler is None:
                    # Not a type a client is sent: it answers nothing asked.
                    self._answered(kind)
                else:
                    handler(self, packet.args)
            except Exception:
                self._handlerFailed(kind, Failure())
                return

    def _abort(self) -> None:
        self._aborted = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _handlerFailed(self, kind: PacketType, failure: Failure) -> None:
        """
        The handler of a C{kind} packet raised: a bug, after which requests
        and answers may no longer match, so the connection is dropped (and
        what waits on it fails once it is lost).
        """
        self.log.failure(
            "Handling {packetType} from the job server failed; disconnecting",
            failure,
            packetType=kind.name,
        )
        self._abort()

    # -- answers -----------------------------------------------------------

    def _oldest(
        self, kind: PacketType
    ) -> tuple[PacketType, Deferred[Any], JobCallbacks | None] | None:
        """
        Take the oldest request, which an answer of type C{kind} answers.

        @return: what it waits for, its Deferred and callbacks; or C{None}
            if no request waits (the answer is ignored).
        """
        if not self._waiting:
            self.log.warn(
                "Unexpected {kind} from the job server; ignored", kind=kind.name
            )
            return None
        return self._waiting.popleft()

    def _answered(
        self, kind: PacketType
    ) -> tuple[Deferred[Any], JobCallbacks | None] | None:
        """
        Take the oldest request, which an answer of type C{kind} answers.

        @return: its Deferred and callbacks; or C{None} if no request waits
            (the answer is ignored) or the oldest waits for another type
            (it fails, and the connection is dropped: answers and requests
            no longer match).
        """
        oldest = self._oldest(kind)
        if oldest is None:
            return None
        expected, d, callbacks = oldest
        if kind is not expected:
            self.log.error(
                "Job server answered {got} where {expected} was due; disconnecting",
                got=kind.name,
                expected=expected.name,
            )
            d.errback(ServerError(b"PROTOCOL", b"unexpected " + kind.name.encode()))
            self._abort()
            return None
        return d, callbacks

    def _answer(self, kind: PacketType, value: object) -> None:
        """
        Fire the oldest request, which an answer of type C{kind} answers,
        with C{value}; see L{_answered}.

        The handlers make C{value} before the request is taken: should
        that fail, the request still waits, and fails with the connection.
        """
        answered = self._answered(kind)
        if answered is not None:
            answered[0].callback(value)

    def packet_ERROR(self, args: tuple[bytes, ...]) -> None:
        # An ERROR answers whatever the oldest request waits for.
        oldest = self._oldest(_P.ERROR)
        if oldest is not None:
            oldest[1].errback(ServerError(args[0], args[1]))

    def packet_JOB_CREATED(self, args: tuple[bytes, ...]) -> None:
        answered = self._answered(_P.JOB_CREATED)
        if answered is None:
            return
        d, callbacks = answered
        if callbacks is not None:
            callbacks.handle = args[0]
            self._jobs.setdefault(args[0], []).append(callbacks)
        d.callback(args[0])

    def packet_STATUS_RES(self, args: tuple[bytes, ...]) -> None:
        handle, known, running, numerator, denominator = args
        status = JobStatus(
            handle,
            b"",
            known == b"1",
            running == b"1",
            _int(numerator),
            _int(denominator),
        )
        self._answer(_P.STATUS_RES, status)

    def packet_STATUS_RES_UNIQUE(self, args: tuple[bytes, ...]) -> None:
        unique, known, running, numerator, denominator, waiting = args
        status = JobStatus(
            b"",
            unique,
            known == b"1",
            running == b"1",
            _int(numerator),
            _int(denominator),
            _int(waiting),
        )
        self._answer(_P.STATUS_RES_UNIQUE, status)

    def packet_ECHO_RES(self, args: tuple[bytes, ...]) -> None:
        self._answer(_P.ECHO_RES, args[0])

    def packet_OPTION_RES(self, args: tuple[bytes, ...]) -> None:
        self._answer(_P.OPTION_RES, args[0])

    # -- foreground jobs' news, routed by handle ---------------------------

    def packet_WORK_DATA(self, args: tuple[bytes, ...]) -> None:
        for callbacks in self._jobs.get(args[0], ()):
            if callbacks.onData is not None:
                self._notify(callbacks.onData, args[1])

    def packet_WORK_WARNING(self, args: tuple[bytes, ...]) -> None:
        for callbacks in self._jobs.get(args[0], ()):
            if callbacks.onWarning is not None:
                self._notify(callbacks.onWarning, args[1])

    def packet_WORK_STATUS(self, args: tuple[bytes, ...]) -> None:
        for callbacks in self._jobs.get(args[0], ()):
            if callbacks.onStatus is not None:
                self._notify(callbacks.onStatus, _int(args[1]), _int(args[2]))

    def _notify(self, callback: Callable[..., object], *values: object) -> None:
        # The application's callback: its failure is its own, not the
        # connection's.
        try:
            callback(*values)
        except Exception:
            self.log.failure("A job callback failed")

    def packet_WORK_COMPLETE(self, args: tuple[bytes, ...]) -> None:
        for callbacks in self._jobs.pop(args[0], ()):
            callbacks.result.callback(args[1])

    def packet_WORK_FAIL(self, args: tuple[bytes, ...]) -> None:
        handle = args[0]
        for callbacks in self._jobs.pop(handle, ()):
            callbacks.result.errback(JobFailed(handle))

    def packet_WORK_EXCEPTION(self, args: tuple[bytes, ...]) -> None:
        handle = args[0]
        for callbacks in self._jobs.pop(handle, ()):
            callbacks.result.errback(JobException(handle, args[1]))

    # -- requests ----------------------------------------------------------

    def _request(
        self,
        answer: PacketType,
        ptype: PacketType,
        *args: bytes,
        callbacks: JobCallbacks | None = None,
    ) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        if not self.connected or self.transport is None:
            d.errback(GearmanConnectionLost("not connected"))
            return d
        # Built before the request is registered: an argument that cannot
        # be encoded fails this request alone, and the connection still
        # matches every answer to its request.
        packet = encodeRequest(ptype, *args)
        self._waiting.append((answer, d, callbacks))
        self.transport.write(packet)
        return d

    def submitJob(
        self,
        function: bytes,
        data: bytes,
        unique: bytes = b"",
        priority: Priority = Priority.NORMAL,
        callbacks: JobCallbacks | None = None,
    ) -> JobCallbacks:
        """
        Submit a foreground job.

        @return: its L{JobCallbacks}, whose C{result} fires with the job's
            result; an ERROR answer or a lost connection fails it too.
        """
        callbacks = callbacks if callbacks is not None else JobCallbacks()
        created = self._request(
            _P.JOB_CREATED,
            submitType(priority, False),
            function,
            unique,
            data,
            callbacks=callbacks,
        )
        created.addErrback(_failResult, callbacks)
        return callbacks

    def submitBackground(
        self,
        function: bytes,
        data: bytes,
        unique: bytes = b"",
        priority: Priority = Priority.NORMAL,
        when: int | None = None,
    ) -> Deferred[bytes]:
        """
        Submit a background job; at a Unix time C{when}, if given
        (SUBMIT_JOB_EPOCH, which has no priority).

        @return: fires with the job handle once the server has the job.
        """
        if when is not None:
            return self._request(
                _P.JOB_CREATED,
                _P.SUBMIT_JOB_EPOCH,
                function,
                unique,
                b"%d" % (when,),
                data,
            )
        return self._request(
            _P.JOB_CREATED, submitType(priority, True), function, unique, data
        )

    def getStatus(self, handle: bytes) -> Deferred[JobStatus]:
        """
        Ask what the server knows of the job C{handle}.
        """
        return self._request(_P.STATUS_RES, _P.GET_STATUS, handle)

    def getStatusUnique(self, unique: bytes) -> Deferred[JobStatus]:
        """
        Ask what the server knows of the job with unique id C{unique}.
        """
        return self._request(_P.STATUS_RES_UNIQUE, _P.GET_STATUS_UNIQUE, unique)

    def echo(self, data: bytes) -> Deferred[bytes]:
        """
        @return: fires with what the server echoed.
        """
        return self._request(_P.ECHO_RES, _P.ECHO_REQ, data)

    def setOption(self, name: bytes) -> Deferred[bytes]:
        """
        @return: fires with the option's name once the server accepted it.
        """
        return self._request(_P.OPTION_RES, _P.OPTION_REQ, name)

    def setClientId(self, clientId: bytes) -> None:
        """
        Name this connection in the server's C{workers} listing.
        """
        if self.transport is not None:
            self.transport.write(encodeRequest(_P.SET_CLIENT_ID, clientId))


GearmanClientProtocol._handlers = packetHandlers(GearmanClientProtocol)


def _failResult(failure: Failure, callbacks: JobCallbacks) -> None:
    """
    A submit was refused or lost before JOB_CREATED: its result fails.
    """
    if not callbacks.result.called:
        callbacks.result.errback(failure)
