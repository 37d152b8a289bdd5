"""
Tests for L{txgearman.server.service} on real loopback ports, with the
global reactor: what a fake reactor cannot show, that the port is really
listened on, served and closed.
"""

from __future__ import annotations

from typing import cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.fixtures import busyPort, waitForAsync
from txgearman.server.service import GearmanServerService


class PrivilegedPortTests(SynchronousTestCase):
    """
    Listening on a real port, in L{privilegedStartService}.
    """

    def test_portInUse(self) -> None:
        """
        A port already in use makes L{privilegedStartService} raise
        L{CannotListenError}.
        """
        port = busyPort(self)
        service = GearmanServerService(
            f"tcp:{port}:interface=127.0.0.1", reactor=reactor, listenEarly=True
        )
        self.assertRaises(CannotListenError, service.privilegedStartService)
        self.assertIsNone(service.port)


class _Client(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost.callback(None)


class RealReactorTests(TestCase):
    """
    Start and stop on a real loopback port.
    """

    timeout = 10

    async def test_startAndStop(self) -> None:
        """
        The service serves on its port once ready; stopping closes the
        port and every connection.
        """
        service = GearmanServerService("tcp:0:interface=127.0.0.1")
        service.privilegedStartService()
        service.startService()
        await service.ready
        assert service.port is not None
        port = cast(IPv4Address, service.port.getHost()).port
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        client = _Client()
        await connectProtocol(endpoint, client)
        assert client.transport is not None
        client.transport.write(b"version\n")
        await waitForAsync(lambda: client.data.endswith(b"\n"), 5, "the version reply")
        self.assertTrue(client.data.startswith(b"OK "))
        await service.stopService()
        await client.lost.addTimeout(5, reactor)
        self.assertEqual(service.factory.connections, set())
        with self.assertRaises(ConnectionRefusedError):
            await connectProtocol(endpoint, _Client())

    def test_portInUseLate(self) -> None:
        """
        A port bound once the store is ready: a port already in use fails
        C{ready}, with the reason logged in words.
        """
        port = busyPort(self)
        service = GearmanServerService(
            f"tcp:{port}:interface=127.0.0.1", reactor=reactor
        )
        # A failed start stops the reactor (twistd's): not trial's.
        stops: list[None] = []
        self.patch(reactor, "stop", lambda: stops.append(None))
        self.patch(reactor, "callWhenRunning", lambda f, *a, **kw: f(*a, **kw))
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        failure = self.failureResultOf(service.ready, CannotListenError)
        self.assertIn("Address already in use", failure.getErrorMessage())
        self.assertIsNone(service.port)
        self.assertEqual(stops, [None])
