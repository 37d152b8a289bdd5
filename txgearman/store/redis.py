# -*- test-case-name: tests.test_store_redis,tests.test_store_redis_outages -*-
"""
L{RedisQueueStore}: background jobs kept durably in Redis, through
txredisapi.

Everything the store writes in one reactor turn (new jobs, finished jobs,
the lock's refresh) goes to Redis as one Lua script call, so the cost per
job is a few bytes on a connection rather than a round trip.  Every call
has a deadline, because txredisapi queues commands for ever while Redis is
away; when one fails for want of Redis, background submits are refused at
once (rather than each waiting out the deadline) until a probe sees Redis
answer again.

This is the only module that uses txredisapi, which installs the global
reactor when imported: so it imports it only when a store first connects,
and importing this module leaves the choice of reactor to the application.
"""

from __future__ import annotations

# Hostnames are encoded with the idna codec at the first lookup, which
# under twistd -u comes after the privilege drop, when Python's own files
# may no longer be readable: import it now.
import encodings.idna  # noqa: F401
import os
import socket
from collections.abc import Callable, Sequence
from enum import Enum
from functools import cache
from typing import Any, NamedTuple

from twisted.application.internet import ClientService
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    TimeoutError,
    fail,
    succeed,
)
from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import ILogObserver, LogEvent, Logger, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from txgearman._histogram import STORE_SECONDS, Histogram
from txgearman._words import counted
from txgearman.store.interfaces import (
    HealthCheck,
    IQueueStore,
    IRestorableStore,
    IServerClaim,
    IStoreHealth,
    IStoreStatistics,
    StoredJob,
    StoreError,
)
from txgearman.store.redisaddress import RedisAddress, parseRedisAddress
from txgearman.store.redislayout import (
    ACQUIRE_SCRIPT,
    APPLY_SCRIPT,
    DEFAULT_PREFIX,
    LAYOUT_VERSION,
    LOCKED_ERROR,
    RELEASE_SCRIPT,
    REPLAY_SCRIPT,
    CorruptRecord,
    Layout,
    decodeRecord,
    encodeRecord,
    ownerToken,
    parseOwner,
)
from txgearman.store.redistls import RedisTLS

__all__ = ["RedisQueueStore"]

#: How much later than first seen a lock must expire for its holder to
#: count as alive (it refreshed the lock): more than a call's latency.
REFRESH_TOLERANCE = 0.1

#: Most jobs (stored or deleted) one script call carries.
BATCH_SIZE = 1000
#: Jobs in one call from which the store considers itself busy, and
#: spaces its calls by its batch interval.
BUSY_BATCH = 16
#: Keys one SCAN step of a replay asks for.
SCAN_COUNT = 5000
#: Most record bytes one replay step reads; larger records are read apart.
REPLAY_BUDGET = 16 * 1024 * 1024
#: Jobs restored between two returns to the reactor at replay.
RESTORE_CHUNK = 20000
#: Seconds between progress lines while a large queue replays.
PROGRESS_INTERVAL = 2.0
#: Foreign or corrupt keys named one by one in the log before the rest
#: are only counted.
NAMED_SKIPS = 10


#: A job to store: its number, its record, and the Deferred of its add.
_Add = tuple[int, bytes, "Deferred[object]"]


class StoreState(Enum):
    """
    Where a L{RedisQueueStore} is in its life.  The legal moves are
    L{TRANSITIONS}; L{RedisQueueStore._moveTo} is the only writer.
    """

    #: Made, not started.
    IDLE = "idle"
    #: Connecting and taking the lock on the prefix.
    STARTING = "starting"
    #: Holding the lock, Redis answering: jobs are stored.
    RUNNING = "running"
    #: Redis stopped answering: jobs are refused until a probe is answered.
    UNAVAILABLE = "unavailable"
    #: Redis is away and a PING to see whether it is back is in flight.
    PROBING = "probing"
    #: Another server took the lock over: jobs are refused for good.
    LOST = "lost"
    #: Writing what is pending, giving the lock up, disconnecting.
    STOPPING = "stopping"
    #: Stopped, or failed to start.
    STOPPED = "stopped"


_S = StoreState
#: States in which nothing new is written.
_NOT_RUNNING = frozenset({_S.IDLE, _S.STOPPING, _S.STOPPED})
#: States in which Redis is, or will again be, written to.
_CONNECTED = frozenset({_S.STARTING, _S.RUNNING, _S.UNAVAILABLE, _S.PROBING})

#: Every legal move between states.  Losing the queue while stopping is
#: no move: the store is stopping either way, and only stops owning the
#: lock (see L{RedisQueueStore._loseQueue}).
TRANSITIONS: dict[StoreState, frozenset[StoreState]] = {
    _S.IDLE: frozenset({_S.STARTING}),
    _S.STARTING: frozenset({_S.RUNNING, _S.STOPPING, _S.STOPPED}),
    _S.RUNNING: frozenset({_S.UNAVAILABLE, _S.LOST, _S.STOPPING}),
    _S.UNAVAILABLE: frozenset({_S.PROBING, _S.LOST, _S.STOPPING}),
    _S.PROBING: frozenset({_S.RUNNING, _S.UNAVAILABLE, _S.LOST, _S.STOPPING}),
    _S.LOST: frozenset({_S.STOPPING}),
    _S.STOPPING: frozenset({_S.STOPPED}),
    _S.STOPPED: frozenset(),
}


class _FastCommands:
    """
    Build a command's bytes in one C{bytes.join}: txredisapi's own
    builder makes several Python calls per argument, which showed as a
    tenth of the server's time under load.
    """

    def _build_command(self, *args: Any, **kwargs: Any) -> bytes:
        encode = self._encode_value  # type: ignore[attr-defined]
        parts = [b"*%d\r\n" % (len(args),)]
        for arg in args:
            if not isinstance(arg, bytes):
                arg = encode(arg)
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        return b"".join(parts)


@implementer(ILogObserver)
def _withoutRetries(event: LogEvent) -> None:
    """
    Pass a log event on, unless it is ClientService's line for one more
    connection attempt: while Redis is down, that is one line a second.
    """
    if not str(event.get("log_format", "")).startswith("Scheduling retry"):
        globalLogPublisher(event)


