# -*- test-case-name: txgearman.test.test_worker -*-
"""
A Gearman worker for Twisted applications: register Python callables as
Gearman functions and let L{GearmanWorker} run the jobs that txgearman, or
any gearmand, hands out.

    def reverse(job):
        return job.data[::-1]

    async def resize(job):
        job.sendStatus(0, 1)
        image = await someDeferredReturningCall(job.data)
        return image

    worker = GearmanWorker(["tcp:127.0.0.1:4730"], concurrency=4)
    worker.register("reverse", reverse)
    worker.register("resize", resize, timeout=60)
    worker.startService()   # or worker.setServiceParent(application)

A function's callable receives a L{WorkerJob} and returns its result, a
L{Deferred} of it, or a coroutine (an C{async def} function), which is run
with L{Deferred.fromCoroutine}.  The result becomes the job's
WORK_COMPLETE payload:

    - C{bytes} (or C{bytearray}, C{memoryview}): sent as is;
    - C{str}: encoded as UTF-8;
    - C{None}: an empty payload;
    - anything else: C{str(result)} encoded as UTF-8.

Raising (or failing with) L{JobFailed} sends WORK_FAIL; any other
exception sends WORK_EXCEPTION with the exception's text (its class name if
the text is empty) and is logged.  Nothing is sent for the job afterwards.

The worker never polls: each connection grabs while it has room, sends
PRE_SLEEP when the server has nothing, and grabs again on NOOP.  It keeps
one connection per server (reconnecting with a capped backoff) and runs at
most C{concurrency} jobs at once over all of them.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    TimeoutError,
    fail,
    succeed,
)
from twisted.internet.interfaces import IAddress, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txgearman._words import counted
from txgearman.client.arguments import asBytes, asOptionalBytes
from txgearman.client.endpoints import endpointFor
from txgearman.client.errors import JobFailed
from txgearman.client.interfaces import IWorkerOwner
from txgearman.client.workerprotocol import GearmanWorkerProtocol

__all__ = ["WorkerJob", "GearmanWorker", "resultBytes"]

#: Seconds before the first reconnection attempt, and the most any later
#: attempt waits (plus up to half a second of jitter, so that many workers
#: do not reconnect to a restarted server all at once).
RETRY_INITIAL_DELAY = 0.5
RETRY_MAX_DELAY = 3.0


def resultBytes(result: object) -> bytes:
    """
    Turn what a worker function returned into a WORK_COMPLETE payload:
    bytes-like as is, C{str} as UTF-8, C{None} as C{b""}, anything else as
    C{str(result)} in UTF-8.
    """
    if isinstance(result, bytes):
        return result
    if isinstance(result, (bytearray, memoryview)):
        return bytes(result)
    if result is None:
        return b""
    if isinstance(result, str):
        return result.encode("utf-8")
    return str(result).encode("utf-8")


class WorkerJob:
    """
    One job a L{GearmanWorker} is running, as its function's callable sees
    it.

    The C{send*} methods report progress to the job's clients.  Once the
    job has ended, or it has been handed back (its connection was lost, or
    the worker stopped before it finished, so the server gives it to another
    worker), they do nothing: see L{abandoned}.

    @ivar handle: the job handle the server gave the job.
    @ivar function: the function name, as the server sent it.
    @ivar unique: the unique id it was submitted with (may be empty).
    @ivar data: the job's payload.
    """

    def __init__(
        self,
        protocol: GearmanWorkerProtocol,
        handle: bytes,
        function: bytes,
        unique: bytes,
        data: bytes,
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.data = data
        self._protocol = protocol
        self._ended = False
        self._handedBack = False

    def __repr__(self) -> str:
        return f"<WorkerJob {self.handle!r} of {self.function!r}>"

    @property
    def abandoned(self) -> bool:
        """
        Whether the job's result can no longer be delivered, because its
        connection is gone or the worker handed it back while stopping.  A
        long job may check this to give up early.
        """
        return self._handedBack or not self._protocol.live

    @property
    def _open(self) -> bool:
        return not self._ended and not self.abandoned

    def sendData(self, data: bytes) -> None:
        """
        Send a chunk of the result to the job's clients (WORK_DATA).
        """
        if self._open:
            self._protocol.workData(self.handle, data)

    def sendWarning(self, data: bytes) -> None:
        """
        Send a warning to the job's clients (WORK_WARNING).
        """
        if self._open:
            self._protocol.workWarning(self.handle, data)

    def sendStatus(self, numerator: int, denominator: int) -> None:
        """
        Report progress, C{numerator} out of C{denominator} (WORK_STATUS).
        """
        if self._open:
            self._protocol.workStatus(self.handle, numerator, denominator)

    def _end(self) -> bool:
        """
        The job is over; return whether its result can still be sent.
        """
        deliverable = self._open
        self._ended = True
        return deliverable


@dataclass(frozen=True)
class _Registration:
    function: Callable[[WorkerJob], Any]
    timeout: float | None


def _call(function: Callable[[WorkerJob], Any], job: WorkerJob) -> Deferred[Any]:
    """
    Call a worker function, whatever kind it is, and return a L{Deferred}
    of its result.
    """
    try:
        result = function(job)
    except BaseException:
        return fail()
    if isinstance(result, Deferred):
        return result
    if inspect.iscoroutine(result):
        return Deferred.fromCoroutine(result)
    return succeed(result)


def _name(function: str | bytes) -> bytes:
    return asBytes(function, "function")


@implementer(IWorkerOwner)
class GearmanWorker(Service):
    """
    A Gearman worker connected to one or more job servers.

    @ivar concurrency: the most jobs that run at once, over all servers.
    @ivar clientId: sent as SET_CLIENT_ID on every connection (shown by the
        admin C{workers} command), if not C{None}.
    @ivar stopTimeout: how long L{stopService} waits for running jobs.
    """

    log = Logger()

    def __init__(
        self,
        servers: Sequence[str | IStreamClientEndpoint],
        reactor: Any = None,
        concurrency: int = 1,
        clientId: str | bytes | None = None,
        stopTimeout: float = 30.0,
    ) -> None:
        """
        @param servers: the job servers: endpoint descriptions such as
            C{"tcp:127.0.0.1:4730"} or C{"unix:/run/gearman.sock"}, or
            client endpoints.
        @param reactor: the reactor; the global one if C{None}.
        @param concurrency: how many jobs may run at once, in total.
        @param clientId: the client id to announce.
        @param stopTimeout: the longest L{stopService} waits for running jobs
            before it hands them back.
        """
        if isinstance(servers, (str, bytes)):
            raise TypeError("servers must be a sequence of endpoint descriptions")
        if not servers:
            raise ValueError("a worker needs at least one job server")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.reactor = reactor
        self.endpoints: list[IStreamClientEndpoint] = [
            endpointFor(reactor, server) for server in servers
        ]
        self.concurrency = concurrency
        self.clientId = asOptionalBytes(clientId, "clientId")
        self.stopTimeout = stopTimeout
        self._functions: dict[bytes, _Registration] = {}
        self._services: list[ClientService] = []
        # Live connections, the next to be offered a slot first.
        self._connections: list[GearmanWorkerProtocol] = []
        # Connections with a grab in flight: each holds a slot, so that
        # answers from several servers at once cannot exceed concurrency.
        self._grabs: set[GearmanWorkerProtocol] = set()
        # Running jobs, with their Deferred once the callable has returned.
        self._running: dict[WorkerJob, Deferred[Any] | None] = {}
        self._stopping = False
        self._idleWaiters: list[Deferred[None]] = []

    # -- registration ----------------------------------------------------------

    def register(
        self,
        function: str | bytes,
        callable: Callable[[WorkerJob], Any],
        timeout: float | None = None,
    ) -> None:
        """
        Run C{callable} for the jobs of C{function} (a C{str} is encoded as
        UTF-8).  Registering a function again replaces its callable and time
        limit.  Connections already up announce it at once.

        @param callable: called with a L{WorkerJob}; returns the result, a
            L{Deferred} of it, or a coroutine.
        @param timeout: a time limit in seconds that the server enforces
            (CAN_DO_TIMEOUT): past it, the server takes the job back and
            gives it to another worker, and the late result is refused.  The
            callable is not interrupted.  C{None}: no limit.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive, or None")
        name = _name(function)
        self._functions[name] = _Registration(callable, timeout)
        for protocol in self._connections:
            protocol.canDo(name, timeout)
            # Some servers do not wake a sleeping worker for a function it
            # registers: grab once to learn whether jobs are waiting.
            protocol.wake()
        self._fill()

    def unregister(self, function: str | bytes) -> None:
        """
        Stop taking jobs of C{function} (CANT_DO on every connection).  Jobs
        of it that are running go on; txgearman takes them back from the
        worker when it gets the CANT_DO, gearmand does not.  Unknown names
        are ignored.
        """
        name = _name(function)
        if self._functions.pop(name, None) is None:
            return
        for protocol in self._connections:
            protocol.cantDo(name)

    @property
    def functions(self) -> list[bytes]:
        """The registered function names, in registration order."""
        return list(self._functions)

    @property
    def activeJobs(self) -> list[WorkerJob]:
        """The jobs running now, in the order they started."""
        return list(self._running)

    @property
    def connections(self) -> list[GearmanWorkerProtocol]:
        """The connections that are up now."""
        return list(self._connections)

    # -- service ---------------------------------------------------------------

    def startService(self) -> None:
        """
        Connect to every server, and keep reconnecting whenever a
        connection is lost, until L{stopService}.
        """
        super().startService()
        self._stopping = False
        factory = Factory.forProtocol(self._buildProtocol)
        policy = backoffPolicy(
            initialDelay=RETRY_INITIAL_DELAY,
            maxDelay=RETRY_MAX_DELAY,
            jitter=lambda: random.random() / 2,
        )
        for endpoint in self.endpoints:
            service = ClientService(
                endpoint, factory, retryPolicy=policy, clock=self.reactor
            )
            self._services.append(service)
            service.startService()

    def _buildProtocol(self) -> GearmanWorkerProtocol:
        return GearmanWorkerProtocol(self, self.clientId)

    def stopService(self) -> Deferred[None]:
        """
        Stop gracefully: grab no more jobs, wait up to L{stopTimeout}
        seconds for the running ones to end, then close the connections.
        The server requeues the jobs still running then (they are handed
        back), and their L{Deferred}s are cancelled; results that come later
        are dropped.

        @return: a L{Deferred} that fires once every connection is closed.
        """
        super().stopService()
        self._stopping = True
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if not self._idle:
            self.log.info(
                "Stopping: waiting up to {timeout}s for {jobs}",
                jobs=counted(len(self._running), "running job"),
                timeout=self.stopTimeout,
                count=len(self._running),
            )
            waiter: Deferred[None] = Deferred()
            self._idleWaiters.append(waiter)
            waiter.addTimeout(self.stopTimeout, self.reactor)
            try:
                await waiter
            except TimeoutError:
                if waiter in self._idleWaiters:
                    self._idleWaiters.remove(waiter)
        leftover = list(self._running.items())
        if leftover:
            self.log.warn(
                "Handing back {jobs} still running after {timeout}s: {handles}",
                jobs=counted(len(leftover), "job"),
                count=len(leftover),
                timeout=self.stopTimeout,
                handles=", ".join(repr(job.handle) for job, _ in leftover),
            )
        for job, _ in leftover:
            job._handedBack = True
        services, self._services = self._services, []
        await DeferredList(
            [service.stopService() for service in services], consumeErrors=True
        )
        for _, running in leftover:
            if running is not None:
                running.cancel()

    @property
    def _idle(self) -> bool:
        return not self._running and not self._grabs

    def _checkIdle(self) -> None:
        if self._idle and self._idleWaiters:
            waiters, self._idleWaiters = self._idleWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    # -- scheduling --------------------------------------------------------------

    def _fill(self) -> None:
        """
        Use free slots: grab on awake connections, taking them in turn so
        that no server is starved.
        """
        if self._stopping:
            return
        for protocol in list(self._connections):
            if self.concurrency - len(self._running) - len(self._grabs) <= 0:
                return
            if protocol.wantsJob:
                self._connections.remove(protocol)
                self._connections.append(protocol)
                self._grabs.add(protocol)
                protocol.grab()
                if not protocol.grabbing:
                    self._grabs.discard(protocol)

    # -- IWorkerOwner ------------------------------------------------------------

    def abilities(self) -> list[tuple[bytes, float | None]]:
        return [(name, reg.timeout) for name, reg in self._functions.items()]

    def workerConnected(self, protocol: GearmanWorkerProtocol) -> None:
        self.log.info("Connected to the job server at {peer}", peer=_peer(protocol))
        self._connections.append(protocol)
        self._fill()

    def workerDisconnected(
        self, protocol: GearmanWorkerProtocol, reason: Failure
    ) -> None:
        if protocol in self._connections:
            self._connections.remove(protocol)
        self._grabs.discard(protocol)
        self.log.info(
            "Disconnected from the job server at {peer}: {reason}",
            peer=_peer(protocol),
            reason=reason.getErrorMessage(),
        )
        lost = [
            job for job in self._running if job._protocol is protocol and not job._ended
        ]
        if lost and not self._stopping:
            self.log.warn(
                "The job server takes back {jobs} that were running: {handles}",
                jobs=counted(len(lost), "job"),
                count=len(lost),
                handles=", ".join(repr(job.handle) for job in lost),
            )
        self._checkIdle()
        self._fill()

    def workerWoken(self, protocol: GearmanWorkerProtocol) -> None:
        self._fill()

    def noJob(self, protocol: GearmanWorkerProtocol) -> None:
        self._grabs.discard(protocol)
        self._checkIdle()
        self._fill()

    def jobAssigned(
        self,
        protocol: GearmanWorkerProtocol,
        handle: bytes,
        function: bytes,
        unique: bytes,
        data: bytes,
    ) -> None:
        self._grabs.discard(protocol)
        registration = self._functions.get(function)
        if registration is None:
            # Unregistered while the grab was in flight.
            self.log.warn(
                "Failing job {handle!r}: function {function!r} is not registered",
                handle=handle,
                function=function,
            )
            protocol.workFail(handle)
            self._checkIdle()
            self._fill()
            return
        job = WorkerJob(protocol, handle, function, unique, data)
        # Counted before the call: a callable that registers a function
        # must not make room for one job too many.
        self._running[job] = None
        running = _call(registration.function, job)
        if job in self._running:
            self._running[job] = running
        running.addCallbacks(
            self._succeeded, self._failed, callbackArgs=(job,), errbackArgs=(job,)
        )
        running.addBoth(self._ended, job)
        self._fill()

    # -- results -----------------------------------------------------------------

    def _succeeded(self, result: object, job: WorkerJob) -> None:
        try:
            payload = resultBytes(result)
        except Exception:
            self._failed(Failure(), job)
            return
        if job._end():
            job._protocol.workComplete(job.handle, payload)
        else:
            self._dropped(job)

    def _failed(self, failure: Failure, job: WorkerJob) -> None:
        if failure.check(JobFailed):
            if job._end():
                job._protocol.workFail(job.handle)
            else:
                self._dropped(job)
            return
        if job.abandoned and failure.check(CancelledError):
            job._end()
            return
        self.log.failure(
            "Job {handle!r} of {function!r} raised",
            failure,
            handle=job.handle,
            function=job.function,
        )
        text = failure.getErrorMessage() or type(failure.value).__name__
        if job._end():
            job._protocol.workException(job.handle, text.encode("utf-8", "replace"))
        else:
            self._dropped(job)

    def _dropped(self, job: WorkerJob) -> None:
        self.log.info(
            "Dropping the result of job {handle!r}: it was handed back to the server",
            handle=job.handle,
        )

    def _ended(self, result: object, job: WorkerJob) -> None:
        if isinstance(result, Failure):
            self.log.failure("Could not report the end of job {job!r}", result, job=job)
        self._running.pop(job, None)
        self._checkIdle()
        self._fill()


def _peer(protocol: GearmanWorkerProtocol) -> str:
    if protocol.transport is None:
        return "?"
    address: IAddress = protocol.transport.getPeer()
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)
