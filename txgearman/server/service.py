# -*- test-case-name: txgearman.test.test_service,tests.test_service_tcp -*-
"""
L{GearmanServerService}: the job server as a Twisted service.

twistd builds one through L{txgearman.server.tap}; a Twisted application can build
and start one itself to embed a job server.
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorCore,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from txgearman import __version__
from txgearman._words import counted
from txgearman.codec import DEFAULT_MAX_PACKET_SIZE
from txgearman.server.acl import AccessPolicy
from txgearman.server.admin import AdminCommands
from txgearman.server.batching import WriteBatcher
from txgearman.server.bodies import DEFAULT_BODY_WAIT_TIMEOUT
from txgearman.server.claim import ListeningClaim
from txgearman.server.core import DEFAULT_MAX_FUNCTIONS, JobServer
from txgearman.server.protocol import (
    DEFAULT_CLIENT_OUTPUT_LIMIT,
    GearmanServerFactory,
    plaintextRefusal,
)
from txgearman.server.tls import ServerTLS, TLSServerEndpoint
from txgearman.store.interfaces import (
    IQueueStore,
    IRestorableStore,
    StoredJob,
    StoreError,
)
from txgearman.store.memory import MemoryQueueStore

__all__ = ["GearmanServerService", "endpointDescription", "listensEarly"]


def endpointDescription(port: str) -> str:
    """
    Turn C{--port}'s value into a strports description: a bare number
    means TCP on every interface, anything else is taken as written.
    """
    return f"tcp:{port}" if port.isdigit() else port


def listensEarly(description: str) -> bool:
    """
    Whether a server on the strports C{description} must bind it before
    twistd drops privileges: a TCP port below 1024, a Unix socket (its
    directory may be root's), or any other kind of endpoint.  Other ports
    are bound only once the store has replayed, so that a client connecting
    before then is refused and fails over at once.
    """
    endpoint: Any = endpoints.serverFromString(None, description)
    if isinstance(
        endpoint, endpoints.TCP4ServerEndpoint | endpoints.TCP6ServerEndpoint
    ):
        port = endpoint._port
        return 0 < port < 1024
    return True


class GearmanServerService(Service):
    """
    A Gearman job server listening on one endpoint.

    The port is bound once the store has started and replayed its jobs:
    until then connecting is refused, so no client ever sees a half-loaded
    queue, or a socket that says nothing.  A port that must be bound before
    twistd drops privileges (see L{listensEarly}) is bound in
    L{privilegedStartService}; until the store is ready, a request on it
    gets C{ERROR SERVER_STARTING} and its connection is closed.

    @ivar core: the L{JobServer}.
    @ivar factory: the L{GearmanServerFactory}.
    @ivar closeTimeout: how long L{stopService} lets connections flush
        their output before it aborts them.
    """

    log = Logger()

    def __init__(
        self,
        endpoint: str | IStreamServerEndpoint,
        reactor: Any = None,
        store: IQueueStore | None = None,
        jobRetries: int = -1,
        workerWakeup: int | None = None,
        handlePrefix: str | bytes | None = None,
        maxPacketSize: int = DEFAULT_MAX_PACKET_SIZE,
        exceptions: bool = False,
        maxFunctions: int = DEFAULT_MAX_FUNCTIONS,
        drainSignal: int | None = None,
        hangupRotatesLog: bool = False,
        drainTimeout: float = 300.0,
        closeTimeout: float = 5.0,
        listenEarly: bool | None = None,
        claim: ListeningClaim | None = None,
        clientOutputLimit: int = DEFAULT_CLIENT_OUTPUT_LIMIT,
        maxBufferedBodies: int | None = None,
        bodyWaitTimeout: float = DEFAULT_BODY_WAIT_TIMEOUT,
        tls: ServerTLS | None = None,
        policy: AccessPolicy | None = None,
    ) -> None:
        """
        @param endpoint: where to listen: an endpoint, or a port number or
            strports description.
        @param reactor: the reactor; the global one if C{None}.
        @param store: where background jobs are kept; memory by default.
        @param drainSignal: a signal that drains the server and then stops
            the reactor (for a process the service owns, as under twistd).
        @param hangupRotatesLog: make SIGHUP do what SIGUSR1 does (under
            twistd: rotate the log file), as gearmand reopens its log on
            SIGHUP; without a SIGUSR1 handler, SIGHUP is ignored.  Either way
            SIGHUP no longer kills the process.
        @param drainTimeout: the longest such a drain waits.
        @param closeTimeout: how long stopping lets connections flush what
            was written to them before they are aborted.
        @param listenEarly: bind the port in L{privilegedStartService}
            rather than once the store is ready; by default, as
            L{listensEarly} says (always, for an endpoint object).
        @param claim: the listening address as the store's claim (see
            L{txgearman.server.claim}): marked held once listening.
        @param clientOutputLimit: the most output, in bytes, held for a
            connection that does not read it before it is closed.
        @param maxBufferedBodies: the most bytes all connections may hold in
            partly received large bodies; by default four C{maxPacketSize}s.
        @param bodyWaitTimeout: how long a large body may wait for room in
            that budget, in seconds, before its connection is closed.
        @param tls: speak TLS on the endpoint, with these certificates
            (reloaded on SIGHUP when C{hangupRotatesLog} is set).
        @param policy: judge every connection by this access-control list
            (reloaded on SIGHUP too).
        Other parameters are the L{JobServer}'s and the factory's.
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.reactor = reactor
        self.endpoint: IStreamServerEndpoint
        if isinstance(endpoint, str):
            self.endpointDescription = endpoint
            self.endpoint = endpoints.serverFromString(
                reactor, endpointDescription(endpoint)
            )
            early = listensEarly(endpointDescription(endpoint))
        else:
            self.endpointDescription = repr(endpoint)
            self.endpoint = endpoint
            early = True
        self.tls = tls
        if tls is not None:
            self.endpoint = TLSServerEndpoint(
                self.endpoint, tls, reactor, plaintextRefusal
            )
        self.listenEarly = early if listenEarly is None else listenEarly
        self.claim = claim
        if isinstance(handlePrefix, str):
            handlePrefix = handlePrefix.encode("utf-8")
        elif handlePrefix is not None and not isinstance(handlePrefix, bytes):
            raise TypeError(
                f"handlePrefix must be bytes or str, not {type(handlePrefix).__name__}"
            )
        self.store: IQueueStore = store if store is not None else MemoryQueueStore()
        clock: IReactorTime = reactor
        self.core = JobServer(
            clock,
            self.store,
            jobRetries=jobRetries,
            workerWakeup=workerWakeup,
            handlePrefix=handlePrefix,
            exceptions=exceptions,
            maxFunctions=maxFunctions,
        )
        self.factory = GearmanServerFactory(
            self.core,
            AdminCommands(self.core, settings=self.settings),
            maxPacketSize=maxPacketSize,
            ready=False,
            batcher=WriteBatcher(clock),
            clientOutputLimit=clientOutputLimit,
            maxBufferedBodies=maxBufferedBodies,
            bodyWaitTimeout=bodyWaitTimeout,
        )
        self.policy = policy
        if policy is not None:
            self.factory.guard(policy)
        self.port: IListeningPort | None = None
        self._readyResult: Failure | None = None
        #: Why the server could not start, once it could not.
        self.startFailure: Failure | None = None
        self._readyFired = False
        self._readyWaiters: list[Deferred[None]] = []
        self._listening = False
        self.closeTimeout = closeTimeout
        self.drainSignal = drainSignal
        self.drainTimeout = drainTimeout
        self._previousHandler: Any = None
        self._stopped = False
        self.hangupRotatesLog = hangupRotatesLog
        self._previousHangup: Any = None
        #: What SIGHUP reloads besides reopening the log (with
        #: C{hangupRotatesLog}): the TLS certificates, the ACL; each is
        #: called in the reactor thread.
        self.reloaders: list[Callable[[], object]] = []
        if tls is not None:
            self.reloaders.append(tls.reload)
        if policy is not None and policy.path is not None:
            self.reloaders.append(self._reloadPolicy)
        #: When L{startService} ran, by the reactor's clock.
        self.startedAt: float | None = None
        #: The replay of the store's jobs at start-up, for the metrics:
        #: jobs replayed so far, and how long it took once it is done.
        self.replayedJobs = 0
        self.replaySeconds: float | None = None

    def settings(self) -> list[tuple[str, str]]:
        """
        The settings in force, by their C{twistd gearman} option names: what
        admin C{settings} and C{/api/server} show (gearmand has no way to
        read them back).
        """
        core = self.core
        wakeup = core.workerWakeup
        return [
            ("version", __version__),
            ("port", self.endpointDescription),
            ("tls", self.tls.describe() if self.tls is not None else "off"),
            ("acl", self.policy.describe() if self.policy is not None else "off"),
            ("store", self.store.description),
            ("job-retries", str(core.jobRetries)),
            ("worker-wakeup", "auto" if wakeup is None else str(wakeup)),
            ("job-handle-prefix", core.handlePrefix[:-1].decode("utf-8", "replace")),
            ("max-packet-size", str(self.factory.maxPacketSize)),
            ("max-buffered-bodies", str(self.factory.bodies.limit)),
            ("body-wait-timeout", f"{self.factory.bodies.timeout:g}"),
            ("exceptions", "on" if core.exceptions else "off"),
            ("drain-timeout", f"{self.drainTimeout:g}"),
        ]

    @property
    def ready(self) -> Deferred[None]:
        """
        A new L{Deferred} that fires once the store has replayed and
        connections are read, or fails with the reason the server could not
        start.
        """
        d: Deferred[None] = Deferred()
        if not self._readyFired:
            self._readyWaiters.append(d)
        elif self._readyResult is None:
            d.callback(None)
        else:
            d.errback(self._readyResult)
        return d

    def _fireReady(self, result: Failure | None) -> None:
        if self._readyFired:
            return
        self._readyFired = True
        self._readyResult = result
        waiters, self._readyWaiters = self._readyWaiters, []
        for d in waiters:
            if result is None:
                d.callback(None)
            else:
                d.errback(result)

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        if self.listenEarly:
            self._listen()

    def _listen(self) -> None:
        if self._listening:
            return
        self._listening = True
        synchronous = True
        failures: list[Failure] = []

        def failed(failure: Failure) -> None:
            self._listening = False
            if synchronous:
                failures.append(failure)
            else:
                self._startFailed(failure)

        self.endpoint.listen(self.factory).addCallbacks(self._listened, failed)
        synchronous = False
        if failures:
            # Endpoints such as TCP fail synchronously: raise, so that
            # twistd reports the error before it starts the reactor.
            failures[0].raiseException()

    def _listened(self, port: IListeningPort) -> None:
        if not self._listening:
            # Stopped while the endpoint was still getting ready.
            port.stopListening()
            return
        self.port = port
        if self.claim is not None:
            self.claim.held = True

    def startService(self) -> None:
        if self._stopped:
            # The core still holds the jobs of the first run: replaying the
            # store into it again would duplicate them.
            raise RuntimeError(
                "a stopped GearmanServerService cannot start again: build a new "
                "one with the same store, which replays the jobs"
            )
        super().startService()
        self.startedAt = self.reactor.seconds()
        if self.listenEarly:
            # Embedded without privilegedStartService.
            self._listen()
        if self.drainSignal is not None:
            self._previousHandler = signal.signal(
                self.drainSignal, self._drainSignalled
            )
        if self.hangupRotatesLog:
            self._previousHangup = signal.signal(signal.SIGHUP, self._hangup)
        d = Deferred.fromCoroutine(self._start())
        d.addErrback(self._startFailed)

    def _hangup(self, signum: int, frame: Any) -> None:
        """
        SIGHUP: reopen the log as SIGUSR1 does under twistd (gearmand
        reopens its log on SIGHUP), and reload what L{reloaders} name.
        """
        rotate = signal.getsignal(signal.SIGUSR1)
        if callable(rotate):
            rotate(signum, frame)
        if self.reloaders:
            self.reactor.callFromThread(self.reload)

    def _reloadPolicy(self) -> None:
        """The ACL again; open connections drop what it no longer allows."""
        assert self.policy is not None
        if self.policy.reload():
            self.factory.rejudge()

    def reload(self) -> None:
        """Read the certificates and rules that L{reloaders} name again."""
        for reloader in self.reloaders:
            try:
                reloader()
            except Exception:
                self.log.failure("Reloading on SIGHUP failed")

    def _drainSignalled(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self._drainAndStop)

    def _drainAndStop(self) -> None:
        def stop(emptied: bool) -> None:
            if self.reactor.running:
                self.reactor.stop()

        self.drain(self.drainTimeout).addCallback(stop)

    async def _start(self) -> None:
        self.log.info(
            "txgearman {version} on {endpoint}{tls}; queue store: {store}",
            version=__version__,
            endpoint=self.endpointDescription,
            tls=f" with TLS {self.tls.describe()}" if self.tls is not None else "",
            store=self.store.description,
        )
        await self.store.start()
        # A replay allocates millions of long-lived objects, which makes the
        # cyclic garbage collector run over and over for nothing: pause it,
        # then freeze what was replayed out of its sight.
        collecting = gc.isenabled()
        gc.disable()
        began = self.reactor.seconds()
        try:
            count = await self.store.replay(self._restore)
        finally:
            if collecting:
                gc.freeze()
                gc.enable()
        self.replaySeconds = self.reactor.seconds() - began
        if count:
            self.log.info(
                "Replayed {jobs}", jobs=counted(count, "stored job"), count=count
            )
        if IRestorableStore.providedBy(self.store):
            self.store.setHoldings(self._holdings)
        self.factory.setReady()
        if not self.listenEarly:
            await self._listenLate()
        self._fireReady(None)

    def _restore(self, key: object, record: StoredJob) -> None:
        """One job replayed, counted for the metrics' progress."""
        self.replayedJobs += 1
        self.core.restore(key, record)

    async def _listenLate(self) -> None:
        """
        Bind the port now that the store is ready; a failure fails the
        start, as it would have in L{privilegedStartService}.
        """
        if self._stopped or self._listening:
            return
        self._listening = True
        try:
            port = await self.endpoint.listen(self.factory)
        except BaseException:
            self._listening = False
            raise
        self._listened(port)

    def _holdings(self) -> list[tuple[object, StoredJob]]:
        """
        Every job the core holds under a store key, for a store that lost
        them to write back.
        """
        return [
            (job.storeKey, job.record())
            for job in self.core.iterJobs()
            if job.storeKey is not None
        ]

    def _startFailed(self, failure: Failure) -> None:
        self.startFailure = failure
        if failure.check(StoreError, CannotListenError):
            # A store (or a taken port) says what is wrong in words; a
            # traceback adds nothing.
            self.log.critical(
                "The job server could not start: {reason}",
                reason=failure.getErrorMessage(),
            )
        else:
            self.log.failure("The job server could not start", failure)
        self._fireReady(failure)
        if IReactorCore.providedBy(self.reactor):
            if self.reactor.running:
                self.reactor.stop()
            else:
                # Failed before twistd ran the reactor (a port taken, with
                # a store that starts at once): stop as soon as it runs.
                self.reactor.callWhenRunning(self.reactor.stop)

    def stopService(self) -> Deferred[Any]:
        self._stopped = True
        super().stopService()
        if self.factory.batcher is not None:
            self.factory.batcher.flush()
        if self.drainSignal is not None and self._previousHandler is not None:
            signal.signal(self.drainSignal, self._previousHandler)
            self._previousHandler = None
        if self._previousHangup is not None:
            signal.signal(signal.SIGHUP, self._previousHangup)
            self._previousHangup = None
        self.core.stop()
        waits: list[Deferred[Any]] = []
        if self.port is not None:
            port, self.port = self.port, None
            waits.append(maybeDeferred(port.stopListening))
        self._listening = False
        waits.append(Deferred.fromCoroutine(self._closeConnectionsThenStore()))
        return DeferredList(waits, consumeErrors=True)

    async def _closeConnectionsThenStore(self) -> None:
        """
        Close every connection, letting each flush its output for up to
        C{closeTimeout} seconds, then stop the store.
        """
        connections = list(self.factory.connections)
        if connections:
            lost = [connection.whenLost() for connection in connections]
            for connection in connections:
                connection.close()
            abort = self.reactor.callLater(self.closeTimeout, self._abort, connections)
            await DeferredList(lost)
            if abort.active():
                abort.cancel()
        await self.store.stop()

    def _abort(self, connections: list[Any]) -> None:
        for connection in connections:
            if (
                connection in self.factory.connections
                and connection.transport is not None
            ):
                connection.transport.abortConnection()

    def _drainTimedOut(self) -> None:
        """
        Say what a drain that timed out leaves behind: acknowledged
        background jobs are lost with a store that keeps nothing, and stay
        for the next start with a durable one.
        """
        jobs = list(self.core.jobs.values())
        background = sum(1 for job in jobs if job.background)
        if self.store.durable:
            self.log.warn(
                "Drain timed out with {left} left; the background ones among them "
                "({background}) stay in the store for the next start",
                left=counted(len(jobs), "job"),
                background=background,
                n=len(jobs),
            )
        else:
            self.log.error(
                "Drain timed out with {left} left: abandoning {abandoned}, which the "
                "{store} store does not keep",
                left=counted(len(jobs), "job"),
                abandoned=counted(background, "acknowledged background job"),
                background=background,
                n=len(jobs),
                store=self.store.description.split(" ")[0],
            )

    def drain(self, timeout: float = 30.0, interval: float = 0.2) -> Deferred[bool]:
        """
        Stop accepting connections and wait until no job is left, or until
        C{timeout} seconds have passed.

        @return: fires with C{True} if the queues emptied, C{False} on
            timeout.
        """
        self.log.info(
            "Draining: no new connections or jobs; waiting for {jobs}",
            jobs=counted(len(self.core.jobs), "job"),
            n=len(self.core.jobs),
        )
        self.core.drain()
        if self.port is not None:
            port, self.port = self.port, None
            port.stopListening()
        started = self.reactor.seconds()
        done: Deferred[bool] = Deferred()

        def check() -> None:
            if self.core.idle:
                loop.stop()
                done.callback(True)
            elif self.reactor.seconds() - started >= timeout:
                loop.stop()
                self._drainTimedOut()
                done.callback(False)

        loop = LoopingCall(check)
        loop.clock = self.reactor
        loop.start(interval, now=True)
        return done