class _QuietClientService(ClientService):
    """
    The ClientService txredisapi connects with, without a log line per
    retry: the store logs each change of state instead, with the retry
    schedule (see L{RedisQueueStore._connectFailed}).
    """

    _log = Logger(observer=_withoutRetries)


class _RedisAPI(NamedTuple):
    """
    txredisapi and the store's own subclasses of its classes.
    """

    module: Any
    factory: Any
    sentinelFactory: Any


@cache
def _redisAPI() -> _RedisAPI:
    """
    Import txredisapi, on first use: importing it installs the global
    reactor, which an application may not have chosen yet when it imports
    this module.
    """
    import txredisapi

    # txredisapi builds its connections' ClientService by this name.
    if txredisapi.ClientService is ClientService:
        txredisapi.ClientService = _QuietClientService

    class _Protocol(_FastCommands, txredisapi.RedisProtocol):
        #: Whether Redis has sent anything on this connection.
        _answered = False

        def dataReceived(self, data: bytes) -> Any:
            if not self._answered:
                # Over TLS, the first bytes through prove the handshake
                # done and the client certificate accepted.
                self._answered = True
                onAnswered = getattr(self.factory, "onAnswered", None)
                if onAnswered is not None:
                    onAnswered()
            return super().dataReceived(data)

        def connectionLost(self, reason: Any) -> Any:
            # Over TLS, the transport knows why a handshake failed.
            onLost = getattr(self.factory, "onLost", None)
            transport = self.transport
            self.factory.losing = True
            try:
                result = super().connectionLost(reason)
            finally:
                self.factory.losing = False
            if onLost is not None:
                onLost(reason, transport)
            return result

    class _Factory(txredisapi.RedisFactory):
        """
        txredisapi's connection factory, reconnecting within about a second
        of Redis coming back (its default backs off up to ten).
        """

        protocol = _Protocol
        initialDelay = 0.1
        maxDelay = 1.0
        #: Told why, when Redis refuses a connection it accepted (a wrong
        #: password, a database it does not have): txredisapi then stops
        #: trying, and otherwise says so only in its log.
        onError: Callable[[str], None] | None = None
        #: Told when a connection to Redis is lost, and its transport:
        #: commands sent before it comes back would wait for it, so the
        #: store refuses jobs at once instead, until a probe is answered.
        onLost: Callable[[Failure, Any], None] | None = None
        #: Told when Redis first sends something on a connection.
        onAnswered: Callable[[], None] | None = None
        #: Whether a connection is being lost.  Its AUTH or SELECT in
        #: flight then fails, and txredisapi takes that for Redis refusing
        #: this server: it stops trying and logs it, once per attempt.  But
        #: a lost connection is no refusal (a failed TLS handshake loses
        #: it so): the store logs the cause, and the next attempt may do.
        losing = False
        _lazy = False

        @property
        def isLazy(self) -> bool:
            # txredisapi logs a failed AUTH or SELECT itself if lazy.
            return self._lazy and not self.losing

        @isLazy.setter
        def isLazy(self, value: bool) -> None:
            self._lazy = value

        def stopTrying(self) -> Any:
            if self.losing:
                return succeed(None)
            return super().stopTrying()

        def connectionError(self, why: str) -> None:
            if self.losing:
                return
            if self.deferred is not None:
                # Nobody waits on it (the connection is lazy): the store
                # reports why, below.
                self.deferred.addErrback(lambda failure: None)
            super().connectionError(why)
            if self.onError is not None:
                self.onError(why)

    class _SentinelProtocol(_FastCommands, txredisapi.SentinelRedisProtocol):
        """
        txredisapi's check that a server Sentinel named is the master, for
        replies as bytes (C{charset=None}): its own compares them with
        text, and so drops every connection.
        """

        def connectionMade(self) -> Any:
            def checkRole(role: Any) -> Any:
                if self.factory.is_master and role[0] not in (b"master", "master"):
                    self.transport.loseConnection()
                    return None
                return txredisapi.RedisProtocol.connectionMade(self)

            if self.password is not None:
                self.auth(self.password, self.username)
            return self.role().addCallback(checkRole)

    class _SentinelFactory(txredisapi.SentinelConnectionFactory):
        protocol = _SentinelProtocol
        maxDelay = 1.0

    return _RedisAPI(txredisapi, _Factory, _SentinelFactory)


def _reason(failure: Failure, timeout: float) -> str:
    """
    Why a Redis call failed, in words for a log and a client's ERROR.
    """
    txredisapi = _redisAPI().module
    if failure.check(TimeoutError, CancelledError, txredisapi.TimeoutError):
        return f"Redis did not answer within {timeout:g} s"
    if failure.check(txredisapi.ConnectionError, ConnectionDone, ConnectionLost):
        return f"no connection to Redis ({failure.getErrorMessage()})"
    return f"Redis: {failure.getErrorMessage()}"


