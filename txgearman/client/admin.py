# -*- test-case-name: txgearman.test.test_adminclient -*-
"""
A Deferred client for the Gearman text (admin) protocol.

Monitoring and operations code in a Twisted application needs what
C{gearadmin} prints, as data and without blocking the reactor.
L{GearmanAdminClient} sends the admin commands of txgearman and gearmand over
one connection, opened when first needed, pipelines them, and parses each
reply into the small records below.  Replies are split into lines by
L{txgearman.codec.Decoder}, the parser the server itself uses.

The admin protocol has no request ids: replies belong to commands by order
alone.  So a command that times out drops the connection (the next command
opens a new one) instead of risking a late reply being taken for the answer
to the command after it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from txgearman.client.arguments import asBytes
from txgearman.client.endpoints import endpointFor
from txgearman.client.errors import (
    AdminConnectFailed,
    AdminConnectionLost,
    AdminError,
    AdminTimeout,
)
from txgearman.codec import AdminLine, Decoder, PacketType, ProtocolError

__all__ = [
    "FunctionStatus",
    "GearmanAdminClient",
    "JobInfo",
    "PriorityStatus",
    "WorkerInfo",
]

_T = TypeVar("_T")

# A C{workers} line lists every function of a connection, so it can be far
# longer than the 8 KiB a server accepts; this only bounds memory.
_MAX_REPLY_LINE = 16 * 1024 * 1024


@dataclass(frozen=True)
class FunctionStatus:
    """
    A C{status} line.  C{queued} counts every job of the function the server
    holds, running ones included; C{workers}, the connections that
    registered it.
    """

    function: bytes
    queued: int
    running: int
    workers: int


@dataclass(frozen=True)
class PriorityStatus:
    """A C{prioritystatus} line: jobs waiting to run, per priority."""

    function: bytes
    high: int
    normal: int
    low: int
    workers: int


@dataclass(frozen=True)
class WorkerInfo:
    """
    A C{workers} line, one per connection (clients and admin ones too).
    C{fd} is the server's id for it, C{address} the peer's IP (C{-} for a
    Unix socket), C{clientId} its SET_CLIENT_ID or C{b"-"}.
    """

    fd: int
    address: str
    clientId: bytes
    functions: tuple[bytes, ...]


@dataclass(frozen=True)
class JobInfo:
    """
    A C{show jobs} line.  C{ignoreJob} is gearmand's flag for a cancelled
    or abandoned job not yet reaped (always 0 from txgearman); C{stored},
    whether the job is in the queue store.
    """

    handle: bytes
    retries: int
    ignoreJob: int
    stored: bool


class _Command(Generic[_T]):
    """
    A command sent or waiting to be sent, and how to read its reply.
    """

    def __init__(
        self,
        line: bytes,
        parse: Callable[[list[bytes]], _T],
        listing: bool,
        closeOk: bool,
        onCancel: Callable[[_Command[_T]], None],
    ) -> None:
        self.line = line
        self.parse = parse
        self.listing = listing
        self.closeOk = closeOk
        self.lines: list[bytes] = []
        self.deferred: Deferred[_T] = Deferred(lambda d: onCancel(self))
        self.timer: IDelayedCall | None = None

    def settle(self, outcome: object) -> None:
        """Fire the Deferred with C{outcome} (a L{Failure} or a result), once."""
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if not self.deferred.called:
            if isinstance(outcome, Failure):
                self.deferred.errback(outcome)
            else:
                self.deferred.callback(outcome)  # type: ignore[arg-type]

    def finish(self, lines: list[bytes]) -> None:
        """The reply is complete: parse it and fire the Deferred."""
        try:
            result: object = self.parse(lines)
        except Exception:
            result = Failure()
        self.settle(result)


class _AdminProtocol(Protocol):
    """
    One admin connection: matches reply lines to commands in FIFO order.
    """

    log = Logger()

    def __init__(self, client: GearmanAdminClient) -> None:
        self.client = client
        self.inFlight: deque[_Command[Any]] = deque()
        self.decoder = Decoder(maxLineLength=_MAX_REPLY_LINE)
        self.dead = False
        self.why = "the connection was closed"
        self.lostWaiters: list[Deferred[None]] = []

    def send(self, command: _Command[Any]) -> None:
        self.inFlight.append(command)
        # CRLF: gearmand 1.1.20 cuts the last two bytes of a name off.
        self.transport.write(command.line + b"\r\n")  # type: ignore[union-attr]

    def abort(self, why: str) -> None:
        """Drop a connection whose replies can no longer be trusted."""
        if not self.dead:
            self.dead = True
            self.why = why
            self.client._forget(self)
            self.transport.abortConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while not self.dead:
            try:
                item = self.decoder.next()
            except ProtocolError as e:
                self.log.warn(
                    "Bad admin reply from Gearman server: {error}", error=str(e)
                )
                self.abort(f"undecodable reply: {e}")
                return
            if item is None:
                return
            if isinstance(item, AdminLine):
                self.lineReceived(item.line)
            elif item.type is PacketType.ERROR and self.inFlight:
                code, text = item.args
                self.inFlight.popleft().settle(
                    Failure(
                        AdminError(
                            code.decode("ascii", "replace"),
                            text.decode("utf-8", "replace"),
                        )
                    )
                )
            else:
                self.abort(f"unexpected {item.type.name} packet")

    def lineReceived(self, line: bytes) -> None:
        if not self.inFlight:
            self.abort(f"reply without a command: {line!r}")
            return
        command = self.inFlight[0]
        isError = line == b"ERR" or line.startswith(b"ERR ")
        if command.listing and not (isError and not command.lines):
            if line != b".":
                command.lines.append(line)
                return
            self.inFlight.popleft().finish(command.lines)
        elif isError:
            self.inFlight.popleft().settle(Failure(AdminError.fromReply(line)))
        elif line == b"OK" or line.startswith(b"OK "):
            self.inFlight.popleft().finish([line[3:]])
        else:
            self.abort(f"unexpected reply {line!r} to {command.line!r}")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.dead = True
        if self.why == "the connection was closed" and not reason.check(ConnectionDone):
            # Lost for a reason worth naming: a TLS handshake that failed
            # (the server's certificate not trusted, say).
            self.why = f"the connection was lost ({_lostReason(reason)})"
        self.client._forget(self, lost=True)
        inFlight, self.inFlight = self.inFlight, deque()
        for i, command in enumerate(inFlight):
            if i == 0 and command.closeOk:
                # A server may answer "shutdown" by closing.
                command.settle(None)
            else:
                command.settle(
                    Failure(
                        AdminConnectionLost(f"no reply to {command.line!r}: {self.why}")
                    )
                )
        waiters, self.lostWaiters = self.lostWaiters, []
        for d in waiters:
            d.callback(None)


def _lostReason(reason: Failure) -> str:
    """A lost connection's cause in words, OpenSSL's error list included."""
    value = reason.value
    args = getattr(value, "args", ())
    if args and isinstance(args[0], list):
        words = [str(entry[-1]) for entry in args[0] if entry]
        if words:
            return ", ".join(words)
    return reason.getErrorMessage()


class GearmanAdminClient:
    """
    Admin commands for one Gearman server (txgearman or gearmand), each
    returning a L{Deferred}; C{await} them from C{async def} code.

    Commands are pipelined on one connection, opened on the first command
    and again on the first one after it was lost.  Commands in flight when
    it is lost fail with L{AdminConnectionLost}, and when it cannot be made
    with L{AdminConnectFailed}; a command with no complete reply within
    C{timeout} seconds fails with L{AdminTimeout} (a
    L{twisted.internet.defer.TimeoutError} too).  C{ERR} replies fail with
    L{AdminError}.  All are L{GearmanError}s.

    Names and handles are bytes without spaces or line breaks, as the text
    protocol cannot carry those.
    """

    def __init__(
        self,
        endpoint: str | IStreamClientEndpoint,
        timeout: float = 10.0,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        @param endpoint: where the server listens: an endpoint, or a
            description such as C{tcp:gearman.example:4730} or C{host:port}.
        @param timeout: seconds each command may take, connecting included.
        @param reactor: the clock for timeouts; the global reactor if C{None}.
        """
        if isinstance(endpoint, str):
            if reactor is None:
                from twisted.internet import reactor as globalReactor

                reactor = globalReactor
            endpoint = endpointFor(reactor, endpoint)
        self.endpoint = endpoint
        self.timeout = timeout
        self._reactor = reactor
        self._protocol: _AdminProtocol | None = None
        self._open: set[_AdminProtocol] = set()
        self._connecting: Deferred[_AdminProtocol] | None = None
        self._waiting: list[_Command[Any]] = []

    # -- plumbing ------------------------------------------------------------

    def _command(
        self,
        line: bytes,
        parse: Callable[[list[bytes]], _T],
        listing: bool = False,
        closeOk: bool = False,
    ) -> Deferred[_T]:
        command = _Command(line, parse, listing, closeOk, self._unqueue)
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        command.timer = self._reactor.callLater(self.timeout, self._timedOut, command)
        if self._protocol is not None:
            self._protocol.send(command)
        else:
            self._waiting.append(command)
            if self._connecting is None:
                self._connecting = connectProtocol(self.endpoint, _AdminProtocol(self))
                self._connecting.addCallbacks(self._connected, self._connectFailed)
        return command.deferred

    def _connected(self, protocol: _AdminProtocol) -> None:
        self._connecting = None
        self._protocol = protocol
        self._open.add(protocol)
        waiting, self._waiting = self._waiting, []
        for command in waiting:
            protocol.send(command)

    def _connectFailed(self, failure: Failure) -> None:
        self._connecting = None
        waiting, self._waiting = self._waiting, []
        if not failure.check(defer.CancelledError):
            failure = Failure(
                AdminConnectFailed(
                    f"cannot connect to {self.endpoint!r}: {failure.getErrorMessage()}",
                    failure.value,
                )
            )
        for command in waiting:
            command.settle(failure)

    def _forget(self, protocol: _AdminProtocol, lost: bool = False) -> None:
        if self._protocol is protocol:
            self._protocol = None
        if lost:
            self._open.discard(protocol)

    def _unqueue(self, command: _Command[Any]) -> None:
        """
        Forget a command that timed out or was cancelled, if it was not sent
        yet.  (Once sent, its reply still comes; L{_Command.settle} drops it.)
        """
        if command.timer is not None and command.timer.active():
            command.timer.cancel()
        if command in self._waiting:
            self._waiting.remove(command)
            if not self._waiting and self._connecting is not None:
                self._connecting.cancel()

    def _timedOut(self, command: _Command[Any]) -> None:
        command.timer = None
        self._unqueue(command)
        protocol = self._protocol
        if protocol is not None and command in protocol.inFlight:
            protocol.inFlight.remove(command)
            protocol.abort(f"{command.line!r} timed out")
        command.settle(
            Failure(AdminTimeout(f"no reply to {command.line!r} in {self.timeout}s"))
        )

    def close(self) -> Deferred[None]:
        """
        Drop the connection; commands still waiting for a reply fail with
        L{AdminConnectionLost}.  A later command connects again.

        @return: fires once the connection is closed.
        """
        waiting, self._waiting = self._waiting, []
        for command in waiting:
            command.settle(Failure(AdminConnectionLost("the client was closed")))
        if self._connecting is not None:
            self._connecting.cancel()
        self._protocol = None
        closing = []
        for protocol in list(self._open):
            d: Deferred[None] = Deferred()
            protocol.lostWaiters.append(d)
            closing.append(d)
            if not protocol.dead:
                protocol.dead = True
                protocol.transport.loseConnection()  # type: ignore[union-attr]
        return defer.gatherResults(closing).addCallback(lambda _: None)

    # -- commands --------------------------------------------------------------

    def _listing(self, line: bytes, parse: Callable[[bytes], _T]) -> Deferred[list[_T]]:
        return self._command(
            line, lambda lines: [parse(each) for each in lines], listing=True
        )

    def status(self) -> Deferred[list[FunctionStatus]]:
        """C{status}: job and worker counts per function."""
        return self._listing(b"status", _functionStatus)

    def priorityStatus(self) -> Deferred[list[PriorityStatus]]:
        """C{prioritystatus}: waiting jobs per function and priority."""
        return self._listing(b"prioritystatus", _priorityStatus)

    def workers(self) -> Deferred[list[WorkerInfo]]:
        """C{workers}: every connection and the functions it registered."""
        return self._listing(b"workers", _workerInfo)

    def showJobs(self) -> Deferred[list[JobInfo]]:
        """C{show jobs}: every job the server holds."""
        return self._listing(b"show jobs", _jobInfo)

    def showUniqueJobs(self) -> Deferred[list[bytes]]:
        """
        C{show unique jobs}: the unique id of every job (C{b""} for none).

        The format cannot tell a unique id of C{.} from the listing's end.
        """
        return self._listing(b"show unique jobs", bytes)

    def version(self) -> Deferred[str]:
        """C{version}: the server's version, e.g. C{"1.1.20+ds"}."""
        return self._command(b"version", _text)

    def getpid(self) -> Deferred[int]:
        """C{getpid}: the server's process id."""
        return self._command(b"getpid", lambda lines: int(lines[0]))

    def verbose(self) -> Deferred[str]:
        """C{verbose}: the server's log level, e.g. C{"INFO"}."""
        return self._command(b"verbose", _text)

    def maxQueue(
        self, function: str | bytes, size: int | tuple[int, int, int] | None = None
    ) -> Deferred[None]:
        """
        C{maxqueue}: limit how many jobs C{function} may hold before submits
        are refused.

        @param size: C{None} to remove the limits, one limit for every
            priority, or C{(high, normal, low)}; 0 or less means no limit.
        """
        if size is None:
            limits: tuple[int, ...] = ()
        elif isinstance(size, int):
            limits = (size,)
        else:
            limits = tuple(size)
            if len(limits) != 3:
                raise ValueError(f"maxqueue takes one limit or three, not {size!r}")
        line = b" ".join(
            [b"maxqueue", _word(function, "function"), *(b"%d" % (n,) for n in limits)]
        )
        return self._command(line, _nothing)

    def cancelJob(self, handle: str | bytes) -> Deferred[None]:
        """C{cancel job}: remove a job; fails with C{UNKNOWN_JOB} if unknown."""
        return self._command(b"cancel job " + _word(handle, "handle"), _nothing)

    def createFunction(self, name: str | bytes) -> Deferred[None]:
        """C{create function}: make C{name} known (listed by L{status})."""
        return self._command(b"create function " + _word(name, "name"), _nothing)

    def dropFunction(self, name: str | bytes) -> Deferred[None]:
        """C{drop function}: forget an idle function."""
        return self._command(b"drop function " + _word(name, "name"), _nothing)

    def shutdown(self, graceful: bool = False) -> Deferred[None]:
        """
        C{shutdown}: stop the server, once its jobs are done if C{graceful}.
        Servers that offer it may close the connection instead of
        answering; that counts as success.  txgearman and gearmand since
        1.1.15 answer C{ERR UNKNOWN_COMMAND}, so this fails with
        L{AdminError} there: stop them with a signal.
        """
        line = b"shutdown graceful" if graceful else b"shutdown"
        return self._command(line, _nothing, closeOk=True)


