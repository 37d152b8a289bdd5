"""
Helpers for the system tests of the library's client, worker and admin
client over real TCP, on the global reactor: in-process txgearman servers,
workers, clients and raw peers that the test's cleanups stop and close,
and waits that poll with a deadline.

The unit tests of the same classes run in memory on
L{txgearman.testing.GearmanPump}; these are for what needs sockets: the
smoke tests in C{test_library_tcp} and the tests against gearmand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest, TestCase

from txgearman.client.admin import GearmanAdminClient
from txgearman.client.client import GearmanClient
from txgearman.client.worker import GearmanWorker, WorkerJob
from txgearman.codec import Decoder, Packet, PacketType, encodeRequest
from txgearman.server.service import GearmanServerService

__all__ = [
    "LOOPBACK",
    "CLIENT_ID",
    "AdminTestCase",
    "ClientTestMixin",
    "RawPeer",
    "WorkerTestMixin",
    "pause",
    "poll",
    "raised",
    "rejects",
    "serverName",
]

LOOPBACK = "127.0.0.1"
CLIENT_ID = b"client-under-test"

_E = TypeVar("_E", bound=BaseException)


async def poll(
    condition: Callable[[], object], what: str, timeout: float = 30.0
) -> None:
    """
    Let the reactor run until C{condition()} is true.

    @raise FailTest: after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise FailTest(f"timed out after {timeout}s waiting for {what}")
        await deferLater(reactor, 0.01)


async def pause(seconds: float) -> None:
    """
    Let the reactor run for C{seconds}: the time a wrong peer would need
    to do what a test checks it does not do.
    """
    await deferLater(reactor, seconds)


async def raised(d: Awaitable[Any], kind: type[_E]) -> _E:
    """
    Wait for C{d} to fail with C{kind}; return the exception.

    @raise FailTest: it succeeded, or failed with something else.
    """
    try:
        result = await d
    except kind as e:
        return e
    raise FailTest(f"expected {kind.__name__}, got the result {result!r}")


#: The admin tests' name for L{raised}.
rejects = raised


def serverName(port: int) -> str:
    """The name a client is given for the server on C{port}."""
    return f"tcp:{LOOPBACK}:{port}"


class RawPeer(Protocol):
    """
    A Gearman client or worker speaking raw packets.
    """

    def __init__(self) -> None:
        self.decoder = Decoder()
        self.packets: list[Packet] = []
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (item := self.decoder.next()) is not None:
            assert isinstance(item, Packet), item
            self.packets.append(item)

    def send(self, ptype: PacketType, *args: bytes) -> None:
        assert self.transport is not None
        self.transport.write(encodeRequest(ptype, *args))

    async def expect(self, ptype: PacketType) -> tuple[bytes, ...]:
        """Wait for the next packet, which must be of type C{ptype}."""
        await poll(lambda: bool(self.packets), f"a {ptype.name} packet")
        packet = self.packets.pop(0)
        assert packet.type == ptype, packet
        return packet.args

    async def sync(self) -> None:
        """Wait until the server has handled everything sent so far."""
        self.send(PacketType.ECHO_REQ, b"sync")
        await self.expect(PacketType.ECHO_RES)

    async def submit(
        self,
        function: bytes,
        unique: bytes,
        ptype: PacketType = PacketType.SUBMIT_JOB_BG,
    ) -> bytes:
        self.send(ptype, function, unique, b"payload")
        [handle] = await self.expect(PacketType.JOB_CREATED)
        return handle


class WorkerTestMixin:
    """
    Servers and workers over TCP that the test's cleanups stop.
    """

    addCleanup: Callable[..., None]

    async def startServer(
        self, port: int = 0, **kwargs: Any
    ) -> tuple[GearmanServerService, int]:
        service = GearmanServerService(
            f"tcp:{port}:interface={LOOPBACK}", reactor=reactor, **kwargs
        )
        service.privilegedStartService()
        service.startService()
        self.addCleanup(self.stopServer, service)
        await service.ready
        assert service.port is not None
        address = service.port.getHost()
        assert isinstance(address, IPv4Address)
        return service, address.port

    @staticmethod
    def stopServer(service: GearmanServerService) -> Deferred[Any] | None:
        if not service.running:
            return None
        return service.stopService()

    def startWorker(
        self,
        ports: list[int],
        functions: dict[str, Callable[[WorkerJob], Any]],
        **kwargs: Any,
    ) -> GearmanWorker:
        kwargs.setdefault("stopTimeout", 5.0)
        worker = GearmanWorker([serverName(port) for port in ports], reactor, **kwargs)
        for name, function in functions.items():
            worker.register(name, function)
        worker.startService()

        def stop() -> Deferred[None] | None:
            return worker.stopService() if worker.running else None

        self.addCleanup(stop)
        return worker

    async def asleep(self, worker: GearmanWorker, connections: int = 1) -> None:
        """
        Wait until C{worker} has C{connections} connections, each of which
        has announced its functions and been told there is no job.
        """

        def ready() -> bool:
            live = worker.connections
            return len(live) == connections and all(c.sleeping for c in live)

        await poll(ready, f"{connections} sleeping worker connections")


class ClientTestMixin(WorkerTestMixin):
    """
    Servers, workers and clients over TCP.
    """

    def startClient(
        self, ports: list[int], timeout: float = 30.0, clientId: bytes = CLIENT_ID
    ) -> GearmanClient:
        client = GearmanClient(
            [serverName(port) for port in ports],
            reactor=reactor,
            timeout=timeout,
            clientId=clientId,
        )
        client.startService()

        def stop() -> Deferred[Any] | None:
            return client.stopService() if client.running else None

        self.addCleanup(stop)
        return client


class AdminTestCase(TestCase):
    """
    Raw peers and admin clients over TCP that the cleanups close.
    """

    timeout = 60

    async def connect(self, port: int) -> RawPeer:
        peer = RawPeer()
        await connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), peer)

        def disconnect() -> Deferred[None]:
            assert peer.transport is not None
            peer.transport.loseConnection()
            return peer.lost

        self.addCleanup(disconnect)
        return peer

    def adminClient(self, port: int, timeout: float = 10.0) -> GearmanAdminClient:
        client = GearmanAdminClient(
            TCP4ClientEndpoint(reactor, LOOPBACK, port),
            timeout=timeout,
            reactor=reactor,
        )
        self.addCleanup(client.close)
        return client
