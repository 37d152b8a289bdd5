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

L{txgearman.client.GearmanClient} spreads jobs over several servers and
reconnects; use this protocol directly for one connection you manage.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
            self._received(packet)

    def _abort(self) -> None:
        self._aborted = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- answers -----------------------------------------------------------

    def _received(self, packet: Packet) -> None:
        kind, args = packet.type, packet.args
        if kind in _JOB_EVENTS:
            self._jobEvent(kind, args)
            return
        if not self._waiting:
            self.log.warn(
                "Unexpected {kind} from the job server; ignored", kind=kind.name
            )
            return
        expected, d, callbacks = self._waiting.popleft()
        if kind is _P.ERROR:
            d.errback(ServerError(args[0], args[1]))
        elif kind is not expected:
            self.log.error(
                "Job server answered {got} where {expected} was due; disconnecting",
                got=kind.name,
                expected=expected.name,
            )
            d.errback(ServerError(b"PROTOCOL", b"unexpected " + kind.name.encode()))
            self._abort()
        elif kind is _P.JOB_CREATED:
            if callbacks is not None:
                callbacks.handle = args[0]
                self._jobs.setdefault(args[0], []).append(callbacks)
            d.callback(args[0])
        elif kind is _P.STATUS_RES:
            handle, known, running, numerator, denominator = args
            d.callback(
                JobStatus(
                    handle,
                    b"",
                    known == b"1",
                    running == b"1",
                    _int(numerator),
                    _int(denominator),
                )
            )
        elif kind is _P.STATUS_RES_UNIQUE:
            unique, known, running, numerator, denominator, waiting = args
            d.callback(
                JobStatus(
                    b"",
                    unique,
                    known == b"1",
                    running == b"1",
                    _int(numerator),
                    _int(denominator),
                    _int(waiting),
                )
            )
        else:
            d.callback(args[0])

    def _jobEvent(self, kind: PacketType, args: tuple[bytes, ...]) -> None:
        handle = args[0]
        watchers = self._jobs.get(handle)
        if not watchers:
            return
        if kind is _P.WORK_DATA or kind is _P.WORK_WARNING or kind is _P.WORK_STATUS:
            for callbacks in watchers:
                try:
                    if kind is _P.WORK_DATA and callbacks.onData is not None:
                        callbacks.onData(args[1])
                    elif kind is _P.WORK_WARNING and callbacks.onWarning is not None:
                        callbacks.onWarning(args[1])
                    elif kind is _P.WORK_STATUS and callbacks.onStatus is not None:
                        callbacks.onStatus(_int(args[1]), _int(args[2]))
                except Exception:
                    self.log.failure("A job callback failed")
            return
        del self._jobs[handle]
        for callbacks in watchers:
            if kind is _P.WORK_COMPLETE:
                callbacks.result.callback(args[1])
            elif kind is _P.WORK_FAIL:
                callbacks.result.errback(JobFailed(handle))
            else:
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
        self._waiting.append((answer, d, callbacks))
        self.transport.write(encodeRequest(ptype, *args))
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


_JOB_EVENTS = frozenset(
    (
        _P.WORK_DATA,
        _P.WORK_WARNING,
        _P.WORK_STATUS,
        _P.WORK_COMPLETE,
        _P.WORK_FAIL,
        _P.WORK_EXCEPTION,
    )
)


def _failResult(failure: Failure, callbacks: JobCallbacks) -> None:
    """
    A submit was refused or lost before JOB_CREATED: its result fails.
    """
    if not callbacks.result.called:
        callbacks.result.errback(failure)