def _word(value: str | bytes, name: str) -> bytes:
    """
    C{value} (C{str} as UTF-8) as one word of an admin line.

    @raise TypeError: it is neither bytes nor str.
    @raise ValueError: it is empty or holds a space or a line end.
    """
    word = asBytes(value, name)
    if not word or word[0] == 0 or any(c in word for c in b" \r\n"):
        raise ValueError(f"{name} is not usable in an admin command: {word!r}")
    return word


def _fields(line: bytes, count: int) -> list[bytes]:
    # From the right: a function name may hold tabs.
    fields = line.rsplit(b"\t", count - 1)
    if len(fields) != count:
        raise ValueError(f"expected {count} tab-separated fields: {line!r}")
    return fields


def _functionStatus(line: bytes) -> FunctionStatus:
    name, queued, running, workers = _fields(line, 4)
    return FunctionStatus(name, int(queued), int(running), int(workers))


def _priorityStatus(line: bytes) -> PriorityStatus:
    name, high, normal, low, workers = _fields(line, 5)
    return PriorityStatus(name, int(high), int(normal), int(low), int(workers))


def _workerInfo(line: bytes) -> WorkerInfo:
    # "FD ADDRESS CLIENT_ID :" then " FUNC" per function.
    fd, address, rest = line.split(b" ", 2)
    clientId, colon, names = rest.partition(b" :")
    if not colon or names[:1] not in (b"", b" "):
        raise ValueError(f"not a workers line: {line!r}")
    functions = tuple(names[1:].split(b" ")) if names else ()
    return WorkerInfo(int(fd), address.decode("ascii", "replace"), clientId, functions)


def _jobInfo(line: bytes) -> JobInfo:
    handle, retries, ignoreJob, stored = _fields(line, 4)
    return JobInfo(handle, int(retries), int(ignoreJob), int(stored) != 0)


def _text(lines: list[bytes]) -> str:
    return lines[0].decode("utf-8", "replace")


def _nothing(lines: list[bytes]) -> None:
    return None
