"""
Tests for L{txgearman.server.batching.writerFor} over real loopback TCP:
output goes straight to the socket when nothing is buffered, and always in
order.
"""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from txgearman.server import batching
from txgearman.server.batching import writerFor


class Collect(Protocol):
    def __init__(self, expected: int) -> None:
        self.received = bytearray()
        self.expected = expected
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expected and not self.done.called:
            self.done.callback(bytes(self.received))


class Hold(Protocol):
    """The server side: it hands its transport to the test."""

    def connectionMade(self) -> None:
        self.factory.connected.callback(self)


class DirectWriteTests(TestCase):
    """
    L{writerFor} over real loopback TCP.
    """

    async def connection(self, expected: int) -> tuple[Hold, Collect]:
        factory = Factory.forProtocol(Hold)
        factory.connected = defer.Deferred()  # type: ignore[attr-defined]
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            factory
        )
        self.addCleanup(port.stopListening)
        client = Collect(expected)
        clientProto = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client
        )
        server: Hold = await factory.connected  # type: ignore[attr-defined]

        def close() -> defer.Deferred[None]:
            lost: defer.Deferred[None] = defer.Deferred()
            clientProto.connectionLost = lambda reason: lost.callback(None)
            assert server.transport is not None
            server.transport.loseConnection()
            return lost

        self.addCleanup(close)
        return server, client

    async def test_direct(self) -> None:
        """
        With nothing buffered, the bytes go straight to the socket.
        """
        server, client = await self.connection(5)
        before = batching.directWrites
        assert server.transport is not None
        writerFor(server.transport)(b"hello")
        self.assertEqual(batching.directWrites, before + 1)
        self.assertEqual(await client.done, b"hello")

    async def test_orderAfterBufferedWrite(self) -> None:
        """
        With older bytes in the transport's buffer, new bytes queue behind
        them instead of overtaking them.
        """
        server, client = await self.connection(6)
        assert server.transport is not None
        server.transport.write(b"old")
        before = batching.directWrites
        writerFor(server.transport)(b"new")
        self.assertEqual(batching.directWrites, before)
        self.assertEqual(await client.done, b"oldnew")

    async def test_partialSend(self) -> None:
        """
        What the socket does not take at once is buffered by the transport
        and follows, in order.
        """
        payload = bytes(range(256)) * (16 * 4096)
        server, client = await self.connection(len(payload) + 4)
        assert server.transport is not None
        writerFor(server.transport)(payload)
        writerFor(server.transport)(b"tail")
        received = await client.done
        self.assertEqual(len(received), len(payload) + 4)
        self.assertTrue(received == payload + b"tail")
