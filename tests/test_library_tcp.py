"""
One smoke test per role of the library over real TCP on the global
reactor, against a txgearman server running in this process on a port of
the loopback interface: servers named by endpoint description, Twisted's
TCP endpoints and the operating system under the protocols that the unit
tests run in memory (L{txgearman.testing}).
"""

from __future__ import annotations

from twisted.internet.error import ConnectionRefusedError

from tests.fixtures import freePort
from tests.library import (
    AdminTestCase,
    ClientTestMixin,
    poll,
    raised,
    serverName,
)
from txgearman.client.admin import FunctionStatus, GearmanAdminClient
from txgearman.client.worker import WorkerJob
from txgearman.codec import PacketType

_P = PacketType


class LibraryTCPTests(ClientTestMixin, AdminTestCase):
    """
    The client, the worker and the admin client against a txgearman
    server on C{tcp:0}.
    """

    async def test_client(self) -> None:
        """
        A L{txgearman.client.GearmanClient} given C{tcp:host:port} submits
        a job and gets its result.
        """
        server, port = await self.startServer()
        self.startWorker([port], {"reverse": lambda job: job.data[::-1]})
        client = self.startClient([port])
        self.assertEqual(await client.submit("reverse", b"a\0bc"), b"cb\0a")
        await poll(lambda: server.core.idle, "the job to be gone from the server")

    async def test_worker(self) -> None:
        """
        A L{txgearman.client.GearmanWorker} given C{tcp:host:port} does a
        job a raw client submitted, with its progress, and the client gets
        the result.
        """
        _, port = await self.startServer()

        def upper(job: WorkerJob) -> bytes:
            job.sendStatus(1, 2)
            return job.data.upper()

        worker = self.startWorker([port], {"upper": upper}, clientId=b"smoke")
        await self.asleep(worker)
        peer = await self.connect(port)
        handle = await peer.submit(b"upper", b"", _P.SUBMIT_JOB)
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
        await peer.submit(b"resize", b"img-1")
        admin = GearmanAdminClient(serverName(port))
        self.addCleanup(admin.close)
        self.assertEqual(await admin.status(), [FunctionStatus(b"resize", 1, 0, 0)])
        nowhere = GearmanAdminClient(serverName(freePort()))
        self.addCleanup(nowhere.close)
        await raised(nowhere.version(), ConnectionRefusedError)
