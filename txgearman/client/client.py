# -*- test-case-name: txgearman.test.test_client -*-
"""
L{GearmanClient}: submit jobs to one or more job servers, with Deferreds.

Each server gets a connection that comes back by itself when it drops
(Twisted's C{ClientService}).  A job with a unique id always goes to the
same live server, so that submits with that id coalesce there: servers are
ranked per unique id by rendezvous hashing, and the first live one in its
ranking gets it (when a server goes down, only its own unique ids move).
Jobs without a unique id go round the live servers.  A submit whose
connection drops before the server acknowledged it is sent to the next
live server.

Works against txgearman and gearmand alike; nothing here imports the
global reactor at import time.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from txgearman.client.arguments import asBytes, asOptionalBytes
from txgearman.client.clientprotocol import (
    GearmanClientProtocol,
    JobCallbacks,
    JobStatus,
)
from txgearman.client.endpoints import endpointFor
from txgearman.client.errors import (
    GearmanConnectionLost,
    NoServerAvailable,
    ServerError,
)
from txgearman.codec import Priority

__all__ = ["GearmanClient", "JobStatus"]

#: Handles remembered to send GET_STATUS to the server that made them.
_REMEMBERED_HANDLES = 10000


class _Server:
    """
    One job server: its name, its reconnecting connection, and the
    connection now up, if one is.
    """

    def __init__(self, name: str, service: ClientService) -> None:
        self.name = name
        self.rank = hashlib.sha1(name.encode()).digest()
        self.service = service
        self.protocol: GearmanClientProtocol | None = None
        self._waiters: list[Deferred[GearmanClientProtocol]] = []

    def connected(self, protocol: GearmanClientProtocol) -> None:
        """
        A new connection is up (from C{prepareConnection}).
        """
        self.protocol = protocol
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(protocol)

    def whenConnected(self) -> Deferred[GearmanClientProtocol]:
        """
        The live connection, or the next one: never one that is going
        away (C{ClientService.whenConnected} hands that one out until its
        loss has been fully processed).
        """
        live = self.live
        if live is not None:
            return succeed(live)
        d: Deferred[GearmanClientProtocol] = Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(d)
        return d

    @property
    def live(self) -> GearmanClientProtocol | None:
        protocol = self.protocol
        return protocol if protocol is not None and protocol.connected else None


class GearmanClient(Service):
    """
    A Gearman client of one or more job servers.

    Start it (C{startService}, or add it to a service tree) before use; stop
    it to close its connections.

    @ivar timeout: how long a request waits for a server to be reachable.
    """

    log = Logger()

    def __init__(
        self,
        servers: Sequence[str | IStreamClientEndpoint],
        reactor: Any = None,
        timeout: float = 10.0,
        clientId: str | bytes | None = None,
    ) -> None:
        """
        @param servers: the job servers: endpoint descriptions such as
            C{tcp:gearman.example:4730}, C{host:port} strings, or endpoints.
        @param reactor: the reactor; the global one if C{None}.
        @param timeout: how long a request waits for a server to connect.
        @param clientId: the name the servers show for these connections.
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        if not servers:
            raise ValueError("a GearmanClient needs at least one job server")
        self.reactor = reactor
        self.timeout = timeout
        self.clientId = asOptionalBytes(clientId, "clientId")
        self._servers = [self._makeServer(server) for server in servers]
        self._turn = itertools.count()
        self._handles: OrderedDict[bytes, _Server] = OrderedDict()
        self._waitingForServer: set[Deferred[Any]] = set()
        self._stopped = False

    def _makeServer(self, server: str | IStreamClientEndpoint) -> _Server:
        name = server if isinstance(server, str) else repr(server)
        factory = Factory.forProtocol(GearmanClientProtocol)
        entry: _Server

        def prepare(protocol: IProtocol) -> None:
            # ClientService hands over a proxy of the protocol, which passes
            # attribute access through.
            client = cast(GearmanClientProtocol, protocol)
            if self.clientId is not None:
                client.setClientId(self.clientId)
            entry.connected(client)

        service = ClientService(
            endpointFor(self.reactor, server),
            factory,
            retryPolicy=backoffPolicy(initialDelay=0.2, maxDelay=5.0),
            clock=self.reactor,
            prepareConnection=prepare,
        )
        entry = _Server(name, service)
        return entry

    # -- service -----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        for server in self._servers:
            server.service.startService()

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        self._stopped = True
        waiting, self._waitingForServer = self._waitingForServer, set()
        for d in waiting:
            if not d.called:
                d.errback(NoServerAvailable("the client was stopped"))
        return DeferredList([server.service.stopService() for server in self._servers])

    # -- choosing a server -------------------------------------------------

    def _ranking(self, unique: bytes) -> list[_Server]:
        """
        The servers in the order a job with this unique id tries them.
        """
        return sorted(
            self._servers,
            key=lambda server: hashlib.sha1(server.rank + unique).digest(),
            reverse=True,
        )

    def _candidates(self, unique: bytes) -> list[_Server]:
        if unique:
            return self._ranking(unique)
        start = next(self._turn) % len(self._servers)
        return self._servers[start:] + self._servers[:start]

    async def _connection(
        self,
        unique: bytes,
        skip: frozenset[str] = frozenset(),
        deadline: float | None = None,
    ) -> tuple[_Server, GearmanClientProtocol]:
        """
        The first live server for C{unique} not in C{skip}, waiting for one
        to connect until C{deadline} (C{timeout} from now by default).
        """
        if self._stopped:
            raise NoServerAvailable("the client was stopped")
        now = self.reactor.seconds()
        wait = self.timeout if deadline is None else deadline - now
        candidates = [s for s in self._candidates(unique) if s.name not in skip]
        if not candidates:
            # Every server failed this request already: wait for any of them
            # to connect again, until the deadline.
            candidates = self._candidates(unique)
        if wait <= 0:
            names = ", ".join(s.name for s in candidates)
            raise NoServerAvailable(
                f"no job server took the request within {self.timeout:g} s: {names}"
            )
        for server in candidates:
            live = server.live
            if live is not None:
                return server, live
        waits = [server.whenConnected() for server in candidates]
        first: Deferred[Any] = Deferred()

        def connected(protocol: GearmanClientProtocol, server: _Server) -> None:
            if not first.called:
                first.callback((server, protocol))

        for server, d in zip(candidates, waits, strict=True):
            d.addCallbacks(connected, lambda f: None, callbackArgs=(server,))

        def giveUp() -> None:
            if not first.called:
                names = ", ".join(s.name for s in candidates)
                first.errback(
                    NoServerAvailable(
                        f"no job server reachable within {self.timeout:g} s: {names}"
                    )
                )

        timer = self.reactor.callLater(wait, giveUp)
        self._waitingForServer.add(first)
        try:
            result: tuple[_Server, GearmanClientProtocol] = await first
        finally:
            self._waitingForServer.discard(first)
            if timer.active():
                timer.cancel()
            for d in waits:
                d.cancel()
        # Unique ids map to their first live server: prefer it if it came up.
        for server in candidates:
            live = server.live
            if live is not None:
                return server, live
        return result

    # -- jobs ----------------------------------------------------------------

    def submit(
        self,
        function: str | bytes,
        data: bytes = b"",
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        onData: Callable[[bytes], object] | None = None,
        onWarning: Callable[[bytes], object] | None = None,
        onStatus: Callable[[int, int], object] | None = None,
    ) -> Deferred[bytes]:
        """
        Run a job and wait for its result.

        @param onData: called with each WORK_DATA chunk as it arrives.
        @param onWarning: called with each WORK_WARNING as it arrives.
        @param onStatus: called with C{(numerator, denominator)} of each
            WORK_STATUS.
        @return: fires with the job's result; fails with
            L{txgearman.client.errors.JobFailed}, L{txgearman.client.errors.JobException},
            L{txgearman.client.errors.ServerError}, L{txgearman.client.errors.GearmanConnectionLost}
            (the connection went while the job ran) or
            L{txgearman.client.errors.NoServerAvailable}.
        """
        return Deferred.fromCoroutine(
            self._submit(
                asBytes(function, "function"),
                asBytes(data, "data"),
                asBytes(unique or b"", "unique"),
                priority,
                onData,
                onWarning,
                onStatus,
            )
        )

    async def _submit(
        self,
        function: bytes,
        data: bytes,
        unique: bytes,
        priority: Priority,
        onData: Callable[[bytes], object] | None,
        onWarning: Callable[[bytes], object] | None,
        onStatus: Callable[[int, int], object] | None,
    ) -> bytes:
        tried: set[str] = set()
        deadline = self.reactor.seconds() + self.timeout
        while True:
            server, protocol = await self._connection(
                unique, frozenset(tried), deadline
            )
            callbacks = protocol.submitJob(
                function,
                data,
                unique,
                priority,
                JobCallbacks(onData, onWarning, onStatus),
            )
            try:
                result: bytes = await callbacks.result
            except GearmanConnectionLost:
                if callbacks.handle:
                    raise  # The job was accepted, and may have run.
                tried.add(server.name)
                self.log.info(
                    "Lost {server} before it accepted a job; trying another server",
                    server=server.name,
                )
                continue
            except ServerError as e:
                if not self._elsewhere(e, server, tried):
                    raise
                continue
            return result

    def submitBackground(
        self,
        function: str | bytes,
        data: bytes = b"",
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        when: int | None = None,
    ) -> Deferred[bytes]:
        """
        Queue a background job; with C{when}, not before that Unix time.

        @return: fires with the job handle once a server has the job (with
            a durable server, once it is stored).
        """
        return Deferred.fromCoroutine(
            self._submitBackground(
                asBytes(function, "function"),
                asBytes(data, "data"),
                asBytes(unique or b"", "unique"),
                priority,
                when,
            )
        )

    async def _submitBackground(
        self,
        function: bytes,
        data: bytes,
        unique: bytes,
        priority: Priority,
        when: int | None,
    ) -> bytes:
        tried: set[str] = set()
        deadline = self.reactor.seconds() + self.timeout
        while True:
            server, protocol = await self._connection(
                unique, frozenset(tried), deadline
            )
            try:
                handle: bytes = await protocol.submitBackground(
                    function, data, unique, priority, when
                )
            except GearmanConnectionLost:
                # Lost before the answer: the job may be queued there too,
                # but a lost job is worse than one that runs twice.
                tried.add(server.name)
                continue
            except ServerError as e:
                if not self._elsewhere(e, server, tried):
                    raise
                continue
            self._remember(handle, server)
            return handle

    def _elsewhere(self, error: ServerError, server: _Server, tried: set[str]) -> bool:
        """
        Whether a submit C{server} refused with C{error} should go to
        another server: a draining server takes no new job, and another one
        may, if some server has not refused this submit yet.
        """
        if error.code != b"SERVER_DRAINING":
            return False
        tried.add(server.name)
        if all(s.name in tried for s in self._servers):
            return False
        self.log.info("{server} is draining; trying another server", server=server.name)
        return True

    def _remember(self, handle: bytes, server: _Server) -> None:
        self._handles[handle] = server
        if len(self._handles) > _REMEMBERED_HANDLES:
            self._handles.popitem(last=False)

    # -- status --------------------------------------------------------------

    def getStatus(self, handle: str | bytes) -> Deferred[JobStatus]:
        """
        What the server that has the job C{handle} knows of it: the server
        that made it, if this client submitted it, else every live server
        is asked and one that knows the job answers.
        """
        return Deferred.fromCoroutine(self._getStatus(asBytes(handle, "handle")))

    async def _getStatus(self, handle: bytes) -> JobStatus:
        server = self._handles.get(handle)
        if server is not None and server.live is not None:
            status: JobStatus = await server.live.getStatus(handle)
            return status
        live = [s.live for s in self._servers if s.live is not None]
        if not live:
            _server, protocol = await self._connection(b"")
            live = [protocol]
        answers = await DeferredList(
            [p.getStatus(handle) for p in live], consumeErrors=True
        )
        statuses = [value for ok, value in answers if ok]
        for status in statuses:
            if status.known:
                return status
        if statuses:
            return statuses[0]
        failure = answers[0][1]
        assert isinstance(failure, Failure)
        failure.raiseException()
        raise AssertionError("unreachable")

    def getStatusUnique(self, unique: str | bytes) -> Deferred[JobStatus]:
        """
        What the server that jobs with this unique id go to knows of it.
        """
        return Deferred.fromCoroutine(self._getStatusUnique(asBytes(unique, "unique")))

    async def _getStatusUnique(self, unique: bytes) -> JobStatus:
        _server, protocol = await self._connection(unique)
        status: JobStatus = await protocol.getStatusUnique(unique)
        return status

    def echo(self, data: str | bytes = b"ping") -> Deferred[bytes]:
        """
        Check that a server answers.

        @return: fires with what a live server echoed.
        """
        return Deferred.fromCoroutine(self._echo(asBytes(data, "data")))

    async def _echo(self, data: bytes) -> bytes:
        _server, protocol = await self._connection(b"")
        answer: bytes = await protocol.echo(data)
        return answer
