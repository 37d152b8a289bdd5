"""
One smoke test per role of the library over real TCP on the global
reactor, against a txgearman server running in this process on a port of
the loopback interface: servers named by endpoint description, Twisted's
TCP endpoints and the operating system under the protocols that the unit
tests run in memory (L{txgearman.testing}).
"""

from __future__ import annotations

from typing import TypeVar

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.fixtures import LOOPBACK, freePort, raised, waitForAsync
from txgearman.client.admin import FunctionStatus, GearmanAdminClient
from txgearman.client.client import GearmanClient
from txgearman.client.errors import AdminConnectFailed
from txgearman.client.worker import GearmanWorker, WorkerJob
from txgearman.codec import PacketType
from txgearman.server.service import GearmanServerService
from txgearman.test.fakes import PacketPeer

_P = PacketType
_E = TypeVar("_E", bound=BaseException)

#: How long a test waits for anything: generous, for a loaded machine.
WAIT = 30.0


def serverName(port: int) -> str:
    """The name the library is given for the server on C{port}."""
    return f"tcp:{LOOPBACK}:{port}"


class RawPeer(PacketPeer):
    """A Gearman client speaking raw packets, on the real reactor."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)

    async def expect(self, ptype: PacketType) -> tuple[bytes, ...]:
        """Wait for the next packet, which must be of type C{ptype}."""
        await waitForAsync(lambda: self.packets, WAIT, f"a {ptype.name} packet")
        packet = self.packets.pop(0)
        assert packet.type == ptype, packet
        return packet.args


class LibraryTCPTests(TestCase):
    """
    The client, the worker and the admin client against a txgearman
    server on C{tcp:0}, all stopped by the test's cleanups.
    """

    timeout = 120

    async def startServer(self) -> tuple[GearmanServerService, int]:
        service = GearmanServerService(f"tcp:0:interface={LOOPBACK}", reactor=reactor)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        await service.ready
        assert service.port is not None
        address = service.port.getHost()
        assert isinstance(address, IPv4Address)
        return service, address.port

    def startWorker(self, worker: GearmanWorker) -> GearmanWorker:
        worker.startService()
        self.addCleanup(worker.stopService)
        return worker

    async def connect(self, port: int) -> RawPeer:
        peer = RawPeer()
        await connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), peer)

        def disconnect() -> Deferred[None]:
            assert peer.transport is not None
            peer.transport.loseConnection()
            return peer.lost

        self.addCleanup(disconnect)
        return peer

    async def test_client(self) -> None:
        """
        A L{GearmanClient} given C{tcp:host:port} submits a job and gets
        its result.
        """
        server, port = await self.startServer()
        worker = GearmanWorker([serverName(port)], reactor, stopTimeout=5.0)
        worker.register("reverse", lambda job: job.data[::-1])
        self.startWorker(worker)
        client = GearmanClient([serverName(port)], reactor=reactor, timeout=WAIT)
        client.startService()
        self.addCleanup(client.stopService)
        self.assertEqual(await client.submit("reverse", b"a\0bc"), b"cb\0a")
        await waitForAsync(lambda: server.core.idle, WAIT, "the job to be gone")

    async def test_worker(self) -> None:
        """
        A L{GearmanWorker} given C{tcp:host:port} does a job a raw client
        submitted, with its progress, and the client gets the result.
        """
        _, port = await self.startServer()

        def upper(job: WorkerJob) -> bytes:
            job.sendStatus(1, 2)
            return job.data.upper()

        worker = GearmanWorker([serverName(port)], reactor, stopTimeout=5.0)
        worker.register("upper", upper)
        self.startWorker(worker)

        def asleep() -> bool:
            live = worker.connections
            return len(live) == 1 and live[0].sleeping

        await waitForAsync(asleep, WAIT, "a sleeping worker connection")
        peer = await self.connect(port)
        peer.send(_P.SUBMIT_JOB, b"upper", b"", b"payload")
        [handle] = await peer.expect(_P.JOB_CREATED)
        self.assertEqual(await peer.expect(_P.WORK_STATUS), (handle, b"1", b"2"))
        self.assertEqual(await peer.expect(_P.WORK_COMPLETE), (handle, b"PAYLOAD"))

    async def test_admin(self) -> None:
        """
        A L{GearmanAdminClient} given C{tcp:host:port} reads the status of
        a queued job; with nothing listening, it fails with the operating
        system's connection refusal.
        """
        _, port = await self.startServer()
        peer = await self.connect(port)
        peer.send(_P.SUBMIT_JOB_BG, b"resize", b"img-1", b"")
        await peer.expect(_P.JOB_CREATED)
        admin = GearmanAdminClient(serverName(port))
        self.addCleanup(admin.close)
        self.assertEqual(await admin.status(), [FunctionStatus(b"resize", 1, 0, 0)])
        nowhere = GearmanAdminClient(serverName(freePort()))
        self.addCleanup(nowhere.close)
        error = await raised(nowhere.version(), AdminConnectFailed)
        self.assertIsInstance(error.reason, ConnectionRefusedError)