@implementer(IStreamClientEndpoint)
class _WatchedEndpoint:
    """
    An endpoint that tells the store how each connection attempt ended, so
    that a Redis that cannot be reached is reported with the cause (refused,
    unknown host, ...), not only as calls that time out.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        connected: Callable[[], None],
        failed: Callable[[Failure], None],
    ) -> None:
        self._endpoint = endpoint
        self._connected = connected
        self._failed = failed

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        def connected(protocol: Any) -> Any:
            self._connected()
            return protocol

        def failed(failure: Failure) -> Failure:
            if not failure.check(CancelledError):
                self._failed(failure)
            return failure

        return self._endpoint.connect(protocolFactory).addCallbacks(connected, failed)


def _nothing() -> None:
    pass


class _TLSFailed(Exception):
    """
    A TLS connection to Redis failed: its message says why, in words.
    """


def _connectionTrouble(failure: Failure) -> bool:
    """
    Whether a failure means Redis is out of reach (rather than that it
    answered with an error).
    """
    return failure.check(_redisAPI().module.ResponseError) is None


@implementer(IQueueStore, IRestorableStore, IStoreHealth, IStoreStatistics)
class RedisQueueStore:
    """
    Jobs in Redis, under a key prefix this server holds a lock on.

    @ivar address: where Redis is.
    @ivar layout: the key names.
    @ivar timeout: the most a call to Redis may take.
    @ivar state: where the store is in its life (a L{StoreState}); it
        moves only along L{TRANSITIONS}.
    """

    log = Logger()
    durable = True

    def __init__(
        self,
        address: RedisAddress | str,
        reactor: Any,
        prefix: str | bytes = DEFAULT_PREFIX,
        timeout: float = 5.0,
        lockTTL: float = 15.0,
        startTimeout: float = 60.0,
        batchInterval: float = 0.001,
        deleteInterval: float = 0.01,
        claim: IServerClaim | None = None,
        tls: RedisTLS | None = None,
    ) -> None:
        """
        @param address: a L{RedisAddress} or C{--redis}'s text.
        @param reactor: provides IReactorTime, IReactorTCP and IReactorUNIX.
        @param prefix: the namespace of this server's keys.
        @param timeout: how long any one Redis call may take before the job
            it was for gets an error.
        @param lockTTL: how long the lock outlives this server if it dies
            without releasing it; it is refreshed every third of it.
        @param startTimeout: how long L{start} waits for Redis to answer
            and the lock to be free before it gives up.
        @param batchInterval: the least time between two writes to Redis:
            the most a background submit waits for others to share its
            write with.
        @param deleteInterval: the least time between two writes that only
            delete finished jobs: nobody waits for those, and while workers
            drain a queue, each write then carries that long's deletions.
        @param claim: what only this server can hold on this host (its
            listening address), written into the lock: a lock left by a
            process of this host with the same claim, while the claim is
            free, is this server's dead predecessor's, and is taken over at
            once.  Without one, such a lock is waited out.
        @param tls: whom to trust and which client certificate to show, for
            a C{rediss://} address; the system's authorities and none if
            C{None}.
        @raise ValueError: C{tls} is given for an address without TLS.
        """
        self.address = (
            parseRedisAddress(address) if isinstance(address, str) else address
        )
        if tls is not None and not self.address.tls:
            raise ValueError(
                f"TLS settings given for {self.address}, which is no rediss:// address"
            )
        self.tls = tls if tls is not None or not self.address.tls else RedisTLS()
        self.reactor = reactor
        if isinstance(prefix, str):
            prefix = prefix.encode("utf-8")
        self.layout = Layout(prefix)
        self.timeout = timeout
        self.lockTTL = lockTTL
        self._lockTTLms = b"%d" % (lockTTL * 1000,)
        self.startTimeout = startTimeout
        self.batchInterval = batchInterval
        self.deleteInterval = deleteInterval
        self._lastSend = float("-inf")
        self._lastBatch = 0
        #: Seconds each script call took, answered or failed.
        self.calls = Histogram(STORE_SECONDS)
        self.failedCalls = 0
        # A job was added while a call was in flight: submitters are not
        # waiting for each other's answers, so the store is under load.
        self._busy = False
        tlsNote = f"{self.tls}; " if self.tls is not None else ""
        prefixName = prefix.decode("utf-8", "replace")
        self.description = f"redis {self.address} ({tlsNote}prefix {prefixName})"
        self.claim = claim
        # Why the last connection attempt failed, while connecting fails.
        self.connectError: str | None = None
        # Why Redis refused this server (a wrong password), if it did: no
        # retry helps.
        self._connectRefused: str | None = None
        self._acquiring: Deferred[Any] | None = None
        # What tells the jobs the server holds, to write back after Redis
        # lost them.
        self._holdings: Callable[[], list[tuple[object, StoredJob]]] | None = None
        # Imported now, while the files are still readable (before twistd
        # drops privileges); the reactor was chosen by whoever passed it.
        _redisAPI()
        self._host = socket.gethostname()
        self._run = os.urandom(6).hex()
        self.owner = self._ownerToken()
        self._redis: Any = None
        self._sentinel: Any = None
        self._seq = 0
        self._adds: list[_Add] = []
        # Numbers of the jobs to delete, and of those whose deletion failed.
        self._removes: list[int] = []
        self._retries: list[int] = []
        # Deferreds of flush(), fired once nothing is left to do.
        self._flushWaiters: list[Deferred[None]] = []
        self._inFlight: set[Deferred[Any]] = set()
        self._flushCall: Any = None
        self._retryCall: Any = None
        self._refreshDue = False
        self._refresher: LoopingCall | None = None
        self.state = StoreState.IDLE
        # Why writes are refused: Redis is away (until a probe is answered)
        # or the queue was lost (for good).  Kept while stopping.
        self._refusedBecause: str | None = None
        # Whether this server holds the lock: from taking it until it is
        # released, or until another server takes it over.
        self._ownsLock = False

    def _moveTo(self, state: StoreState) -> None:
        """
        Change state, along one of L{TRANSITIONS} only: a move not listed
        there is a bug, and raises.
        """
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(
                f"Redis store: no move from {self.state.name} to {state.name}"
            )
        self.state = state

    def _ownerToken(self) -> bytes:
        """
        The token this server writes into the lock (see
        L{txgearman.store.redislayout.ownerToken}), made at start: twistd
        may fork between building the store and starting it.
        """
        claim = self.claim.name if self.claim is not None else None
        return ownerToken(self._host, claim, os.getpid(), self._run)

    def _describeHolder(self, token: bytes) -> str:
        owner = parseOwner(token)
        if owner is None:
            return repr(token)[2:-1]
        where = f" with {owner.claim}" if owner.claim != "-" else ""
        return f"pid {owner.pid} on {owner.host}{where}"

    def _predecessor(self, token: bytes) -> bool | None:
        """
        Whether the lock's holder is this server's own predecessor, by host
        and claim: C{True} if its claim is free again (it is dead), C{False}
        if a live process holds the claim, C{None} if it is not ours.
        """
        owner = parseOwner(token)
        claim = self.claim
        if claim is None or owner is None or token == self.owner:
            return None
        if owner.host != self._host or owner.claim != claim.name:
            return None
        return bool(claim.isFree())

    # -- connecting --------------------------------------------------------

    def _connect(self) -> None:
        address = self.address
        options: dict[str, Any] = {
            "charset": None,
            "convertNumbers": False,
            "replyTimeout": self.timeout,
            "password": address.password,
            "username": address.username,
        }
        api = _redisAPI()
        if address.kind == "sentinel":
            self._sentinel = api.module.Sentinel(list(address.sentinels))
            self._sentinel.discovery_timeout = self.timeout
            self._redis = self._sentinel.master_for(
                address.master,
                factory_class=api.sentinelFactory,
                dbid=address.db,
                **options,
            )
            return
        endpoint: Any
        connected = self._connectSucceeded
        if address.kind == "unix":
            endpoint = UNIXClientEndpoint(
                self.reactor, address.path, timeout=self.timeout
            )
        else:
            endpoint = HostnameEndpoint(
                self.reactor, address.host, address.port, timeout=self.timeout
            )
        factory = api.factory(str(address), address.db, 1, isLazy=True, **options)
        if self.tls is not None:
            endpoint = wrapClientTLS(self.tls.creatorFor(address.host), endpoint)
            # The TCP connection is only half of it: the handshake (and Redis
            # accepting the client certificate) shows once Redis answers.
            connected = _nothing
            factory.onAnswered = self._connectSucceeded
        factory.onError = self._refusedConnection
        factory.onLost = self._connectionLost
        factory.startConnecting(
            _WatchedEndpoint(endpoint, connected, self._connectFailed)
        )
        self._redis = factory.handler

    def _connectFailed(self, failure: Failure) -> None:
        """
        Log the cause of failed connection attempts once per cause, not once
        per attempt.
        """
        error = (
            failure.getErrorMessage() or getattr(failure.type, "__name__", "error")
        ).rstrip(".")
        if error != self.connectError:
            self.log.warn(
                "Cannot connect to Redis at {address}: {error}; trying again every second",
                address=str(self.address),
                error=error,
            )
        self.connectError = error

    def _refusedConnection(self, why: str) -> None:
        """
        Redis accepted the connection and then refused this server (a
        wrong password, an unknown database): say so plainly, and fail a
        start at once rather than when it times out.
        """
        why = why.removeprefix("Redis error: ")
        self._connectRefused = why
        self.connectError = why
        self.log.error(
            "Redis at {address} refused this server: {why}",
            address=str(self.address),
            why=why,
        )
        if self._acquiring is not None:
            self._acquiring.cancel()

    def _connectionLost(self, reason: Failure, transport: Any = None) -> None:
        why = reason.getErrorMessage().rstrip(".")
        if self.tls is not None:
            tlsWhy = self.tls.describeFailure(reason, transport, self.address.host)
            if tlsWhy is not None:
                # Logged as any failed attempt: once per cause.
                why = tlsWhy
                self._connectFailed(Failure(_TLSFailed(tlsWhy)))
        if self.state is StoreState.RUNNING:
            self._becomeUnavailable(f"the connection to Redis was lost ({why})")

    def _connectSucceeded(self) -> None:
        if self.connectError is not None:
            self.log.info("Connected to Redis at {address}", address=str(self.address))
        self.connectError = None

    def _explain(self, failure: Failure, timeout: float) -> str:
        """
        Why a call failed, with the cause of the failed connection attempts
        when there is one (a call times out while Redis cannot be reached).
        """
        if self.connectError is not None and failure.check(
            TimeoutError, CancelledError, _redisAPI().module.TimeoutError
        ):
            return f"cannot connect: {self.connectError}"
        return _reason(failure, timeout)

    def _call(
        self, command: bytes, *args: Any, timeout: float | None = None
    ) -> Deferred[Any]:
        """
        One Redis command, failing after C{timeout} (the store's by default).
        """
        d: Deferred[Any] = self._redis.execute_command(command, *args)
        return d.addTimeout(self.timeout if timeout is None else timeout, self.reactor)

    def _eval(
        self,
        script: bytes,
        keys: Sequence[bytes],
        args: Sequence[bytes],
        timeout: float | None = None,
    ) -> Deferred[Any]:
        d: Deferred[Any] = self._redis.eval(script, list(keys), list(args))
        return d.addTimeout(self.timeout if timeout is None else timeout, self.reactor)

    # -- start and stop ----------------------------------------------------

    @property
    def stateName(self) -> str:
        return self.state.value

    def health(self) -> list[HealthCheck]:
        """
        Whether Redis answers (C{redis}) and this server holds the queue's
        lock (C{redis-lock}).
        """
        state = self.state
        if state is StoreState.RUNNING:
            redis = HealthCheck("redis", True, f"{self.address} answers")
        elif state in (StoreState.UNAVAILABLE, StoreState.PROBING):
            redis = HealthCheck(
                "redis",
                False,
                self._refusedBecause or f"{self.address} does not answer",
            )
        elif state is StoreState.STARTING:
            why = f": {self.connectError}" if self.connectError else ""
            redis = HealthCheck("redis", False, f"connecting to {self.address}{why}")
        else:
            redis = HealthCheck("redis", False, f"the store is {state.value}")
        if self._ownsLock:
            lock = HealthCheck("redis-lock", True, "this server holds the queue's lock")
        elif state is StoreState.LOST:
            lock = HealthCheck(
                "redis-lock",
                False,
                self._refusedBecause or "another server took the queue",
            )
        else:
            lock = HealthCheck("redis-lock", False, "the queue's lock is not held")
        return [redis, lock]

    def start(self) -> Deferred[None]:
        """
        Connect, and take the lock on the prefix, waiting up to
        C{startTimeout} for Redis to answer and for another server's lock
        to expire.
        """
        if self.state is not StoreState.IDLE:
            return succeed(None)
        self._moveTo(StoreState.STARTING)
        self.owner = self._ownerToken()
        self._connect()
        return Deferred.fromCoroutine(self._acquire())

    async def _acquire(self) -> None:
        layout = self.layout
        owner = self.owner
        deadline = self.reactor.seconds() + self.startTimeout
        # A dead predecessor's token, once recognised: the lock may be
        # taken from it.
        replace = b""
        # The holder first seen, and when its lock was to expire then.
        seen: tuple[bytes, float] | None = None
        # Why Redis could not be reached, as last logged.
        unreachable: str | None = None
        while True:
            left = deadline - self.reactor.seconds()
            wait = max(0.1, min(self.timeout, left))
            try:
                d = self._acquiring = self._redis.eval(
                    ACQUIRE_SCRIPT,
                    [layout.lock, layout.version, layout.seq],
                    [owner, self._lockTTLms, LAYOUT_VERSION, replace],
                )
                if self._connectRefused is not None:
                    d.cancel()
                answer = await d.addTimeout(wait, self.reactor)
            except Exception:
                failure = Failure()
                self._acquiring = None
                if self._connectRefused is not None:
                    await self._abandon()
                    raise StoreError(
                        f"Redis at {self.address} refused this server: {self._connectRefused}"
                    ) from None
                if not _connectionTrouble(failure):
                    await self._abandon()
                    raise StoreError(
                        f"Redis at {self.address} refused the queue: {failure.getErrorMessage()}"
                    ) from None
                reason = self._explain(failure, wait)
                if self.reactor.seconds() >= deadline:
                    await self._abandon()
                    raise StoreError(
                        f"Redis at {self.address} is unreachable ({reason}); gave up after "
                        f"{self.startTimeout:g} s"
                    ) from None
                if reason != unreachable:
                    # Once per cause, not once per retry.
                    self.log.warn(
                        "Redis at {address} is unreachable ({reason}); retrying every second "
                        "for {left:.0f} s more",
                        address=str(self.address),
                        reason=reason,
                        left=max(0.0, deadline - self.reactor.seconds()),
                    )
                    unreachable = reason
                await deferLater(self.reactor, min(1.0, max(0.0, left)), lambda: None)
                continue
            self._acquiring = None
            if answer[0] == 1:
                if answer[1].isdigit():
                    self._seq = int(answer[1])
                else:
                    # Replay finds the highest job number from the keys.
                    self.log.warn(
                        "Ignoring {key}: {value!r} is not a job number",
                        key=layout.seq.decode("utf-8", "replace"),
                        value=answer[1][:40],
                    )
                break
            if answer[0] == -1:
                await self._abandon()
                raise StoreError(
                    f"the keys under prefix {layout.prefix!r} in Redis at {self.address} have "
                    f"layout version {answer[1]!r}, which this txgearman does not know"
                )
            token = answer[1]
            holder = self._describeHolder(token)
            pttl = int(answer[2])
            where = (
                f"the queue under prefix {layout.prefix.decode('utf-8', 'replace')} "
                f"in Redis at {self.address}"
            )
            predecessor = self._predecessor(token)
            if predecessor and token != replace:
                self.log.warn(
                    "The lock on {where} was left by this server's previous run ({holder}), "
                    "which is gone: {claim} is free again. Taking the queue over",
                    where=where,
                    holder=holder,
                    claim=self.claim.name if self.claim is not None else "",
                )
                replace = token
                continue
            if predecessor is False:
                await self._abandon()
                raise StoreError(
                    f"another txgearman server ({holder}) holds {where}, and "
                    f"{self.claim.name if self.claim is not None else 'its address'} is in use; "
                    "refusing to start (stop that server, or use another --redis-prefix)"
                )
            now = self.reactor.seconds()
            expiresAt = now + pttl / 1000 if pttl >= 0 else float("inf")
            if pttl < 0 or (
                seen is not None
                and (seen[0] != token or expiresAt > seen[1] + REFRESH_TOLERANCE)
            ):
                # It refreshed its lock (or its lock never expires): a live
                # server holds the queue, and waiting would not help.
                await self._abandon()
                raise StoreError(
                    f"another txgearman server ({holder}) holds {where} and is running (it "
                    "keeps its lock fresh); refusing to start (use another --redis-prefix, "
                    "or stop that server)"
                )
            if seen is None:
                seen = (token, expiresAt)
            expires = max(0, pttl) / 1000
            if now >= deadline:
                await self._abandon()
                raise StoreError(
                    f"another txgearman server ({holder}) holds {where}; "
                    "refusing to start (use another --redis-prefix, or stop that server)"
                )
            self.log.warn(
                "The queue under prefix {prefix} is held by {holder} (its lock expires in "
                "{expires:.1f} s unless refreshed); waiting to see whether it is alive, "
                "up to {left:.0f} s more",
                prefix=layout.prefix.decode("utf-8", "replace"),
                holder=holder,
                expires=expires,
                left=max(0.0, left),
            )
            await deferLater(
                self.reactor, max(0.05, min(1.0, expires, left)), lambda: None
            )
        self.log.info(
            "Holding the queue under prefix {prefix} in Redis at {address}",
            prefix=layout.prefix.decode("utf-8", "replace"),
            address=str(self.address),
        )
        self._ownsLock = True
        if self.state is not StoreState.STARTING:
            # Stopped while taking the lock: stop() releases it.
            return
        self._moveTo(StoreState.RUNNING)
        self._refresher = LoopingCall(self._refreshLock)
        self._refresher.clock = self.reactor
        self._refresher.start(self.lockTTL / 3, now=False)

    async def _abandon(self) -> None:
        """
        Close the connection after a failed start.
        """
        if self.state is StoreState.STARTING:
            self._moveTo(StoreState.STOPPED)
        await self._disconnect()

    async def _disconnect(self) -> None:
        redis, self._redis = self._redis, None
        sentinel, self._sentinel = self._sentinel, None
        waits = []
        if redis is not None:
            waits.append(redis.disconnect())
        if sentinel is not None:
            waits.append(sentinel.disconnect())
        if waits:
            d = DeferredList(waits, consumeErrors=True)
            try:
                await d.addTimeout(self.timeout, self.reactor)
            except TimeoutError:
                self.log.warn("Redis did not close the connection in time")

    def stop(self) -> Deferred[None]:
        """
        Write what is pending, give the lock up and disconnect.  The stored
        jobs stay for the next server.
        """
        if self.state in (StoreState.IDLE, StoreState.STOPPING, StoreState.STOPPED):
            return succeed(None)
        self._moveTo(StoreState.STOPPING)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._refresher is not None and self._refresher.running:
            self._refresher.stop()
        for call in (self._flushCall, self._retryCall):
            if call is not None and call.active():
                call.cancel()
        self._flushCall = self._retryCall = None
        while True:
            if self._inFlight:
                await DeferredList(list(self._inFlight), consumeErrors=True)
            elif self._adds or self._removes:
                self._flush()
            else:
                break
        if self._retries and self._ownsLock and self._redis is not None:
            await self._lastDeletions()
        left = len(self._retries)
        if left:
            self.log.warn(
                "{jobs} could not be deleted from Redis; they will run again "
                "after the next start",
                jobs=counted(left, "finished job"),
                count=left,
            )
        waiters, self._flushWaiters = self._flushWaiters, []
        for d in waiters:
            if left:
                d.errback(StoreError(f"{counted(left, 'deletion')} not carried out"))
            else:
                d.callback(None)
        if self._ownsLock and self._redis is not None:
            self._ownsLock = False
            try:
                await self._eval(RELEASE_SCRIPT, [self.layout.lock], [self.owner])
            except Exception:
                self.log.warn(
                    "Could not release the queue lock ({reason}); it expires in {ttl:g} s",
                    reason=self._explain(Failure(), self.timeout),
                    ttl=self.lockTTL,
                )
        await self._disconnect()
        self._moveTo(StoreState.STOPPED)

    async def _lastDeletions(self) -> None:
        """
        Keep trying, for up to the timeout, the deletions that failed
        (Redis may just have come back): each one left is a job that runs
        again, or a refused job that runs after all, at the next start.
        """
        deadline = self.reactor.seconds() + self.timeout
        while self._retries:
            left = deadline - self.reactor.seconds()
            if left <= 0:
                return
            batch, self._retries = (
                self._retries[:BATCH_SIZE],
                self._retries[BATCH_SIZE:],
            )
            keys, args = self._applyArguments([], batch)
            try:
                await self._eval(APPLY_SCRIPT, keys, args, timeout=left)
            except Exception:
                self._retries[:0] = batch
                await deferLater(self.reactor, min(0.1, max(0.0, left)), lambda: None)

    # -- adding and removing -----------------------------------------------

    def add(self, job: StoredJob) -> Deferred[object]:
        refused = self._refusal()
        if refused is not None:
            return fail(StoreError(refused))
        self._seq += 1
        number = self._seq
        d: Deferred[object] = Deferred()
        self._adds.append((number, encodeRecord(job), d))
        if self._inFlight:
            self._busy = True
        self._scheduleFlush()
        return d

    def _refusal(self) -> str | None:
        """
        Why a new job cannot be stored now, if it cannot.
        """
        if self._refusedBecause is not None:
            return self._refusedBecause
        if self.state in _NOT_RUNNING or self._redis is None:
            return "the Redis store is not running"
        return None

    def remove(self, key: object) -> None:
        if not isinstance(key, int) or isinstance(key, bool):
            self.log.error("Not a Redis job number, not removed: {key!r}", key=key)
            return
        self._removes.append(key)
        self._scheduleFlush(urgent=False)

    def flush(self) -> Deferred[None]:
        if self._settled():
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._flushWaiters.append(d)
        if self._adds or self._removes:
            self._scheduleFlush()
        return d

    def _settled(self) -> bool:
        """
        Whether everything asked of the store has been done.
        """
        return not (self._adds or self._removes or self._retries or self._inFlight)

    def _fireFlushed(self) -> None:
        if self._flushWaiters and self._settled():
            waiters, self._flushWaiters = self._flushWaiters, []
            for d in waiters:
                d.callback(None)

    def _scheduleFlush(self, urgent: bool = True) -> None:
        """
        Flush at the end of this reactor turn, for an urgent write (a new
        job, whose client waits for it).  Under load (jobs were added while
        the last call was in flight, or it carried C{BUSY_BATCH} jobs or
        more), wait until C{batchInterval} has passed since the last call
        went out: every call then carries that many seconds' worth of jobs,
        and what a call costs is paid per call, not per job.  A lone client
        submitting one job at a time never waits.

        Deletions are never urgent: they ride along with the next new jobs,
        or go C{deleteInterval} after the last call.  Sent at once, the
        deletions of jobs finishing one by one made calls of a few jobs
        each, back to back, too small ever to count as load (five times as
        many calls as needed, and a third less throughput).
        """
        if self.state in _NOT_RUNNING:
            return
        if urgent and not self._busy and self._lastBatch < BUSY_BATCH:
            earliest = float("-inf")
        elif self._adds or self._flushWaiters:
            earliest = self._lastSend + self.batchInterval
        else:
            earliest = self._lastSend + self.deleteInterval
        call = self._flushCall
        if call is not None and call.getTime() <= earliest:
            # The pending call is as soon as this write may go: the common
            # case under load, settled without reading the clock.
            return
        now = self.reactor.seconds()
        delay = max(0.0, earliest - now)
        if call is None:
            self._flushCall = self.reactor.callLater(delay, self._flush)
        elif call.getTime() > now + delay:
            # Something more pressing than what the call was set for.
            call.reset(delay)

    def _refreshLock(self) -> None:
        if self.state is StoreState.RUNNING:
            self._refreshDue = True
            self._scheduleFlush(urgent=False)

    def _flush(self) -> None:
        """
        Send what was added and removed since the last call went out, in as
        few script calls as the batch size allows.

        While a call is in flight the next batch waits for it, so that
        under load batches grow with Redis's latency instead of the number
        of calls growing with the load.
        """
        self._flushCall = None
        if self._inFlight:
            return
        adds, self._adds = self._adds, []
        removes, self._removes = self._removes, []
        if self._refusedBecause is not None or self._redis is None:
            # Redis is away: nothing would get through; a probe resends.
            refused = self._refusal() or "the Redis store is not running"
            for _key, _record, d in adds:
                d.errback(StoreError(refused))
            self._retries.extend(removes)
            return
        if not adds and not removes and not self._refreshDue:
            return
        self._refreshDue = False
        while True:
            self._send(adds[:BATCH_SIZE], removes[:BATCH_SIZE])
            adds, removes = adds[BATCH_SIZE:], removes[BATCH_SIZE:]
            if not adds and not removes:
                break

    def _send(
        self,
        adds: list[_Add],
        removes: list[int],
    ) -> None:
        keys, args = self._applyArguments(adds, removes)
        self._lastSend = self.reactor.seconds()
        self._lastBatch = len(adds) + len(removes)
        self._busy = False
        d = self._eval(APPLY_SCRIPT, keys, args)
        self._inFlight.add(d)
        d.addBoth(self._landed, d)
        d.addCallbacks(
            self._applied,
            self._applyFailed,
            callbackArgs=(adds,),
            errbackArgs=(adds, removes),
        )

    def _applyArguments(
        self,
        adds: list[_Add],
        removes: list[int],
    ) -> tuple[list[bytes], list[bytes]]:
        """
        The keys and arguments of the script that stores C{adds} and
        deletes C{removes}.
        """
        layout = self.layout
        keys = [layout.lock, layout.version, layout.seq]
        jobKey = layout.jobKey
        keys += [jobKey(number) for number, _record, _d in adds]
        keys += [jobKey(number) for number in removes]
        last = b"%d" % (adds[-1][0],) if adds else b""
        args = [self.owner, self._lockTTLms, LAYOUT_VERSION, last]
        args += [record for _key, record, _d in adds]
        return keys, args

    def _landed(self, result: Any, d: Deferred[Any]) -> Any:
        self._inFlight.discard(d)
        self.calls.observe(self.reactor.seconds() - self._lastSend)
        if isinstance(result, Failure):
            self.failedCalls += 1
        if not self._inFlight and (self._adds or self._removes or self._refreshDue):
            self._scheduleFlush(urgent=bool(self._adds or self._flushWaiters))
        return result

    def setHoldings(
        self, holdings: Callable[[], list[tuple[object, StoredJob]]]
    ) -> None:
        self._holdings = holdings

    def _applied(self, answer: Any, adds: list[_Add]) -> None:
        if answer == 2:
            self._restoreLost(adds)
            return
        elif answer == 1:
            self.log.warn(
                "The queue lock in Redis had expired; this server took it again"
            )
        for key, _record, d in adds:
            d.callback(key)
        self._fireFlushed()

    def _restoreLost(self, adds: list[_Add]) -> None:
        """
        Redis had lost this queue's keys: write back every job the server
        still holds (queued or running), and only then acknowledge the
        jobs of the write that found the loss.  New writes wait meanwhile
        (a call is in flight), so nothing new is acknowledged before the
        old jobs are stored again.
        """
        holdings = self._holdings() if self._holdings is not None else []
        self.log.critical(
            "Redis had lost this queue's keys (flushed, or restarted without persistence). "
            "Writing back the {jobs} this server holds; turn on appendonly "
            "in Redis, or a restart of Redis loses queued jobs",
            jobs=counted(len(holdings), "background job"),
            count=len(holdings),
        )
        d = Deferred.fromCoroutine(self._writeBack(holdings))
        self._inFlight.add(d)
        d.addBoth(self._landed, d)

        def done(_: object) -> None:
            self.log.info(
                "Wrote back {jobs} to Redis",
                jobs=counted(len(holdings), "background job"),
                count=len(holdings),
            )
            for key, _record, added in adds:
                added.callback(key)
            self._fireFlushed()

        def failed(failure: Failure) -> None:
            reason = self._explain(failure, self.timeout)
            self.log.error(
                "Could not write the jobs back to Redis: {reason}; the jobs stay queued "
                "here, but a restart of this server would lose them",
                reason=reason,
            )
            for _key, _record, added in adds:
                added.errback(StoreError(reason))
            if _connectionTrouble(failure):
                self._becomeUnavailable(reason)

        d.addCallbacks(done, failed)

    async def _writeBack(self, holdings: list[tuple[object, StoredJob]]) -> None:
        numbered = sorted(
            (key, encodeRecord(job)) for key, job in holdings if isinstance(key, int)
        )
        for start in range(0, len(numbered), BATCH_SIZE):
            batch: list[_Add] = [
                (key, record, Deferred())
                for key, record in numbered[start : start + BATCH_SIZE]
            ]
            keys, args = self._applyArguments(batch, [])
            await self._eval(APPLY_SCRIPT, keys, args)

    def _applyFailed(
        self,
        failure: Failure,
        adds: list[_Add],
        removes: list[int],
    ) -> None:
        reason = self._explain(failure, self.timeout)
        if failure.check(_redisAPI().module.ResponseError) and LOCKED_ERROR in str(
            failure.value
        ):
            self._loseQueue(reason)
            reason = self._refusedBecause or reason
        elif _connectionTrouble(failure):
            self._becomeUnavailable(reason)
        else:
            self.log.error("Redis refused a write: {reason}", reason=reason)
        # A write that timed out may still reach Redis: delete it, so that
        # a job whose client was told it failed never runs.
        self._retries.extend([key for key, _record, _d in adds])
        self._retries.extend(removes)
        for _key, _record, d in adds:
            d.errback(StoreError(reason))
        self._scheduleRetry()

    # -- outages -----------------------------------------------------------

    def _becomeUnavailable(self, reason: str) -> None:
        if self.state is not StoreState.RUNNING:
            return
        self._moveTo(StoreState.UNAVAILABLE)
        self._refusedBecause = reason
        self.log.error(
            "Redis at {address} is unavailable: {reason}. Background jobs are refused "
            "until it answers again",
            address=str(self.address),
            reason=reason,
        )
        self._probe()

    def _probe(self) -> None:
        if self.state is not StoreState.UNAVAILABLE or self._redis is None:
            return
        self._moveTo(StoreState.PROBING)
        self._call(b"PING").addCallbacks(self._probed, self._probeFailed)

    def _probed(self, _pong: object) -> None:
        if self.state is not StoreState.PROBING:
            return
        self._moveTo(StoreState.RUNNING)
        self._refusedBecause = None
        self.log.info("Redis at {address} answers again", address=str(self.address))
        self._refreshDue = True
        self._resend()

    def _probeFailed(self, failure: Failure) -> None:
        if self.state is StoreState.PROBING:
            self._moveTo(StoreState.UNAVAILABLE)
            self.reactor.callLater(0.2, self._probe)

    def _scheduleRetry(self) -> None:
        if self._retryCall is None and self.state in _CONNECTED:
            self._retryCall = self.reactor.callLater(1.0, self._retry)

    def _retry(self) -> None:
        self._retryCall = None
        if self.state is StoreState.RUNNING:
            self._resend()
        # Else the probe resends once Redis is back.

    def _resend(self) -> None:
        """
        Send the deletions that failed again.
        """
        retries, self._retries = self._retries, []
        self._removes.extend(retries)
        self._refreshDue = True
        self._scheduleFlush()

    def _loseQueue(self, reason: str) -> None:
        if not self._ownsLock:
            return
        self._ownsLock = False
        self._refusedBecause = f"this server no longer owns the queue ({reason})"
        if self.state is not StoreState.STOPPING:
            self._moveTo(StoreState.LOST)
        self.log.critical(
            "Another txgearman server took the queue under prefix {prefix} over ({reason}). "
            "This server refuses background jobs from now on; the jobs it still holds may "
            "run on both servers. Stop this server.",
            prefix=self.layout.prefix.decode("utf-8", "replace"),
            reason=reason,
        )
        if self._refresher is not None and self._refresher.running:
            self._refresher.stop()

    # -- replay ------------------------------------------------------------

    def replay(self, restore: Callable[[object, StoredJob], None]) -> Deferred[int]:
        """
        Read every job under the prefix, SCAN step by SCAN step (each step
        a script that also reads the records it found, the next step in
        flight while this one is parsed), then restore them in job number
        order, which is submission order.
        """
        return Deferred.fromCoroutine(self._replay(restore))

    def _replayStep(self, cursor: bytes) -> Deferred[Any]:
        d: Deferred[Any] = self._redis.eval(
            REPLAY_SCRIPT,
            [],
            [
                cursor,
                self.layout.scanPattern,
                b"%d" % (SCAN_COUNT,),
                self.layout.jobPrefix,
                b"%d" % (REPLAY_BUDGET,),
            ],
        )
        return d.addTimeout(max(self.timeout, 30.0), self.reactor)

    async def _replay(self, restore: Callable[[object, StoredJob], None]) -> int:
        layout = self.layout
        clock = self.reactor
        started = lastReport = clock.seconds()
        found: dict[int, StoredJob] = {}
        skipped = 0
        # Function names repeat: keep one bytes object per name.
        names: dict[bytes, bytes] = {}

        def skip(key: bytes, why: str) -> None:
            nonlocal skipped
            skipped += 1
            if skipped <= NAMED_SKIPS:
                self.log.warn(
                    "Skipping Redis key {key}: {why}",
                    key=repr(key)[2:-1],
                    why=why,
                )

        def parse(numbers: list[int], values: list[bytes]) -> None:
            for number, value in zip(numbers, values, strict=True):
                try:
                    found[number] = decodeRecord(value, names)
                except CorruptRecord as e:
                    skip(layout.jobKey(number), f"not a txgearman job record ({e})")

        highest = 0
        pending: Deferred[Any] | None = self._replayStep(b"0")
        while pending is not None:
            cursor, numberList, values, later, others = await pending
            pending = self._replayStep(cursor) if cursor != b"0" else None
            numbers = [int(n) for n in numberList.split(b",")] if numberList else []
            parse(numbers, values)
            if numbers:
                highest = max(highest, max(numbers))
            for key in others:
                number = layout.jobNumber(key)
                if number is not None:
                    highest = max(highest, number)
                    skip(key, "not a string (not a txgearman job)")
                elif key not in layout.ownKeys:
                    skip(key, "not a key txgearman writes")
            if later:
                # Records too large to read with the step: a few at a time.
                big = [int(n) for n in later.split(b",")]
                highest = max(highest, max(big))
                for i in range(0, len(big), 8):
                    batch = big[i : i + 8]
                    keys = [layout.jobKey(n) for n in batch]
                    got = await self._call(
                        b"MGET", *keys, timeout=max(self.timeout, 30.0)
                    )
                    present = [
                        (n, v) for n, v in zip(batch, got, strict=True) if v is not None
                    ]
                    parse([n for n, _ in present], [v for _, v in present])
            now = clock.seconds()
            if now - lastReport >= PROGRESS_INTERVAL:
                lastReport = now
                self.log.info(
                    "Replay: read {jobs} so far",
                    jobs=counted(len(found), "stored job"),
                    count=len(found),
                )
        if skipped > NAMED_SKIPS:
            self.log.warn(
                "Skipped {keys} in all under prefix {prefix}",
                keys=counted(skipped, "Redis key"),
                count=skipped,
                prefix=layout.prefix.decode("utf-8", "replace"),
            )
        self._seq = max(self._seq, highest)
        total = len(found)
        if total > RESTORE_CHUNK:
            self.log.info(
                "Replay: read {jobs} in {seconds:.1f} s; queueing them",
                jobs=counted(total, "job"),
                total=total,
                seconds=clock.seconds() - started,
            )
        order = sorted(found)
        for start in range(0, total, RESTORE_CHUNK):
            for number in order[start : start + RESTORE_CHUNK]:
                restore(number, found[number])
            if start + RESTORE_CHUNK < total:
                # Let the lock's refresh and the reactor run between chunks.
                await deferLater(clock, 0, lambda: None)
                now = clock.seconds()
                if now - lastReport >= PROGRESS_INTERVAL:
                    lastReport = now
                    self.log.info(
                        "Replay: queued {done} of {total} jobs",
                        done=start + RESTORE_CHUNK,
                        total=total,
                    )
        return total
